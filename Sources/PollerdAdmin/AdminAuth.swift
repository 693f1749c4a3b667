import Crypto
import HTTPTypes
public import Hummingbird
public import PollerdCore

/// What a token may do: `read` every GET, `admin` the actions too.
public enum AdminRole: String, Sendable, Comparable {
    case read, admin

    public static func < (a: AdminRole, b: AdminRole) -> Bool { a == .read && b == .admin }
}

/// The admin API's bearer tokens. Tokens are kept as SHA-256 digests and every presented token
/// is compared with every stored one in constant time, so neither a token's bytes nor its
/// length leak through timing.
public struct AdminAuth: Sendable {
    private let digests: [(digest: [UInt8], role: AdminRole)]
    /// `/healthz`, `/readyz` and `/metrics` need no token.
    public let openProbes: Bool

    public init(tokens: [(token: String, role: AdminRole)], openProbes: Bool) {
        digests = tokens.map { (Array(SHA256.hash(data: Array($0.token.utf8))), $0.role) }
        self.openProbes = openProbes
    }

    /// The job file's tokens plus `POLLERD_ADMIN_TOKEN` (admin) and `POLLERD_READ_TOKEN` (read).
    public static func from(_ settings: AdminSettings, environment: [String: String]) -> AdminAuth {
        var tokens: [(String, AdminRole)] = settings.tokens.compactMap { t in
            AdminRole(rawValue: t.role).map { (t.token, $0) }
        }
        if let t = environment["POLLERD_ADMIN_TOKEN"], !t.isEmpty { tokens.append((t, .admin)) }
        if let t = environment["POLLERD_READ_TOKEN"], !t.isEmpty { tokens.append((t, .read)) }
        return AdminAuth(tokens: tokens, openProbes: settings.openProbes)
    }

    /// No token is configured: the API is open, which the server allows on loopback only.
    public var isOpen: Bool { digests.isEmpty }

    /// The role of a presented token, or nil. Every stored digest is compared, whatever matched.
    public func role(of presented: String) -> AdminRole? {
        let d = Array(SHA256.hash(data: Array(presented.utf8)))
        var found: AdminRole?
        for entry in digests where AdminSessions.constantTimeEqual(d, entry.digest) {
            if found == nil || entry.role > found! { found = entry.role }
        }
        return found
    }
}

/// The request context of the admin server: what the auth middleware decided.
public struct AdminRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller's role (every route past the middleware has one, but `/login` and `/static/`).
    public var role: AdminRole?
    /// The dashboard session the request came with (none for a bearer token or an open API).
    public var session: AdminSession?
    /// The auth is open (no token configured): the dashboard needs no login.
    public var openAccess = false

    public init(source: Source) {
        coreContext = .init(source: source)
    }
}

/// An API error: JSON `{"error": {"code", "message"}}` with its status, or a small HTML page when
/// the request was for a dashboard page.
public struct AdminError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        if AdminAuthMiddleware.isDashboardPath(request.uri.path) {
            let login = status == .unauthorized ? "<p><a href=\"/login\">Log in</a></p>" : ""
            let body = HTML.page(
                title: "\(status.code) \(status.reasonPhrase)",
                body: "<main class=\"narrow\"><h1>\(status.code) \(HTML.escape(status.reasonPhrase))</h1>"
                    + "<p class=\"error\" id=\"error-message\">\(HTML.escape(message))</p>\(login)"
                    + "<p><a href=\"/\">Back to the jobs</a></p></main>")
            return HTML.response(body, status: status)
        }
        let body = JSONValue.object(["error": .object(["code": .string(code), "message": .string(message)])])
            .canonicalString
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"pollerd\"" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: .init(string: body + "\n")))
    }
}

/// Decides who a request is, in one place, for the API and the dashboard alike:
/// - a request with no `Host`, or with several that disagree, is refused (400);
/// - with no token configured (loopback only), everyone is admin, but a `Host` that is not a
///   loopback IP literal or an exact loopback name (`LoopbackHosts`) is refused: a DNS-rebinding
///   page, whatever its name looks like, cannot reach the API;
/// - a state change from another origin (`Origin`, or `Sec-Fetch-Site: cross-site`) is refused;
/// - probes pass when left open; `/login` and `/static/` pass to their routes;
/// - a bearer token gives its role; a missing or unknown one is 401;
/// - a dashboard session cookie gives its role, and a state change must carry the session's CSRF
///   token (`X-CSRF-Token`, or the `csrf` field of a form); a dashboard page without a session
///   redirects to `/login`;
/// - a `read` role on anything but GET/HEAD is 403 (but logging out).
public struct AdminAuthMiddleware: RouterMiddleware {
    public typealias Context = AdminRequestContext
    let auth: AdminAuth
    let sessions: AdminSessions?
    let loopbackHosts: LoopbackHosts
    static let probes: Set<String> = ["/healthz", "/readyz", "/metrics"]

    public init(auth: AdminAuth, sessions: AdminSessions? = nil, loopbackHosts: LoopbackHosts = LoopbackHosts()) {
        self.auth = auth
        self.sessions = sessions
        self.loopbackHosts = loopbackHosts
    }

    /// A path of the dashboard (HTML), not of the JSON API or a probe.
    public static func isDashboardPath(_ path: String) -> Bool {
        !path.hasPrefix("/admin/") && path != "/admin" && !probes.contains(path)
    }

    static func isPublic(_ path: String) -> Bool { path == "/login" || path.hasPrefix("/static/") }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        var request = request
        let path = request.uri.path
        let changes = request.method != .get && request.method != .head
        let host = try Self.authority(request)
        if auth.isOpen, !loopbackHosts.containsAuthority(host) {
            throw AdminError(
                .forbidden, "host_refused",
                "this daemon's admin API has no token and answers on loopback names only, not '\(host)'")
        }
        if changes { try Self.checkSameOrigin(request) }
        if auth.openProbes, Self.probes.contains(path) {
            context.role = .read
            return try await next(request, context)
        }
        if Self.isPublic(path) {
            context.openAccess = auth.isOpen
            return try await Self.secure(next(request, context), path: path)
        }
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer", let role = auth.role(of: String(parts[1])) else {
                throw AdminError(.unauthorized, "unauthorized", "the bearer token is not one of this daemon's")
            }
            context.role = role
        } else if auth.isOpen {
            context.role = .admin
            context.openAccess = true
        } else if let sessions, let id = request.cookies[AdminSessions.cookieName]?.value,
            let session = sessions.session(id)
        {
            context.role = session.role
            context.session = session
            if changes { try await Self.checkCSRF(&request, session: session) }
        } else if Self.isDashboardPath(path) && !changes {
            var target = path
            if let q = request.uri.query, !q.isEmpty { target += "?" + q }
            return HTML.redirect("/login?next=" + PercentEncoding.component(target))
        } else if Self.isDashboardPath(path) {
            throw AdminError(.unauthorized, "unauthorized", "your dashboard session has ended: log in again")
        } else {
            throw AdminError(.unauthorized, "unauthorized", "this needs a bearer token (Authorization: Bearer TOKEN)")
        }
        if changes && context.role != .admin && path != "/logout" {
            throw AdminError(
                .forbidden, "forbidden", "a read token may not \(request.method) \(path): this needs an admin token")
        }
        return try await Self.secure(next(request, context), path: path)
    }

    /// The request's one `Host`. An HTTP/1 server moves the first `Host` header into the
    /// authority and leaves any later one among the fields; HTTP/1.1 requires exactly one (RFC 9112
    /// §3.2), so a request without one, or with several that differ, is refused with 400.
    static func authority(_ request: Request) throws -> String {
        var values = request.headers[values: HTTPField.Name("Host")!]
        if let authority = request.head.authority { values.append(authority) }
        guard let host = values.first else {
            throw AdminError(.badRequest, "host_missing", "the request has no Host header")
        }
        guard values.allSatisfy({ $0.lowercased() == host.lowercased() }) else {
            throw AdminError(.badRequest, "host_conflict", "the request has several Host headers that differ")
        }
        return host
    }

    /// A browser's cross-origin POST (a page elsewhere submitting a form here) is refused.
    static func checkSameOrigin(_ request: Request) throws {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site == "cross-site" || site == "same-site" {
            throw AdminError(.forbidden, "cross_origin", "a request from another site may not change anything here")
        }
        if let origin = request.headers[HTTPField.Name("Origin")!] {
            let host = try Self.authority(request)
            guard origin == "http://" + host || origin == "https://" + host else {
                throw AdminError(
                    .forbidden, "cross_origin", "a request from origin '\(origin)' may not change anything here")
            }
        }
    }

    /// A session's state change carries its CSRF token, in a header or a form field.
    static func checkCSRF(_ request: inout Request, session: AdminSession) async throws {
        var presented = request.headers[HTTPField.Name("X-CSRF-Token")!]
        if presented == nil, request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") == true {
            let body = try await request.collectBody(upTo: 64 << 10)
            presented = FormFields(String(buffer: body))["csrf"]
        }
        guard let presented, AdminSessions.constantTimeEqual(presented, session.csrf) else {
            throw AdminError(
                .forbidden, "csrf", "the form's CSRF token is missing or stale: reload the page and try again")
        }
    }

    /// Dashboard pages are never cached, framed or sniffed, and run only this server's scripts.
    static func secure(_ response: Response, path: String) -> Response {
        guard isDashboardPath(path) else { return response }
        var response = response
        HTML.secureHeaders(&response.headers)
        return response
    }
}
