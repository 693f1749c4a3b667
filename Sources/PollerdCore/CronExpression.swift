/// A parsed cron expression: 5 fields (`min hour dom mon dow`) or 6 with seconds first.
///
/// Supports names (JAN–DEC, SUN–SAT), ranges, steps, lists, `?`, `L` in day-of-month,
/// `nL` (last weekday n of the month) and `n#k` (k-th weekday n) in day-of-week, and the macros
/// `@yearly @annually @monthly @weekly @daily @midnight @hourly`. Day-of-week 0 and 7 are Sunday.
/// When both day fields are restricted, a day matches if either matches (Vixie cron).
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as written.
    public let source: String
    var seconds: UInt64 = 0
    var minutes: UInt64 = 0
    var hours: UInt32 = 0
    var daysOfMonth: UInt32 = 0 // bits 1...31
    var lastDayOfMonth = false
    var months: UInt16 = 0 // bits 1...12
    var daysOfWeek: UInt8 = 0 // bits 0...6, 0 = Sunday
    var lastWeekdays: UInt8 = 0 // `nL`: bit n set
    var nthWeekdays: Set<Int> = [] // `n#k`: encoded n*10+k
    var domRestricted = false
    var dowRestricted = false

    public var description: String { source }

    /// A cron parse error that names the field at fault.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The field name (`second`, `minute`, `hour`, `day-of-month`, `month`, `day-of-week`), or `expression`.
        public let field: String
        /// What is wrong.
        public let message: String
        public var description: String {
            field == "expression" ? message : "\(field) field: \(message)"
        }
    }

    private static let macros: [String: String] = [
        "@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
        "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *",
    ]
    private static let monthNames = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ]
    private static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    /// Parses an expression; throws `ParseError` naming the bad field.
    public init(_ text: String) throws {
        source = text
        let trimmed = text.trimmingCharactersInWhitespace()
        var expanded = trimmed
        if trimmed.hasPrefix("@") {
            guard let m = Self.macros[trimmed.lowercased()] else {
                throw ParseError(
                    field: "expression",
                    message:
                        "unknown macro '\(trimmed)' (known: @yearly @annually @monthly @weekly @daily @midnight @hourly)"
                )
            }
            expanded = m
        }
        var fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        switch fields.count {
        case 5: fields.insert("0", at: 0)
        case 6: break
        default:
            throw ParseError(
                field: "expression",
                message: "expected 5 fields (min hour dom mon dow) or 6 (sec min hour dom mon dow), got \(fields.count)"
            )
        }
        seconds = try Self.parseSimple(fields[0], name: "second", range: 0...59, names: nil)
        minutes = try Self.parseSimple(fields[1], name: "minute", range: 0...59, names: nil)
        hours = UInt32(try Self.parseSimple(fields[2], name: "hour", range: 0...23, names: nil))
        try parseDayOfMonth(fields[3])
        months = UInt16(
            try Self.parseSimple(fields[4], name: "month", range: 1...12, names: Self.monthNames, nameBase: 1))
        try parseDayOfWeek(fields[5])
    }

    // MARK: parsing

    private static func parseNumber(
        _ s: String, name: String, range: ClosedRange<Int>, names: [String]?, nameBase: Int
    ) throws -> Int {
        if let n = Int(s) {
            guard range.contains(n) else {
                throw ParseError(
                    field: name, message: "value \(n) out of range \(range.lowerBound)-\(range.upperBound)")
            }
            return n
        }
        if let names, let idx = names.firstIndex(of: s.uppercased()) { return idx + nameBase }
        throw ParseError(field: name, message: "'\(s)' is not a number\(names == nil ? "" : " or a name")")
    }

    /// Parses `*`, `?`, lists, ranges and steps into a bit set.
    private static func parseSimple(
        _ field: String, name: String, range: ClosedRange<Int>, names: [String]?, nameBase: Int = 0,
        allowQuestion: Bool = false
    ) throws -> UInt64 {
        var bits: UInt64 = 0
        if field.isEmpty { throw ParseError(field: name, message: "empty field") }
        for part in field.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            guard !part.isEmpty else { throw ParseError(field: name, message: "empty list element in '\(field)'") }
            var rangePart = part
            var step = 1
            if let slash = part.firstIndex(of: "/") {
                rangePart = String(part[..<slash])
                let stepText = String(part[part.index(after: slash)...])
                guard let s = Int(stepText), s >= 1 else {
                    throw ParseError(field: name, message: "step '\(stepText)' must be a positive number")
                }
                guard s <= range.upperBound - range.lowerBound + 1 || s <= 1 else {
                    throw ParseError(field: name, message: "step \(s) is larger than the field's range")
                }
                step = s
            }
            var lo: Int
            var hi: Int
            if rangePart == "*" || (rangePart == "?" && allowQuestion) {
                lo = range.lowerBound
                hi = range.upperBound
            } else if rangePart == "?" {
                throw ParseError(field: name, message: "'?' is only allowed in day-of-month and day-of-week")
            } else if let dash = rangePart.firstIndex(of: "-"), dash != rangePart.startIndex {
                lo = try parseNumber(
                    String(rangePart[..<dash]), name: name, range: range, names: names, nameBase: nameBase)
                hi = try parseNumber(
                    String(rangePart[rangePart.index(after: dash)...]), name: name, range: range, names: names,
                    nameBase: nameBase)
                guard lo <= hi else {
                    throw ParseError(field: name, message: "range \(rangePart) runs backwards")
                }
            } else {
                lo = try parseNumber(rangePart, name: name, range: range, names: names, nameBase: nameBase)
                hi = part.contains("/") ? range.upperBound : lo
            }
            var v = lo
            while v <= hi {
                bits |= 1 << UInt64(v)
                v += step
            }
        }
        return bits
    }

    private mutating func parseDayOfMonth(_ field: String) throws {
        domRestricted = !(field.hasPrefix("*") || field.hasPrefix("?"))
        var rest: [String] = []
        for part in field.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            if part.uppercased() == "L" { lastDayOfMonth = true } else { rest.append(part) }
        }
        if !rest.isEmpty {
            daysOfMonth = UInt32(
                try Self.parseSimple(
                    rest.joined(separator: ","), name: "day-of-month", range: 1...31, names: nil, allowQuestion: true))
        }
    }

    private mutating func parseDayOfWeek(_ field: String) throws {
        dowRestricted = !(field.hasPrefix("*") || field.hasPrefix("?"))
        var rest: [String] = []
        for part in field.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            let up = part.uppercased()
            if up.count >= 2, up.hasSuffix("L") {
                let d = try Self.weekday(String(up.dropLast()))
                lastWeekdays |= 1 << UInt8(d)
            } else if let hash = up.firstIndex(of: "#") {
                let d = try Self.weekday(String(up[..<hash]))
                let kText = String(up[up.index(after: hash)...])
                guard let k = Int(kText), (1...5).contains(k) else {
                    throw ParseError(field: "day-of-week", message: "'#\(kText)' must be 1 to 5")
                }
                nthWeekdays.insert(d * 10 + k)
            } else {
                rest.append(part)
            }
        }
        if !rest.isEmpty {
            let bits = try Self.parseSimple(
                rest.joined(separator: ","), name: "day-of-week", range: 0...7, names: Self.dayNames,
                allowQuestion: true)
            daysOfWeek = UInt8(truncatingIfNeeded: bits & 0x7f) | UInt8((bits >> 7) & 1) // 7 is Sunday too
        }
    }

    private static func weekday(_ s: String) throws -> Int {
        let d = try parseNumber(s, name: "day-of-week", range: 0...7, names: dayNames, nameBase: 0)
        return d == 7 ? 0 : d
    }

    // MARK: matching

    func matchesDay(year: Int, month: Int, day: Int) -> Bool {
        let dim = CivilDate.daysInMonth(year: year, month: month)
        let wd = CivilDate.weekday(year: year, month: month, day: day)
        let domMatch = (daysOfMonth & (1 << UInt32(day))) != 0 || (lastDayOfMonth && day == dim)
        var dowMatch = (daysOfWeek & (1 << UInt8(wd))) != 0
        if !dowMatch, (lastWeekdays & (1 << UInt8(wd))) != 0, day + 7 > dim { dowMatch = true }
        if !dowMatch, !nthWeekdays.isEmpty, nthWeekdays.contains(wd * 10 + (day - 1) / 7 + 1) { dowMatch = true }
        switch (domRestricted, dowRestricted) {
        case (true, true): return domMatch || dowMatch
        case (true, false): return domMatch
        case (false, true): return dowMatch
        case (false, false): return true
        }
    }

    /// The first instant (ms since the epoch) strictly after `afterMs` at which the expression fires
    /// in `zone`, or nil if none within 30 years. See `docs/schedules.md` for the DST rules: a time
    /// skipped by a gap fires once at the first instant after the gap; a repeated time fires once,
    /// at its first occurrence.
    public func next(afterMs: Int64, in zone: ZoneRules) -> Int64? {
        let afterSec = Int64((Double(afterMs) / 1000).rounded(.down))
        var f = zone.localFields(epochSeconds: afterSec)
        let startYear = f.year
        // Start at the next whole second in local time.
        f.second += 1
        var guardCount = 0
        while f.year <= startYear + 30 {
            guardCount += 1
            if guardCount > 2_000_000 { return nil }
            f.normalize()
            if (months & (1 << UInt16(f.month))) == 0 {
                f.month += 1
                f.day = 1
                f.hour = 0
                f.minute = 0
                f.second = 0
                continue
            }
            if !matchesDay(year: f.year, month: f.month, day: f.day) {
                f.day += 1
                f.hour = 0
                f.minute = 0
                f.second = 0
                continue
            }
            if (hours & (1 << UInt32(f.hour))) == 0 {
                f.hour += 1
                f.minute = 0
                f.second = 0
                continue
            }
            if (minutes & (1 << UInt64(f.minute))) == 0 {
                f.minute += 1
                f.second = 0
                continue
            }
            if (seconds & (1 << UInt64(f.second))) == 0 {
                f.second += 1
                continue
            }
            let instant = zone.firstInstant(for: f)
            if instant * 1000 > afterMs { return instant * 1000 }
            f.second += 1
        }
        return nil
    }
}

extension String {
    func trimmingCharactersInWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
