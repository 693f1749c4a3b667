import Foundation
public import NIOSSL

/// How a client connects: the servers, the credentials, TLS, and its bounds.
public struct NATSClientOptions: Sendable {
    /// The servers to dial, in order; the cluster's `connect_urls` are added as they come.
    public var servers: [NATSServerAddress]
    /// The connection's name, shown by the server's monitoring.
    public var name: String?
    /// Credentials for every server (a URL's own win for that URL).
    public var user: String?
    public var password: String?
    public var token: String?
    /// TLS settings; nil still uses TLS (with the system's roots) when a URL is `tls://` or the
    /// server requires it.
    public var tls: TLSConfiguration?
    /// How long a dial plus the handshake (INFO, TLS, CONNECT, PONG) may take.
    public var connectTimeout: Duration = .seconds(2)
    /// How often the client pings; `reconnect.maxPingsOutstanding` unanswered close the connection.
    public var pingInterval: Duration = .seconds(30)
    /// Reconnect waits and limits.
    public var reconnect = NATSConnectionStateMachine.Settings()
    /// Bytes of publishes held while disconnected; past it `publish` throws.
    public var reconnectBufferBytes = 8 << 20
    /// Bytes waiting to be written on a live connection before `publish` waits for the socket.
    public var maxPendingBytes = 8 << 20
    /// Messages a subscription holds for a consumer that is behind; past it messages are dropped,
    /// counted and logged (a slow consumer), never silently.
    public var subscriptionCapacity = 65_536
    /// The default timeout of a request.
    public var requestTimeout: Duration = .seconds(5)
    /// The prefix of the client's reply subjects.
    public var inboxPrefix = "_INBOX"
    /// The `version` sent in CONNECT.
    public var version = "0.1.0"
    /// How finely request and flush deadlines are checked.
    public var timerResolution: Duration = .milliseconds(10)

    public init(servers: [NATSServerAddress]) {
        self.servers = servers
    }

    /// Options for URLs (`nats://host:port`, `tls://…`, with optional credentials).
    public init(urls: [String]) throws(NATSError) {
        var s: [NATSServerAddress] = []
        for u in urls { s.append(try NATSServerAddress(parsing: u)) }
        guard !s.isEmpty else { throw NATSError(.invalidArgument, "no server URL") }
        self.init(servers: s)
    }
}

/// What happened to the connection, for whoever logs or shows it.
public enum NATSEvent: Sendable, Equatable {
    /// Connected (again): the handshake done and every subscription made again.
    case connected(server: String, serverName: String)
    /// The connection was lost or a dial failed; the client is trying again.
    case disconnected(reason: String)
    /// The server announced lame duck mode.
    case lameDuck(server: String)
    /// A `-ERR` that left the connection open (a refused subscription, say).
    case serverError(String)
    /// Messages were dropped for a subscription whose consumer is behind.
    case slowConsumer(subject: String, dropped: Int)
    /// The client stopped.
    case closed(reason: String)
}
