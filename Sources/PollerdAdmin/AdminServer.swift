public import Hummingbird
import HummingbirdCore
public import NIOCore
public import Logging
public import Prometheus
import Metrics

/// The admin HTTP server: `/metrics` (Prometheus text format) and `/healthz`.
public enum AdminServer {
    /// Routes metrics recorded through swift-metrics into a Prometheus registry; call once, at start.
    public static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// How long a connection may stay silent before it is closed (a slow client holds no
    /// connection for ever).
    public static let idleTimeoutSecs: Int64 = 30
    /// The most connections served at once; past it new ones wait in the listen backlog.
    public static let maxConnections = 256

    /// True for an address only this machine can reach.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// The server as a service for the daemon's service group. It warns when it listens beyond
    /// this machine (the admin API issue adds tokens); idle connections are closed after
    /// `idleTimeoutSecs` and at most `maxConnections` are served at once.
    public static func application(host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger,
                                   idleTimeoutMs: Int64 = idleTimeoutSecs * 1000, maxConnections: Int = maxConnections,
                                   onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> some ApplicationProtocol {
        if !isLoopback(host) {
            logger.warning("admin_listen is not a loopback address: /metrics and /healthz are reachable from the network, without authentication",
                           metadata: ["pollerd.admin_listen": "\(host):\(port)"])
        }
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            let body = registry.emitToBuffer()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/healthz") { _, _ in "ok\n" }
        return Application(router: router, server: .http1(configuration: .init(idleTimeout: .milliseconds(idleTimeoutMs))),
                           configuration: .init(address: .hostname(host, port: port), serverName: "pollerd",
                                                availableConnectionsDelegate: MaximumAvailableConnections(maxConnections, logger: logger)),
                           onServerRunning: onServerRunning, logger: logger)
    }
}
