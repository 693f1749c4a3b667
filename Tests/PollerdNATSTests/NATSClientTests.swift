import Foundation
import Logging
import NIOCore
import NIOSSL
import PollerdTestKit
import Synchronization
import Testing

@testable import PollerdNATS

/// The client against a real `nats-server` on loopback (a server per test).
@Suite(.enabled(if: NATSTestServer.binary != nil, "nats-server is not installed"))
struct NATSClientTests {
    static func client(
        _ server: NATSTestServer, clock: TestClock? = nil, configure: (inout NATSClientOptions) -> Void = { _ in }
    )
        throws -> NATSClient
    {
        var o = try NATSClientOptions(urls: [server.url])
        o.name = "pollerd-test"
        o.reconnect.reconnectWait = .milliseconds(20)
        o.reconnect.maxReconnectWait = .milliseconds(200)
        // The whole suite runs in parallel on two cores: a handshake can wait for a thread.
        o.connectTimeout = .seconds(20)
        configure(&o)
        var logger = Logger(label: "nats.test")
        logger.logLevel = .critical
        if let clock { return try NATSClient(options: o, clock: clock, logger: logger) }
        return try NATSClient(options: o, logger: logger)
    }

    @Test func publishSubscribeQueueGroupsAndAutoUnsubscribe() async throws {
        let server = try NATSTestServer()
        try await withNATSClient(try Self.client(server)) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            let all = try nc.subscribe(to: "t.>")
            let q1 = try nc.subscribe(to: "t.q", queue: "workers")
            let q2 = try nc.subscribe(to: "t.q", queue: "workers")
            let three = try nc.subscribe(to: "t.q", max: 3)
            try await nc.flush()
            for i in 0..<10 { try await nc.publish("t.q", payload: Array("m\(i)".utf8)) }
            var h = NATSHeaders()
            try h.append("Nats-Msg-Id", "id-1")
            try await nc.publish("t.h", payload: Array("with headers".utf8), headers: h)
            try await nc.flush()
            var got: [String] = []
            for await m in all {
                got.append(String(decoding: m.bytes, as: UTF8.self))
                if got.count == 11 {
                    #expect(m.headers?["Nats-Msg-Id"] == "id-1")
                    break
                }
            }
            #expect(got == (0..<10).map { "m\($0)" } + ["with headers"])
            var capped = 0
            for await _ in three { capped += 1 }
            #expect(capped == 3) // the stream ended at its maximum
            // The queue group split the ten between its two members: each message once.
            q1.unsubscribe()
            q2.unsubscribe()
            var inGroup = 0
            for await _ in q1 { inGroup += 1 }
            for await _ in q2 { inGroup += 1 }
            #expect(inGroup == 10)
        }
    }

    @Test func requestReplyNoRespondersAndCancellation() async throws {
        let server = try NATSTestServer()
        try await withNATSClient(try Self.client(server)) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            let service = try nc.subscribe(to: "svc.echo")
            let silent = try nc.subscribe(to: "svc.silent")
            try await nc.flush()
            let responder = Task {
                for await m in service {
                    guard let reply = m.replyTo else { continue }
                    try await nc.publish(reply, payload: Array("re:".utf8) + m.bytes)
                }
            }
            defer { responder.cancel() }
            try await withThrowingTaskGroup(of: Void.self) { g in
                for i in 0..<64 {
                    g.addTask {
                        let r = try await nc.request("svc.echo", payload: Array("\(i)".utf8))
                        #expect(String(decoding: r.bytes, as: UTF8.self) == "re:\(i)")
                    }
                }
                try await g.waitForAll()
            }
            // No subscriber: the server's 503 fails the request at once, not at its timeout.
            let start = ContinuousClock.now
            await #expect(throws: NATSError(.noResponders, "no responders on the subject")) {
                _ = try await nc.request("svc.nobody", payload: [UInt8](), timeout: .seconds(30))
            }
            #expect(ContinuousClock.now - start < .seconds(5))
            // Cancelling the caller abandons the request and frees its slot.
            let waiting = Task { try await nc.request("svc.silent", payload: [UInt8](), timeout: .seconds(60)) }
            let registered = ContinuousClock.now + .seconds(30)
            while nc.state.withLock({ $0.requests.isEmpty }), ContinuousClock.now < registered { await Task.yield() }
            waiting.cancel()
            await #expect(throws: CancellationError.self) { _ = try await waiting.value }
            #expect(nc.state.withLock { $0.requests.isEmpty })
            silent.unsubscribe()
        }
    }

    @Test func requestTimeoutOnTheInjectedClock() async throws {
        let server = try NATSTestServer()
        let clock = TestClock()
        let nc = try Self.client(server, clock: clock)
        try await withNATSClient(nc) { nc in
            // Connecting uses no wait on this clock; the handshake's answer ends it.
            while nc.status != .connected { await Task.yield() }
            let sub = try nc.subscribe(to: "svc.silent")
            let failed = Task { () -> NATSError? in
                do {
                    _ = try await nc.request("svc.silent", payload: [UInt8](), timeout: .seconds(2))
                    return nil
                } catch let e as NATSError { return e } catch { return nil }
            }
            while nc.state.withLock({ $0.requests.isEmpty }) { await Task.yield() }
            clock.advance(by: .seconds(1))
            #expect(nc.state.withLock { $0.requests.count } == 1) // not yet
            // The timer task sleeps in steps of its resolution: move past the deadline.
            while nc.state.withLock({ !$0.requests.isEmpty }) {
                clock.advance(by: .milliseconds(10))
                await Task.yield()
            }
            #expect(await failed.value?.code == .timeout)
            sub.unsubscribe()
        }
    }

    @Test func authAndMaxPayload() async throws {
        let server = try NATSTestServer(
            config: "max_payload: 1024\nauthorization { user: alice, password: s3cret, timeout: 30 }\n")
        let wrong = try Self.client(server) {
            $0.password = "nope"
            $0.user = "alice"
            $0.reconnect.maxReconnectAttempts = 0
        }
        await #expect(throws: NATSError.self) {
            try await withNATSClient(wrong) { try await $0.waitUntilConnected(timeout: .seconds(30)) }
        }
        #expect(wrong.lastError?.lowercased().contains("authorization") == true)
        let right = try Self.client(server) {
            $0.user = "alice"
            $0.password = "s3cret"
        }
        try await withNATSClient(right) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            #expect(nc.serverInfo?.maxPayload == 1024)
            await #expect(throws: NATSError.self) {
                try await nc.publish("big", payload: [UInt8](repeating: 1, count: 1025))
            }
            try await nc.publish("fits", payload: [UInt8](repeating: 1, count: 1000))
            try await nc.flush()
        }
    }

    @Test func reconnectResubscribesWithQueueAndRemainingMaxAndSendsTheBuffer() async throws {
        let server = try NATSTestServer()
        try await withNATSClient(try Self.client(server)) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            let capped = try nc.subscribe(to: "r.c", max: 5)
            let grouped = try nc.subscribe(to: "r.q", queue: "g")
            try await nc.flush()
            for i in 0..<2 { try await nc.publish("r.c", payload: Array("\(i)".utf8)) }
            try await nc.flush()
            server.stop()
            while nc.status == .connected { await Task.yield() }
            // Held while disconnected, sent after the subscriptions are made again.
            for i in 2..<10 { try await nc.publish("r.c", payload: Array("\(i)".utf8)) }
            try await nc.publish("r.q", payload: Array("q".utf8))
            #expect(nc.status != .connected)
            await #expect(throws: NATSError.self) { try await nc.flush() }
            try server.start()
            try await nc.waitUntilConnected(timeout: .seconds(30))
            try await nc.flush()
            var got: [String] = []
            for await m in capped { got.append(String(decoding: m.bytes, as: UTF8.self)) }
            #expect(got == ["0", "1", "2", "3", "4"]) // 2 before, 3 after: the maximum carried over
            var it = grouped.makeAsyncIterator()
            #expect(await it.next().map { String(decoding: $0.bytes, as: UTF8.self) } == "q")
            // A second client in the same queue group: the group was made again, so the two share.
            try await withNATSClient(try Self.client(server)) { other in
                try await other.waitUntilConnected(timeout: .seconds(30))
                let peer = try other.subscribe(to: "r.q", queue: "g")
                try await other.flush()
                for _ in 0..<200 { try await nc.publish("r.q", payload: Array("x".utf8)) }
                try await nc.flush()
                await other.drain()
                var peerCount = 0
                for await _ in peer { peerCount += 1 }
                #expect(peerCount > 0 && peerCount < 200)
            }
        }
    }

    @Test func theReconnectBufferIsBoundedAndThrowsPastIt() async throws {
        let server = try NATSTestServer()
        let nc = try Self.client(server) { $0.reconnectBufferBytes = 10_000 }
        try await withNATSClient(nc) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            server.stop()
            while nc.status == .connected { await Task.yield() }
            var accepted = 0
            do {
                for _ in 0..<1000 {
                    try await nc.publish("b", payload: [UInt8](repeating: 7, count: 100))
                    accepted += 1
                }
                Issue.record("the buffer never filled")
            } catch let e as NATSError {
                #expect(e.code == .reconnectBufferFull)
            }
            #expect(accepted > 50 && accepted < 100)
        }
    }

    @Test func aClosedClientFreesItsChannelTasksAndDescriptors() async throws {
        let server = try NATSTestServer()
        // The server's port is this test's alone: the established connections to it, read from
        // the kernel's table, are this test's clients' sockets (tests run in parallel, so the
        // process's descriptor count is not).
        func connectionsToServer() -> Int {
            let port = String(format: "%04X", server.port)
            // Read to the end: /proc files report no size, and a sized read stops at a page.
            let table =
                FileHandle(forReadingAtPath: "/proc/net/tcp").map {
                    String(decoding: (try? $0.readToEnd()) ?? Data(), as: UTF8.self)
                } ?? ""
            return table.split(separator: "\n").dropFirst().filter { line in
                let f = line.split(separator: " ")
                return f.count > 3 && f[2].hasSuffix(":" + port) && f[3] == "01"
            }.count
        }
        weak var weakClient: NATSClient?
        for _ in 0..<20 {
            let nc = try Self.client(server)
            weakClient = nc
            try await withNATSClient(nc) { nc in
                try await nc.waitUntilConnected(timeout: .seconds(30))
                let sub = try nc.subscribe(to: "f.>")
                _ = sub
                try await nc.publish("f.x", payload: [UInt8](repeating: 1, count: 100))
                try await nc.flush()
            }
        }
        #expect(connectionsToServer() == 0)
        // One left open is seen, so the count above can see one.
        let open = try Self.client(server)
        try await withNATSClient(open) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            #expect(connectionsToServer() == 1)
        }
        #expect(connectionsToServer() == 0)
        // A client whose server is gone, closed while it waits to reconnect.
        server.stop()
        let orphan = try Self.client(server)
        try await withNATSClient(orphan) { nc in
            while nc.lastError == nil { await Task.yield() }
        }
        #expect(weakClient == nil)
    }

    @Test func serverRestartUnderLoadLosesNoAcknowledgedPublish() async throws {
        let server = try NATSTestServer()
        try await withNATSClient(try Self.client(server)) { pub in
            try await withNATSClient(try Self.client(server)) { sub in
                try await pub.waitUntilConnected(timeout: .seconds(30))
                try await sub.waitUntilConnected(timeout: .seconds(30))
                let stream = try sub.subscribe(to: "load.x")
                try await sub.flush()
                let received = Mutex<Set<Int>>([])
                let reader = Task {
                    for await m in stream {
                        if let n = Int(String(decoding: m.bytes, as: UTF8.self)) {
                            _ = received.withLock { $0.insert(n) }
                        }
                    }
                }
                // Batches of 100, each flushed: a batch counts as sent only when its flush was
                // answered. A failed batch is sent again (at-least-once, as the sink does).
                var confirmed: Set<Int> = []
                var batch = 0
                var restarted = false
                var failures = 0
                while batch < 100 {
                    let ids = (batch * 100)..<(batch * 100 + 100)
                    do {
                        try await pub.waitUntilConnected(timeout: .seconds(30))
                        try await sub.waitUntilConnected(timeout: .seconds(30))
                        for i in ids { try await pub.publish("load.x", payload: Array("\(i)".utf8)) }
                        try await pub.flush(timeout: .seconds(2))
                        try await sub.flush(timeout: .seconds(2))
                        confirmed.formUnion(ids)
                        batch += 1
                    } catch {
                        // A batch cut by the restart is sent again; a client that never comes
                        // back fails the test rather than hanging it.
                        failures += 1
                        if failures > 100 {
                            Issue.record("100 failed batches; last: \(error)")
                            break
                        }
                        continue
                    }
                    if batch == 30, !restarted {
                        restarted = true
                        server.kill()
                        try server.start()
                    }
                }
                #expect(restarted)
                try await sub.flush()
                reader.cancel()
                let got = received.withLock { $0 }
                #expect(confirmed.count == 10_000)
                #expect(confirmed.isSubset(of: got), "lost \(confirmed.subtracting(got).count)")
            }
        }
    }
}

/// TLS and lame duck mode, against real servers.
@Suite(.enabled(if: NATSTestServer.binary != nil, "nats-server is not installed"))
struct NATSClientTLSAndLameDuckTests {
    @Test func leavesALameDuckServerForAnotherEarly() async throws {
        let a = try NATSTestServer()
        let b = try NATSTestServer()
        var o = try NATSClientOptions(urls: [a.url, b.url])
        o.connectTimeout = .seconds(20)
        o.reconnect.reconnectWait = .milliseconds(20)
        var logger = Logger(label: "nats.test")
        logger.logLevel = .critical
        let events = Mutex<[NATSEvent]>([])
        let nc = try NATSClient(options: o, logger: logger) { e in events.withLock { $0.append(e) } }
        try await withNATSClient(nc) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            let firstID = nc.serverInfo?.serverID
            a.lameDuck()
            // The server keeps its clients for its grace period (10 s); the client leaves at once.
            while nc.serverInfo?.serverID == firstID || nc.status != .connected { await Task.yield() }
            #expect(events.withLock { $0.contains { if case .lameDuck = $0 { true } else { false } } })
            try await nc.publish("after", payload: Array("x".utf8))
            try await nc.flush()
        }
        a.kill() // a lame duck server would otherwise finish its grace period on SIGTERM
    }

    @Test func tlsWithTheServersCAAndRefusedWithout() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func openssl(_ args: [String]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            p.arguments = args
            p.currentDirectoryURL = URL(fileURLWithPath: dir)
            p.standardError = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "openssl \(args.joined(separator: " "))")
        }
        try openssl([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=pollerd test CA",
        ])
        try openssl([
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
            "/CN=localhost",
        ])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(
            toFile: dir + "/ext.cnf", atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "server.pem", "-days", "2", "-extfile", "ext.cnf",
        ])
        let server = try NATSTestServer(
            config: "tls { cert_file: \"\(dir)/server.pem\"\n key_file: \"\(dir)/server.key\" }\n")
        var logger = Logger(label: "nats.test")
        logger.logLevel = .critical
        var trusted = try NATSClientOptions(urls: ["nats://localhost:\(server.port)"])
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(dir + "/ca.pem")
        trusted.tls = tls
        trusted.connectTimeout = .seconds(20)
        try await withNATSClient(try NATSClient(options: trusted, logger: logger)) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            #expect(nc.serverInfo?.tlsRequired == true)
            let r = try nc.subscribe(to: "tls.x")
            try await nc.publish("tls.x", payload: Array("secret".utf8))
            var it = r.makeAsyncIterator()
            #expect(await it.next()?.bytes == Array("secret".utf8))
        }
        // The server requires TLS; a client with no CA for it refuses the certificate.
        var untrusted = try NATSClientOptions(urls: ["nats://localhost:\(server.port)"])
        untrusted.reconnect.maxReconnectAttempts = 0
        untrusted.connectTimeout = .seconds(20)
        let refused = try NATSClient(options: untrusted, logger: logger)
        await #expect(throws: NATSError.self) {
            try await withNATSClient(refused) { try await $0.waitUntilConnected(timeout: .seconds(30)) }
        }
        #expect(refused.lastError != nil)
    }
}
