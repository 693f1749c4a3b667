import Foundation
import Hummingbird
import Logging
import NIOCore
import PollerdTestKit
import Synchronization

/// A real HTTP server on loopback for webhook tests: it answers from a script of responses
/// (then 200) and records every request it got.
final class TestHTTPServer: Sendable {
    struct Reply: Sendable {
        var status: Int = 200
        var retryAfter: String?
        var body: String = ""
        /// Not answered until the test calls `releaseHeld()` (to trip a client timeout).
        var hold = false
        /// The head and a first chunk go out, then the body stalls until `releaseHeld()`.
        var stallBody = false
        /// The body streams 64 KiB chunks until the client goes away (a "1 GiB" answer).
        var endlessBody = false
    }

    struct Received: Sendable {
        var path: String
        /// Header names in lower case.
        var headers: [String: String]
        var body: Data
        var status: Int
    }

    private struct State {
        var script: [Reply] = []
        var received: [Received] = []
        var endlessChunks = 0
        var endlessCompleted: Bool?
        var endlessWaiters: [CheckedContinuation<Bool, Never>] = []
    }
    private let state = Mutex(State())
    private let gate = Gate()
    let port: Int

    private init(port: Int) { self.port = port }

    var url: String { "http://127.0.0.1:\(port)/hook" }

    /// Queues replies for the next requests.
    func script(_ replies: [Reply]) { state.withLock { $0.script += replies } }

    var received: [Received] { state.withLock { $0.received } }

    /// 64 KiB chunks an endless body got written before its client went away.
    var endlessChunks: Int { state.withLock { $0.endlessChunks } }

    fileprivate func wroteEndlessChunk() { state.withLock { $0.endlessChunks += 1 } }

    fileprivate func endlessEnded(completed: Bool) {
        let waiters = state.withLock { s in
            s.endlessCompleted = completed
            defer { s.endlessWaiters = [] }
            return s.endlessWaiters
        }
        for w in waiters { w.resume(returning: completed) }
    }

    /// Waits until an endless body's writer stopped: true when it wrote the whole body (the
    /// client read it all), false when the client went away first.
    func endlessBodyEnded() async -> Bool {
        await withCheckedContinuation { c in
            let done: Bool? = state.withLock { s in
                if let d = s.endlessCompleted { return d }
                s.endlessWaiters.append(c)
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }

    /// Lets held replies go (and every later one).
    func releaseHeld() { gate.open() }

    fileprivate func waitForRelease() async { await gate.wait() }

    fileprivate func answer(path: String, headers: [String: String], body: Data) -> Reply {
        state.withLock { s in
            let r = s.script.isEmpty ? Reply() : s.script.removeFirst()
            s.received.append(Received(path: path, headers: headers, body: body, status: r.status))
            return r
        }
    }

    /// Runs a server for the duration of `body`.
    static func with<T: Sendable>(_ body: @Sendable (TestHTTPServer) async throws -> T) async throws -> T {
        let holder = Mutex<TestHTTPServer?>(nil)
        let (portStream, portCont) = AsyncStream<Int>.makeStream()
        let router = Router()
        router.post("/**") { request, context -> Response in
            let data = try await request.body.collect(upTo: 8 << 20)
            var headers: [String: String] = [:]
            for f in request.headers { headers[f.name.canonicalName.lowercased()] = f.value }
            guard let server = holder.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let r = server.answer(path: request.uri.path, headers: headers, body: Data(data.readableBytesView))
            if r.hold { await server.waitForRelease() }
            var fields = HTTPFields()
            if let after = r.retryAfter { fields[.retryAfter] = after }
            if r.stallBody {
                return Response(
                    status: .init(code: r.status), headers: fields,
                    body: ResponseBody { writer in
                        try await writer.write(ByteBuffer(string: "{\"ok\":"))
                        await server.waitForRelease()
                        try await writer.finish(nil)
                    })
            }
            if r.endlessBody {
                return Response(
                    status: .init(code: r.status), headers: fields,
                    body: ResponseBody { writer in
                        let chunk = ByteBuffer(repeating: UInt8(ascii: "a"), count: 64 << 10)
                        do {
                            for _ in 0..<16_384 { // 1 GiB, unless the client leaves first
                                try await writer.write(chunk)
                                server.wroteEndlessChunk()
                            }
                            try await writer.finish(nil)
                            server.endlessEnded(completed: true)
                        } catch {
                            server.endlessEnded(completed: false)
                            throw error
                        }
                    })
            }
            return Response(
                status: .init(code: r.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: r.body)))
        }
        var logger = Logger(label: "test-http")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { ch in
                portCont.yield(ch.localAddress?.port ?? 0)
                portCont.finish()
            }, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await app.run()
                return nil
            }
            var port = 0
            for await p in portStream { port = p }
            let server = TestHTTPServer(port: port)
            holder.withLock { $0 = server }
            let result = try await body(server)
            server.releaseHeld()
            group.cancelAll()
            while (try? await group.next()) != nil {}
            return result
        }
    }
}
