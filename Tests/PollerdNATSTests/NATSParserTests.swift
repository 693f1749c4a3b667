import NIOCore
import Testing

@testable import PollerdNATS

/// The parser with no server: frames split at every offset, payloads of every size up to the
/// maximum, headers, and garbage.
@Suite struct NATSParserTests {
    static let info =
        #"INFO {"server_id":"S1","server_name":"n1","version":"2.9.10","proto":1,"max_payload":1048576,"headers":true,"connect_urls":["10.0.0.2:4222"],"ldm":false,"jetstream":true}"#

    static func stream(payload: [UInt8]) -> [UInt8] {
        var s = Array((info + "\r\n").utf8)
        s += Array("PING\r\n+OK\r\nPONG\r\n".utf8)
        s += Array("MSG a.b 7 \(payload.count)\r\n".utf8) + payload + Array("\r\n".utf8)
        s += Array("MSG a.b 8 _INBOX.x.9 \(payload.count)\r\n".utf8) + payload + Array("\r\n".utf8)
        let headers = NATSHeaders(status: nil, [("Nats-Msg-Id", "k1"), ("X-Case", "Keep")]).encoded
        s += Array("HMSG h.i 3 r.s \(headers.count) \(headers.count + payload.count)\r\n".utf8) + headers + payload
        s += Array("\r\n".utf8)
        s += Array("HMSG _INBOX.x.1 2 16 16\r\nNATS/1.0 503\r\n\r\n\r\n".utf8)
        s += Array("-ERR 'Permissions Violation for Subscription to \"secret.>\"'\r\n".utf8)
        return s
    }

    static func parseAll(_ bytes: [UInt8], chunks: [Int]) throws -> [NATSServerOp] {
        var parser = NATSParser()
        var buffer = ByteBuffer()
        var ops: [NATSServerOp] = []
        var start = 0
        for end in chunks.map({ min($0, bytes.count) }) + [bytes.count] where end >= start {
            buffer.writeBytes(bytes[start..<end])
            start = end
            while let op = try parser.next(&buffer) { ops.append(op) }
        }
        #expect(buffer.readableBytes == 0)
        return ops
    }

    static func check(_ ops: [NATSServerOp], payload: [UInt8]) {
        #expect(ops.count == 9)
        guard ops.count == 9 else { return }
        guard case .info(let info) = ops[0] else {
            Issue.record("not INFO first")
            return
        }
        #expect(info.serverName == "n1" && info.maxPayload == 1_048_576 && info.connectURLs == ["10.0.0.2:4222"])
        #expect(info.jetstream && info.headers && !info.lameDuckMode)
        #expect(ops[1] == .ping && ops[2] == .ok && ops[3] == .pong)
        guard case .msg(let m1) = ops[4], case .msg(let m2) = ops[5], case .msg(let m3) = ops[6],
            case .msg(let m4) = ops[7], case .err(let e) = ops[8]
        else {
            Issue.record("wrong operations: \(ops)")
            return
        }
        #expect(m1.subject == "a.b" && m1.sid == 7 && m1.replyTo == nil && m1.bytes == payload && m1.headers == nil)
        #expect(m2.replyTo == "_INBOX.x.9" && m2.sid == 8 && m2.bytes == payload)
        #expect(m3.subject == "h.i" && m3.replyTo == "r.s" && m3.bytes == payload)
        #expect(m3.headers?["Nats-Msg-Id"] == "k1" && m3.headers?["X-Case"] == "Keep" && m3.headers?["x-case"] == nil)
        #expect(m4.status == 503 && m4.bytes.isEmpty)
        #expect(e.refusedSubscription == "secret.>" && !e.closesConnection)
    }

    @Test func everySplitOffset() throws {
        let payload = Array("hello\r\nworld".utf8)
        let bytes = Self.stream(payload: payload)
        for cut in 0...bytes.count {
            Self.check(try Self.parseAll(bytes, chunks: [cut]), payload: payload)
        }
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            Self.check(try Self.parseAll(bytes, chunks: [cut, cut + 3, cut + 11]), payload: payload)
        }
    }

    @Test func byteByByte() throws {
        let payload = Array("x".utf8)
        let bytes = Self.stream(payload: payload)
        Self.check(try Self.parseAll(bytes, chunks: Array(0..<bytes.count)), payload: payload)
    }

    @Test(arguments: [0, 1, 2, 127, 4096, 65_536, 1_048_576])
    func payloadSizes(size: Int) throws {
        var payload = [UInt8](repeating: 0, count: size)
        for i in payload.indices { payload[i] = UInt8(truncatingIfNeeded: i &* 31) }
        let bytes = Self.stream(payload: payload)
        Self.check(try Self.parseAll(bytes, chunks: [bytes.count / 3, bytes.count / 2]), payload: payload)
    }

    @Test(arguments: [
        "FOO bar\r\n", "MSG a\r\n", "MSG a b 3\r\nabc\r\n", "MSG a 1 x\r\n", "MSG a 1 5\r\nabc\r\nxx",
        "HMSG a 1 3 2\r\n", "INFO {nope\r\n", "\r\n", "HMSG a 1 12 12\r\nHTTP/1.1 200\r\n\r\n",
    ])
    func garbageIsAViolation(text: String) {
        var parser = NATSParser()
        var buffer = ByteBuffer(string: text)
        #expect(throws: NATSError.self) {
            while try parser.next(&buffer) != nil {}
        }
    }

    @Test func boundsOnLinesAndPayloads() {
        var parser = NATSParser(maxControlLine: 64, maxPayload: 100)
        var long = ByteBuffer(string: "MSG " + String(repeating: "a", count: 100))
        #expect(throws: NATSError.self) { _ = try parser.next(&long) }
        var big = ByteBuffer(string: "MSG a 1 101\r\n")
        var p2 = NATSParser(maxControlLine: 64, maxPayload: 100)
        #expect(throws: NATSError.self) { _ = try p2.next(&big) }
        var fits = ByteBuffer(string: "MSG a 1 100\r\n")
        var p3 = NATSParser(maxControlLine: 64, maxPayload: 100)
        #expect((try? p3.next(&fits)) == .some(nil))
    }

    @Test func lowercaseVerbsAndTabs() throws {
        var parser = NATSParser()
        var buffer = ByteBuffer(string: "msg\ta.b\t1\t2\r\nhi\r\nping\r\n-ERR 'Stale Connection'\r\n")
        guard case .msg(let m)? = try parser.next(&buffer) else {
            Issue.record("no message")
            return
        }
        #expect(m.subject == "a.b" && m.bytes == Array("hi".utf8))
        #expect(try parser.next(&buffer) == .ping)
        guard case .err(let e)? = try parser.next(&buffer) else {
            Issue.record("no error")
            return
        }
        #expect(e.text == "Stale Connection" && e.closesConnection)
    }

    @Test func encodedCommands() throws {
        var b = ByteBuffer()
        NATSCommand.publish(subject: "a.b", replyTo: nil, headers: nil, payload: Array("hi".utf8), into: &b)
        NATSCommand.publish(subject: "a.b", replyTo: "r", headers: nil, payload: [UInt8](), into: &b)
        var h = NATSHeaders()
        try h.append("Nats-Msg-Id", "k")
        NATSCommand.publish(subject: "s", replyTo: "r", headers: h.encoded, payload: Array("x".utf8), into: &b)
        NATSCommand.subscribe(subject: "a.*", queue: "q", sid: 12, into: &b)
        NATSCommand.unsubscribe(sid: 12, max: 1_000_000, into: &b)
        #expect(
            b.readString(length: b.readableBytes)
                == "PUB a.b 2\r\nhi\r\nPUB a.b r 0\r\n\r\nHPUB s r 28 29\r\nNATS/1.0\r\nNats-Msg-Id: k\r\n\r\nx\r\n"
                + "SUB a.* q 12\r\nUNSUB 12 1000000\r\n")
        #expect(throws: NATSError.self) { try h.append("Bad Name", "v") }
        #expect(throws: NATSError.self) { try h.append("N", "a\r\nb") }
        #expect(NATSCommand.subjectProblem("a..b", publishing: true) != nil)
        #expect(NATSCommand.subjectProblem("a.>", publishing: true) != nil)
        #expect(NATSCommand.subjectProblem("a.>", publishing: false) == nil)
        #expect(NATSCommand.subjectProblem("a b", publishing: false) != nil)
    }

    @Test func headerStatusLines() throws {
        let h = try NATSHeaders.parse(Array("NATS/1.0 408 Request Timeout\r\nA: 1\r\nA: 2\r\n\r\n".utf8))
        #expect(h.status == 408 && h.statusDescription == "Request Timeout" && h.fields.count == 2 && h["A"] == "1")
        #expect(throws: NATSError.self) { try NATSHeaders.parse(Array("NATS/1.0 x\r\n\r\n".utf8)) }
    }

    @Test func serverAddresses() throws {
        let a = try NATSServerAddress(parsing: "nats://u:p%40ss@host.example:4333")
        #expect(a.host == "host.example" && a.port == 4333 && a.user == "u" && a.password == "p@ss" && !a.tls)
        let t = try NATSServerAddress(parsing: "tls://tok@[::1]")
        #expect(t.host == "::1" && t.port == 4222 && t.token == "tok" && t.tls)
        #expect(try NATSServerAddress(parsing: "10.0.0.2:4222").host == "10.0.0.2")
        #expect(throws: NATSError.self) { try NATSServerAddress(parsing: "http://x") }
        #expect(throws: NATSError.self) { try NATSServerAddress(parsing: "nats://h:0") }
        #expect(throws: NATSError.self) { try NATSServerAddress(parsing: "nats://h/path") }
        #expect(NATSServerAddress.redact("nats://u:secret@h:1") == "nats://***@h:1")
    }
}
