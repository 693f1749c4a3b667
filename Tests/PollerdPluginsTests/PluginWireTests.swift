import Foundation
import PollerdCore
import Testing

@testable import PollerdPlugins

@Suite struct PluginWireTests {
    let now = RFC3339.parse("2026-05-17T10:00:00Z")!

    @Test func tickRequestIsByteCompatibleWithNexo() {
        // serde_json writes nexo's request with sorted keys and no whitespace; chrono's "+00:00".
        let line = PluginWire.tickRequestLine(
            kind: "rss", jobID: "job-1", agentID: "ana", cursor: Data("hello".utf8),
            config: .object(["k": .string("v")]), nowMs: now, intervalHintSecs: 300)
        #expect(
            String(decoding: line, as: UTF8.self)
                == #"{"method":"poll_tick","params":{"agent_id":"ana","config":{"k":"v"},"cursor":"aGVsbG8","interval_hint_secs":300,"job_id":"job-1","kind":"rss","now":"2026-05-17T10:00:00+00:00"}}"#
                + "\n")
    }

    @Test func tickRequestWithoutCursorSendsNull() {
        let p = WireOracle.tickParams(
            kind: "rss", jobID: "job-1", agentID: "ana", cursor: nil, config: .null, nowMs: now + 250,
            intervalHintSecs: 60)
        #expect(p["cursor"] == .null)
        #expect(p["now"] == .string("2026-05-17T10:00:00.250+00:00"))
    }

    /// The params written straight into bytes are the canonical JSON of the params object, for
    /// strings that need escapes, non-ASCII text, nested configs, cursors and odd intervals.
    @Test(arguments: [
        ("rss", "job-1", "ana", Data?.none, JSONValue.null, Int64(60)),
        (
            "k\"q", "j\\b\n", "ägent ✓", Data("x".utf8),
            .object(["z": .array([.int(-3), .double(1.5), .bool(true)]), "a": .string("\u{01}\t")]), 0
        ),
        ("k", "j", "a", Data([0xFF, 0x00, 0x10]), .object([:]), -5),
        ("k", "j", "a", Data(), .array([.object(["b": .null, "a": .object(["c": .string("é/\r")])])]), Int64.max),
    ])
    func tickParamsBytesAreTheCanonicalJSON(
        kind: String, job: String, agent: String, cursor: Data?, config: JSONValue, hint: Int64
    ) throws {
        for ms in [now, now + 1, now + 999, -1] {
            var bytes: [UInt8] = []
            PluginWire.writeTickParams(
                kind: kind, jobID: job, agentID: agent, cursor: cursor, config: config, nowMs: ms,
                intervalHintSecs: hint, into: &bytes)
            let expected = WireOracle.tickParams(
                kind: kind, jobID: job, agentID: agent, cursor: cursor, config: config, nowMs: ms,
                intervalHintSecs: hint)
            #expect(String(decoding: bytes, as: UTF8.self) == expected.canonicalString)
            #expect(try JSONValue.parse(Data(bytes)) == expected)
        }
    }

    func ack(_ line: String, bare: Bool = false) -> Result<TickAck, PollerError> {
        PluginWire.decodeReply(Array(line.utf8), allowBare: bare)
    }

    @Test func replyDecodesCursorRoundTrip() throws {
        let a = try ack(
            #"{"result":{"next_cursor":"d29ybGQ","next_interval_secs":120,"metrics":{"items_seen":5,"items_dispatched":2}}}"#
        ).get()
        #expect(
            a.nextCursor == Data("world".utf8) && a.nextIntervalSecs == 120 && a.itemsSeen == 5
                && a.itemsDispatched == 2)
        // padded accepted
        #expect(try ack(#"{"result":{"next_cursor":"d29ybGQ="}}"#).get().nextCursor == Data("world".utf8))
    }

    @Test func emptyReplyIsAnEmptyAck() throws {
        let a = try ack(#"{"result":{}}"#).get()
        #expect(a.nextCursor == nil && a.nextIntervalSecs == nil && a.itemsSeen == 0 && a.items.isEmpty)
    }

    @Test func itemsArePollerdsAddition() throws {
        let a = try ack(#"{"result":{"items":[{"id":"a","n":1},{"x":true}],"unknown_field":1}}"#).get()
        #expect(a.items.count == 2 && a.itemsSeen == 2)
        guard case .failure(let e) = ack(#"{"result":{"items":[1]}}"#) else {
            Issue.record("expected failure")
            return
        }
        #expect(e.errorClass == .transient)
    }

    @Test(arguments: [
        (#"{"error":{"code":-32002,"message":"token revoked"}}"#, ErrorClass.permanent),
        (#"{"error":{"code":-32602,"message":"feed_url missing"}}"#, .config),
        (#"{"error":{"code":-32001,"message":"503"}}"#, .transient),
        (#"{"error":{"code":-1,"message":"x"}}"#, .transient),
        (#"{"error":{"message":"no code"}}"#, .transient),
        (#"{"result":{"next_cursor":"!!not_b64!!"}}"#, .transient),
        (#"not json"#, .transient),
        (#""#, .transient),
        (#"   "#, .transient),
        (#"[1,2]"#, .transient),
        (#"{"next_cursor":"d29ybGQ"}"#, .transient),
    ])
    func errorsClassifyAsTheSeedDoes(line: String, expected: ErrorClass) {
        guard case .failure(let e) = ack(line) else {
            Issue.record("expected a failure for \(line)")
            return
        }
        #expect(e.errorClass == expected, "\(line): \(e)")
    }

    @Test func bareTickReplyOnlyWhenAllowed() throws {
        #expect(try ack(#"{"next_cursor":"d29ybGQ"}"#, bare: true).get().nextCursor == Data("world".utf8))
    }

    @Test func errorMessagesSayWhatWasWrong() {
        guard case .failure(let e) = ack("") else { return }
        #expect(e.message == "plugin wrote an empty reply line")
        guard case .failure(let g) = ack("garbage") else { return }
        #expect(g.message == "plugin reply is not JSON: garbage")
        guard case .failure(let c) = ack(#"{"result":{"next_cursor":"!!"}}"#) else { return }
        #expect(c.code == .badCursor)
    }
}

@Suite struct LongLivedFrameTests {
    @Test func aRequestFrameIsTheCanonicalJSONOfTheRequest() {
        let params: JSONValue = .object([
            "kind": .string("k"), "cursor": .null, "config": .object(["b": .int(1), "a": .string("x\"y")]),
        ])
        let expected: JSONValue = .object([
            "jsonrpc": .string("2.0"), "id": .int(101), "method": .string("poll_tick"), "params": params,
        ])
        #expect(
            String(decoding: LongLivedPlugin.frame(id: 101, method: "poll_tick", params: params), as: UTF8.self)
                == expected.canonicalString)
    }
}

@Suite struct FrameIDTests {
    func id(_ text: String) -> Int64? { PluginWire.frameID(prefix: Array(text.utf8)) }

    @Test func readsTheTopLevelIDFromTheStartOfAFrame() {
        #expect(id(#"{"jsonrpc":"2.0","id":42,"result":{"items":[{"id":"#) == 42)
        #expect(id(#" { "id" : -7 , "#) == -7)
        // An id nested in an earlier value does not count; strings with braces and quotes are skipped.
        #expect(id(#"{"result":{"id":1,"s":"}\"{"},"x":[1,{"id":2}],"id":3,"#) == 3)
        #expect(id(#"{"result":{"id":1},"error":null}"#) == nil)
    }

    @Test func aPrefixThatEndsTooSoonOrIsNotAFrameGivesNothing() {
        #expect(id(#"{"result":{"items":["#) == nil)
        #expect(id(#"{"id":12"#) == nil) // the number may go on
        #expect(id(#"{"id":1.5,"#) == nil)
        #expect(id(#"{"id":"7","#) == nil)
        #expect(id(#"[{"id":1}]"#) == nil)
        #expect(id("") == nil)
    }

    /// The scanner over a frame cut into pieces at random places.
    func scanned(_ text: String) -> Int64? {
        var rng = SystemRandomNumberGenerator()
        var scanner = PluginWire.FrameIDScanner()
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = Int.random(in: 1...max(1, bytes.count), using: &rng)
            scanner.feed(bytes.prefix(n))
            bytes = bytes.dropFirst(n)
        }
        return scanner.id
    }

    @Test func theScannerFindsTheTopLevelIDWhereverItStands() {
        for _ in 0..<20 {
            #expect(scanned(#"{"jsonrpc":"2.0","id":42,"result":{"items":[{"id":1}]}}"#) == 42)
            #expect(scanned(#"{"result":{"id":1,"s":"}\"{,\"id\":2"},"x":[1,{"id":2}],"id":3,"jsonrpc":"2.0"}"#) == 3)
            #expect(scanned(#" { "result" : [ ] , "id" : -7 } "#) == -7)
            #expect(scanned(#"{"result":"aaaa","id":9}"#) == 9)
            // Nested, quoted, another key, not an integer, not an object: nothing.
            #expect(scanned(#"{"a":{"id":5}}"#) == nil)
            #expect(scanned(#"{"s":"\"id\":5"}"#) == nil)
            #expect(scanned(#"{"xid":5,"idx":6,"i\u0064":7}"#) == nil)
            #expect(scanned(#"{"id":1.5}"#) == nil && scanned(#"{"id":"7"}"#) == nil && scanned(#"{"id":1e3}"#) == nil)
            #expect(scanned(#"[{"id":1}]"#) == nil && scanned(#"x{"id":1}"#) == nil && scanned("") == nil)
            // The whole Int64 range, and no further.
            #expect(scanned(#"{"id":9223372036854775807}"#) == .max && scanned(#"{"id":-9223372036854775808}"#) == .min)
            #expect(scanned(#"{"id":9223372036854775808}"#) == nil && scanned(#"{"id":9999999999999999999}"#) == nil)
            #expect(scanned(#"{"id":12345678901234567890}"#) == nil)
        }
    }

    /// On random frames whose top-level id is an integer (written anywhere among other members,
    /// some holding nested ids and tricky strings), the scanner finds what the parser finds.
    @Test func theScannerAgreesWithTheParserOnRandomFrames() throws {
        var rng = SystemRandomNumberGenerator()
        let others: [JSONValue] = [
            .string("}\"{,:"), .object(["id": .int(1), "a": .array([.object(["id": .int(2)])])]),
            .array([.string("\"id\":3")]), .double(2.5), .null,
        ]
        for _ in 0..<300 {
            let id = Int64.random(in: -1_000_000...1_000_000, using: &rng)
            var members = ["\"id\":\(id)"]
            for k in 0..<Int.random(in: 0...4, using: &rng) {
                members.insert(
                    "\"k\(k)\":\(others.randomElement(using: &rng)!.canonicalString)",
                    at: Int.random(in: 0...members.count, using: &rng))
            }
            let text = "{" + members.joined(separator: ",") + "}"
            #expect(try JSONValue.parse(bytes: Array(text.utf8))["id"]?.intValue == id)
            #expect(scanned(text) == id, "\(text)")
        }
    }
}

/// The tick request built as a `JSONValue`: the oracle `PluginWire.writeTickParams` is checked against.
enum WireOracle {
    /// `now` as nexo writes it (chrono's `to_rfc3339`): `+00:00`, fractional seconds only if any.
    static func formatNow(ms: Int64) -> String {
        var out: [UInt8] = []
        RFC3339.write(ms: ms, utc: "+00:00", into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The tick request's `params` object.
    static func tickParams(
        kind: String, jobID: String, agentID: String, cursor: Data?, config: JSONValue, nowMs: Int64,
        intervalHintSecs: Int64
    ) -> JSONValue {
        .object([
            "kind": .string(kind), "job_id": .string(jobID), "agent_id": .string(agentID),
            "cursor": cursor.map { .string(Base64URL.encode($0)) } ?? .null,
            "config": config, "now": .string(formatNow(ms: nowMs)),
            "interval_hint_secs": .int(max(0, intervalHintSecs)),
        ])
    }
}
