public import Foundation
public import PollerdCore

/// The plugin tick protocol's wire format, byte-compatible with nexo's (`plugin_poller.rs`).
/// See `docs/plugin-protocol.md`.
public enum PluginWire {
    /// JSON-RPC error codes and how they classify.
    public static let permanentCode: Int64 = -32002
    public static let configCode: Int64 = -32602
    public static let transientCode: Int64 = -32001

    /// `now` as nexo writes it (chrono's `to_rfc3339`): `+00:00`, fractional seconds only if any.
    public static func formatNow(ms: Int64) -> String {
        let z = RFC3339.format(ms: ms)   // ...Z or ....mmmZ
        return String(z.dropLast()) + "+00:00"
    }

    /// The tick request's `params` object.
    public static func tickParams(kind: String, jobID: String, agentID: String, cursor: Data?, config: JSONValue, nowMs: Int64, intervalHintSecs: Int64) -> JSONValue {
        .object([
            "kind": .string(kind), "job_id": .string(jobID), "agent_id": .string(agentID),
            "cursor": cursor.map { .string(Base64URL.encode($0)) } ?? .null,
            "config": config, "now": .string(formatNow(ms: nowMs)), "interval_hint_secs": .int(max(0, intervalHintSecs)),
        ])
    }

    /// Appends the tick request's `params` object, exactly the canonical JSON of `tickParams`
    /// (keys in sorted order), written straight into bytes: this runs for every tick.
    public static func writeTickParams(kind: String, jobID: String, agentID: String, cursor: Data?, config: JSONValue, nowMs: Int64,
                                       intervalHintSecs: Int64, into out: inout [UInt8]) {
        out += #"{"agent_id":"#.utf8
        JSONValue.writeString(agentID, into: &out)
        out += #","config":"#.utf8
        config.writeCanonical(into: &out)
        out += #","cursor":"#.utf8
        if let cursor { JSONValue.writeString(Base64URL.encode(cursor), into: &out) } else { out += "null".utf8 }
        out += #","interval_hint_secs":"#.utf8
        JSONValue.writeInt(max(0, intervalHintSecs), into: &out)
        out += #","job_id":"#.utf8
        JSONValue.writeString(jobID, into: &out)
        out += #","kind":"#.utf8
        JSONValue.writeString(kind, into: &out)
        out += #","now":"#.utf8
        JSONValue.writeString(formatNow(ms: nowMs), into: &out)
        out += "}".utf8
    }

    /// The ephemeral request line with its newline: `{"method":"poll_tick","params":{…}}`, keys
    /// sorted and no whitespace, exactly as serde_json writes nexo's request.
    public static func tickRequestLine(kind: String, jobID: String, agentID: String, cursor: Data?, config: JSONValue, nowMs: Int64,
                                       intervalHintSecs: Int64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out += #"{"method":"poll_tick","params":"#.utf8
        writeTickParams(kind: kind, jobID: jobID, agentID: agentID, cursor: cursor, config: config, nowMs: nowMs,
                        intervalHintSecs: intervalHintSecs, into: &out)
        out += "}\n".utf8
        return out
    }

    /// The top-level integer `id` of a frame, read from its first bytes only (the rest may be
    /// missing): for a reply too large to parse, to fail its tick at once. Values before `id`
    /// are skipped without being built; an `id` nested inside them does not count. Nil when
    /// the prefix ends first or is not a JSON object.
    public static func frameID(prefix: [UInt8]) -> Int64? {
        var i = 0
        let n = prefix.count
        func space() { while i < n, prefix[i] == 0x20 || prefix[i] == 0x0A || prefix[i] == 0x0D || prefix[i] == 0x09 { i += 1 } }
        /// Past a string starting at `i` (a quote); false if the prefix ends inside it.
        func string() -> Bool {
            i += 1
            while i < n {
                if prefix[i] == UInt8(ascii: "\\") { i += 2; continue }
                if prefix[i] == UInt8(ascii: "\"") { i += 1; return true }
                i += 1
            }
            return false
        }
        /// Past one value; false if the prefix ends inside it.
        func value() -> Bool {
            guard i < n else { return false }
            if prefix[i] == UInt8(ascii: "\"") { return string() }
            var depth = 0
            while i < n {
                switch prefix[i] {
                case UInt8(ascii: "\""): if !string() { return false }; continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if depth == 0 { return true }
                    depth -= 1
                    if depth == 0 { i += 1; return true }
                case UInt8(ascii: ","): if depth == 0 { return true }
                default: break
                }
                i += 1
            }
            return false
        }
        space()
        guard i < n, prefix[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        while true {
            space()
            guard i < n, prefix[i] == UInt8(ascii: "\"") else { return nil }
            let keyStart = i + 1
            guard string() else { return nil }
            let isID = prefix[keyStart..<(i - 1)].elementsEqual("id".utf8)
            space()
            guard i < n, prefix[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            space()
            if isID {
                var j = i
                if j < n, prefix[j] == UInt8(ascii: "-") { j += 1 }
                while j < n, prefix[j] >= 48, prefix[j] <= 57 { j += 1 }
                // The number must be whole and an integer (what routing a parsed frame accepts).
                guard j < n, j > i, [0x2C, 0x7D, 0x20, 0x0A, 0x0D, 0x09].contains(prefix[j]) else { return nil }
                return Int64(String(decoding: prefix[i..<j], as: UTF8.self))
            }
            guard value() else { return nil }
            space()
            guard i < n, prefix[i] == UInt8(ascii: ",") else { return nil }
            i += 1
        }
    }

    /// What a reply line means.
    public enum ReplyError: Error, Equatable, Sendable {
        case empty
        case notJSON(String)
        case malformed(String)
    }

    /// Decodes a reply: `{"result":{…}}` or `{"error":{"code","message"}}`; with `allowBare`, a bare
    /// TickReply object too (long-lived plugins). Errors classify as the seed does.
    public static func decodeReply(_ line: Data, allowBare: Bool) -> Result<TickAck, PollerError> {
        let trimmed = line.drop(while: { $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 })
        guard !trimmed.isEmpty, !trimmed.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 }) else {
            return .failure(.transient("empty_reply", "plugin wrote an empty reply line"))
        }
        guard let value = try? JSONValue.parse(Data(trimmed)) else {
            let preview = String(decoding: trimmed.prefix(200), as: UTF8.self)
            return .failure(.transient("bad_reply", "plugin reply is not JSON: \(preview)"))
        }
        return decodeReply(value, allowBare: allowBare)
    }

    /// Decodes an already parsed reply object (a long-lived plugin's frame).
    public static func decodeReply(_ value: JSONValue, allowBare: Bool) -> Result<TickAck, PollerError> {
        guard case .object(let env) = value else {
            return .failure(.transient("bad_reply", "plugin reply is not a JSON object"))
        }
        if let err = env["error"], err != .null {
            let code = err["code"]?.intValue ?? -32603
            let message = err["message"]?.stringValue ?? "subprocess error"
            switch code {
            case permanentCode: return .failure(.permanent("plugin_error", message))
            case configCode: return .failure(.config("plugin_error", message))
            default: return .failure(.transient("plugin_error", "plugin rpc \(code): \(message)"))
            }
        }
        if let result = env["result"] {
            return decodeTickReply(result)
        }
        if allowBare { return decodeTickReply(value) }
        return .failure(.transient("bad_reply", "plugin reply has neither 'result' nor 'error'"))
    }

    /// Decodes a TickReply object (unknown fields ignored, as serde does).
    public static func decodeTickReply(_ v: JSONValue) -> Result<TickAck, PollerError> {
        guard case .object(let o) = v else {
            return .failure(.transient("bad_reply", "'result' is not a TickReply object"))
        }
        var cursor: Data?
        switch o["next_cursor"] {
        case nil, .null?: break
        case .string(let s)?:
            guard let d = Base64URL.decode(s) else {
                return .failure(.transient("bad_cursor", "next_cursor is not URL-safe base64: \(s.prefix(64))"))
            }
            cursor = d
        default: return .failure(.transient("bad_reply", "next_cursor must be a string or null"))
        }
        var interval: Int64?
        switch o["next_interval_secs"] {
        case nil, .null?: break
        case let v?:
            guard let i = v.intValue, i >= 0 else { return .failure(.transient("bad_reply", "next_interval_secs must be a non-negative integer")) }
            interval = i
        }
        var seen: Int64?
        var dispatched: Int64 = 0
        switch o["metrics"] {
        case nil, .null?: break
        case .object(let m)?:
            guard let s = m["items_seen"]?.intValue, let d = m["items_dispatched"]?.intValue, s >= 0, d >= 0 else {
                return .failure(.transient("bad_reply", "metrics needs non-negative items_seen and items_dispatched"))
            }
            seen = s; dispatched = d
        default: return .failure(.transient("bad_reply", "metrics must be an object"))
        }
        var items: [JSONValue] = []
        switch o["items"] {
        case nil, .null?: break
        case .array(let a)?:
            for (i, item) in a.enumerated() {
                guard case .object = item else { return .failure(.transient("bad_reply", "items[\(i)] is not a JSON object")) }
                items.append(item)
            }
        default: return .failure(.transient("bad_reply", "items must be an array"))
        }
        return .success(TickAck(nextCursor: cursor, nextIntervalSecs: interval, itemsSeen: seen ?? Int64(items.count), itemsDispatched: dispatched, items: items))
    }
}
