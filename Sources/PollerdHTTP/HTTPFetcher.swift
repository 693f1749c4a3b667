import AsyncHTTPClient
import Foundation
public import NIOCore
public import NIOHTTP1
import NIOHTTPCompression
import NIOPosix
public import PollerdCore
import Synchronization

/// One HTTP request a job makes. Redirects are followed by the fetcher, hop by hop.
public struct FetchRequest: Sendable {
    public var url: String
    public var method: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?
    /// Connect to private, loopback and other non-public addresses too.
    public var allowPrivateNetworks: Bool
    /// The body is refused past this many bytes (after decompression), counted while reading.
    public var maxBodyBytes: Int
    public var maxRedirects: Int
    /// Connection set-up bound.
    public var connectTimeout: Duration
    /// The whole exchange, every redirect hop and the body included.
    public var timeout: Duration

    public init(
        url: String, method: String = "GET", headers: [(name: String, value: String)] = [], body: [UInt8]? = nil,
        allowPrivateNetworks: Bool = false, maxBodyBytes: Int = 10 << 20, maxRedirects: Int = 5,
        connectTimeout: Duration = .seconds(10), timeout: Duration = .seconds(30)
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.allowPrivateNetworks = allowPrivateNetworks
        self.maxBodyBytes = maxBodyBytes
        self.maxRedirects = maxRedirects
        self.connectTimeout = connectTimeout
        self.timeout = timeout
    }
}

/// What came back.
public struct FetchResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The URL that answered (after redirects).
    public var url: String
    /// The address the answer came from.
    public var address: String
    /// The redirect hops taken, in order.
    public var redirects: [String]

    /// The first value of a header (names are case-insensitive).
    public func header(_ name: String) -> String? { headers.first(name: name) }
}

/// Why a fetch failed.
public struct FetchError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The URL is not one a job may fetch (scheme, syntax).
        case badURL
        /// The address is not public and the job may not reach it. Nothing was sent.
        case blocked
        /// DNS, connect, TLS or read failures.
        case network
        /// The whole exchange ran past its time.
        case timeout
        /// The body was bigger than allowed.
        case tooLarge
        /// Too many redirects, a loop, or a redirect the fetcher refuses (to another scheme, HTTPS to HTTP).
        case redirect
    }
    public var kind: Kind
    /// The URL of the hop that failed.
    public var url: String
    public var message: String

    public var description: String { "\(url): \(message)" }
}

/// The HTTP client of the built-in HTTP kinds, with an SSRF guard in the connect path.
///
/// For each hop it resolves the host, checks every address (`AddressPolicy`), then connects to
/// the first checked address through an AsyncHTTPClient whose `dnsOverride` pins the host to it:
/// TLS still verifies the host name (SNI), but no second DNS answer can change where the bytes
/// go. Redirects are followed here, each hop checked again; the configured URL is never
/// replaced. At most `perHostLimit` requests per host are in flight across all jobs.
public final class HTTPFetcher: Sendable {
    struct Settings {
        var policy: AddressPolicy
        var userAgent: String
        var perHostLimit: Int
    }
    private let settings: Mutex<Settings>
    public var policy: AddressPolicy { settings.withLock { $0.policy } }
    public var userAgent: String { settings.withLock { $0.userAgent } }
    public var perHostLimit: Int { settings.withLock { $0.perHostLimit } }
    let resolver: any HostResolver
    let group: any EventLoopGroup
    private let clients = Mutex<ClientCache>(ClientCache())
    private let gates = Mutex<[String: AsyncSemaphore]>([:])

    /// The User-Agent sent unless a job sets its own.
    public static let defaultUserAgent = "pollerd/\(PollerdVersion.string) (+https://github.com/pollerd/pollerd)"

    public init(
        policy: AddressPolicy = AddressPolicy(), resolver: any HostResolver = SystemResolver(), perHostLimit: Int = 2,
        userAgent: String = HTTPFetcher.defaultUserAgent, group: (any EventLoopGroup)? = nil
    ) {
        settings = Mutex(Settings(policy: policy, userAgent: userAgent, perHostLimit: max(1, perHostLimit)))
        self.resolver = resolver
        self.group = group ?? MultiThreadedEventLoopGroup.singleton
    }

    /// Applies the job file's `pollers.http` (at start and on every reload). A new per-host
    /// limit applies to requests that start after it.
    public func configure(_ http: HTTPSettings) {
        let changedLimit = settings.withLock { s -> Bool in
            let changed = s.perHostLimit != http.perHostLimit
            s.policy = AddressPolicy(allow: http.allowAddresses)
            s.userAgent = http.userAgent ?? Self.defaultUserAgent
            s.perHostLimit = max(1, http.perHostLimit)
            return changed
        }
        if changedLimit { gates.withLock { $0 = [:] } }
    }

    deinit {
        // A fetcher dropped without `shutdown()` (a CLI command, a test) still closes its
        // clients: AsyncHTTPClient traps on a client that was never shut down.
        let left = clients.withLock { c -> [HTTPClient] in
            defer { c.byKey = [:] }
            return Array(c.byKey.values)
        }
        for client in left { Task { try? await client.shutdown() } }
    }

    /// Closes every pooled connection. Later fetches fail.
    public func shutdown() async {
        let all = clients.withLock { c -> [HTTPClient] in
            c.closed = true
            defer {
                c.byKey = [:]
                c.order = []
            }
            return Array(c.byKey.values)
        }
        for client in all { try? await client.shutdown() }
    }

    /// Requests in flight to `host` now (for tests and metrics).
    public func inFlight(host: String) -> Int { gates.withLock { $0[host.lowercased()]?.inUse ?? 0 } }

    public func fetch(_ request: FetchRequest) async throws(FetchError) -> FetchResponse {
        // The whole exchange races a timer: a server that trickles its body, or stalls after
        // the head, is cut off at the deadline whatever the per-read timeout says.
        let outcome: Result<FetchResponse, FetchError>? = await withTaskGroup(
            of: Result<FetchResponse, FetchError>?.self
        ) { group in
            group.addTask {
                do throws(FetchError) { return .success(try await self.follow(request)) } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: request.timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let outcome else {
            throw FetchError(
                kind: .timeout, url: request.url,
                message: "no complete answer within \(request.timeout.components.seconds) s (request_timeout_secs)")
        }
        return try outcome.get()
    }

    private func follow(_ request: FetchRequest) async throws(FetchError) -> FetchResponse {
        let deadline = NIODeadline.now() + TimeAmount(request.timeout)
        var url = request.url
        var method = request.method
        var body = request.body
        var headers = request.headers
        var hops: [String] = []
        var visited: Set<String> = [url]
        while true {
            let target = try Self.target(of: url)
            let response = try await fetchOnce(
                url: url, target: target, method: method, headers: headers, body: body, request: request,
                deadline: deadline)
            guard [301, 302, 303, 307, 308].contains(response.status), let location = response.header("location") else {
                var r = response
                r.redirects = hops
                return r
            }
            guard hops.count < request.maxRedirects else {
                throw FetchError(kind: .redirect, url: url, message: "more than \(request.maxRedirects) redirects")
            }
            let hop = try Self.redirect(
                from: url, target: target, status: response.status, location: location, method: method, visited: visited
            )
            visited.insert(hop.url)
            if hop.dropBody {
                method = "GET"
                body = nil
            }
            if hop.crossOrigin {
                // Credentials meant for one origin never follow a redirect to another.
                headers.removeAll { ["authorization", "cookie", "proxy-authorization"].contains($0.name.lowercased()) }
            }
            let next = hop.url
            hops.append(next)
            url = next
        }
    }

    /// Where a redirect goes, and what the next request keeps.
    struct Hop: Equatable {
        var url: String
        /// 303, or 301/302 after a POST: the next request is a GET without a body.
        var dropBody: Bool
        /// Another scheme, host or port: credentials stay behind.
        var crossOrigin: Bool
    }

    /// The rules for one redirect: a readable location, http(s) only, never from HTTPS down to
    /// plain HTTP, never back to a URL already visited.
    static func redirect(
        from url: String, target: Target, status: Int, location: String, method: String,
        visited: Set<String>
    ) throws(FetchError) -> Hop {
        guard let next = URL(string: location, relativeTo: URL(string: url))?.absoluteURL.absoluteString else {
            throw FetchError(
                kind: .redirect, url: url, message: "redirect to an unreadable location '\(location.prefix(200))'")
        }
        let nextTarget = try Self.target(of: next)
        if target.scheme == "https" && nextTarget.scheme == "http" {
            throw FetchError(
                kind: .redirect, url: url, message: "refused a redirect from HTTPS to plain HTTP (\(next))")
        }
        guard !visited.contains(next) else {
            throw FetchError(kind: .redirect, url: url, message: "redirect loop back to \(next)")
        }
        return Hop(
            url: next, dropBody: status == 303 || ((status == 301 || status == 302) && method == "POST"),
            crossOrigin: nextTarget.origin != target.origin)
    }

    struct Target {
        var scheme: String
        var host: String
        var port: Int
        var origin: String { "\(scheme)://\(host):\(port)" }
    }

    /// The scheme, host and port of a URL a job may fetch.
    static func target(of url: String) throws(FetchError) -> Target {
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased() else {
            throw FetchError(kind: .badURL, url: url, message: "not a URL")
        }
        guard scheme == "http" || scheme == "https" else {
            throw FetchError(kind: .badURL, url: url, message: "only http and https URLs are fetched, not \(scheme)")
        }
        guard var host = u.host, !host.isEmpty else {
            throw FetchError(kind: .badURL, url: url, message: "the URL has no host")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = u.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else {
            throw FetchError(kind: .badURL, url: url, message: "port \(port) is out of range")
        }
        return Target(scheme: scheme, host: host, port: port)
    }

    /// The checked address to connect to for a hop.
    func checkedAddress(_ target: Target, url: String, allowPrivate: Bool) async throws(FetchError) -> IPAddress {
        if let weird = AddressPolicy.obfuscatedIPv4(target.host) {
            throw FetchError(
                kind: .blocked, url: url,
                message:
                    "host '\(target.host)' is an IPv4 address (\(weird)) written in a non-standard numeric form; write it as a dotted quad"
            )
        }
        let addresses: [IPAddress]
        if let literal = IPAddress(target.host) {
            addresses = [literal]
        } else {
            do { addresses = try await resolver.addresses(of: target.host) } catch {
                throw FetchError(kind: .network, url: url, message: "\(error)")
            }
        }
        // Every answer is checked: a name with one private address among public ones is refused.
        for ip in addresses {
            if let why = policy.refusal(of: ip, port: target.port, allowPrivate: allowPrivate) {
                let via = IPAddress(target.host) == nil ? "'\(target.host)' resolves to \(ip), which is" : "\(ip) is"
                throw FetchError(
                    kind: .blocked, url: url,
                    message: "refused: \(via) \(why); set allow_private_networks: true to allow it")
            }
        }
        return addresses[0]
    }

    private func fetchOnce(
        url: String, target: Target, method: String, headers: [(name: String, value: String)], body: [UInt8]?,
        request: FetchRequest, deadline: NIODeadline
    ) async throws(FetchError) -> FetchResponse {
        let address = try await checkedAddress(target, url: url, allowPrivate: request.allowPrivateNetworks)
        let limit = perHostLimit
        let gate = gates.withLock { g in
            if let s = g[target.host.lowercased()] { return s }
            let s = AsyncSemaphore(permits: limit)
            g[target.host.lowercased()] = s
            return s
        }
        guard await gate.acquire() else {
            throw FetchError(kind: .timeout, url: url, message: "cancelled while waiting for the per-host limit")
        }
        defer { gate.release() }
        let client: HTTPClient
        do {
            client = try self.client(host: target.host, address: address, connectTimeout: request.connectTimeout)
        } catch {
            throw FetchError(kind: .network, url: url, message: "the HTTP client is shut down")
        }
        var req = HTTPClientRequest(url: url)
        req.method = HTTPMethod(rawValue: method)
        req.headers.add(name: "User-Agent", value: self.userAgent)
        req.headers.add(name: "Accept-Encoding", value: "gzip, deflate")
        for (name, value) in headers {
            if name.lowercased() == "user-agent" {
                req.headers.replaceOrAdd(name: "User-Agent", value: value)
            } else {
                req.headers.add(name: name, value: value)
            }
        }
        if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            let response = try await client.execute(req, deadline: deadline)
            let status = Int(response.status.code)
            if let length = response.headers.first(name: "content-length").flatMap(Int.init),
                length > request.maxBodyBytes
            {
                throw FetchError(
                    kind: .tooLarge, url: url,
                    message: "the body is \(length) bytes, over the \(request.maxBodyBytes)-byte cap (max_body_bytes)")
            }
            var bytes: [UInt8] = []
            if ![301, 302, 303, 307, 308, 304].contains(status) {
                for try await chunk in response.body {
                    if bytes.count + chunk.readableBytes > request.maxBodyBytes {
                        throw FetchError(
                            kind: .tooLarge, url: url,
                            message: "the body passed the \(request.maxBodyBytes)-byte cap (max_body_bytes)")
                    }
                    bytes.append(contentsOf: chunk.readableBytesView)
                }
            }
            return FetchResponse(
                status: status, headers: response.headers, body: bytes, url: url, address: "\(address)", redirects: [])
        } catch let e as FetchError {
            throw e
        } catch {
            if let e = error as? HTTPClientError, e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout {
                throw FetchError(kind: .timeout, url: url, message: Self.describe(e))
            }
            if Task.isCancelled {
                throw FetchError(kind: .timeout, url: url, message: "cancelled (the tick ran out of time)")
            }
            throw FetchError(kind: .network, url: url, message: Self.describe(error))
        }
    }

    /// A compressed body may inflate to this many times its compressed size, at most (a zip bomb
    /// is cut off while it inflates, before `max_body_bytes` is reached).
    static let maxDecompressionRatio = 200

    static func describe(_ error: any Error) -> String {
        if let e = error as? NIOHTTPDecompression.DecompressionError, e == .limit {
            return "the compressed body inflates to more than \(maxDecompressionRatio) times its size "
                + "(the decompression ratio limit; a zip bomb?)"
        }
        if let e = error as? HTTPClientError {
            switch e {
            case .deadlineExceeded: return "timed out"
            case .readTimeout: return "read timed out"
            case .connectTimeout: return "connect timed out"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: return "\(e)"
            }
        }
        return "\(error)"
    }

    private func client(host: String, address: IPAddress, connectTimeout: Duration) throws -> HTTPClient {
        let key = "\(host.lowercased())|\(address)"
        return try clients.withLock { c in
            if c.closed { throw CancellationError() }
            if let existing = c.byKey[key] {
                c.touch(key)
                return existing
            }
            var config = HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: TimeAmount(connectTimeout), read: .seconds(30)),
                connectionPool: .init(idleTimeout: .seconds(60)),
                decompression: .enabled(limit: .ratio(Self.maxDecompressionRatio)))
            if IPAddress(host) == nil { config.dnsOverride = [host: "\(address)"] }
            let client = HTTPClient(eventLoopGroup: group, configuration: config)
            c.byKey[key] = client
            c.touch(key)
            if let evicted = c.evictIfNeeded() {
                Task { try? await evicted.shutdown() }
            }
            return client
        }
    }
}

/// HTTP clients by host and pinned address, least recently used first out.
struct ClientCache {
    var byKey: [String: HTTPClient] = [:]
    var order: [String] = []
    var closed = false
    static let capacity = 256

    mutating func touch(_ key: String) {
        if let i = order.firstIndex(of: key) { order.remove(at: i) }
        order.append(key)
    }

    mutating func evictIfNeeded() -> HTTPClient? {
        guard order.count > Self.capacity else { return nil }
        let key = order.removeFirst()
        return byKey.removeValue(forKey: key)
    }
}

extension TimeAmount {
    init(_ d: Duration) {
        let (s, atto) = d.components
        self = .nanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }
}
