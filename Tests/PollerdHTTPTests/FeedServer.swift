import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PollerdCore
import PollerdTestKit
import Synchronization

@testable import PollerdHTTP

/// A real HTTP server on loopback for the HTTP kinds: each path answers from a handler the
/// test sets, and every request is recorded (so a test can check that a refused address got
/// nothing at all).
final class FeedServer: Sendable {
    struct Reply: Sendable {
        var status = 200
        var headers: [(String, String)] = []
        var body: [UInt8] = []
        /// The body streamed (chunked, no Content-Length) in `chunkSize` pieces.
        var streamed = false
        var chunkSize = 1024
        /// With `streamed`: after this many bytes the body stalls until `release()` (a server
        /// that stops halfway, for the client's deadline).
        var stallAfterBytes: Int?
        /// Not answered until `release()`.
        var hold = false

        static func text(_ s: String, _ headers: [(String, String)] = [], status: Int = 200) -> Reply {
            Reply(status: status, headers: headers, body: Array(s.utf8))
        }
    }

    struct Request: Sendable {
        var path: String
        var query: String
        /// Names in lower case.
        var headers: [String: String]
    }

    private struct State {
        var handlers: [String: @Sendable (Request) -> Reply] = [:]
        var requests: [Request] = []
        var inFlight = 0
        var maxInFlight = 0
        var inFlightWaiters: [(Int, CheckedContinuation<Void, Never>)] = []
    }
    private let state = Mutex(State())
    private let gate = Gate()
    let port: Int
    let host: String

    private init(port: Int, host: String) {
        self.port = port
        self.host = host
    }

    /// The base URL (`http://127.0.0.1:PORT`, `http://[::1]:PORT`).
    var base: String { host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)" }

    func on(_ path: String, _ handler: @escaping @Sendable (Request) -> Reply) {
        state.withLock { $0.handlers[path] = handler }
    }
    func serve(_ path: String, _ reply: Reply) { on(path) { _ in reply } }

    var requests: [Request] { state.withLock { $0.requests } }
    var maxInFlight: Int { state.withLock { $0.maxInFlight } }

    func release() { gate.open() }

    /// Returns once `n` requests are in flight at the server.
    func waitForInFlight(_ n: Int) async {
        await withCheckedContinuation { c in
            let now = state.withLock { s in
                if s.inFlight >= n { return true }
                s.inFlightWaiters.append((n, c))
                return false
            }
            if now { c.resume() }
        }
    }

    fileprivate func begin(_ r: Request) -> Reply {
        let (reply, ready): (Reply, [CheckedContinuation<Void, Never>]) = state.withLock { s in
            s.requests.append(r)
            s.inFlight += 1
            s.maxInFlight = max(s.maxInFlight, s.inFlight)
            let ready = s.inFlightWaiters.filter { $0.0 <= s.inFlight }.map(\.1)
            s.inFlightWaiters.removeAll { $0.0 <= s.inFlight }
            let h = s.handlers[r.path]
            return (h.map { $0(r) } ?? Reply(status: 404, body: Array("no such path".utf8)), ready)
        }
        for c in ready { c.resume() }
        return reply
    }

    fileprivate func end() { state.withLock { $0.inFlight -= 1 } }

    fileprivate func waitForRelease() async { await gate.wait() }

    /// Runs servers on each of `hosts` (one port each) for the duration of `body`.
    static func with<T: Sendable>(
        hosts: [String] = ["127.0.0.1"], _ body: @Sendable ([FeedServer]) async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            var servers: [FeedServer] = []
            for host in hosts {
                let holder = Holder()
                let (portStream, portCont) = AsyncStream<Int>.makeStream()
                let router = Router()
                router.get("/**") { request, _ -> Response in try await handle(request, holder: holder) }
                router.post("/**") { request, _ -> Response in try await handle(request, holder: holder) }
                var logger = Logger(label: "feed-server")
                logger.logLevel = .critical
                let app = Application(
                    router: router, configuration: .init(address: .hostname(host, port: 0)),
                    onServerRunning: { ch in
                        portCont.yield(ch.localAddress?.port ?? 0)
                        portCont.finish()
                    }, logger: logger)
                group.addTask {
                    try await app.run()
                    return nil
                }
                var port = 0
                for await p in portStream { port = p }
                let server = FeedServer(port: port, host: host)
                holder.server.withLock { $0 = server }
                servers.append(server)
            }
            let result = try await body(servers)
            for s in servers { s.release() }
            group.cancelAll()
            while (try? await group.next()) != nil {}
            return result
        }
    }

    private final class Holder: Sendable {
        let server = Mutex<FeedServer?>(nil)
    }

    private static func handle(_ request: Hummingbird.Request, holder: Holder) async throws -> Response {
        guard let server = holder.server.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
        var headers: [String: String] = [:]
        for f in request.headers { headers[f.name.canonicalName.lowercased()] = f.value }
        // HTTP/1's Host, as HTTPTypes keeps it
        if let authority = request.head.authority { headers["host"] = authority }
        let r = server.begin(Request(path: request.uri.path, query: request.uri.query ?? "", headers: headers))
        if r.hold { await server.waitForRelease() }
        var fields = HTTPFields()
        for (k, v) in r.headers { if let name = HTTPField.Name(k) { fields.append(HTTPField(name: name, value: v)) } }
        if r.streamed {
            return Response(
                status: .init(code: r.status), headers: fields,
                body: ResponseBody { writer in
                    defer { server.end() }
                    var at = 0
                    while at < r.body.count {
                        let end = min(at + r.chunkSize, r.body.count)
                        try await writer.write(ByteBuffer(bytes: r.body[at..<end]))
                        at = end
                        if let stall = r.stallAfterBytes, at >= stall { await server.waitForRelease() }
                    }
                    try await writer.finish(nil)
                })
        }
        server.end()
        return Response(
            status: .init(code: r.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: r.body)))
    }
}

/// Answers names from a table, as DNS would: for tests of what the guard does with answers.
struct TableResolver: HostResolver {
    var table: [String: [String]]
    func addresses(of host: String) async throws -> [IPAddress] {
        guard let list = table[host.lowercased()] else {
            throw SystemResolver.Failure(host: host, message: "no such name (test table)")
        }
        return list.compactMap(IPAddress.init)
    }
}

extension FeedServer.Reply {
    static func feed(_ xml: String, _ headers: [(String, String)] = []) -> Self {
        .text(xml, [("Content-Type", "application/rss+xml")] + headers)
    }
}

/// Ticks a poller as the runner would, carrying the cursor from tick to tick.
struct Ticker {
    var poller: any Poller
    var config: JSONValue
    var cursor: Data?
    var nowMs: Int64 = 1_795_000_000_000
    var intervalSecs: Int64 = 60

    mutating func tick() async -> Result<TickAck, PollerError> {
        let ctx = TickContext(
            jobID: "job", kind: poller.kind, agent: "default", config: config, cursor: cursor, nowMs: nowMs,
            intervalHintSecs: intervalSecs, timeoutSecs: 30)
        do {
            let ack = try await poller.tick(ctx)
            if let c = ack.nextCursor { cursor = c }
            return .success(ack)
        } catch {
            return .failure(error)
        }
    }
}

extension Result {
    var ack: Success? { if case .success(let a) = self { a } else { nil } }
    var error: Failure? { if case .failure(let e) = self { e } else { nil } }
}

/// RSS 2.0 with entries `ids` (newest first), dated a minute apart.
func rssFeed(_ ids: [Int], extraChannel: String = "") -> String {
    var s = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title>\(extraChannel)"
    for i in ids {
        let minute = i % 60
        let hour = (i / 60) % 24
        s +=
            "<item><title>Entry \(i)</title><guid>e\(i)</guid><pubDate>Mon, 02 Jan 2026 \(String(format: "%02d:%02d", hour, minute)):00 GMT</pubDate></item>"
    }
    return s + "</channel></rss>"
}
