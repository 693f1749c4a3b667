import Crypto
import Foundation
import PollerdCore
import PollerdSQLite
import PollerdTestKit
import Testing

@testable import PollerdDaemon
@testable import PollerdDelivery

@Suite(.serialized) struct WebhookTests {
    func hook(_ server: TestHTTPServer, secret: String? = "s3cret", timeout: Int64 = 5) -> SinkSpec {
        SinkSpec(
            .webhook(
                WebhookTarget(
                    url: server.url, headers: ["Authorization": "Bearer t"], secret: secret, timeoutSecs: timeout)))
    }

    @Test func a2xxAcksAndTheBodyIsTheSignedEnvelope() async throws {
        try await TestHTTPServer.with { server in
            let f = try await Fixture()
            let sink = hook(server)
            let job = f.job([sink])
            try await f.register([job])
            await f.tick(job, items: numbered(0..<2))
            #expect(try await f.deliverer.pass().map(\.delivered) == [2])
            let got = server.received
            #expect(got.count == 2)
            for (i, r) in got.enumerated() {
                let env = try JSONValue.parse(r.body)
                #expect(env["id"]?.stringValue == "j:n\(i)")
                #expect(r.headers["idempotency-key"] == "j:n\(i)")
                #expect(r.headers["content-type"] == "application/json")
                #expect(r.headers["authorization"] == "Bearer t")
                // The receiver's check: HMAC-SHA256 of the raw body, keyed by the shared secret.
                let expected = HMAC<SHA256>.authenticationCode(
                    for: r.body, using: SymmetricKey(data: Data("s3cret".utf8)))
                let hex = expected.map { String(format: "%02x", $0) }.joined()
                #expect(r.headers["x-pollerd-signature"] == "sha256=\(hex)")
                let wrong = HMAC<SHA256>.authenticationCode(for: r.body, using: SymmetricKey(data: Data("other".utf8)))
                #expect(
                    r.headers["x-pollerd-signature"] != "sha256=" + wrong.map { String(format: "%02x", $0) }.joined())
            }
            #expect(try await f.backlog() == 0)
        }
    }

    @Test func noSecretSendsNoSignature() async throws {
        try await TestHTTPServer.with { server in
            let f = try await Fixture()
            let job = f.job([hook(server, secret: nil)])
            try await f.register([job])
            await f.tick(job, items: numbered(0..<1))
            _ = try await f.deliverer.pass()
            #expect(server.received.count == 1)
            #expect(server.received.first?.headers["x-pollerd-signature"] == nil)
            #expect(server.received.first?.headers["idempotency-key"] == "j:n0")
        }
    }

    @Test(arguments: [408, 429, 500, 503])
    func retryableStatusesRetryAndHonourRetryAfter(status: Int) async throws {
        try await TestHTTPServer.with { server in
            let f = try await Fixture()
            let sink = hook(server)
            let job = f.job([sink])
            try await f.register([job])
            server.script([.init(status: status, retryAfter: "7", body: "busy")])
            await f.tick(job, items: numbered(0..<2))
            let r = try await f.deliverer.pass()
            #expect(r.map(\.delivered) == [0] && r.map(\.retried) == [true])
            let lane = try await f.lane("j", sink.name)
            #expect(lane?.nextAttemptAtMs == t0 + 7000)
            #expect(lane?.attempts == 1 && lane?.lastError == "webhook 127.0.0.1: HTTP \(status): busy")
            #expect(server.received.count == 1) // n1 waits behind n0
            f.clock.advance(byMs: 6999)
            #expect(try await f.deliverer.pass().isEmpty)
            f.clock.advance(byMs: 1)
            #expect(try await f.deliverer.pass().map(\.delivered) == [2])
            #expect(
                server.received.map { try! JSONValue.parse($0.body)["id"]!.stringValue! } == ["j:n0", "j:n0", "j:n1"])
        }
    }

    @Test(arguments: [400, 401, 404, 410, 422])
    func otherClientErrorsDeadLetterAtOnceAndTheLaneMovesOn(status: Int) async throws {
        try await TestHTTPServer.with { server in
            let f = try await Fixture()
            let sink = hook(server)
            let job = f.job([sink])
            try await f.register([job])
            server.script([.init(status: status, body: "no such thing")])
            await f.tick(job, items: numbered(0..<2))
            let r = try await f.deliverer.pass()
            #expect(r.map(\.deadLettered) == [true] && r.map(\.delivered) == [0])
            let dead = try await f.store.deadLetters(jobID: "j", limit: 10)
            #expect(dead.count == 1 && dead[0].key == "j:n0" && dead[0].attempts == 1 && dead[0].sink == sink.name)
            #expect(dead[0].lastError == "webhook 127.0.0.1: HTTP \(status): no such thing")
            #expect(try JSONValue.parse(Data(dead[0].envelope.utf8))["item"]?["n"]?.intValue == 0)
            #expect(try await f.deliverer.pass().map(\.delivered) == [1]) // n1 goes without waiting
            #expect(try await f.backlog() == 0)
        }
    }

    @Test func afterMaxAttemptsTheItemIsDeadLetteredWithItsLastError() async throws {
        try await TestHTTPServer.with { server in
            var tuning = DeliveryTuning()
            tuning.maxAttempts = 3
            let f = try await Fixture(tuning: tuning)
            let sink = hook(server)
            let job = f.job([sink])
            try await f.register([job])
            server.script([.init(status: 500, body: "a"), .init(status: 502, body: "b"), .init(status: 503, body: "c")])
            await f.tick(job, items: numbered(0..<1))
            var delays: [Int64] = []
            for _ in 0..<3 {
                let before = f.clock.nowMs
                let r = try await f.deliverer.pass()
                #expect(r.count == 1)
                if let lane = try await f.lane("j", sink.name), lane.pending > 0 {
                    delays.append(lane.nextAttemptAtMs - before)
                    f.clock.advance(toMs: lane.nextAttemptAtMs)
                }
            }
            // Exponential backoff with ±10 % jitter: ~1 s, then ~2 s, then dead.
            #expect(delays.count == 2)
            #expect((900...1100).contains(delays[0]) && (1800...2200).contains(delays[1]))
            let dead = try await f.store.deadLetters(jobID: nil, limit: 10)
            #expect(dead.map(\.attempts) == [3])
            #expect(dead.first?.lastError == "webhook 127.0.0.1: HTTP 503: c (gave up after 3 attempts)")
            #expect(try await f.lane("j", sink.name)?.retried == 2)
        }
    }

    /// A receiver that answers 200 and then never ends its body: the item is acked on its status
    /// and the lane moves on, within `timeout_secs`.
    @Test(.timeLimit(.minutes(1))) func a2xxWhoseBodyNeverEndsIsAckedWithinTheTimeout() async throws {
        try await TestHTTPServer.with { server in
            let f = try await Fixture()
            let sink = hook(server, timeout: 1)
            let job = f.job([sink])
            try await f.register([job])
            server.script([.init(status: 200, stallBody: true)])
            await f.tick(job, items: numbered(0..<2))
            let r = try await f.deliverer.pass()
            server.releaseHeld()
            #expect(r.map(\.delivered) == [2])
            #expect(server.received.count == 2)
            #expect(try await f.backlog() == 0)
        }
    }

    /// A 2xx with a huge body is acked after reading a few KiB; the body is not downloaded.
    @Test(.timeLimit(.minutes(1))) func a2xxWithAHugeBodyIsNotDownloaded() async throws {
        try await TestHTTPServer.with { server in
            let f = try await Fixture()
            let sink = hook(server, timeout: 30)
            let job = f.job([sink])
            try await f.register([job])
            server.script([.init(status: 200, endlessBody: true)])
            await f.tick(job, items: numbered(0..<1))
            #expect(try await f.deliverer.pass().map(\.delivered) == [1])
            // The client left after a few KiB: the server's writer stopped with an error before
            // its 1 GiB was written (what it got out is what the buffers on the way took).
            #expect(await server.endlessBodyEnded() == false, "\(server.endlessChunks) chunks written")
        }
    }

    @Test func aTimeoutRetries() async throws {
        try await TestHTTPServer.with { server in
            let f = try await Fixture()
            let sink = hook(server, timeout: 1)
            let job = f.job([sink])
            try await f.register([job])
            server.script([.init(status: 200, hold: true)])
            await f.tick(job, items: numbered(0..<1))
            let r = try await f.deliverer.pass() // returns when the client's 1 s timeout fires
            server.releaseHeld()
            #expect(r.map(\.retried) == [true])
            #expect(try await f.lane("j", sink.name)?.lastError == "webhook 127.0.0.1: timed out after 1s")
        }
    }

    @Test func aConnectionRefusedRetries() async throws {
        let f = try await Fixture()
        let sink = SinkSpec(.webhook(WebhookTarget(url: "http://127.0.0.1:9/hook", timeoutSecs: 1)))
        let job = f.job([sink])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<1))
        let r = try await f.deliverer.pass()
        #expect(r.map(\.retried) == [true])
        #expect(try await f.backlog() == 1)
    }

    @Test func deadLettersReplayToTheEndOfTheirLaneOrAreDropped() async throws {
        try await TestHTTPServer.with { server in
            let f = try await Fixture()
            let sink = hook(server)
            let job = f.job([sink])
            try await f.register([job])
            server.script([.init(status: 400), .init(status: 400)])
            await f.tick(job, items: numbered(0..<2))
            _ = try await f.deliverer.pass()
            _ = try await f.deliverer.pass()
            var dead = try await f.store.deadLetters(jobID: "j", limit: 10)
            #expect(dead.map(\.key) == ["j:n1", "j:n0"])
            #expect(try await f.backlog() == 0)
            #expect(try await f.store.replayDeadLetters(.ids([dead[1].id]), nowMs: f.clock.nowMs) == 1)
            #expect(try await f.backlog() == 1)
            #expect(try await f.deliverer.pass().map(\.delivered) == [1])
            #expect(try JSONValue.parse(server.received.last!.body)["id"]?.stringValue == "j:n0")
            dead = try await f.store.deadLetters(jobID: "j", limit: 10)
            #expect(dead.map(\.key) == ["j:n1"])
            #expect(try await f.store.dropDeadLetters(.job("j")) == 1)
            #expect(try await f.store.deadLetters(jobID: nil, limit: 10).isEmpty)
        }
    }

    @Test func retryAfterAcceptsAnHTTPDate() {
        let now = RFC3339.parse("2015-10-21T07:28:00Z")!
        #expect(WebhookSink.parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", nowMs: now) == 30_000)
        #expect(WebhookSink.parseRetryAfter("120", nowMs: now) == 120_000)
        #expect(WebhookSink.parseRetryAfter("soon", nowMs: now) == nil)
        #expect(
            WebhookSink.classify(status: 503, retryAfter: "999999", host: "h", body: "", nowMs: now)?.retryAfterMs
                == WebhookSink.maxRetryAfterMs)
        #expect(WebhookSink.classify(status: 302, retryAfter: nil, host: "h", body: "", nowMs: now)?.retryable == false)
        #expect(WebhookSink.classify(status: 204, retryAfter: nil, host: "h", body: "", nowMs: now) == nil)
    }
}
