import Foundation
import Logging
import PollerdCore
import PollerdNATS
import PollerdTestKit
import Synchronization
import Testing

@testable import PollerdDaemon
@testable import PollerdDelivery

/// The `nats` sink on a real `nats-server`: into a JetStream stream with acks and deduplication,
/// plainly with a flush when no stream captures the subject, and holding items while the
/// broker is down.
@Suite(.enabled(if: NATSTestServer.binary != nil, "nats-server is not installed"))
struct NATSSinkTests {
    static func broker(_ server: NATSTestServer) throws -> NATSBroker {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return try NATSBroker(settings: BrokerSettings(urls: [server.url]), logger: logger)
    }

    /// Runs `body` with the broker's client connected, closed after.
    static func withBroker<R: Sendable>(_ broker: NATSBroker, _ body: () async throws -> R) async throws -> R {
        try await withNATSClient(broker.client) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            return try await body()
        }
    }

    @Test func intoAStreamExactlyOnceByMessageID() async throws {
        let server = try NATSTestServer(jetstream: true)
        let broker = try Self.broker(server)
        let f = try await Fixture(
            sinks: SinkRegistry(broker: LocalBroker(), nats: broker, client: testHTTPClient))
        try await Self.withBroker(broker) {
            let js = NATSJetStream(client: broker.client)
            try await js.addStream(.init(name: "ITEMS", subjects: ["items.>"], duplicateWindow: .seconds(600)))
            let job = f.job([SinkSpec(.nats(subject: "items.j"))])
            try await f.register([job])
            await f.tick(job, items: numbered(0..<300))
            // Two batches (batch_size 256), each acked by the stream.
            #expect(try await f.deliverer.pass().map(\.delivered) == [256])
            #expect(try await f.deliverer.pass().map(\.delivered) == [44])
            #expect(try await f.backlog() == 0)
            // The same items delivered again (a crash after the publish, before the outbox
            // heard of the acks): the stream keeps one of each.
            let sink = NATSSink(subject: "items.j", broker: broker, logger: Logger(label: "t"))
            let again = (0..<300).map {
                OutboxRecord(seq: Int64($0), key: "j:n\($0)", envelope: "{\"n\":\($0)}", foundAtMs: 0)
            }
            #expect(await sink.deliver(again, jobID: "j") == SinkResult(acked: 300))
            #expect(try await js.streamInfo("ITEMS").state.messages == 300)
        }
    }

    @Test func plainlyWithAFlushWhenNoStreamCapturesTheSubject() async throws {
        let server = try NATSTestServer()
        let broker = try Self.broker(server)
        let f = try await Fixture(
            sinks: SinkRegistry(broker: LocalBroker(), nats: broker, client: testHTTPClient))
        try await Self.withBroker(broker) {
            let sub = try broker.client.subscribe(to: "items.>")
            try await broker.client.flush()
            let job = f.job([SinkSpec(.nats(subject: "items.j"))])
            try await f.register([job])
            await f.tick(job, items: numbered(0..<3))
            #expect(try await f.deliverer.pass().map(\.delivered) == [3])
            var got: [String] = []
            for await m in sub {
                got.append(m.headers?["Nats-Msg-Id"] ?? "-")
                #expect(m.headers?["Pollerd-Job"] == "j")
                if got.count == 3 { break }
            }
            #expect(got == ["j:n0", "j:n1", "j:n2"])
        }
    }

    @Test func whileTheBrokerIsDownItemsWaitAndAreNeverDeadLettered() async throws {
        let server = try NATSTestServer(jetstream: true)
        let broker = try Self.broker(server)
        var tuning = DeliveryTuning()
        tuning.maxAttempts = 2
        let f = try await Fixture(
            tuning: tuning, sinks: SinkRegistry(broker: LocalBroker(), nats: broker, client: testHTTPClient))
        try await Self.withBroker(broker) {
            try await NATSJetStream(client: broker.client).addStream(.init(name: "ITEMS", subjects: ["items.>"]))
            let job = f.job([SinkSpec(.nats(subject: "items.j"))])
            try await f.register([job])
            server.stop()
            while broker.client.isConnected { await Task.yield() }
            await f.tick(job, items: numbered(0..<5))
            for _ in 0..<4 {
                let r = try await f.deliverer.pass()
                #expect(r.map(\.delivered) == [0])
                f.clock.advance(byMs: 600_000)
            }
            let lane = try await f.lane("j", "nats:items.j")
            #expect(lane?.lastError?.hasPrefix("broker: not connected to NATS: nats://127.0.0.1:") == true)
            let backlog = try await f.backlog()
            #expect(lane?.deadLettered == 0 && backlog == 5)
            #expect(broker.problem != nil)
            try server.start()
            try await broker.client.waitUntilConnected(timeout: .seconds(30))
            #expect(broker.problem == nil)
            #expect(try await f.deliverer.pass().map(\.delivered) == [5])
            #expect(try await NATSJetStream(client: broker.client).streamInfo("ITEMS").state.messages == 5)
        }
    }

    @Test func keysThatCannotBeHeaderLinesAreHashed() {
        #expect(NATSSink.headerValue("job:item-1") == "job:item-1")
        let hashed = NATSSink.headerValue("job:a\r\nInjected: yes")
        #expect(hashed.hasPrefix("sha256:") && hashed.count == 7 + 64)
        #expect(NATSSink.headerValue(String(repeating: "x", count: 600)).hasPrefix("sha256:"))
    }
}

extension NATSSinkTests {
    @Test func anItemOverMaxPayloadIsDeadLetteredNotRetriedForever() async throws {
        let server = try NATSTestServer(jetstream: true, config: "max_payload: 2048\n")
        let broker = try Self.broker(server)
        try await Self.withBroker(broker) {
            try await NATSJetStream(client: broker.client).addStream(.init(name: "ITEMS", subjects: ["items.>"]))
            let sink = NATSSink(subject: "items.j", broker: broker, logger: Logger(label: "t"))
            let big = OutboxRecord(
                seq: 1, key: "j:big", envelope: "{\"b\":\"" + String(repeating: "x", count: 4000) + "\"}", foundAtMs: 0)
            let small = OutboxRecord(seq: 0, key: "j:small", envelope: "{}", foundAtMs: 0)
            let r = await sink.deliver([small, big], jobID: "j")
            #expect(r.acked == 1)
            #expect(r.failure?.retryable == false && r.failure?.message.contains("max_payload") == true, "\(r)")
        }
    }
}

extension NATSSinkTests {
    @Test func aStreamWhoseDuplicateWindowIsShorterThanTheRetryHorizonIsWarnedOfOnce() async throws {
        let server = try NATSTestServer(jetstream: true)
        let broker = try Self.broker(server)
        broker.update(tuning: DeliveryTuning()) // 10 attempts from 1 s doubling: about 9.4 minutes
        #expect(broker.retryHorizonMs > 500_000 && broker.retryHorizonMs < 600_000)
        let lines = Mutex<[String]>([])
        let logger = Logger(label: "t") { label in
            JSONLogHandler(label: label, level: .info, write: { l in lines.withLock { $0.append(l) } })
        }
        try await Self.withBroker(broker) {
            let js = NATSJetStream(client: broker.client)
            try await js.addStream(.init(name: "SHORT", subjects: ["short.>"], duplicateWindow: .seconds(60)))
            try await js.addStream(.init(name: "LONG", subjects: ["long.>"], duplicateWindow: .seconds(3600)))
            let short = NATSSink(subject: "short.a", broker: broker, logger: logger)
            let long = NATSSink(subject: "long.a", broker: broker, logger: logger)
            let record = OutboxRecord(seq: 0, key: "j:1", envelope: "{}", foundAtMs: 0)
            for sink in [short, long, short] { #expect(await sink.deliver([record], jobID: "j").acked == 1) }
        }
        let warnings = lines.withLock { $0 }.filter { $0.contains("duplicate window") }
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("\"SHORT\"") == true && warnings.first?.contains("\"60\"") == true)
    }
}

extension NATSSinkTests {
    /// `pollers.broker.tls`: a client certificate and key are loaded when the broker is made; a
    /// key that is not one is refused then, naming the file.
    @Test func theBrokersClientCertificateIsLoadedOrRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-mtls-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/client.key", "-out",
            dir + "/client.pem",
            "-days", "1", "-subj", "/CN=pollerd",
        ]
        p.standardError = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        var settings = BrokerSettings(urls: ["tls://127.0.0.1:9"])
        settings.tls = BrokerTLS(
            caFile: dir + "/client.pem", certFile: dir + "/client.pem", keyFile: dir + "/client.key")
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        _ = try NATSBroker(settings: settings, logger: logger)
        try "not a key".write(toFile: dir + "/bad.key", atomically: true, encoding: .utf8)
        settings.tls?.keyFile = dir + "/bad.key"
        #expect(throws: NATSError.self) { _ = try NATSBroker(settings: settings, logger: logger) }
    }
}
