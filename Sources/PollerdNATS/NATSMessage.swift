public import NIOCore

/// A message from the server (`MSG` or `HMSG`).
public struct NATSMessage: Sendable, Equatable {
    public var subject: String
    /// The subscription it was delivered to.
    public var sid: UInt64
    public var replyTo: String?
    public var headers: NATSHeaders?
    public var payload: ByteBuffer

    public init(subject: String, sid: UInt64, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: ByteBuffer)
    {
        self.subject = subject
        self.sid = sid
        self.replyTo = replyTo
        self.headers = headers
        self.payload = payload
    }

    /// The payload's bytes.
    public var bytes: [UInt8] { Array(payload.readableBytesView) }

    /// The status of the headers' first line (`503`: no responders), if any.
    public var status: Int? { headers?.status }
}

/// One operation the server sends.
public enum NATSServerOp: Sendable, Equatable {
    case info(NATSServerInfo)
    case msg(NATSMessage)
    case ping
    case pong
    case ok
    case err(NATSServerError)
}
