import Foundation
import PollerdCore
import Testing

@testable import PollerdPlugins

/// `PluginWire.decodeReply` reads replies in place (`JSONView`). These tests hold it to the
/// meaning of the straightforward decoder it replaced, kept here as the oracle: parse the whole
/// line into a `JSONValue`, then look fields up in its dictionaries.
@Suite struct ReplyDecodeDifferentialTests {
    static func oracle(_ line: [UInt8], allowBare: Bool, id: Int64?) -> Result<TickAck, PollerError> {
        func bad(_ m: String) -> Result<TickAck, PollerError> { .failure(.transient(.badReply, m)) }
        guard line.contains(where: { !($0 == 32 || $0 == 9 || $0 == 13 || $0 == 10) }) else {
            return .failure(.transient(.emptyReply, "empty"))
        }
        guard let value = try? JSONValue.parse(bytes: line), case .object(let env) = value else {
            return bad("not JSON / not an object")
        }
        if let id, value["id"]?.intValue != id { return bad("two ids") }
        if let err = env["error"], err != .null {
            let code = err["code"]?.intValue ?? -32603
            let message = err["message"]?.stringValue ?? "subprocess error"
            switch code {
            case PluginWire.permanentCode: return .failure(.permanent(.pluginError, message))
            case PluginWire.configCode: return .failure(.config(.pluginError, message))
            default: return .failure(.transient(.pluginError, "plugin rpc \(code): \(message)"))
            }
        }
        let reply: JSONValue
        if let r = env["result"] { reply = r } else if allowBare { reply = value } else { return bad("neither") }
        guard case .object(let o) = reply else { return bad("not a TickReply") }
        var cursor: Data?
        switch o["next_cursor"] {
        case nil, .null?: break
        case .string(let s)?:
            guard let d = Base64URL.decode(s) else { return .failure(.transient(.badCursor, s)) }
            cursor = d
        default: return bad("next_cursor")
        }
        var interval: Int64?
        switch o["next_interval_secs"] {
        case nil, .null?: break
        case let v?:
            guard let i = v.intValue, i >= 0 else { return bad("next_interval_secs") }
            interval = i
        }
        var seen: Int64?
        var dispatched: Int64 = 0
        switch o["metrics"] {
        case nil, .null?: break
        case .object(let m)?:
            guard let s = m["items_seen"]?.intValue, let d = m["items_dispatched"]?.intValue, s >= 0, d >= 0 else {
                return bad("metrics")
            }
            seen = s
            dispatched = d
        default: return bad("metrics")
        }
        var items: [JSONValue] = []
        switch o["items"] {
        case nil, .null?: break
        case .array(let a)?:
            guard a.allSatisfy({ if case .object = $0 { true } else { false } }) else { return bad("items") }
            items = a
        default: return bad("items")
        }
        return .success(
            TickAck(
                nextCursor: cursor, nextIntervalSecs: interval, itemsSeen: seen ?? Int64(items.count),
                itemsDispatched: dispatched, items: items))
    }

    /// Same outcome: the same ack, or a failure of the same class and code (and message, where
    /// the message carries the plugin's words rather than a preview of the line).
    static func agree(_ a: Result<TickAck, PollerError>, _ b: Result<TickAck, PollerError>) -> Bool {
        switch (a, b) {
        case (.success(let x), .success(let y)): return x == y
        case (.failure(let x), .failure(let y)):
            return x.errorClass == y.errorClass && x.code == y.code
                && (x.code != .pluginError || x.message == y.message)
        default: return false
        }
    }

    static let corpus: [String] = [
        #"{"result":{"next_cursor":"d29ybGQ","next_interval_secs":120,"metrics":{"items_seen":5,"items_dispatched":2},"items":[{"id":"a"},{"n":1}]}}"#,
        #"{"jsonrpc":"2.0","id":7,"result":{"next_cursor":"d29ybGQ=","metrics":{"items_seen":1,"items_dispatched":0}}}"#,
        #"{"result":{"items":[{"id":"x","v":[1,2,{"id":9}]}]},"jsonrpc":"2.0","id":7}"#,
        #"{"id":7,"error":{"code":-32002,"message":"token revoked"}}"#,
        #"{"id":7,"error":{"code":-32602.0,"message":"feed_url missing"}}"#,
        #"{"error":{"code":"x","message":5},"id":7}"#,
        #"{"error":null,"result":{},"id":7}"#,
        #"{"error":5,"id":7}"#,
        #"{"result":null,"id":7}"#,
        #"{"result":[],"id":7}"#,
        #"{"next_cursor":"AAE","items":[{}],"id":7}"#,
        #"{"result":{"next_cursor":"!!"},"id":7}"#,
        #"{"result":{"next_cursor":5},"id":7}"#,
        #"{"result":{"next_interval_secs":60.0},"id":7}"#,
        #"{"result":{"next_interval_secs":-1},"id":7}"#,
        #"{"result":{"metrics":{"items_seen":1}},"id":7}"#,
        #"{"result":{"metrics":[]},"id":7}"#,
        #"{"result":{"items":[1]},"id":7}"#,
        #"{"result":{"items":{}},"id":7}"#,
        #"{"result":{"next_cursor":"AAE"},"result":{"next_cursor":"AQI"},"id":7}"#,
        #"{"id":7,"id":8,"result":{}}"#,
        #"{"\u0072esult":{"next_\u0063ursor":"AAE"},"\u0069d":7}"#,
        #"{"a":{"result":{"next_cursor":"AAE"},"id":7},"result":{},"id":7}"#,
        #"  {"result" : { "items" : [ { "id" : "é" } ] } , "id" : 7 }  "#,
        #"{"result":{"items":[{"k":"\"}{\\"}]},"id":7}"#,
        "", "   ", "null", "[1]", "\"x\"", "7",
    ]

    @Test func agreesWithTheOracleOnTheCorpus() {
        for text in Self.corpus {
            let line = Array(text.utf8)
            for bare in [false, true] {
                for id in [nil, Int64(7)] {
                    let got = PluginWire.decodeReply(line, allowBare: bare, id: id)
                    let want = Self.oracle(line, allowBare: bare, id: id)
                    #expect(
                        Self.agree(got, want), "\(text) bare=\(bare) id=\(String(describing: id)): \(got) vs \(want)")
                }
            }
        }
    }

    /// Random edits of the corpus (bytes deleted, repeated or replaced by JSON's own characters)
    /// make mostly broken and sometimes oddly valid lines: both decoders must still agree.
    @Test func agreesWithTheOracleOnMutations() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]",:0123456789-.eEtrufalsn \"#.utf8) + [0x5C, 0xC3, 0xA9, 0x0A]
        var disagreements = 0
        for text in Self.corpus where !text.isEmpty {
            for _ in 0..<300 {
                var line = Array(text.utf8)
                for _ in 0..<Int.random(in: 1...3, using: &rng) where !line.isEmpty {
                    let at = Int.random(in: 0..<line.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: line.remove(at: at)
                    case 1: line.insert(line[at], at: at)
                    default: line[at] = alphabet.randomElement(using: &rng)!
                    }
                }
                let bare = Bool.random(using: &rng)
                let id: Int64? = Bool.random(using: &rng) ? 7 : nil
                let got = PluginWire.decodeReply(line, allowBare: bare, id: id)
                let want = Self.oracle(line, allowBare: bare, id: id)
                if !Self.agree(got, want) {
                    disagreements += 1
                    if disagreements <= 5 {
                        Issue.record(
                            "\(String(decoding: line, as: UTF8.self)) bare=\(bare) id=\(String(describing: id)): \(got) vs \(want)"
                        )
                    }
                }
            }
        }
        #expect(disagreements == 0)
    }
}
