import Foundation

/// A PostgreSQL location in libpq's URL form:
/// `postgres[ql]://[user[:password]@][host][:port][/dbname][?param=value&…]`.
///
/// Accepted parameters: `sslmode` (`disable`, `prefer`, `require`, `verify-full`), `host` (a
/// Unix socket directory, as libpq allows), `application_name` and `connect_timeout` (seconds).
/// Anything else is refused, so that a typo never passes as a setting that is silently ignored.
/// The password is kept out of `description` and `redacted`.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    public enum SSLMode: String, Sendable, CaseIterable {
        /// No TLS.
        case disable
        /// TLS when the server offers it, unverified (libpq's default).
        case prefer
        /// TLS or nothing, unverified (as libpq's `require` without a root certificate).
        case require
        /// TLS, with the server's certificate checked against the system's roots and its name.
        case verifyFull = "verify-full"
    }

    public var user: String
    public var password: String?
    /// A host name or address; nil with `socketDirectory`.
    public var host: String?
    public var port: Int
    /// A Unix socket directory (`?host=/run/postgresql`); the socket is `.s.PGSQL.<port>` in it.
    public var socketDirectory: String?
    public var database: String
    public var sslMode: SSLMode
    public var applicationName: String?
    public var connectTimeoutSecs: Int?

    /// Why a URL was refused.
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public var reason: String
        public var description: String { reason }
    }

    /// True for a string that names PostgreSQL (`postgres://` or `postgresql://`); anything else
    /// is a SQLite path.
    public static func isPostgres(_ location: String) -> Bool {
        let l = location.lowercased()
        return l.hasPrefix("postgres://") || l.hasPrefix("postgresql://")
    }

    public init(parsing text: String) throws {
        guard Self.isPostgres(text) else {
            throw Invalid(reason: "a PostgreSQL URL starts with postgres:// or postgresql://")
        }
        let rest = String(text[text.index(after: text.firstIndex(of: ":")!)...].dropFirst(2))
        var main = rest
        var query = ""
        if let q = rest.firstIndex(of: "?") {
            main = String(rest[..<q])
            query = String(rest[rest.index(after: q)...])
        }
        var authority = main
        var path = ""
        if let slash = main.firstIndex(of: "/") {
            authority = String(main[..<slash])
            path = String(main[main.index(after: slash)...])
        }
        var hostPort = authority
        user = "postgres"
        password = nil
        if let at = authority.lastIndex(of: "@") {
            let info = String(authority[..<at])
            hostPort = String(authority[authority.index(after: at)...])
            if let colon = info.firstIndex(of: ":") {
                user = try Self.decode(String(info[..<colon]), "the user name")
                password = try Self.decode(String(info[info.index(after: colon)...]), "the password")
            } else {
                user = try Self.decode(info, "the user name")
            }
        }
        port = 5432
        host = nil
        if hostPort.hasPrefix("[") {
            // An IPv6 literal: [::1]:5432
            guard let close = hostPort.firstIndex(of: "]") else {
                throw Invalid(reason: "the host \(hostPort) opens '[' and never closes it")
            }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { port = try Self.port(String(after.dropFirst())) }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            port = try Self.port(String(hostPort[hostPort.index(after: colon)...]))
        } else if !hostPort.isEmpty {
            host = hostPort
        }
        if host?.isEmpty == true { host = nil }
        if let h = host { host = try Self.decode(h, "the host") }
        database = path.isEmpty ? user : try Self.decode(path, "the database name")
        guard !database.contains("/") else {
            throw Invalid(reason: "the database name \(database) has a '/' in it")
        }
        sslMode = .prefer
        socketDirectory = nil
        applicationName = nil
        connectTimeoutSecs = nil
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = try Self.decode(String(kv[0]), "a parameter name")
            let value = kv.count > 1 ? try Self.decode(String(kv[1]), "the value of \(key)") : ""
            switch key {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else {
                    throw Invalid(
                        reason: "sslmode=\(value) is not supported: use "
                            + SSLMode.allCases.map(\.rawValue).joined(separator: ", "))
                }
                sslMode = mode
            case "host":
                if value.hasPrefix("/") { socketDirectory = value } else { host = value }
            case "application_name":
                applicationName = value
            case "connect_timeout":
                guard let secs = Int(value), secs > 0, secs <= 3600 else {
                    throw Invalid(reason: "connect_timeout=\(value) is not a number of seconds from 1 to 3600")
                }
                connectTimeoutSecs = secs
            case "port":
                port = try Self.port(value)
            case "user":
                user = value
            case "password":
                password = value
            case "dbname":
                database = value
            default:
                throw Invalid(
                    reason: "the parameter \(key) is not supported (known: sslmode, host, port, user, password, "
                        + "dbname, application_name, connect_timeout)")
            }
        }
        if host == nil && socketDirectory == nil { host = "localhost" }
        if socketDirectory != nil && (sslMode == .require || sslMode == .verifyFull) {
            throw Invalid(reason: "sslmode=\(sslMode.rawValue) cannot be used over a Unix socket")
        }
    }

    private static func port(_ s: String) throws -> Int {
        guard let p = Int(s), (1...65535).contains(p) else {
            throw Invalid(reason: "the port \(s) is not a number from 1 to 65535")
        }
        return p
    }

    private static func decode(_ s: String, _ what: String) throws -> String {
        guard let d = s.removingPercentEncoding else { throw Invalid(reason: "\(what) has a bad %-escape") }
        return d
    }

    /// The URL with its password replaced by `***`: what logs, `validate` and errors show.
    public var redacted: String { text(password: password.map { _ in "***" }) }

    /// The whole URL, password included (to hand to another process; never to log).
    public var unredacted: String {
        text(password: password?.addingPercentEncoding(withAllowedCharacters: .alphanumerics))
    }

    private func text(password: String?) -> String {
        var s = "postgres://\(user.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? user)"
        if let password { s += ":" + password }
        s += "@"
        if let host { s += host.contains(":") ? "[\(host)]" : host }
        s += ":\(port)/\(database)"
        var params: [String] = []
        if let socketDirectory { params.append("host=\(socketDirectory)") }
        if sslMode != .prefer { params.append("sslmode=\(sslMode.rawValue)") }
        if let applicationName { params.append("application_name=\(applicationName)") }
        if let connectTimeoutSecs { params.append("connect_timeout=\(connectTimeoutSecs)") }
        if !params.isEmpty { s += "?" + params.joined(separator: "&") }
        return s
    }

    public var description: String { redacted }

    /// The same server, another database (the contract tests make one per test).
    public func with(database: String) -> PostgresURL {
        var u = self
        u.database = database
        return u
    }
}
