import Foundation
import Logging
import PollerdCore
import PollerdDelivery
import PollerdTestKit
import Synchronization
import Testing

@testable import PollerdDaemon

/// An outbox store whose settles fail while a switch is set, as a full disk makes them fail;
/// everything else is the real store's.
final class SettleFaultStore: OutboxStore {
    let inner: any OutboxStore
    private let failing = Mutex(false)
    private let refused = Mutex(0)

    init(_ inner: any OutboxStore) { self.inner = inner }

    func failSettles(_ on: Bool) { failing.withLock { $0 = on } }
    /// How many settles were refused.
    var refusals: Int { refused.withLock { $0 } }

    struct DiskFull: Error {}

    func claimLanes(
        holder: String, nowMs: Int64, claimMs: Int64, limit: Int, batchSize: Int
    ) async throws -> [ClaimedLane] {
        try await inner.claimLanes(holder: holder, nowMs: nowMs, claimMs: claimMs, limit: limit, batchSize: batchSize)
    }
    func serveSinks(holder: String, _ sinks: [ServedSink]) async throws {
        try await inner.serveSinks(holder: holder, sinks)
    }
    func settle(_ batch: [LaneSettle], holder: String, nowMs: Int64) async throws -> [Bool] {
        if failing.withLock({ $0 }) {
            refused.withLock { $0 += 1 }
            throw DiskFull()
        }
        return try await inner.settle(batch, holder: holder, nowMs: nowMs)
    }
    func nextLaneDueMs() async throws -> Int64? { try await inner.nextLaneDueMs() }
    func outboxStats() async throws -> [OutboxLaneStats] { try await inner.outboxStats() }
    func deadLetters(jobID: String?, limit: Int) async throws -> [DeadLetter] {
        try await inner.deadLetters(jobID: jobID, limit: limit)
    }
    func forgetSeen(jobID: String) async throws -> Int { try await inner.forgetSeen(jobID: jobID) }
    func deadLetter(id: Int64) async throws -> DeadLetter? { try await inner.deadLetter(id: id) }
    func replayDeadLetters(_ selection: DeadLetterSelection, nowMs: Int64) async throws -> Int {
        try await inner.replayDeadLetters(selection, nowMs: nowMs)
    }
    func dropDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        try await inner.dropDeadLetters(selection)
    }
    func reclaimLaneClaims(on host: HostProcesses, nowMs: Int64) async throws -> Int {
        try await inner.reclaimLaneClaims(on: host, nowMs: nowMs)
    }
}

@Suite struct SettleFailureTests {
    /// A settle the store refuses (a full disk) does not leave its lane claimed until the claim
    /// runs out: the deliverer writes the settlement again once the store takes writes, so the
    /// lane moves on at once, and the items its sink acked are not delivered a second time.
    @Test func aRefusedSettleIsWrittenOnceTheStoreTakesWritesAgain() async throws {
        let f = try await Fixture()
        let faulty = SettleFaultStore(f.store)
        var log = Logger(label: "test")
        log.logLevel = .critical
        let deliverer = Deliverer(
            store: faulty, clock: f.clock, holder: "test:1:a",
            sinks: SinkRegistry(broker: LocalBroker(), client: testHTTPClient), logger: log)
        let path = f.dir.appendingPathComponent("items.jsonl").path
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        deliverer.update(jobs: [job], tuning: f.settings.delivery)
        await f.tick(job, items: numbered(0..<3))

        faulty.failSettles(true)
        #expect(try await deliverer.pass().map(\.delivered) == [3]) // the sink took them
        #expect(faulty.refusals == 1)
        #expect(try jsonLines(path).count == 3)
        #expect(try await deliverer.pass().isEmpty) // still claimed: nothing to claim
        #expect(faulty.refusals == 2) // and the settlement was tried again

        faulty.failSettles(false)
        f.clock.advance(byMs: 1000) // well inside the 2-minute claim
        #expect(try await deliverer.pass().isEmpty) // the settlement lands; nothing is left to deliver
        #expect(try await f.lane("j", "file:\(path)")?.pending == 0)
        #expect(try await f.backlog() == 0)
        await f.tick(job, items: numbered(3..<4))
        #expect(try await deliverer.pass().map(\.delivered) == [1]) // the lane is free again
        #expect(try jsonLines(path).compactMap { $0["id"]?.stringValue } == ["j:n0", "j:n1", "j:n2", "j:n3"])
    }
}
