/// The decisions of a client's connection, with no I/O and no clock: which server to dial,
/// how long to wait before the next attempt, when a ping is due or the connection is stale,
/// when lame duck mode moves the client elsewhere. The client feeds it events and performs the
/// actions it returns (the shape of postgres-nio's pool state machine).
public struct NATSConnectionStateMachine: Sendable {
    /// Where the connection is.
    public enum Phase: Sendable, Equatable {
        case idle
        /// Dialing `servers[server]`, or shaking hands with it.
        case connecting(server: Int)
        /// Up, with the pings sent and not answered yet.
        case connected(server: Int, pingsOutstanding: Int)
        /// Waiting before the next attempt.
        case waiting
        case closed
    }

    /// What the client does next.
    public enum Action: Sendable, Equatable {
        /// Dial this server.
        case connect(NATSServerAddress)
        /// Wait this long, then report `waited()`.
        case wait(Duration)
        /// Send a PING.
        case sendPing
        /// Close the connection: it is stale (pings unanswered) or the server is in lame duck
        /// mode and another server is known. `channelClosed` follows.
        case closeConnection(reason: String)
        /// Stop: closed by the caller, or the attempts ran out.
        case stop(reason: String)
        case none
    }

    public struct Settings: Sendable, Equatable {
        /// The first wait after a failed attempt; it doubles per failure, up to `maxReconnectWait`.
        public var reconnectWait: Duration = .milliseconds(250)
        public var maxReconnectWait: Duration = .seconds(4)
        /// A wait is spread by up to this fraction either way, so clients do not all come back at once.
        public var jitter: Double = 0.2
        /// Failed attempts in a row before the client gives up; nil never gives up.
        public var maxReconnectAttempts: Int? = nil
        /// PINGs sent and unanswered before the connection is judged stale.
        public var maxPingsOutstanding = 2

        public init() {}
    }

    public private(set) var phase: Phase = .idle
    /// The configured servers first, then those the cluster announced (`connect_urls`).
    public private(set) var servers: [NATSServerAddress]
    public let settings: Settings
    /// Failed attempts since the last connection was up.
    public private(set) var failures = 0
    private var next = 0
    private var random: SplitMix64

    public init(servers: [NATSServerAddress], settings: Settings = Settings(), seed: UInt64 = 0x5eed) {
        precondition(!servers.isEmpty, "a NATS client needs a server")
        self.servers = servers
        self.settings = settings
        self.random = SplitMix64(seed: seed)
    }

    /// The client starts.
    public mutating func start() -> Action {
        guard phase == .idle else { return .none }
        return dialNext()
    }

    /// The connection is up: INFO read, CONNECT answered, subscriptions made again.
    public mutating func connected() {
        guard case .connecting(let s) = phase else { return }
        phase = .connected(server: s, pingsOutstanding: 0)
        failures = 0
    }

    /// The dial or the handshake failed.
    public mutating func connectFailed() -> Action {
        guard case .connecting = phase else { return phase == .closed ? .stop(reason: "closed") : .none }
        failures += 1
        if let max = settings.maxReconnectAttempts, failures > max {
            phase = .closed
            return .stop(reason: "\(failures) connection attempts failed in a row")
        }
        phase = .waiting
        return .wait(backoff())
    }

    /// An established connection ended. The next server is dialed at once; waits begin only
    /// when that fails.
    public mutating func connectionLost() -> Action {
        switch phase {
        case .closed: return .stop(reason: "closed")
        case .connected: return dialNext()
        case .connecting: return connectFailed()
        case .idle, .waiting: return .none
        }
    }

    /// The wait is over.
    public mutating func waited() -> Action {
        guard phase == .waiting else { return phase == .closed ? .stop(reason: "closed") : .none }
        return dialNext()
    }

    /// The ping interval passed.
    public mutating func pingDue() -> Action {
        guard case .connected(let s, let out) = phase else { return .none }
        if out >= settings.maxPingsOutstanding {
            return .closeConnection(reason: "stale connection: \(out) pings unanswered")
        }
        phase = .connected(server: s, pingsOutstanding: out + 1)
        return .sendPing
    }

    /// A PONG came: the connection is alive.
    public mutating func pongReceived() {
        if case .connected(let s, _) = phase { phase = .connected(server: s, pingsOutstanding: 0) }
    }

    /// An INFO came (the first or a later one): learn the cluster's servers; in lame duck mode,
    /// move to another server if one is known.
    public mutating func infoReceived(_ info: NATSServerInfo) -> Action {
        let current: Int? =
            switch phase {
            case .connected(let s, _), .connecting(let s): s
            default: nil
            }
        for url in info.connectURLs {
            guard let a = try? NATSServerAddress(parsing: url, defaultTLS: current.map { servers[$0].tls } ?? false)
            else { continue }
            if !servers.contains(where: { $0.host == a.host && $0.port == a.port }) {
                servers.append(a.with(credentialsOf: current.map { servers[$0] }))
            }
        }
        if info.lameDuckMode, case .connected = phase, servers.count > 1 {
            return .closeConnection(reason: "the server is in lame duck mode")
        }
        return .none
    }

    /// The caller closes the client.
    public mutating func close() -> Action {
        let was = phase
        phase = .closed
        switch was {
        case .connected, .connecting: return .closeConnection(reason: "closed by the client")
        case .closed: return .none
        case .idle, .waiting: return .stop(reason: "closed")
        }
    }

    private mutating func dialNext() -> Action {
        let s = next % servers.count
        next = s + 1
        phase = .connecting(server: s)
        return .connect(servers[s])
    }

    /// The wait after `failures` failures: doubling from `reconnectWait`, capped, with jitter.
    /// A failure partway round the server list moves on at once, so a dead server does not delay
    /// a live one; the wait comes when every server failed in turn.
    private mutating func backoff() -> Duration {
        if failures % servers.count != 0 { return .zero }
        let round = failures / servers.count
        let base = settings.reconnectWait * (1 << min(round - 1, 20))
        let capped = min(base, settings.maxReconnectWait)
        let spread = (random.nextDouble() * 2 - 1) * settings.jitter
        return capped * (1 + spread)
    }
}

/// A small seeded generator, so that the jitter is reproducible in tests.
struct SplitMix64: Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
