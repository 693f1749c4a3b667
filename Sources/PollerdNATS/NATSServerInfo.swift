import Foundation

/// The server's `INFO`: the first one before anything else, later ones at any time (a changed
/// cluster, lame duck mode).
public struct NATSServerInfo: Sendable, Equatable, Decodable {
    public var serverID: String
    public var serverName: String
    public var version: String
    public var proto: Int
    public var maxPayload: Int
    public var headers: Bool
    public var authRequired: Bool
    public var tlsRequired: Bool
    public var tlsAvailable: Bool
    /// Other servers of the cluster the client may connect to (`host:port`).
    public var connectURLs: [String]
    /// Lame duck mode: the server is about to close its clients.
    public var lameDuckMode: Bool
    /// Set when the server wants a signed nonce (NKeys), which this client does not do.
    public var nonce: String?
    public var jetstream: Bool

    enum CodingKeys: String, CodingKey {
        case serverID = "server_id"
        case serverName = "server_name"
        case version, proto
        case maxPayload = "max_payload"
        case headers
        case authRequired = "auth_required"
        case tlsRequired = "tls_required"
        case tlsAvailable = "tls_available"
        case connectURLs = "connect_urls"
        case lameDuckMode = "ldm"
        case nonce, jetstream
    }

    public init(
        serverID: String = "", serverName: String = "", version: String = "", proto: Int = 1,
        maxPayload: Int = 1_048_576, headers: Bool = true, authRequired: Bool = false, tlsRequired: Bool = false,
        tlsAvailable: Bool = false, connectURLs: [String] = [], lameDuckMode: Bool = false, nonce: String? = nil,
        jetstream: Bool = false
    ) {
        self.serverID = serverID
        self.serverName = serverName
        self.version = version
        self.proto = proto
        self.maxPayload = maxPayload
        self.headers = headers
        self.authRequired = authRequired
        self.tlsRequired = tlsRequired
        self.tlsAvailable = tlsAvailable
        self.connectURLs = connectURLs
        self.lameDuckMode = lameDuckMode
        self.nonce = nonce
        self.jetstream = jetstream
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        serverID = try c.decodeIfPresent(String.self, forKey: .serverID) ?? ""
        serverName = try c.decodeIfPresent(String.self, forKey: .serverName) ?? ""
        version = try c.decodeIfPresent(String.self, forKey: .version) ?? ""
        proto = try c.decodeIfPresent(Int.self, forKey: .proto) ?? 0
        maxPayload = try c.decodeIfPresent(Int.self, forKey: .maxPayload) ?? 1_048_576
        headers = try c.decodeIfPresent(Bool.self, forKey: .headers) ?? false
        authRequired = try c.decodeIfPresent(Bool.self, forKey: .authRequired) ?? false
        tlsRequired = try c.decodeIfPresent(Bool.self, forKey: .tlsRequired) ?? false
        tlsAvailable = try c.decodeIfPresent(Bool.self, forKey: .tlsAvailable) ?? false
        connectURLs = try c.decodeIfPresent([String].self, forKey: .connectURLs) ?? []
        lameDuckMode = try c.decodeIfPresent(Bool.self, forKey: .lameDuckMode) ?? false
        nonce = try c.decodeIfPresent(String.self, forKey: .nonce)
        jetstream = try c.decodeIfPresent(Bool.self, forKey: .jetstream) ?? false
    }
}
