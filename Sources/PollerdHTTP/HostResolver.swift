import NIOPosix
public import PollerdCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns a host name into its addresses. The fetcher checks every address it returns, then
/// connects to a checked one, so a second answer (DNS rebinding) never reaches a socket.
public protocol HostResolver: Sendable {
    /// All addresses of `host`, in the resolver's order; throws when there are none.
    func addresses(of host: String) async throws -> [IPAddress]
}

/// `getaddrinfo` on NIO's blocking thread pool.
public struct SystemResolver: HostResolver {
    public init() {}

    public struct Failure: Error, CustomStringConvertible {
        public let host: String
        public let message: String
        public var description: String { "cannot resolve \(host): \(message)" }
    }

    public func addresses(of host: String) async throws -> [IPAddress] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_family = AF_UNSPEC
            var result: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(host, nil, &hints, &result)
            guard rc == 0, let first = result else {
                throw Failure(host: host, message: String(cString: gai_strerror(rc)))
            }
            defer { freeaddrinfo(first) }
            var out: [IPAddress] = []
            var cur: UnsafeMutablePointer<addrinfo>? = first
            while let ai = cur {
                if let sa = ai.pointee.ai_addr {
                    switch Int32(sa.pointee.sa_family) {
                    case AF_INET:
                        let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                        if let ip = IPAddress(bytes: withUnsafeBytes(of: a) { Array($0) }), !out.contains(ip) {
                            out.append(ip)
                        }
                    case AF_INET6:
                        let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                        if let ip = IPAddress(bytes: withUnsafeBytes(of: a) { Array($0) }), !out.contains(ip) {
                            out.append(ip)
                        }
                    default: break
                    }
                }
                cur = ai.pointee.ai_next
            }
            guard !out.isEmpty else { throw Failure(host: host, message: "no address") }
            return out
        }
    }
}
