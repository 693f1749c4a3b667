import Foundation
public import NIOCore

/// Reads the server's operations from bytes as they arrive, in frames split anywhere. It keeps
/// the part of a message it has read the control line of, and never holds more than one
/// control line (`maxControlLine`) or one payload (`maxPayload`) beyond what it was given.
public struct NATSParser: Sendable {
    /// The longest control line accepted (the server's own default is 4096).
    public var maxControlLine: Int
    /// The largest payload accepted; larger is a protocol violation (the server enforces its own
    /// `max_payload` on what it is sent, not on what it sends, so this bounds memory).
    public var maxPayload: Int

    private struct Pending: Sendable {
        var subject: String
        var sid: UInt64
        var replyTo: String?
        var headerBytes: Int
        var totalBytes: Int
    }
    private var pending: Pending?

    public init(maxControlLine: Int = 4096, maxPayload: Int = 64 << 20) {
        self.maxControlLine = maxControlLine
        self.maxPayload = maxPayload
    }

    /// The next whole operation in `buffer`, consuming its bytes, or nil when more bytes are
    /// needed. A violation throws; the connection must then be closed.
    public mutating func next(_ buffer: inout ByteBuffer) throws(NATSError) -> NATSServerOp? {
        if pending == nil {
            let view = buffer.readableBytesView
            guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
                if view.count > maxControlLine {
                    throw NATSError(.protocolViolation, "control line longer than \(maxControlLine) bytes")
                }
                return nil
            }
            let start = view.startIndex
            if lf - start > maxControlLine {
                throw NATSError(.protocolViolation, "control line longer than \(maxControlLine) bytes")
            }
            var end = lf
            if end > start, view[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            let op = try parseControlLine(view[start..<end])
            buffer.moveReaderIndex(forwardBy: lf - start + 1)
            if let op { return op }
        }
        guard let p = pending else { return nil }
        guard buffer.readableBytes >= p.totalBytes + 2 else { return nil }
        var payload = buffer.readSlice(length: p.totalBytes)!
        guard let cr = buffer.readInteger(as: UInt8.self), let lf = buffer.readInteger(as: UInt8.self),
            cr == UInt8(ascii: "\r"), lf == UInt8(ascii: "\n")
        else {
            throw NATSError(.protocolViolation, "a message's payload is not followed by CRLF")
        }
        pending = nil
        var headers: NATSHeaders?
        if p.headerBytes > 0 {
            let block = payload.readSlice(length: p.headerBytes)!
            headers = try NATSHeaders.parse(block.readableBytesView)
        }
        return .msg(NATSMessage(subject: p.subject, sid: p.sid, replyTo: p.replyTo, headers: headers, payload: payload))
    }

    /// Parses one control line; returns the operation, or nil when a message's payload follows.
    private mutating func parseControlLine(_ line: ByteBufferView) throws(NATSError) -> NATSServerOp? {
        var tokens: [Range<Int>] = []
        tokens.reserveCapacity(6)
        var i = line.startIndex
        while i < line.endIndex {
            while i < line.endIndex, line[i] == 32 || line[i] == 9 { i += 1 }
            let s = i
            while i < line.endIndex, line[i] != 32, line[i] != 9 { i += 1 }
            if i > s { tokens.append(s..<i) }
            if tokens.count == 1, Self.upper(line[tokens[0]]) == "INFO" || Self.upper(line[tokens[0]]) == "-ERR" {
                break
            }
        }
        guard let first = tokens.first else { throw NATSError(.protocolViolation, "an empty control line") }
        let verb = Self.upper(line[first])
        func rest() -> ByteBufferView { line[first.upperBound...] }
        switch verb {
        case "MSG", "HMSG":
            let hasHeaders = verb == "HMSG"
            let args = tokens.dropFirst()
            let want = hasHeaders ? [4, 5] : [3, 4]
            guard want.contains(args.count) else {
                throw NATSError(.protocolViolation, "\(verb) with \(args.count) arguments")
            }
            let a = Array(args)
            let subject = String(decoding: line[a[0]], as: UTF8.self)
            guard let sid = Self.number(line[a[1]]) else { throw NATSError(.protocolViolation, "\(verb): bad sid") }
            let hasReply = a.count == want[1]
            let replyTo = hasReply ? String(decoding: line[a[2]], as: UTF8.self) : nil
            let sizes = a.dropFirst(hasReply ? 3 : 2)
            guard let total = Self.number(line[sizes.last!]), total <= UInt64(maxPayload) else {
                throw NATSError(.protocolViolation, "\(verb): bad or oversized byte count")
            }
            var headerBytes: UInt64 = 0
            if hasHeaders {
                guard let h = Self.number(line[sizes.first!]), h <= total, h >= 10 else {
                    throw NATSError(.protocolViolation, "HMSG: bad header byte count")
                }
                headerBytes = h
            }
            pending = Pending(
                subject: subject, sid: sid, replyTo: replyTo, headerBytes: Int(headerBytes), totalBytes: Int(total))
            return nil
        case "PING": return .ping
        case "PONG": return .pong
        case "+OK": return .ok
        case "-ERR":
            var text = String(decoding: rest(), as: UTF8.self).trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("'"), text.hasSuffix("'"), text.count >= 2 { text = String(text.dropFirst().dropLast()) }
            return .err(NATSServerError(text))
        case "INFO":
            do {
                return .info(try JSONDecoder().decode(NATSServerInfo.self, from: Data(rest())))
            } catch {
                throw NATSError(.protocolViolation, "INFO is not the expected JSON: \(error)")
            }
        default:
            throw NATSError(.protocolViolation, "unknown operation '\(verb.prefix(16))'")
        }
    }

    private static func upper(_ bytes: ByteBufferView) -> String {
        guard bytes.count <= 8 else { return "" }
        return String(decoding: bytes.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }, as: UTF8.self)
    }

    private static func number(_ bytes: ByteBufferView) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 19 else { return nil }
        var n: UInt64 = 0
        for b in bytes {
            guard b >= 48, b <= 57 else { return nil }
            n = n * 10 + UInt64(b - 48)
        }
        return n
    }
}
