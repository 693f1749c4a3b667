import Foundation
import PollerdCore
import PollerdSQLite
import PollerdTestKit
import Testing

@testable import PollerdDaemon
@testable import PollerdDelivery

#if canImport(Glibc)
import Glibc
#endif

@Suite struct OutboxTests {
    @Test func aTicksItemsAndCursorCommitTogetherAndReachTheFileSink() async throws {
        let f = try await Fixture()
        let path = f.dir.appendingPathComponent("out/items.jsonl").path
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        let r = await f.tick(job, items: numbered(0..<3))
        #expect(r.disposition == .ran(committed: true))
        #expect(try await f.backlog() == 3)
        #expect(try await f.store.state(jobID: "j")?.cursor == Data("c".utf8))
        #expect(try jsonLines(path).isEmpty)

        let reports = try await f.deliverer.pass()
        #expect(reports.map(\.delivered) == [3])
        let lines = try jsonLines(path)
        #expect(lines.map { $0["id"]?.stringValue } == ["j:n0", "j:n1", "j:n2"])
        #expect(
            lines[0]["job_id"]?.stringValue == "j" && lines[0]["kind"]?.stringValue == "source"
                && lines[0]["agent"]?.stringValue == "default")
        #expect(lines[0]["found_at"]?.stringValue == RFC3339.format(ms: t0))
        #expect(lines[1]["item"] == .object(["id": .string("n1"), "n": .int(1)]))
        #expect(try await f.backlog() == 0)
        #expect(try await f.lane("j", "file:\(path)")?.pending == 0)
        #expect(try await f.deliverer.pass().isEmpty)
    }

    @Test func aFencedCommitQueuesNothing() async throws {
        let f = try await Fixture()
        let job = f.job([SinkSpec(.stdout)])
        try await f.register([job])
        guard
            case .granted(let lease) = try await f.store.acquireLease(
                jobID: "j", holder: "A", ttlMs: 60_000, nowMs: t0, slotMs: nil)
        else {
            Issue.record("no lease")
            return
        }
        _ = try await f.store.reset(jobID: "j", nowMs: t0) // fences the lease off
        let entries = numbered(0..<2).map {
            ItemEnvelope.make(jobID: "j", kind: "source", agent: "default", foundAtMs: t0, item: $0)
        }
        let ok = try await f.store.commitTick(
            TickCommit(
                lease: lease, startedAtMs: t0, durationMs: 1, status: "ok", error: nil, newCursor: Data("x".utf8),
                itemsSeen: 2, itemsDispatched: 0, consecutiveErrors: 0, nextRunAtMs: nil, pause: false,
                pausedReason: nil, done: false, scheduleFingerprint: "s",
                outbox: OutboxBatch(sinks: ["stdout"], entries: entries, dedupWindow: 100, foundAtMs: t0)), nowMs: t0)
        #expect(!ok)
        #expect(try await f.backlog() == 0)
        #expect(try await f.store.outboxStats().isEmpty)
        #expect(try await f.store.state(jobID: "j")?.cursor == nil)
    }

    @Test func theDedupWindowDropsItemsSeenAgainAndForgetsTheOldest() async throws {
        var tuning = DeliveryTuning()
        tuning.dedupWindow = 3
        let f = try await Fixture(tuning: tuning)
        let path = f.dir.appendingPathComponent("d.jsonl").path
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<2))
        await f.tick(job, items: numbered(0..<3)) // n0, n1 again: only n2 is new
        #expect(try await f.backlog() == 3)
        _ = try await f.deliverer.pass()
        await f.tick(job, items: numbered(1..<3)) // still in the window, even though delivered
        #expect(try await f.backlog() == 0)
        await f.tick(job, items: numbered(3..<5)) // n3, n4 push n0 and n1 out of the 3-key window
        await f.tick(job, items: numbered(0..<1)) // n0 was forgotten: delivered again
        _ = try await f.deliverer.pass()
        #expect(
            try jsonLines(path).compactMap { $0["id"]?.stringValue } == [
                "j:n0", "j:n1", "j:n2", "j:n3", "j:n4", "j:n0",
            ])
    }

    @Test func itemsWithoutAnIDAreKeyedByTheirContent() async throws {
        let a: JSONValue = .object(["title": .string("x"), "n": .int(1)])
        let b: JSONValue = .object(["n": .int(1), "title": .string("x")])
        #expect(ItemEnvelope.key(jobID: "j", item: a) == ItemEnvelope.key(jobID: "j", item: b))
        #expect(ItemEnvelope.key(jobID: "j", item: a).hasPrefix("j:sha256:"))
        #expect(ItemEnvelope.key(jobID: "j", item: a) != ItemEnvelope.key(jobID: "k", item: a))
        #expect(ItemEnvelope.key(jobID: "j", item: .object(["id": .int(42)])) == "j:42")
        #expect(ItemEnvelope.key(jobID: "j", item: .object(["id": .string("sha256:abc")])).hasPrefix("j:sha256:"))
        let long = String(repeating: "x", count: 500)
        let k = ItemEnvelope.key(jobID: "j", item: .object(["id": .string(long)]))
        #expect(k.hasPrefix("j:sha256:") && k.utf8.count < 80)
        #expect(k == ItemEnvelope.key(jobID: "j", item: .object(["id": .string(long), "other": .int(1)])))
    }

    @Test func theEnvelopeIsTheCanonicalJSONOfItsObject() throws {
        let item: JSONValue = .object([
            "z": .string("a\"b\n"), "id": .string("é/1"), "list": .array([.int(1), .null, .bool(true)]),
        ])
        let e = ItemEnvelope.make(jobID: "j.x", kind: "rss", agent: "ana \"q\"", foundAtMs: t0 + 5, item: item)
        let expected: JSONValue = .object([
            "id": .string("j.x:é/1"), "job_id": .string("j.x"), "kind": .string("rss"), "agent": .string("ana \"q\""),
            "found_at": .string("2026-01-01T00:00:00.005Z"), "item": item,
        ])
        #expect(e.envelope == expected.canonicalString)
        #expect(try JSONValue.parse(Data(e.envelope.utf8)) == expected)
        #expect(e.key == "j.x:é/1")
    }

    @Test func backpressurePausesTicksUntilTheBacklogDrains() async throws {
        var tuning = DeliveryTuning()
        tuning.maxBacklog = 3
        let f = try await Fixture(tuning: tuning)
        let path = f.dir.appendingPathComponent("bp.jsonl").path
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<2))
        await f.tick(job, items: numbered(2..<4))
        #expect(try await f.backlog() == 4)
        let blocked = await f.tick(job, items: numbered(4..<6))
        #expect(blocked.disposition == .skipped(.backlogged(pending: 4, limit: 3)))
        let row = try await f.store.state(jobID: "j")
        #expect(row?.lastStatus == "backpressure")
        #expect(row?.lastError == "4 undelivered items (limit 3); ticks wait until the outbox drains")
        _ = try await f.deliverer.pass()
        #expect(try await f.backlog() == 0)
        let resumed = await f.tick(job, items: numbered(4..<6))
        #expect(resumed.disposition == .ran(committed: true))
        _ = try await f.deliverer.pass()
        #expect(try jsonLines(path).count == 6)
    }

    @Test func eachSinkGetsEveryItemAndTheBacklogCountsItemsNotDeliveries() async throws {
        let f = try await Fixture()
        let a = f.dir.appendingPathComponent("a.jsonl").path
        let b = f.dir.appendingPathComponent("b.jsonl").path
        let job = f.job([SinkSpec(.file(path: a)), SinkSpec(.file(path: b))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<2))
        #expect(try await f.backlog() == 2)
        _ = try await f.deliverer.pass()
        #expect(try jsonLines(a).count == 2 && jsonLines(b).count == 2)
        #expect(try await f.backlog() == 0)
    }

    @Test func aFileSinkThatCannotWriteRetriesAndKeepsOrder() async throws {
        let f = try await Fixture()
        let blocker = f.dir.appendingPathComponent("blocker")
        try FileManager.default.createDirectory(at: f.dir, withIntermediateDirectories: true)
        try Data("file, not a directory".utf8).write(to: blocker)
        let path = blocker.appendingPathComponent("items.jsonl").path
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<2))
        let r = try await f.deliverer.pass()
        #expect(r.map(\.retried) == [true])
        let lane = try await f.lane("j", "file:\(path)")
        #expect(lane?.pending == 2 && lane?.attempts == 1)
        #expect(lane?.lastError == "file \(path): open failed: Not a directory")
        #expect(lane!.nextAttemptAtMs >= t0 + 900 && lane!.nextAttemptAtMs <= t0 + 1100)
        #expect(try await f.deliverer.pass().isEmpty) // not due yet
        try FileManager.default.removeItem(at: blocker)
        f.clock.advance(byMs: 1100)
        #expect(try await f.deliverer.pass().map(\.delivered) == [2])
        #expect(try jsonLines(path).compactMap { $0["item"]?["n"]?.intValue } == [0, 1])
        #expect(try await f.lane("j", "file:\(path)")?.attempts == 0)
    }

    @Test func aRotatedFileIsReopenedAtItsPath() async throws {
        let f = try await Fixture()
        let path = f.dir.appendingPathComponent("rot.jsonl").path
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<1))
        _ = try await f.deliverer.pass()
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1") // what logrotate does
        await f.tick(job, items: numbered(1..<2))
        _ = try await f.deliverer.pass()
        #expect(try jsonLines(path + ".1").compactMap { $0["id"]?.stringValue } == ["j:n0"])
        #expect(try jsonLines(path).compactMap { $0["id"]?.stringValue } == ["j:n1"])
    }

    @Test func aFileSinkThatKeepsFailingDeadLettersAfterMaxAttempts() async throws {
        var tuning = DeliveryTuning()
        tuning.maxAttempts = 2
        let f = try await Fixture(tuning: tuning)
        try FileManager.default.createDirectory(at: f.dir, withIntermediateDirectories: true)
        let path = f.dir.path // a directory: open(2) fails every time
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<2))
        #expect(try await f.deliverer.pass().map(\.retried) == [true])
        f.clock.advance(byMs: 5000)
        #expect(try await f.deliverer.pass().map(\.deadLettered) == [true])
        let dead = try await f.store.deadLetters(jobID: "j", limit: 5)
        #expect(dead.map(\.key) == ["j:n0"] && dead[0].attempts == 2)
        #expect(dead[0].lastError == "file \(path): open failed: Is a directory (gave up after 2 attempts)")
        #expect(try await f.backlog() == 1) // n1 is next in line
    }

    @Test func aBatchIsBoundedInBytesNotOnlyInItems() async throws {
        let f = try await Fixture()
        let job = f.job([SinkSpec(.stdout)])
        try await f.register([job])
        let big = String(repeating: "x", count: 3 << 20)
        await f.tick(job, items: (0..<4).map { .object(["id": .string("b\($0)"), "blob": .string(big)]) })
        try await f.store.serveSinks(
            holder: "test:1:a", [ServedSink(jobID: "j", sink: "stdout", fingerprint: SinkSpec(.stdout).fingerprint)])
        let lanes = try await f.store.claimLanes(
            holder: "test:1:a", nowMs: f.clock.nowMs, claimMs: 60_000, limit: 1, batchSize: 256)
        let batch = try #require(lanes.first).items
        // 8 MiB: the first three 3 MiB envelopes start below it, the fourth does not.
        #expect(batch.map(\.key) == ["j:b0", "j:b1", "j:b2"])
    }

    /// A symlink swapped in at the sink's path (to another file) is refused, not followed: the
    /// other file gets nothing, the items wait in the outbox, and they go to the path once it is
    /// a regular file again.
    @Test func aSymlinkSwappedInAtTheSinksPathIsNotFollowed() async throws {
        let f = try await Fixture()
        try FileManager.default.createDirectory(at: f.dir, withIntermediateDirectories: true)
        let path = f.dir.appendingPathComponent("items.jsonl").path
        let victim = f.dir.appendingPathComponent("victim.txt").path
        try Data("precious\n".utf8).write(to: URL(fileURLWithPath: victim))
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<1))
        #expect(try await f.deliverer.pass().map(\.delivered) == [1])
        // The attacker replaces the sink file with a symlink to another file.
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: victim)
        await f.tick(job, items: numbered(1..<2))
        let r = try await f.deliverer.pass()
        #expect(r.map(\.retried) == [true])
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
        let lane = try #require(try await f.lane("j", "file:\(path)"))
        #expect(
            lane.pending == 1 && lane.lastError?.contains("is a symbolic link") == true,
            "\(String(describing: lane.lastError))")
        // The operator puts a regular file back: the waiting item is delivered there.
        try FileManager.default.removeItem(atPath: path)
        f.clock.advance(byMs: 60_000)
        #expect(try await f.deliverer.pass().map(\.delivered) == [1])
        #expect(try jsonLines(path).compactMap { $0["id"]?.stringValue } == ["j:n1"])
    }

    @Test(arguments: ["directory", "fifo"])
    func aPathThatIsNotARegularFileIsRefusedWithAClearError(_ what: String) async throws {
        let f = try await Fixture()
        try FileManager.default.createDirectory(at: f.dir, withIntermediateDirectories: true)
        let path = f.dir.appendingPathComponent("odd").path
        if what == "directory" {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } else {
            #expect(mkfifo(path, 0o600) == 0)
        }
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<1))
        #expect(try await f.deliverer.pass().map(\.retried) == [true])
        let lane = try #require(try await f.lane("j", "file:\(path)"))
        let error = lane.lastError ?? ""
        #expect(lane.pending == 1)
        #expect(error.contains("not a regular file") || error.contains("Is a directory"), "\(error)")
    }

    @Test func aTornLastLineIsEndedBeforeAppending() async throws {
        let f = try await Fixture()
        try FileManager.default.createDirectory(at: f.dir, withIntermediateDirectories: true)
        let path = f.dir.appendingPathComponent("torn.jsonl").path
        try Data("{\"partial\":".utf8).write(to: URL(fileURLWithPath: path))
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<1))
        _ = try await f.deliverer.pass()
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2 && lines[0] == "{\"partial\":")
        #expect(try JSONValue.parse(Data(lines[1].utf8))["id"]?.stringValue == "j:n0")
    }

    /// A lane whose sink the job file no longer defines is not claimed (another daemon's job file
    /// may define it) and keeps its items; once the sink is back, they go at once.
    @Test func aLaneWhoseSinkIsNotConfiguredIsLeftNotLost() async throws {
        let f = try await Fixture()
        let path = f.dir.appendingPathComponent("p.jsonl").path
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<2))
        // reload dropped the file sink
        f.deliverer.update(jobs: [f.job([SinkSpec(.stdout)])], tuning: f.settings.delivery)
        #expect(try await f.deliverer.pass().isEmpty)
        #expect(try await f.lane("j", "file:\(path)")?.pending == 2)
        f.deliverer.update(jobs: [job], tuning: f.settings.delivery) // it came back
        #expect(try await f.deliverer.pass().map(\.delivered) == [2])
    }

    @Test func aCrashedDeliverersClaimsBlockTheLaneUntilReclaimed() async throws {
        let f = try await Fixture()
        let job = f.job([SinkSpec(.stdout)])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<1))
        try await f.store.serveSinks(
            holder: "host:999:dead",
            [ServedSink(jobID: "j", sink: "stdout", fingerprint: SinkSpec(.stdout).fingerprint)])
        let claimed = try await f.store.claimLanes(
            holder: "host:999:dead", nowMs: f.clock.nowMs, claimMs: Deliverer.claimMs, limit: 10, batchSize: 10)
        #expect(claimed.count == 1)
        #expect(try await f.deliverer.pass().isEmpty) // held by the dead daemon
        // Process 999 is not among those alive on "host".
        let host = HostProcesses(host: "host", alive: [1, 2, 998])
        #expect(try await f.store.reclaimLaneClaims(on: host, nowMs: f.clock.nowMs) == 1)
        let r = try await f.deliverer.pass()
        #expect(r.map(\.delivered) == [1])
        // The dead holder's late settle is fenced off: it cannot ack or fail anything now.
        #expect(
            try await f.store.settle(
                claimed[0].lane, holder: "host:999:dead", LaneSettlement(acked: [], failure: .deadLetter(error: "x")),
                nowMs: f.clock.nowMs) == false)
        #expect(try await f.store.deadLetters(jobID: nil, limit: 5).isEmpty)
    }

    @Test func theBrokerSinkPublishesToSubscribers() async throws {
        let broker = LocalBroker()
        let f = try await Fixture(sinks: SinkRegistry(broker: broker, client: testHTTPClient))
        let sub = broker.subscribe("items.>")
        let job = f.job([SinkSpec(.nats(subject: "items.j"))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<2))
        #expect(try await f.deliverer.pass().map(\.delivered) == [2])
        var got: [String] = []
        for await m in sub {
            got.append(try JSONValue.parse(m.payload)["id"]?.stringValue ?? "?")
            #expect(m.subject == "items.j")
            if got.count == 2 { break }
        }
        #expect(got == ["j:n0", "j:n1"])
    }

    @Test func aFullSubscriberMakesThePublishRetryInsteadOfDropping() async throws {
        let broker = LocalBroker()
        let f = try await Fixture(sinks: SinkRegistry(broker: broker, client: testHTTPClient))
        let sub = broker.subscribe("items.j", capacity: 1)
        let job = f.job([SinkSpec(.nats(subject: "items.j"))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<2))
        let r = try await f.deliverer.pass()
        #expect(r.map(\.delivered) == [1] && r.map(\.retried) == [true])
        var it = sub.makeAsyncIterator()
        #expect(try JSONValue.parse(await it.next()!.payload)["id"]?.stringValue == "j:n0")
        f.clock.advance(byMs: 2000)
        #expect(try await f.deliverer.pass().map(\.delivered) == [1])
        #expect(try JSONValue.parse(await it.next()!.payload)["id"]?.stringValue == "j:n1")
    }

    @Test func aPublishNobodyHearsIsNotAnAck() async throws {
        let broker = LocalBroker()
        let f = try await Fixture(sinks: SinkRegistry(broker: broker, client: testHTTPClient))
        let job = f.job([SinkSpec(.nats(subject: "items.j"))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<1))
        let r = try await f.deliverer.pass()
        #expect(r.map(\.retried) == [true])
        #expect(
            try await f.lane("j", "nats:items.j")?.lastError
                == "broker: no subscriber on 'items.j' (in-process broker; NATS is not configured)")
        #expect(try await f.backlog() == 1)
    }

    @Test func aBrokerSubjectNobodyHearsDeadLettersAfterMaxAttempts() async throws {
        var tuning = DeliveryTuning()
        tuning.maxAttempts = 2
        let f = try await Fixture(tuning: tuning, sinks: SinkRegistry(broker: LocalBroker(), client: testHTTPClient))
        let job = f.job([SinkSpec(.nats(subject: "items.j"))])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<1))
        #expect(try await f.deliverer.pass().map(\.retried) == [true])
        f.clock.advance(byMs: 5000)
        #expect(try await f.deliverer.pass().map(\.deadLettered) == [true])
        let dead = try await f.store.deadLetters(jobID: "j", limit: 5)
        #expect(
            dead.map(\.attempts) == [2] && dead.first?.lastError.hasPrefix("broker: no subscriber on 'items.j'") == true
        )
        #expect(try await f.backlog() == 0)
    }

    @Test func theRunningDelivererWakesOnACommitAndStopsOnShutdown() async throws {
        let broker = LocalBroker()
        let f = try await Fixture(sinks: SinkRegistry(broker: broker, client: testHTTPClient))
        let sub = broker.subscribe("items.j")
        let job = f.job([SinkSpec(.nats(subject: "items.j"))])
        try await f.register([job])
        let loop = Task { await f.deliverer.run() }
        var it = sub.makeAsyncIterator()
        for round in 0..<3 {
            // The clock never moves: only the commit's doorbell can wake the deliverer.
            await f.tick(job, items: numbered(round..<(round + 1)))
            let got = await it.next()
            #expect(try JSONValue.parse(got!.payload)["id"]?.stringValue == "j:n\(round)")
        }
        f.deliverer.beginShutdown()
        await loop.value
        #expect(try await f.backlog() == 0)
    }

    @Test func subjectWildcardsMatchLikeNATS() {
        func m(_ p: String, _ s: String) -> Bool {
            LocalBroker.matches(
                p.split(separator: ".", omittingEmptySubsequences: false),
                s.split(separator: ".", omittingEmptySubsequences: false))
        }
        #expect(m("a.b", "a.b") && !m("a.b", "a.c") && !m("a.b", "a.b.c"))
        #expect(m("a.*", "a.b") && !m("a.*", "a.b.c") && !m("a.*", "a"))
        #expect(m("a.>", "a.b") && m("a.>", "a.b.c") && !m("a.>", "a"))
        #expect(m("*.b.>", "x.b.y") && !m("*.b.>", "x.c.y"))
    }
}
