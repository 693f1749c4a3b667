import Foundation

/// A time zone's offset rules, with the two conversions cron needs.
public struct ZoneRules: Sendable, Hashable {
    /// The IANA identifier (`UTC`, `Europe/Berlin`, …).
    public let identifier: String
    private let zone: TimeZone?

    /// UTC, the default.
    public static let utc = ZoneRules(utc: ())
    private init(utc: ()) {
        identifier = "UTC"
        zone = nil
    }

    /// The rules of an IANA zone; nil if the identifier is unknown.
    public init?(identifier: String) {
        if identifier == "UTC" || identifier == "Etc/UTC" || identifier == "Z" {
            self.identifier = "UTC"
            zone = nil
            return
        }
        // Only IANA names: `Area/City` or a known bare name. Abbreviations like "EST" are ambiguous.
        guard identifier.contains("/") || identifier == "GMT", let tz = TimeZone(identifier: identifier) else {
            return nil
        }
        self.identifier = identifier
        zone = tz
    }

    /// UTC offset in seconds at an instant.
    public func offset(atEpochSeconds s: Int64) -> Int64 {
        guard let zone else { return 0 }
        return Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(s))))
    }

    /// Local wall-clock fields at an instant.
    public func localFields(epochSeconds s: Int64) -> LocalFields {
        LocalFields(utcEpochSeconds: s + offset(atEpochSeconds: s))
    }

    /// The instant (epoch seconds) of local fields. A repeated local time gives its first
    /// occurrence; a local time skipped by a gap gives the first instant after the gap.
    public func firstInstant(for f: LocalFields) -> Int64 {
        let u = f.naiveEpochSeconds
        guard zone != nil else { return u }
        let candidates = Set([
            offset(atEpochSeconds: u - 86_400), offset(atEpochSeconds: u), offset(atEpochSeconds: u + 86_400),
        ])
        let valid = candidates.map { u - $0 }.filter { offset(atEpochSeconds: $0) == u - $0 }
        if let first = valid.min() { return first }
        // In a gap: the offset jumps from `lo` to `hi` at some instant T in (u - hi, u - lo].
        let lo = candidates.min()!
        let hi = candidates.max()!
        var a = u - hi
        var b = u - lo // offset(a) == lo side, offset(b) == hi side
        while b - a > 1 {
            let mid = a + (b - a) / 2
            if offset(atEpochSeconds: mid) == offset(atEpochSeconds: b) { b = mid } else { a = mid }
        }
        return b
    }
}
