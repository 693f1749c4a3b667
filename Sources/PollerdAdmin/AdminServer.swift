import Foundation
import HTTPTypes
public import Hummingbird
import HummingbirdCore
public import Logging
import Metrics
public import NIOCore
public import PollerdCore
public import Prometheus

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
    /// The most connections one client (an IP address) may hold at once; past it its new ones
    /// are closed at once, so that one client cannot take the listener from the others (a liveness
    /// probe among them).
    public static let maxConnectionsPerClient = 32
    /// How long a request head may take to arrive in full (a trickling slowloris is closed here).
    public static let headerDeadlineSecs: Int64 = 10

    /// True for a listen address only this machine can reach: a loopback IP literal or
    /// `localhost` (`LoopbackHosts`); a name that merely starts with `127.` is a DNS name.
    public static func isLoopback(_ host: String) -> Bool { LoopbackHosts().contains(host) }

    /// The admin listener refused to start: it would be reachable from the network without a token.
    public struct OpenOnNetwork: Error, CustomStringConvertible {
        public let address: String
        public var description: String {
            "the admin API on \(address) would be reachable from the network without a token: set admin.tokens, "
                + "POLLERD_ADMIN_TOKEN or POLLERD_READ_TOKEN, or listen on a loopback address"
        }
    }

    /// The server as a service for the daemon's service group: `/metrics` and `/healthz`, the
    /// routes `routes` adds, and one auth middleware in front of them all. It refuses to listen
    /// beyond this machine without a token; idle connections are closed after `idleTimeoutSecs`
    /// and at most `maxConnections` are served at once, `maxConnectionsPerClient` of them to one
    /// client address.
    public static func application(
        host: String, port: Int, registry: PrometheusCollectorRegistry?, auth: AdminAuth, logger: Logger,
        idleTimeoutMs: Int64 = idleTimeoutSecs * 1000, maxConnections: Int = maxConnections,
        maxConnectionsPerClient: Int = maxConnectionsPerClient, headerDeadlineMs: Int64 = headerDeadlineSecs * 1000,
        sessions: AdminSessions? = nil, loopbackHosts: LoopbackHosts = .system(),
        routes: (Router<AdminRequestContext>) -> Void = { _ in },
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        if !isLoopback(host) && auth.isOpen { throw OpenOnNetwork(address: "\(host):\(port)") }
        let router = self.router(
            registry: registry, auth: auth, sessions: sessions, loopbackHosts: loopbackHosts, routes: routes)
        let deadline = TimeAmount.milliseconds(headerDeadlineMs)
        let perClient = ClientConnectionCap(perClient: maxConnectionsPerClient)
        return Application(
            router: router,
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [
                        ClientConnectionCapHandler(cap: perClient), HeaderDeadlineHandler(deadline: deadline),
                    ],
                    idleTimeout: .milliseconds(idleTimeoutMs))),
            configuration: .init(
                address: .hostname(host, port: port), serverName: "pollerd",
                availableConnectionsDelegate: MaximumAvailableConnections(maxConnections, logger: logger)),
            onServerRunning: onServerRunning, logger: logger)
    }

    /// The router alone (tests drive it without a socket).
    public static func router(
        registry: PrometheusCollectorRegistry?, auth: AdminAuth, sessions: AdminSessions? = nil,
        loopbackHosts: LoopbackHosts = LoopbackHosts(), routes: (Router<AdminRequestContext>) -> Void
    ) -> Router<AdminRequestContext> {
        let router = Router(context: AdminRequestContext.self)
        router.add(middleware: AdminAuthMiddleware(auth: auth, sessions: sessions, loopbackHosts: loopbackHosts))
        if let sessions { login(router, auth: auth, sessions: sessions) }
        if let registry {
            router.get("/metrics") { _, _ -> Response in
                let body = registry.emitToBuffer()
                var headers = HTTPFields()
                headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
            }
        }
        router.get("/healthz") { _, _ in "ok\n" }
        routes(router)
        return router
    }

    /// `/login` (a form taking a token) and `/logout`. A login opens a session whose cookie is
    /// HttpOnly and SameSite=Strict (Secure behind a TLS proxy that says `X-Forwarded-Proto: https`).
    static func login(_ router: Router<AdminRequestContext>, auth: AdminAuth, sessions: AdminSessions) {
        router.get("/login") { request, context -> Response in
            if context.openAccess { return HTML.redirect("/") }
            return HTML.response(loginPage(next: request.uri.queryParameters.get("next"), error: nil))
        }
        router.post("/login") { request, context -> Response in
            if context.openAccess { return HTML.redirect("/") }
            var request = request
            let form = FormFields(String(buffer: try await request.collectBody(upTo: 16 << 10)))
            let next = HTML.localPath(form["next"])
            guard let token = form["token"]?.trimmingCharacters(in: .whitespaces), !token.isEmpty,
                let role = auth.role(of: token)
            else {
                return HTML.response(
                    loginPage(next: next, error: "That token is not one of this daemon's."), status: .unauthorized)
            }
            let (id, _) = sessions.open(role: role)
            var response = HTML.redirect(next)
            let secure = request.headers[HTTPField.Name("X-Forwarded-Proto")!] == "https"
            response.setCookie(
                Cookie(
                    name: AdminSessions.cookieName, value: id, maxAge: Int(sessions.ttlMs / 1000), path: "/",
                    secure: secure, httpOnly: true, sameSite: .strict))
            return response
        }
        router.post("/logout") { request, _ -> Response in
            if let id = request.cookies[AdminSessions.cookieName]?.value { sessions.close(id) }
            var response = HTML.redirect("/login")
            response.setCookie(
                Cookie(
                    name: AdminSessions.cookieName, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .strict))
            return response
        }
    }

    static func loginPage(next: String?, error: String?) -> String {
        let message = error.map { "<p class=\"error\" id=\"login-error\">\(HTML.escape($0))</p>" } ?? ""
        return HTML.page(
            title: "Log in",
            body: """
                <main class="narrow"><h1>pollerd</h1>
                <form method="post" action="/login" class="login">
                <label for="token">Admin or read token</label>
                <input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
                <input type="hidden" name="next" value="\(HTML.escape(HTML.localPath(next)))">
                <button type="submit" id="login">Log in</button>
                </form>\(message)
                <p class="hint">A token from <code>admin.tokens</code> in the job file, or <code>POLLERD_ADMIN_TOKEN</code> / <code>POLLERD_READ_TOKEN</code>.</p>
                </main>
                """)
    }
}
