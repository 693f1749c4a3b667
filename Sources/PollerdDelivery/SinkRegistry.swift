import AsyncHTTPClient
import NIOCore
public import PollerdCore
import Synchronization

/// Makes and keeps the sinks that jobs name: one file sink per path (so writes to a file are
/// serialized), one webhook sink per definition, all sharing one HTTP client.
public final class SinkRegistry: Sendable {
    private let broker: LocalBroker
    private let cache = Mutex<[SinkTarget: any Sink]>([:])
    private let override: (@Sendable (SinkSpec) -> (any Sink)?)?

    /// - Parameter override: returns a sink to use instead of the built one (tests, benchmarks).
    public init(broker: LocalBroker = .shared, override: (@Sendable (SinkSpec) -> (any Sink)?)? = nil) {
        self.broker = broker
        self.override = override
    }

    /// The sink for a spec.
    public func sink(for spec: SinkSpec) -> any Sink {
        if let override, let s = override(spec) { return s }
        return cache.withLock { c in
            if let s = c[spec.target] { return s }
            let s: any Sink = switch spec.target {
            case .file(let path): FileSink(path: path)
            case .stdout: StdoutSink()
            case .nats(let subject): BrokerSink(subject: subject, broker: broker)
            case .webhook(let w): WebhookSink(target: w, client: Self.client)
            }
            c[spec.target] = s
            return s
        }
    }

    /// The process's webhook client: redirects off, idle connections kept a minute. Like
    /// AsyncHTTPClient's own shared client it lives as long as the process (a client must be
    /// shut down before it is freed, and a global never is).
    static let client: HTTPClient = {
        var config = HTTPClient.Configuration(redirectConfiguration: .disallow)
        config.connectionPool.idleTimeout = .seconds(60)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
    }()
}
