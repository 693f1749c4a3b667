import Foundation
public import NIOCore

/// What the client sends, written straight into the outgoing buffer.
public enum NATSCommand {
    /// The `CONNECT` fields this client sends.
    public struct Connect: Encodable, Sendable, Equatable {
        public var verbose = false
        public var pedantic = false
        public var protocolVersion = 1
        public var headers = true
        public var noResponders = true
        public var echo = true
        public var tlsRequired: Bool
        public var user: String?
        public var pass: String?
        public var authToken: String?
        public var name: String?
        public var lang = "swift"
        public var version: String

        enum CodingKeys: String, CodingKey {
            case verbose, pedantic, headers, echo, user, pass, name, lang, version
            case protocolVersion = "protocol"
            case noResponders = "no_responders"
            case tlsRequired = "tls_required"
            case authToken = "auth_token"
        }

        public init(
            tlsRequired: Bool = false, user: String? = nil, pass: String? = nil, authToken: String? = nil,
            name: String? = nil, version: String
        ) {
            self.tlsRequired = tlsRequired
            self.user = user
            self.pass = pass
            self.authToken = authToken
            self.name = name
            self.version = version
        }
    }

    /// `CONNECT {json}\r\n`.
    public static func connect(_ c: Connect, into buffer: inout ByteBuffer) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        buffer.writeStaticString("CONNECT ")
        buffer.writeBytes((try? encoder.encode(c)) ?? Data("{}".utf8))
        buffer.writeStaticString("\r\n")
    }

    /// `PUB subject [reply] #bytes\r\npayload\r\n`, or `HPUB` when there are headers.
    public static func publish(
        subject: String, replyTo: String?, headers: [UInt8]?, payload: some Collection<UInt8>,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString(headers == nil ? "PUB " : "HPUB ")
        buffer.writeString(subject)
        if let replyTo {
            buffer.writeStaticString(" ")
            buffer.writeString(replyTo)
        }
        if let headers {
            buffer.writeStaticString(" ")
            writeDecimal(headers.count, into: &buffer)
        }
        buffer.writeStaticString(" ")
        writeDecimal((headers?.count ?? 0) + payload.count, into: &buffer)
        buffer.writeStaticString("\r\n")
        if let headers { buffer.writeBytes(headers) }
        buffer.writeBytes(payload)
        buffer.writeStaticString("\r\n")
    }

    /// `SUB subject [queue] sid\r\n`.
    public static func subscribe(subject: String, queue: String?, sid: UInt64, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("SUB ")
        buffer.writeString(subject)
        if let queue {
            buffer.writeStaticString(" ")
            buffer.writeString(queue)
        }
        buffer.writeStaticString(" ")
        writeDecimal(Int(sid), into: &buffer)
        buffer.writeStaticString("\r\n")
    }

    /// `UNSUB sid [max]\r\n`.
    public static func unsubscribe(sid: UInt64, max: Int?, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("UNSUB ")
        writeDecimal(Int(sid), into: &buffer)
        if let max {
            buffer.writeStaticString(" ")
            writeDecimal(max, into: &buffer)
        }
        buffer.writeStaticString("\r\n")
    }

    public static func ping(into buffer: inout ByteBuffer) { buffer.writeStaticString("PING\r\n") }
    public static func pong(into buffer: inout ByteBuffer) { buffer.writeStaticString("PONG\r\n") }

    private static func writeDecimal(_ n: Int, into buffer: inout ByteBuffer) {
        if n < 10 {
            buffer.writeInteger(UInt8(48 + n))
            return
        }
        var digits:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var v = n
        withUnsafeMutableBytes(of: &digits) { d in
            while v > 0 {
                d[19 - count] = UInt8(48 + v % 10)
                v /= 10
                count += 1
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: d[(20 - count)...]))
        }
    }

    /// The longest subject sent: well inside the server's 4 KiB control line, which a longer one
    /// would overflow (the server then closes the connection).
    public static let maxSubjectBytes = 255

    /// Why a subject (or queue group) cannot be sent, if it cannot: empty, a space, a control
    /// byte, or (to publish) a wildcard token.
    public static func subjectProblem(_ s: String, publishing: Bool) -> String? {
        if s.isEmpty { return "empty" }
        if s.utf8.count > maxSubjectBytes { return "longer than \(maxSubjectBytes) bytes" }
        if s.utf8.contains(where: { $0 <= 32 || $0 == 127 }) { return "contains whitespace or a control byte" }
        for token in s.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            if token.isEmpty { return "empty token (leading, trailing or double '.')" }
            if publishing, token.count == 1, token.first == UInt8(ascii: "*") || token.first == UInt8(ascii: ">") {
                return "wildcards cannot be published to"
            }
        }
        return nil
    }
}
