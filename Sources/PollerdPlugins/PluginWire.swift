public import Foundation
public import PollerdCore

/// The plugin tick protocol's wire format, byte-compatible with nexo's (`plugin_poller.rs`).
/// See `docs/plugin-protocol.md`.
public enum PluginWire {
    /// JSON-RPC error codes and how they classify.
    public static let permanentCode: Int64 = -32002
    public static let configCode: Int64 = -32602
    public static let transientCode: Int64 = -32001

    /// Appends the tick request's `params` object as canonical JSON (keys in sorted order:
    /// `agent_id`, `config`, `cursor`, `interval_hint_secs`, `job_id`, `kind`, `now`, with `now`
    /// written as nexo's chrono `to_rfc3339`: `+00:00`, fractional seconds only if any), straight
    /// into bytes: this runs for every tick. Tests check it byte for byte against a `JSONValue` oracle.
    public static func writeTickParams(
        kind: String, jobID: String, agentID: String, cursor: Data?, config: JSONValue, nowMs: Int64,
        intervalHintSecs: Int64, into out: inout [UInt8]
    ) {
        out.append(literal: #"{"agent_id":"#)
        JSONValue.writeString(agentID, into: &out)
        out.append(literal: #","config":"#)
        config.writeCanonical(into: &out)
        out.append(literal: #","cursor":"#)
        if let cursor {
            out.append(UInt8(ascii: "\""))
            Base64URL.write(cursor, into: &out)
            out.append(UInt8(ascii: "\""))
        } else {
            out.append(literal: "null")
        }
        out.append(literal: #","interval_hint_secs":"#)
        JSONValue.writeInt(max(0, intervalHintSecs), into: &out)
        out.append(literal: #","job_id":"#)
        JSONValue.writeString(jobID, into: &out)
        out.append(literal: #","kind":"#)
        JSONValue.writeString(kind, into: &out)
        // The timestamp needs no escaping.
        out.append(literal: #","now":""#)
        RFC3339.write(ms: nowMs, utc: "+00:00", into: &out)
        out.append(literal: #""}"#)
    }

    /// The ephemeral request line with its newline: `{"method":"poll_tick","params":{…}}`, keys
    /// sorted and no whitespace, exactly as serde_json writes nexo's request.
    public static func tickRequestLine(
        kind: String, jobID: String, agentID: String, cursor: Data?, config: JSONValue, nowMs: Int64,
        intervalHintSecs: Int64
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(literal: #"{"method":"poll_tick","params":"#)
        writeTickParams(
            kind: kind, jobID: jobID, agentID: agentID, cursor: cursor, config: config, nowMs: nowMs,
            intervalHintSecs: intervalHintSecs, into: &out)
        out.append(literal: "}\n")
        return out
    }

    /// The top-level integer `id` of a frame, read from its first bytes only (the rest may be
    /// missing): reply lines are routed by it without being parsed. Values before `id` are
    /// skipped without being built; an `id` nested inside them does not count. Nil when the
    /// prefix ends first or is not a JSON object. (`FrameIDScanner`, in one piece.)
    public static func frameID(prefix: [UInt8]) -> Int64? {
        var scanner = FrameIDScanner()
        scanner.feed(prefix)
        return scanner.id
    }

    /// Finds the top-level integer `id` of a frame given in pieces, keeping none of them: for a
    /// reply too long to keep (over `max_reply_bytes`), so the tick it answers fails at once
    /// wherever the id stands; `frameID` routes every reply with it. An `id` nested in a value
    /// does not count, the key is compared as written (no escapes), and the value must be a
    /// whole integer. The first top-level id wins. The bytes are not validated as JSON.
    public struct FrameIDScanner: Sendable {
        /// The id, once seen.
        public private(set) var id: Int64?
        private enum Where { case start, key, afterKey, value, done }
        private var at = Where.start
        private var depth = 0
        private var inString = false
        private var escaped = false
        /// Bytes of the top-level key being read so far, and whether they spell the start of `id`.
        private var keyLength = 0
        private var keyIsID = false
        /// Reading an `id` value: its digits so far (nil when not reading one), and its sign.
        private var digits: Int?
        private var magnitude: UInt64 = 0
        private var negative = false

        public init() {}

        public mutating func feed(_ bytes: some Sequence<UInt8>) {
            for c in bytes {
                if at == .done { return }
                step(c)
            }
        }

        private mutating func step(_ c: UInt8) {
            let space = c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09
            if inString {
                if escaped {
                    escaped = false
                } else if c == UInt8(ascii: "\\") {
                    escaped = true
                } else if c == UInt8(ascii: "\"") {
                    inString = false
                }
                if at == .key {
                    if inString {
                        // As written: an escape makes it another key.
                        keyIsID =
                            (keyLength == 0 && c == UInt8(ascii: "i"))
                            || (keyLength == 1 && keyIsID && c == UInt8(ascii: "d"))
                        keyLength += 1
                    } else {
                        keyIsID = keyIsID && keyLength == 2
                        at = .afterKey
                    }
                }
                return
            }
            if let d = digits {
                if d == 0 && space { return } // `"id": 7`
                if c >= 48 && c <= 57 && d < 19 {
                    magnitude = magnitude * 10 + UInt64(c - 48)
                    digits = d + 1
                    return
                }
                if c == UInt8(ascii: "-") && d == 0 && !negative {
                    negative = true
                    return
                }
                digits = nil
                // A whole integer ends at a delimiter; `1.5`, `1e3`, `"7"` are not ids.
                if d > 0 && (space || c == UInt8(ascii: ",") || c == UInt8(ascii: "}")) {
                    let value =
                        negative
                        ? (magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil)
                        : Int64(exactly: magnitude)
                    if let value {
                        id = value
                        at = .done
                        return
                    }
                }
            }
            switch c {
            case UInt8(ascii: "\""):
                inString = true
                if depth == 1 && at == .key {
                    keyLength = 0
                    keyIsID = false
                }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if depth == 0 && (c != UInt8(ascii: "{") || at != .start) {
                    at = .done
                    return
                } // not an object frame
                depth += 1
                if depth == 1 { at = .key }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth <= 0 { at = .done }
            case UInt8(ascii: ":"):
                if depth == 1 && at == .afterKey {
                    at = .value
                    if keyIsID {
                        digits = 0
                        magnitude = 0
                        negative = false
                    }
                }
            case UInt8(ascii: ","):
                if depth == 1 { at = .key }
            default:
                if depth == 0 && !space { at = .done }
            }
        }
    }

    /// Decodes a reply line: `{"result":{…}}` or `{"error":{"code","message"}}`; with
    /// `allowBare`, a bare TickReply object too (long-lived plugins). Errors classify as the seed
    /// does. With `id`, the frame must name that id (a long-lived plugin's reply). The line is
    /// read in place (`JSONView`): only the cursor, the numbers and the items are built.
    public static func decodeReply(_ line: [UInt8], allowBare: Bool, id: Int64? = nil) -> Result<TickAck, PollerError> {
        guard line.contains(where: { !($0 == 32 || $0 == 9 || $0 == 13 || $0 == 10) }) else {
            return .failure(.transient(.emptyReply, "plugin wrote an empty reply line"))
        }
        let decoded = JSONView.withRoot(line) { root -> Result<TickAck, PollerError> in
            guard root.isObject else {
                return .failure(
                    .transient(
                        .badReply,
                        id == nil ? "plugin reply is not a JSON object" : "plugin reply is not JSON: \(preview(line))"))
            }
            // The line was routed by its first top-level id; a repeated "id" key may say
            // otherwise (the last one counts, as in `JSONValue.parse`).
            var frameID: JSONView?
            var error: JSONView?
            var result: JSONView?
            root.forEachMember { k, v in
                if k == "id" { frameID = v } else if k == "error" { error = v } else if k == "result" { result = v }
            }
            if let id, frameID?.intValue != id { return .failure(.transient(.badReply, "reply frame names two ids")) }
            if let error, !error.isNull {
                var code: Int64 = -32603
                var message = "subprocess error"
                error.forEachMember { k, v in
                    if k == "code" {
                        code = v.intValue ?? -32603
                    } else if k == "message" {
                        message = v.value.stringValue ?? "subprocess error"
                    }
                }
                switch code {
                case permanentCode: return .failure(.permanent(.pluginError, message))
                case configCode: return .failure(.config(.pluginError, message))
                default: return .failure(.transient(.pluginError, "plugin rpc \(code): \(message)"))
                }
            }
            if let result { return decodeTickReply(result) }
            if allowBare { return decodeTickReply(root) }
            return .failure(.transient(.badReply, "plugin reply has neither 'result' nor 'error'"))
        }
        return decoded ?? .failure(.transient(.badReply, "plugin reply is not JSON: \(preview(line))"))
    }

    /// The first 200 bytes of a line, for an error message.
    static func preview(_ line: [UInt8]) -> String {
        String(decoding: line.drop(while: { $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 }).prefix(200), as: UTF8.self)
    }

    /// Decodes a TickReply object (unknown fields ignored, as serde does).
    static func decodeTickReply(_ o: JSONView) -> Result<TickAck, PollerError> {
        guard o.isObject else {
            return .failure(.transient(.badReply, "'result' is not a TickReply object"))
        }
        var nextCursor: JSONView?
        var nextInterval: JSONView?
        var metrics: JSONView?
        var itemList: JSONView?
        o.forEachMember { k, v in
            if k == "next_cursor" {
                nextCursor = v
            } else if k == "next_interval_secs" {
                nextInterval = v
            } else if k == "metrics" {
                metrics = v
            } else if k == "items" {
                itemList = v
            }
        }
        var cursor: Data?
        if let nextCursor, !nextCursor.isNull {
            guard let decoded = nextCursor.withStringBytes({ Base64URL.decode(bytes: $0) }) else {
                return .failure(.transient(.badReply, "next_cursor must be a string or null"))
            }
            guard let d = decoded else {
                return .failure(
                    .transient(
                        .badCursor,
                        "next_cursor is not URL-safe base64: \((nextCursor.value.stringValue ?? "").prefix(64))"))
            }
            cursor = d
        }
        var interval: Int64?
        if let nextInterval, !nextInterval.isNull {
            guard let i = nextInterval.intValue, i >= 0 else {
                return .failure(.transient(.badReply, "next_interval_secs must be a non-negative integer"))
            }
            interval = i
        }
        var seen: Int64?
        var dispatched: Int64 = 0
        if let metrics, !metrics.isNull {
            guard metrics.isObject else { return .failure(.transient(.badReply, "metrics must be an object")) }
            var seenValue: JSONView?
            var dispatchedValue: JSONView?
            metrics.forEachMember { k, v in
                if k == "items_seen" { seenValue = v } else if k == "items_dispatched" { dispatchedValue = v }
            }
            guard let s = seenValue?.intValue, let d = dispatchedValue?.intValue, s >= 0, d >= 0 else {
                return .failure(.transient(.badReply, "metrics needs non-negative items_seen and items_dispatched"))
            }
            seen = s
            dispatched = d
        }
        var items: [JSONValue] = []
        switch itemList?.value {
        case nil, .null?: break
        case .array(let a)?:
            for (i, item) in a.enumerated() {
                guard case .object = item else {
                    return .failure(.transient(.badReply, "items[\(i)] is not a JSON object"))
                }
            }
            items = a
        default: return .failure(.transient(.badReply, "items must be an array"))
        }
        return .success(
            TickAck(
                nextCursor: cursor, nextIntervalSecs: interval, itemsSeen: seen ?? Int64(items.count),
                itemsDispatched: dispatched, items: items))
    }
}
