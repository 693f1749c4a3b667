import Foundation
import Hummingbird
import Logging
import NIOCore
import PollerdAdmin
import Prometheus
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The admin listener against real sockets on loopback.
@Suite struct AdminServerTests {
    /// Runs the admin server on an ephemeral loopback port for the duration of `body`.
    func withServer(idleTimeoutMs: Int64, maxConnections: Int = 256, headerDeadlineMs: Int64 = 10_000, _ body: @Sendable (Int) async throws -> Void) async throws {
        var logger = Logger(label: "test-admin")
        logger.logLevel = .critical
        let (ports, cont) = AsyncStream<Int>.makeStream()
        let app = try AdminServer.application(host: "127.0.0.1", port: 0, registry: PrometheusCollectorRegistry(),
                                              auth: AdminAuth(tokens: [], openProbes: true), logger: logger,
                                          idleTimeoutMs: idleTimeoutMs, maxConnections: maxConnections, headerDeadlineMs: headerDeadlineMs,
                                          onServerRunning: { ch in cont.yield(ch.localAddress?.port ?? 0); cont.finish() })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var port = 0
            for await p in ports { port = p }
            try await body(port)
            group.cancelAll()
        }
    }

    /// A connected TCP socket to 127.0.0.1:port.
    func connect(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(r == 0)
        return fd
    }

    /// Reads until the peer closes; returns what it sent (blocking, on a thread of its own).
    func readToClose(_ fd: Int32) async -> [UInt8] {
        await withCheckedContinuation { c in
            Thread {
                var out: [UInt8] = [], buf = [UInt8](repeating: 0, count: 4096)
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
            let partial = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n".utf8)
            #expect(write(fd, partial, partial.count) == partial.count)
            #expect(await readToClose(fd).isEmpty)   // closed by the server, nothing answered
        }
    }

    /// A client that keeps sending header bytes, each well within the idle timeout, never
    /// finishes its request head: the header deadline closes it (the idle timer never fires).
    @Test(.timeLimit(.minutes(1))) func aTricklingRequestHeadIsClosedAtTheHeaderDeadline() async throws {
        try await withServer(idleTimeoutMs: 30_000, headerDeadlineMs: 500) { port in
            let fd = try connect(port)
            let start = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n".utf8)
            #expect(write(fd, start, start.count) == start.count)
            // The slow client: one header line every 50 ms, on a thread of its own, until the
            // server hangs up (MSG_NOSIGNAL: a closed peer is an error, not a SIGPIPE) or 30 s pass.
            let stop = StopFlag()
            async let closed = readToClose(fd)
            async let writerExited: Void = withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                Thread {
                    let line = Array("X-Slow: 1\r\n".utf8)
                    for _ in 0..<600 where !stop.isSet {
                        if send(fd, line, line.count, Int32(MSG_NOSIGNAL)) <= 0 { break }
                        usleep(50_000)
                    }
                    done.resume()
                }.start()
            }
            // Closed by the server, nothing answered, long before the idle timeout.
            #expect(await closed.isEmpty)
            stop.set()
            await writerExited
            close(fd)
        }
    }

    @Test(.timeLimit(.minutes(1))) func aWholeRequestIsAnswered() async throws {
        try await withServer(idleTimeoutMs: 300) { port in
            let fd = try connect(port)
            defer { close(fd) }
            let req = Array("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
            #expect(write(fd, req, req.count) == req.count)
            let reply = String(decoding: await readToClose(fd), as: UTF8.self)
            #expect(reply.hasPrefix("HTTP/1.1 200") && reply.hasSuffix("ok\n"), "\(reply)")
        }
    }

    @Test func onlyLoopbackAddressesCountAsLocal() {
        #expect(AdminServer.isLoopback("127.0.0.1") && AdminServer.isLoopback("127.1.2.3") && AdminServer.isLoopback("localhost") && AdminServer.isLoopback("::1"))
        #expect(!AdminServer.isLoopback("0.0.0.0") && !AdminServer.isLoopback("10.0.0.1") && !AdminServer.isLoopback("::"))
    }
}

/// A flag one thread sets and another reads.
final class StopFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}
