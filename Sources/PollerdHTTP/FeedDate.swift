import Foundation
import PollerdCore

/// Dates as feeds write them: RFC 822 and its common variants (with or without weekday and
/// seconds, two-digit years, named zones, numeric zones with or without a colon, asctime), and
/// RFC 3339 / W3C-DTF (with partial forms such as `2003-12` and `2003-12-13`). A date that does
/// not parse is nil, never "now".
public enum FeedDate {
    /// Milliseconds since the epoch, or nil.
    public static func parse(_ text: String) -> Int64? {
        guard let t = FeedParser.trimmed(text), t.utf8.count <= 64 else { return nil }
        if let first = t.utf8.first, first >= 48, first <= 57, let ms = iso(t) { return ms }
        return rfc822(t)
    }

    /// The ISO 8601 UTC form pollerd puts in items, or nil.
    public static func normalized(_ text: String?) -> String? {
        guard let text, let ms = parse(text) else { return nil }
        return RFC3339.format(ms: ms)
    }

    // MARK: ISO 8601 / W3C-DTF / RFC 3339

    static func iso(_ t: String) -> Int64? {
        let s = Array(t.utf8)
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= s.count else { return nil }
            var v = 0
            for k in i..<(i + n) {
                guard s[k] >= 48, s[k] <= 57 else { return nil }
                v = v * 10 + Int(s[k] - 48)
            }
            i += n
            return v
        }
        func eat(_ c: UInt8) -> Bool {
            if i < s.count, s[i] == c {
                i += 1
                return true
            }
            return false
        }
        guard let y = digits(4) else { return nil }
        var mo = 1
        var d = 1
        var h = 0
        var mi = 0
        var se = 0
        var ms = 0
        var offset = 0
        if eat(45) {
            guard let m = digits(2) else { return nil }
            mo = m
            if eat(45) {
                guard let dd = digits(2) else { return nil }
                d = dd
                if i < s.count, s[i] == 84 || s[i] == 116 || s[i] == 32 {
                    i += 1
                    guard let hh = digits(2), eat(58), let mm = digits(2) else { return nil }
                    h = hh
                    mi = mm
                    if eat(58) {
                        guard let ss = digits(2) else { return nil }
                        se = ss
                        if eat(46) || eat(44) {
                            var n = 0
                            while i < s.count, s[i] >= 48, s[i] <= 57 {
                                if n < 3 { ms = ms * 10 + Int(s[i] - 48) }
                                n += 1
                                i += 1
                            }
                            guard n > 0 else { return nil }
                            if n < 3 { for _ in n..<3 { ms *= 10 } }
                        }
                    }
                    while i < s.count, s[i] == 32 { i += 1 }
                    if i < s.count {
                        if s[i] == 90 || s[i] == 122 {
                            i += 1
                        } else if s[i] == 43 || s[i] == 45 {
                            let sign = s[i] == 45 ? -1 : 1
                            i += 1
                            guard let oh = digits(2) else { return nil }
                            _ = eat(58)
                            let om = digits(2) ?? 0
                            guard oh <= 23, om <= 59 else { return nil }
                            offset = sign * (oh * 60 + om)
                        } else if let z = zoneOffset(String(decoding: s[i...], as: UTF8.self)) {
                            offset = z
                            i = s.count
                        } else {
                            return nil
                        }
                    }
                }
            }
        }
        guard i == s.count else { return nil }
        return instant(y: y, mo: mo, d: d, h: h, mi: mi, se: se, ms: ms, offsetMinutes: offset)
    }

    // MARK: RFC 822 and friends

    static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let weekdays: Set<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "tues", "thur", "thurs"]
    static let fullWeekdays: Set<String> = [
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    ]
    static let fullMonths = [
        "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
        "december",
    ]

    /// Named zones seen in feeds, in minutes east of UTC.
    static let zones: [String: Int] = [
        "ut": 0, "utc": 0, "gmt": 0, "z": 0, "wet": 0,
        "est": -300, "edt": -240, "cst": -360, "cdt": -300, "mst": -420, "mdt": -360, "pst": -480, "pdt": -420,
        "et": -300, "ct": -360, "mt": -420, "pt": -480, "akst": -540, "akdt": -480, "hst": -600, "ast": -240,
        "adt": -180,
        "nst": -210, "ndt": -150, "bst": 60, "cet": 60, "cest": 120, "met": 60, "mest": 120, "west": 60, "eet": 120,
        "eest": 180,
        "msk": 180, "ist": 330, "jst": 540, "kst": 540, "hkt": 480, "sgt": 480, "awst": 480, "acst": 570, "aest": 600,
        "aedt": 660, "nzst": 720, "nzdt": 780,
    ]

    static func zoneOffset(_ token: String) -> Int? {
        let t = token.lowercased()
        if let z = zones[t] { return z }
        let u = Array(t.utf8)
        // +hhmm, -hhmm, +hh:mm, +hh, optionally after "gmt"/"utc".
        var k = 0
        if t.hasPrefix("gmt") || t.hasPrefix("utc") { k = 3 }
        guard k < u.count, u[k] == 43 || u[k] == 45 else { return nil }
        let sign = u[k] == 45 ? -1 : 1
        let ds = u[(k + 1)...].filter { $0 != 58 }
        guard !ds.isEmpty, ds.count <= 4, ds.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        let v = Int(String(decoding: ds, as: UTF8.self))!
        let (hh, mm) = ds.count <= 2 ? (v, 0) : (v / 100, v % 100)
        guard hh <= 23, mm <= 59 else { return nil }
        return sign * (hh * 60 + mm)
    }

    /// RFC 822 and its variants, read byte by byte (this runs for every entry of every feed).
    static func rfc822(_ t: String) -> Int64? {
        let s = Array(t.utf8)
        var day: Int?
        var month: Int?
        var year: Int?
        var time: (Int, Int, Int)?
        var offset: Int?
        var i = 0
        let n = s.count
        func isSep(_ b: UInt8) -> Bool { b == 0x20 || b == 0x2C || b == 0x09 || b == 0x0A || b == 0x0D }
        func digits(_ tok: ArraySlice<UInt8>) -> Int? {
            guard !tok.isEmpty, tok.count <= 9 else { return nil }
            var v = 0
            for b in tok {
                guard b >= 0x30, b <= 0x39 else { return nil }
                v = v * 10 + Int(b - 0x30)
            }
            return v
        }
        while i < n {
            while i < n, isSep(s[i]) { i += 1 }
            guard i < n else { break }
            var j = i
            while j < n, !isSep(s[j]) { j += 1 }
            let whole = s[i..<j]
            i = j
            let hasColon = whole.contains(0x3A)
            let signed = whole.first == 0x2B || (whole.first == 0x2D && whole.count > 1)
            // "19-May-2002" pieces are split further; times and signed zones are not.
            let pieces: [ArraySlice<UInt8>] = (hasColon || signed) ? [whole] : whole.split(separator: 0x2D)
            for var tok in pieces {
                if tok.last == 0x2E { tok = tok.dropLast() } // "Tue." and "May."
                guard !tok.isEmpty else { continue }
                let first = tok.first!
                let isLetter = (first | 0x20) >= 0x61 && (first | 0x20) <= 0x7A
                if isLetter {
                    let lower = String(decoding: tok.map { ($0 >= 0x41 && $0 <= 0x5A) ? $0 | 0x20 : $0 }, as: UTF8.self)
                    if weekdays.contains(lower) || fullWeekdays.contains(lower) { continue }
                    if month == nil,
                        let m = months.firstIndex(of: lower) ?? fullMonths.firstIndex(of: lower)
                            ?? (lower.count >= 3 ? fullMonths.firstIndex(where: { $0.hasPrefix(lower) }) : nil)
                    {
                        month = m + 1
                        continue
                    }
                    guard offset == nil, let z = zoneOffset(lower) else { return nil }
                    offset = z
                    continue
                }
                if hasColon && !signed {
                    guard time == nil else { return nil }
                    // A zone may be glued on: 15:21:36Z, 15:21:36+0000, 15:21:36GMT.
                    var end = tok.startIndex
                    while end < tok.endIndex,
                        (tok[end] >= 0x30 && tok[end] <= 0x39) || tok[end] == 0x3A || tok[end] == 0x2E
                    { end += 1 }
                    let clock = tok[..<end]
                    let zonePart = tok[end...]
                    let parts = clock.split(separator: 0x3A, omittingEmptySubsequences: false)
                    guard (2...3).contains(parts.count), parts[0].count <= 2, parts[1].count == 2,
                        let h = digits(parts[0]), let m = digits(parts[1])
                    else { return nil }
                    var sec = 0
                    if parts.count == 3 {
                        let whole = parts[2].split(separator: 0x2E, maxSplits: 1, omittingEmptySubsequences: false)[0]
                        guard whole.count == 2, let v = digits(whole) else { return nil }
                        sec = v
                    }
                    guard h <= 24, m <= 59, sec <= 60 else { return nil }
                    time = (h, m, min(sec, 59))
                    if !zonePart.isEmpty {
                        guard let z = zoneOffset(String(decoding: zonePart, as: UTF8.self)) else { return nil }
                        offset = z
                    }
                    continue
                }
                if let v = digits(tok) {
                    if tok.count == 4 {
                        guard year == nil else { return nil }
                        year = v
                        continue
                    }
                    if tok.count <= 2 {
                        if day == nil {
                            day = v
                        } else if year == nil {
                            year = v < 50 ? 2000 + v : 1900 + v
                        } else {
                            return nil
                        }
                        continue
                    }
                    return nil
                }
                guard offset == nil, let z = zoneOffset(String(decoding: tok, as: UTF8.self)) else { return nil }
                offset = z
            }
        }
        guard let day, let month, let year else { return nil }
        let (h, mi, se) = time ?? (0, 0, 0)
        if h == 24 && (mi > 0 || se > 0) { return nil }
        return instant(y: year, mo: month, d: day, h: h, mi: mi, se: se, ms: 0, offsetMinutes: offset ?? 0)
    }

    static func instant(y: Int, mo: Int, d: Int, h: Int, mi: Int, se: Int, ms: Int, offsetMinutes: Int) -> Int64? {
        guard (1...9999).contains(y), (1...12).contains(mo), d >= 1, d <= CivilDate.daysInMonth(year: y, month: mo),
            h <= 24, mi <= 59, se <= 60
        else { return nil }
        let days = CivilDate.daysFromCivil(year: y, month: mo, day: d)
        let secs = days * 86_400 + Int64(h * 3600 + mi * 60 + min(se, 59)) - Int64(offsetMinutes * 60)
        return secs * 1000 + Int64(ms)
    }
}
