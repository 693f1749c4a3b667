import Foundation

/// RFC 3339 timestamps.
public enum RFC3339 {
    /// Formats an instant as `YYYY-MM-DDTHH:MM:SSZ` (with `.mmm` when there are milliseconds).
    public static func format(ms: Int64) -> String {
        var out: [UInt8] = []
        write(ms: ms, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `format(ms:)`'s text, with `utc` in place of its `Z` (nexo writes `+00:00`).
    public static func write(ms: Int64, utc: StaticString = "Z", into out: inout [UInt8]) {
        let secs = floorDiv(ms, 1000)
        let f = LocalFields(utcEpochSeconds: secs)
        let milli = ms - secs * 1000
        // Written by hand into bytes: String(format:) goes through CoreFoundation and costs
        // microseconds, and this runs for every tick and every item.
        func two(_ v: Int) {
            out.append(UInt8(48 + v / 10))
            out.append(UInt8(48 + v % 10))
        }
        // Years outside 0...9999 are outside RFC 3339; they are written in full rather than cut.
        if (0...9999).contains(f.year) {
            two(f.year / 100)
            two(f.year % 100)
        } else {
            out.append(contentsOf: String(f.year).utf8)
        }
        out.append(UInt8(ascii: "-"))
        two(f.month)
        out.append(UInt8(ascii: "-"))
        two(f.day)
        out.append(UInt8(ascii: "T"))
        two(f.hour)
        out.append(UInt8(ascii: ":"))
        two(f.minute)
        out.append(UInt8(ascii: ":"))
        two(f.second)
        if milli != 0 {
            out.append(UInt8(ascii: "."))
            out.append(UInt8(48 + milli / 100))
            two(Int(milli % 100))
        }
        out.append(contentsOf: UnsafeBufferPointer(start: utc.utf8Start, count: utc.utf8CodeUnitCount))
    }

    /// Parses an RFC 3339 timestamp with `Z` or a `±HH:MM` offset (fractional seconds allowed).
    public static func parse(_ text: String) -> Int64? {
        let s = Array(text.utf8)
        func num(_ a: Int, _ n: Int) -> Int? {
            guard a + n <= s.count else { return nil }
            var v = 0
            for i in a..<(a + n) {
                guard s[i] >= 48, s[i] <= 57 else { return nil }
                v = v * 10 + Int(s[i] - 48)
            }
            return v
        }
        guard s.count >= 20, let y = num(0, 4), s[4] == 45, let mo = num(5, 2), s[7] == 45, let d = num(8, 2),
            s[10] == 84 || s[10] == 116 || s[10] == 32, let h = num(11, 2), s[13] == 58, let mi = num(14, 2),
            s[16] == 58,
            let se = num(17, 2)
        else { return nil }
        guard (1...12).contains(mo), d >= 1, d <= CivilDate.daysInMonth(year: y, month: mo), h <= 23, mi <= 59, se <= 60
        else { return nil }
        var i = 19
        var frac: Int64 = 0
        if i < s.count, s[i] == 46 {
            i += 1
            var digits = 0
            while i < s.count, s[i] >= 48, s[i] <= 57 {
                if digits < 3 { frac = frac * 10 + Int64(s[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 3 { for _ in digits..<3 { frac *= 10 } }
        }
        guard i < s.count else { return nil }
        var offset = 0
        if s[i] == 90 || s[i] == 122 {
            i += 1
        } else if s[i] == 43 || s[i] == 45 {
            guard let oh = num(i + 1, 2), s.count > i + 3, s[i + 3] == 58, let om = num(i + 4, 2), oh <= 23, om <= 59
            else { return nil }
            offset = (oh * 3600 + om * 60) * (s[i] == 45 ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == s.count else { return nil }
        let f = LocalFields(year: y, month: mo, day: d, hour: h, minute: mi, second: min(se, 59))
        return (f.naiveEpochSeconds - Int64(offset)) * 1000 + frac
    }
}
