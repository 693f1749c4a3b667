import Foundation

/// One server to dial: `nats://[user:password@]host[:port]`, `tls://…` (TLS required), or
/// `host:port` as a cluster announces it.
public struct NATSServerAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// The URL asked for TLS (`tls://`).
    public var tls: Bool
    public var user: String?
    public var password: String?
    public var token: String?

    public init(
        host: String, port: Int = 4222, tls: Bool = false, user: String? = nil, password: String? = nil,
        token: String? = nil
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.user = user
        self.password = password
        self.token = token
    }

    /// Parses a server URL. A URL's `user@` alone is a token; `user:password@` a user and password.
    public init(parsing text: String, defaultTLS: Bool = false) throws(NATSError) {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        var tls = defaultTLS
        if let r = rest.range(of: "://") {
            let scheme = rest[..<r.lowerBound].lowercased()
            switch scheme {
            case "nats": break
            case "tls": tls = true
            default: throw NATSError(.invalidArgument, "'\(Self.redact(text))': the scheme must be nats:// or tls://")
            }
            rest = rest[r.upperBound...]
        }
        if let slash = rest.firstIndex(of: "/") {
            guard rest[slash...].allSatisfy({ $0 == "/" }) else {
                throw NATSError(.invalidArgument, "'\(Self.redact(text))': a NATS URL has no path")
            }
            rest = rest[..<slash]
        }
        var user: String?
        var password: String?
        var token: String?
        if let at = rest.lastIndex(of: "@") {
            let cred = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = cred.firstIndex(of: ":") {
                user = String(cred[..<colon]).removingPercentEncoding ?? String(cred[..<colon])
                let p = cred[cred.index(after: colon)...]
                password = String(p).removingPercentEncoding ?? String(p)
            } else if !cred.isEmpty {
                token = String(cred).removingPercentEncoding ?? String(cred)
            }
        }
        var host = rest
        var port = 4222
        if host.hasPrefix("[") { // [v6]:port
            guard let close = host.firstIndex(of: "]") else {
                throw NATSError(.invalidArgument, "'\(Self.redact(text))': an unclosed '['")
            }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else {
                    throw NATSError(.invalidArgument, "'\(Self.redact(text))': a bad port")
                }
                port = p
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else {
                throw NATSError(.invalidArgument, "'\(Self.redact(text))': a bad port")
            }
            port = p
            host = host[..<colon]
        }
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace }) else {
            throw NATSError(.invalidArgument, "'\(Self.redact(text))': no host")
        }
        self.init(host: String(host), port: port, tls: tls, user: user, password: password, token: token)
    }

    /// This address with the credentials of another where it has none (a server a cluster
    /// announced takes the credentials of the one that announced it).
    func with(credentialsOf other: NATSServerAddress?) -> NATSServerAddress {
        guard let other, user == nil, token == nil else { return self }
        var a = self
        a.user = other.user
        a.password = other.password
        a.token = other.token
        return a
    }

    /// `scheme://host:port`, without credentials.
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "\(tls ? "tls" : "nats")://\(h):\(port)"
    }

    /// A URL's text with its credentials replaced by `***`, for errors and logs.
    public static func redact(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@") else { return text }
        let start = text.range(of: "://")?.upperBound ?? text.startIndex
        guard start <= at else { return text }
        return String(text[..<start]) + "***" + String(text[at...])
    }
}
