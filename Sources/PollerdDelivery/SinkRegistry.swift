public import AsyncHTTPClient
public import Logging
import NIOCore
public import PollerdCore
import Synchronization

/// Makes and keeps the sinks that jobs name: one file sink per path (so writes to a file are
/// serialized), one webhook sink per definition, all sharing one HTTP client, and one `nats`
/// sink per subject: on the NATS broker when one is configured, on the in-process broker
/// otherwise. The brokers and the client are the daemon's, passed in: the registry owns none.
public final class SinkRegistry: Sendable {
    private let broker: LocalBroker
    private let nats: NATSBroker?
    private let client: HTTPClient
    private let logger: Logger
    private let cache = Mutex<[SinkTarget: any Sink]>([:])
    private let override: (@Sendable (SinkSpec) -> (any Sink)?)?

    /// - Parameters:
    ///   - client: the webhook sinks' HTTP client (see `makeHTTPClient()`); whoever made it shuts it down.
    ///   - override: returns a sink to use instead of the built one (tests, benchmarks).
    public init(
        broker: LocalBroker, nats: NATSBroker? = nil, client: HTTPClient,
        logger: Logger = Logger(label: "pollerd.delivery"), override: (@Sendable (SinkSpec) -> (any Sink)?)? = nil
    ) {
        self.broker = broker
        self.nats = nats
        self.client = client
        self.logger = logger
        self.override = override
    }

    /// The sink for a spec.
    public func sink(for spec: SinkSpec) -> any Sink {
        if let override, let s = override(spec) { return s }
        return cache.withLock { c in
            if let s = c[spec.target] { return s }
            let s: any Sink =
                switch spec.target {
                case .file(let path): FileSink(path: path)
                case .stdout: StdoutSink()
                case .nats(let subject):
                    if let nats {
                        NATSSink(subject: subject, broker: nats, logger: logger)
                    } else {
                        BrokerSink(subject: subject, broker: broker)
                    }
                case .webhook(let w): WebhookSink(target: w, client: client)
                }
            c[spec.target] = s
            return s
        }
    }

    /// A client configured for webhook sinks: redirects off, idle connections kept a minute. It
    /// must be shut down (`shutdown()`) before it is freed; the daemon does that at exit.
    public static func makeHTTPClient() -> HTTPClient {
        var config = HTTPClient.Configuration(redirectConfiguration: .disallow)
        config.connectionPool.idleTimeout = .seconds(60)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
    }
}
