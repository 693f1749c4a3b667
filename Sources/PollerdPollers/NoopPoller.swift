import Foundation
public import PollerdCore

/// `noop`: returns an empty ack. For benchmarks and smoke tests it can also count ticks in its
/// cursor (`advance_cursor: true`), report `items: N` synthetic items, key them by the tick's
/// slot instead of its count (`key_by_slot: true`: one key per slot, so a slot delivered twice or
/// not at all shows), or fail on purpose (`fail: transient|permanent|config`).
public struct NoopPoller: Poller {
    public let kind = "noop"
    public init() {}

    public func validate(config: JSONValue) throws(ConfigIssue) {
        let obj = try ConfigReader(config)
        try obj.allowOnly(["advance_cursor", "items", "fail", "key_by_slot"])
        _ = try obj.bool("advance_cursor")
        _ = try obj.bool("key_by_slot")
        if let n = try obj.int("items"), !(0...100_000).contains(n) {
            throw ConfigIssue(path: ["items"], "must be between 0 and 100000")
        }
        if let f = try obj.string("fail"), !["transient", "permanent", "config"].contains(f) {
            throw ConfigIssue(path: ["fail"], "must be one of transient, permanent, config")
        }
    }

    public func tick(_ ctx: TickContext) async throws(PollerError) -> TickAck {
        let cfg = ctx.config
        if let f = cfg["fail"]?.stringValue, let cls = ErrorClass(rawValue: f) {
            throw PollerError(cls, code: .noopFail, "noop configured to fail (\(f))")
        }
        var cursor: Data?
        var counter: UInt64 = 0
        if cfg["advance_cursor"]?.boolValue == true {
            if let c = ctx.cursor, c.count == 8 {
                counter = c.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).bigEndian }
            }
            counter += 1
            var be = counter.bigEndian
            cursor = Data(bytes: &be, count: 8)
        }
        let n = Int(cfg["items"]?.intValue ?? 0)
        var items: [JSONValue] = []
        items.reserveCapacity(n)
        if cfg["key_by_slot"]?.boolValue == true {
            let slot = ctx.slotMs ?? ctx.nowMs
            for i in 0..<n {
                items.append(
                    .object(["id": .string("\(ctx.jobID)@\(slot)-\(i)"), "slot": .int(slot), "seq": .int(Int64(i))]))
            }
            return TickAck(nextCursor: cursor, items: items)
        }
        for i in 0..<n {
            items.append(
                .object([
                    "id": .string("\(ctx.jobID)-\(counter)-\(i)"), "seq": .int(Int64(i)), "tick": .int(Int64(counter)),
                ]))
        }
        return TickAck(nextCursor: cursor, items: items)
    }
}
