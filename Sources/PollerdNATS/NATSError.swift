import Foundation

/// An error of the NATS client: a stable `code`, a message for people, and the server's text
/// where the server sent one.
public struct NATSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, stable across versions.
    public enum Code: String, Sendable {
        /// The bytes from the server broke the protocol (a bad control line, a short frame).
        case protocolViolation = "protocol_violation"
        /// The server sent `-ERR`.
        case serverError = "server_error"
        /// No connection could be made, or the connection was lost.
        case connectionFailed = "connection_failed"
        /// The client is not connected and the call cannot wait for it (a request, a flush).
        case notConnected = "not_connected"
        /// The client was closed.
        case closed
        /// A payload is larger than the server's `max_payload`.
        case payloadTooLarge = "payload_too_large"
        /// The buffer for publishes made while disconnected is full.
        case reconnectBufferFull = "reconnect_buffer_full"
        /// A request got no reply in time.
        case timeout
        /// A request's subject has no subscriber (the server's `503` status).
        case noResponders = "no_responders"
        /// A subject, queue group or header that cannot go on the wire.
        case invalidArgument = "invalid_argument"
        /// A TLS requirement of one side that the other does not meet.
        case tls
        /// The server refused the credentials.
        case authorization
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "nats \(code.rawValue): \(message)" }
}

/// A `-ERR` from the server, sorted by what it does to the connection.
public struct NATSServerError: Sendable, Equatable {
    /// The server's text, without the quotes.
    public var text: String

    public init(_ text: String) { self.text = text }

    /// Whether the server closes the connection after this error. Only a bad subject and a
    /// permissions violation leave it open (the protocol's reference, "-ERR").
    public var closesConnection: Bool {
        let t = text.lowercased()
        return !(t.hasPrefix("invalid subject") || t.hasPrefix("permissions violation"))
    }

    /// Whether this is a refused subscription, and to which subject.
    public var refusedSubscription: String? {
        let prefix = "permissions violation for subscription to "
        guard text.lowercased().hasPrefix(prefix) else { return nil }
        let rest = text.dropFirst(prefix.count)
        return String(rest.split(separator: " ").first ?? rest).trimmingCharacters(in: ["\""])
    }

    /// Whether the credentials were refused.
    public var isAuthorization: Bool {
        let t = text.lowercased()
        return t.hasPrefix("authorization") || t.hasPrefix("authentication") || t.hasPrefix("user authentication")
    }
}
