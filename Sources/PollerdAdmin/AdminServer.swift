public import Hummingbird
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

    /// The server as a service for the daemon's service group.
    public static func application(host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            let body = registry.emitToBuffer()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/healthz") { _, _ in "ok\n" }
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "pollerd"), logger: logger)
    }
}
