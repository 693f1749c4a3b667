import Foundation
import Hummingbird
import Logging
import NIOCore
import PollerdAdmin
import Prometheus
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The admin listener against real sockets on loopback.
@Suite struct AdminServerTests {
    /// Runs the admin server on an ephemeral loopback port for the duration of `body`.
    func withServer(
        idleTimeoutMs: Int64, maxConnections: Int = 256, maxConnectionsPerClient: Int = 32,
        headerDeadlineMs: Int64 = 10_000,
        _ body: @Sendable (Int) async throws -> Void
    ) async throws {
        var logger = Logger(label: "test-admin")
        logger.logLevel = .critical
        let (ports, cont) = AsyncStream<Int>.makeStream()
        let app = try AdminServer.application(
            host: "127.0.0.1", port: 0, registry: PrometheusCollectorRegistry(),
            auth: AdminAuth(tokens: [], openProbes: true), logger: logger,
            idleTimeoutMs: idleTimeoutMs, maxConnections: maxConnections,
            maxConnectionsPerClient: maxConnectionsPerClient, headerDeadlineMs: headerDeadlineMs,
            onServerRunning: { ch in
                cont.yield(ch.localAddress?.port ?? 0)
                cont.finish()
            })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var port = 0
            for await p in ports { port = p }
            try await body(port)
            group.cancelAll()
        }
    }

    /// A connected TCP socket to 127.0.0.1:port, from `source` (another loopback address stands
    /// for another client).
    func connect(_ port: Int, from source: String? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let b = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            #expect(b == 0)
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(r == 0)
        return fd
    }

    /// Reads until what arrived ends with `marker` or the peer closes (blocking, on a thread of its own).
    func readUntil(_ fd: Int32, _ marker: String) async -> String {
        await withCheckedContinuation { c in
            Thread {
                var out: [UInt8] = []
                var buf = [UInt8](repeating: 0, count: 4096)
                while !String(decoding: out, as: UTF8.self).hasSuffix(marker) {
                    let n = read(fd, &buf, buf.count)
                    if n <= 0 { break }
                    out += buf[0..<n]
                }
                c.resume(returning: String(decoding: out, as: UTF8.self))
            }.start()
        }
    }

    /// Reads until the peer closes; returns what it sent (blocking, on a thread of its own).
    func readToClose(_ fd: Int32) async -> [UInt8] {
        await withCheckedContinuation { c in
            Thread {
                var out: [UInt8] = []
                var buf = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = read(fd, &buf, buf.count)
                    if n <= 0 { break }
                    out += buf[0..<n]
                }
                c.resume(returning: out)
            }.start()
        }
    }

    /// A client that sends half a request head and then nothing (slowloris) is disconnected
    /// once the connection has been idle for the timeout.
    @Test(.timeLimit(.minutes(1))) func aSilentHalfOpenRequestIsClosedAfterTheIdleTimeout() async throws {
        try await withServer(idleTimeoutMs: 300) { port in
            let fd = try connect(port)
            defer { close(fd) }
            let partial = Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\n".utf8)
            #expect(write(fd, partial, partial.count) == partial.count)
            #expect(await readToClose(fd).isEmpty) // closed by the server, nothing answered
        }
    }

    /// A request head that never completes is closed at the header deadline, long before the
    /// idle timeout: a client trickling header bytes keeps the idle timer from firing, but the
    /// deadline counts from the start of the head whatever arrives meanwhile.
    @Test(.timeLimit(.minutes(1))) func aTricklingRequestHeadIsClosedAtTheHeaderDeadline() async throws {
        try await withServer(idleTimeoutMs: 30_000, headerDeadlineMs: 500) { port in
            let fd = try connect(port)
            defer { close(fd) }
            let partial = Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n".utf8)
            #expect(write(fd, partial, partial.count) == partial.count)
            #expect(await readToClose(fd).isEmpty) // closed by the deadline, nothing answered
        }
    }

    @Test(.timeLimit(.minutes(1))) func aWholeRequestIsAnswered() async throws {
        try await withServer(idleTimeoutMs: 300) { port in
            let fd = try connect(port)
            defer { close(fd) }
            let req = Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
            #expect(write(fd, req, req.count) == req.count)
            let reply = String(decoding: await readToClose(fd), as: UTF8.self)
            #expect(reply.hasPrefix("HTTP/1.1 200") && reply.hasSuffix("ok\n"), "\(reply)")
        }
    }

    /// Sends `head` (a request head without its blank line) and returns the status code.
    func status(port: Int, head: String) async throws -> Int {
        let fd = try connect(port)
        defer { close(fd) }
        let req = Array((head + "Connection: close\r\n\r\n").utf8)
        #expect(write(fd, req, req.count) == req.count)
        let reply = String(decoding: await readToClose(fd), as: UTF8.self)
        return Int(reply.dropFirst("HTTP/1.1 ".count).prefix(3)) ?? -1
    }

    /// Over a real socket, with no token: the loopback names and literals are answered, a DNS name
    /// that only starts like one (a rebinding page's own name) is refused, and so is a request
    /// without a Host or with two that differ. The guard holds for every route, probes included.
    @Test(.timeLimit(.minutes(1))) func theTokenlessGuardReadsTheHostOverTheWire() async throws {
        try await withServer(idleTimeoutMs: 10_000) { port in
            for host in ["localhost:\(port)", "127.0.0.1:\(port)", "[::1]:\(port)", "127.1", "[::ffff:127.0.0.1]"] {
                #expect(
                    try await status(port: port, head: "GET /healthz HTTP/1.1\r\nHost: \(host)\r\n") == 200, "\(host)")
            }
            for host in [
                "127.0.0.1.evil.example", "127.evil.example:\(port)", "localhost.evil.example", "10.0.0.1",
                "[::127.0.0.1]", "2002:7f00:1::", "evil.example",
            ] {
                for path in ["/healthz", "/metrics"] {
                    let code = try await status(port: port, head: "GET \(path) HTTP/1.1\r\nHost: \(host)\r\n")
                    #expect(code == 403, "\(host) \(path)")
                }
            }
            #expect(try await status(port: port, head: "GET /healthz HTTP/1.1\r\n") == 400)
            #expect(try await status(port: port, head: "GET /healthz HTTP/1.0\r\n") == 400)
            let twoHosts = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n"
            #expect(try await status(port: port, head: twoHosts) == 400)
            let sameTwice = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: LOCALHOST\r\n"
            #expect(try await status(port: port, head: sameTwice) == 200)
        }
    }

    /// One client holding its whole cap of connections gets its next connection closed at once,
    /// unanswered; a probe from another client is answered.
    @Test(.timeLimit(.minutes(1))) func aClientAtItsConnectionCapCannotStarveAProbe() async throws {
        try await withServer(idleTimeoutMs: 30_000, maxConnections: 64, maxConnectionsPerClient: 8) { port in
            var held: [Int32] = []
            defer { for fd in held { close(fd) } }
            // Each held connection is answered once and kept open (keep-alive): the server has
            // admitted it before the next one is opened.
            for _ in 0..<8 {
                let fd = try connect(port, from: "127.0.0.2")
                let req = Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
                #expect(write(fd, req, req.count) == req.count)
                #expect(await readUntil(fd, "ok\n").hasPrefix("HTTP/1.1 200"))
                held.append(fd)
            }
            // The ninth from the same client is closed without an answer.
            let ninth = try connect(port, from: "127.0.0.2")
            defer { close(ninth) }
            let req = Array("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
            _ = write(ninth, req, req.count)
            #expect(await readToClose(ninth).isEmpty, "over its cap: closed unanswered")
            // Another client is answered while the first holds its cap.
            #expect(try await status(port: port, head: "GET /healthz HTTP/1.1\r\nHost: localhost\r\n") == 200)
        }
    }

    @Test func onlyLoopbackAddressesCountAsLocal() {
        #expect(
            AdminServer.isLoopback("127.0.0.1") && AdminServer.isLoopback("127.1.2.3")
                && AdminServer.isLoopback("localhost") && AdminServer.isLoopback("::1"))
        #expect(
            !AdminServer.isLoopback("0.0.0.0") && !AdminServer.isLoopback("10.0.0.1") && !AdminServer.isLoopback("::"))
        // A listen address that is a DNS name beginning with 127. binds wherever that name points.
        #expect(!AdminServer.isLoopback("127.0.0.1.evil.example") && !AdminServer.isLoopback("127.evil.example"))
    }
}
