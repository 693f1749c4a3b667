public import Hummingbird
import Crypto
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
        var tokens: [(String, AdminRole)] = settings.tokens.compactMap { t in AdminRole(rawValue: t.role).map { (t.token, $0) } }
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
        for entry in digests {
            var diff: UInt8 = 0
            for i in 0..<d.count { diff |= d[i] ^ entry.digest[i] }
            if diff == 0, found == nil || entry.role > found! { found = entry.role }
        }
        return found
    }
}

/// The request context of the admin server: what the auth middleware decided.
public struct AdminRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller's role (every route past the middleware has one).
    public var role: AdminRole?

    public init(source: Source) {
        coreContext = .init(source: source)
    }
}

/// An API error as JSON: `{"error": {"code", "message"}}` with its status.
public struct AdminError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status; self.code = code; self.message = message
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = JSONValue.object(["error": .object(["code": .string(code), "message": .string(message)])]).canonicalString
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"pollerd\"" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: .init(string: body + "\n")))
    }
}

/// Checks the bearer token of every request, in one place: probes pass when open; otherwise a
/// missing or unknown token is 401, and a `read` token on anything but GET/HEAD is 403.
public struct AdminAuthMiddleware: RouterMiddleware {
    public typealias Context = AdminRequestContext
    let auth: AdminAuth
    static let probes: Set<String> = ["/healthz", "/readyz", "/metrics"]

    public init(auth: AdminAuth) { self.auth = auth }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if auth.openProbes, Self.probes.contains(request.uri.path) {
            context.role = .read
            return try await next(request, context)
        }
        if auth.isOpen {
            context.role = .admin
        } else {
            guard let header = request.headers[.authorization] else {
                throw AdminError(.unauthorized, "unauthorized", "this needs a bearer token (Authorization: Bearer TOKEN)")
            }
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer", let role = auth.role(of: String(parts[1])) else {
                throw AdminError(.unauthorized, "unauthorized", "the bearer token is not one of this daemon's")
            }
            context.role = role
        }
        if request.method != .get && request.method != .head && context.role != .admin {
            throw AdminError(.forbidden, "forbidden", "a read token may not \(request.method) \(request.uri.path): this needs an admin token")
        }
        return try await next(request, context)
    }
}
