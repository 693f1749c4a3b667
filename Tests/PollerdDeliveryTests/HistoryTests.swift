import Foundation
import PollerdCore
import PollerdDelivery
import PollerdSQLite
import PollerdTestKit
import Testing

@testable import PollerdDaemon

/// The tick history counts what a tick found, what was new and what the dedup window dropped,
/// and keeps the cursors a rewind can put back.
@Suite struct HistoryTests {
    @Test func foundNewAndDuplicatesAreCountedApart() async throws {
        let f = try await Fixture()
        let job = f.job([SinkSpec(.stdout)])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<2))
        await f.tick(job, items: numbered(1..<4))
        let h = try await f.store.tickHistory(jobID: "j", limit: 10)
        #expect(h.map(\.itemsFound) == [3, 2])
        #expect(h.map(\.itemsNew) == [2, 2])
        #expect(h.map(\.duplicates) == [1, 0])
        #expect(h.allSatisfy { $0.status == "ok" && $0.holder == "test:1:a" })
    }

    /// A slot skipped for backpressure is kept in the history with its reason.
    @Test func aSkippedSlotCarriesItsReason() async throws {
        var f = try await Fixture()
        f.settings.delivery.maxBacklog = 1
        let job = f.job([SinkSpec(.stdout)])
        try await f.register([job])
        await f.tick(job, items: numbered(0..<2)) // nothing delivers: the backlog is now 2
        f.clock.advance(byMs: 10_000)
        let skipped = await f.tick(job, items: [])
        #expect(skipped.status == "skipped")
        let h = try await f.store.tickHistory(jobID: "j", limit: 10)
        #expect(h.map(\.status) == ["skipped", "ok"])
        #expect(h.first?.error?.contains("backpressure") == true && h.first?.slotMs == f.clock.nowMs)
    }

    @Test func theHistoryIsTrimmedToItsLimit() async throws {
        var f = try await Fixture()
        f.settings.tickHistory = 5
        let job = f.job([])
        try await f.register([job])
        for _ in 0..<70 { await f.tick(job, items: []) }
        // A read gives the newest `tick_history` rows (the log keeps older ones until it is swept).
        #expect(try await f.store.tickHistory(jobID: "j", limit: 1000).count == 5)
    }

    @Test func aCursorIsRewoundFencedAndAudited() async throws {
        let f = try await Fixture()
        let job = f.job([])
        try await f.register([job])
        let facade = Operator(store: f.store, clock: f.clock)
        await f.tick(job, items: []) // ItemSource commits cursor "c"
        let first = try #require(try await facade.cursorHistory("j").first)
        #expect(first.cursor == Data("c".utf8) && first.cursorChanged)
        try await facade.setCursor("j", to: Data("manual".utf8), actor: "test")
        #expect(try await f.store.state(jobID: "j")?.cursor == Data("manual".utf8))
        let back = try await facade.rewindCursor("j", toTick: first.seq, actor: "test")
        #expect(back.seq == first.seq)
        #expect(try await f.store.state(jobID: "j")?.cursor == Data("c".utf8))
        let audit = try await facade.audit(jobID: "j")
        #expect(audit.map(\.action) == ["cursor.rewind", "cursor.set"])
        #expect(audit.allSatisfy { $0.actor == "test" })
        await #expect(throws: Operator.NoSuchCursor.self) {
            _ = try await facade.rewindCursor("j", toTick: 999_999, actor: "test")
        }
        await #expect(throws: Operator.UnknownJob.self) { try await facade.setCursor("nope", to: nil) }
    }

    /// A tick in flight when the cursor is set cannot write its own cursor over it.
    @Test func setCursorFencesATickInFlight() async throws {
        let f = try await Fixture()
        let job = f.job([])
        try await f.register([job])
        guard
            case .granted(let lease) = try await f.store.acquireLease(
                jobID: "j", holder: "h", ttlMs: 60_000, nowMs: f.clock.nowMs, slotMs: nil)
        else {
            Issue.record("no lease")
            return
        }
        try await Operator(store: f.store, clock: f.clock).setCursor("j", to: Data("operator".utf8))
        let committed = try await f.store.commitTick(
            TickCommit(
                lease: lease, startedAtMs: f.clock.nowMs, durationMs: 1, status: "ok", error: nil,
                newCursor: Data("stale".utf8), itemsSeen: 0, itemsDispatched: 0, consecutiveErrors: 0,
                nextRunAtMs: nil, pause: false, pausedReason: nil, done: false, scheduleFingerprint: ""),
            nowMs: f.clock.nowMs)
        #expect(committed == false)
        #expect(try await f.store.state(jobID: "j")?.cursor == Data("operator".utf8))
    }
}
