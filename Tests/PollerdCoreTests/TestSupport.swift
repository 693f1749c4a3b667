import PollerdCore

/// Parses an RFC 3339 literal in a test; a typo fails loudly.
func ms(_ s: String) -> Int64 {
    guard let v = RFC3339.parse(s) else { fatalError("bad timestamp literal \(s)") }
    return v
}

/// The next `count` cron instants after `from`, formatted.
func nextCron(_ expr: String, tz: String = "UTC", from: String, count: Int = 1) throws -> [String] {
    let e = try CronExpression(expr)
    let zone = ZoneRules(identifier: tz)!
    var t = ms(from)
    var out: [String] = []
    for _ in 0..<count {
        guard let n = e.next(afterMs: t, in: zone) else { break }
        out.append(RFC3339.format(ms: n))
        t = n
    }
    return out
}
