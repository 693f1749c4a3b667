import Foundation
import PollerdCore
import PollerdTestKit
import Testing

/// The requirements the first suite left to SQLite-bound tests, each pinned for every backend:
/// planned runs, history and its retention, skipped slots, cursors set by an operator, the
/// audit log, damage, the outbox's views and operator commands, alerts, reclaiming a crashed
/// deliverer's lanes, and the store's own background work.
extension StoreContractTests {
    /// A tick of "j" at `at`, committed with its history row (kept `keep` a job) and items.
    @discardableResult
    func historyTick(
        _ store: any PollerdStore, _ job: String = "j", at: Int64, keep: Int, status: String = "ok",
        cursor: String? = nil, slot: Int64? = nil
    ) async throws -> LeaseGrant {
        let g = try grant(try await store.acquireLease(jobID: job, holder: "A", ttlMs: 60_000, nowMs: at, slotMs: nil))
        var c = commit(g, cursor: cursor, status: status)
        c.startedAtMs = at
        c.historyLimit = keep
        c.slotMs = slot
        c.itemsFound = 2
        #expect(try await store.commitTick(c, nowMs: at))
        return g
    }

    @Test(arguments: StoreFactory.all)
    func recordSchedulesPlansTheNextRunAndKeepsTheFingerprints(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            _ = try await store.register(regs(["a", "b"]), nowMs: 0)
            try await store.recordSchedules(
                [
                    ScheduleRecord(
                        jobID: "a", nextRunAtMs: 5000, scheduleFingerprint: "every=5", definitionFingerprint: "d1"),
                    ScheduleRecord(
                        jobID: "b", nextRunAtMs: nil, scheduleFingerprint: "at=1", definitionFingerprint: "d2"),
                    // A job the store does not know is left alone.
                    ScheduleRecord(jobID: "none", nextRunAtMs: 1, scheduleFingerprint: "x", definitionFingerprint: "y"),
                ], nowMs: 10)
            let a = try #require(try await store.state(jobID: "a"))
            #expect(a.nextRunAtMs == 5000 && a.scheduleFingerprint == "every=5" && a.definitionFingerprint == "d1")
            let b = try #require(try await store.state(jobID: "b"))
            #expect(b.nextRunAtMs == nil && b.scheduleFingerprint == "at=1" && b.definitionFingerprint == "d2")
            #expect(try await store.state(jobID: "none") == nil)
            // The plan holds: a scheduled claim for an earlier slot is refused with it.
            #expect(
                try await store.acquireLease(jobID: "a", holder: "A", ttlMs: 1000, nowMs: 100, slotMs: 100)
                    == .notDue(untilMs: 5000))
            try await store.recordSchedules([], nowMs: 11)
        }
    }

    /// Newest first, numbered by the lease token, each with what the tick did; at most the
    /// limit asked; a job's rows only.
    @Test(arguments: StoreFactory.all)
    func tickHistoryIsNewestFirstAndKeepsWhatEachTickDid(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            _ = try await store.register(regs(["j", "k"]), nowMs: 0)
            let first = try await historyTick(store, at: 1000, keep: 10, cursor: "c1", slot: 900)
            try await historyTick(store, at: 2000, keep: 10, status: "transient")
            try await historyTick(store, "k", at: 2500, keep: 10)
            let rows = try await store.tickHistory(jobID: "j", limit: 10)
            #expect(rows.map(\.startedAtMs) == [2000, 1000])
            #expect(rows.map(\.seq) == [first.token + 1, first.token])
            let old = try #require(rows.last)
            #expect(old.jobID == "j" && old.slotMs == 900 && old.status == "ok" && old.holder == "A")
            #expect(old.cursorChanged && old.cursor == Data("c1".utf8) && old.itemsFound == 2)
            #expect(
                rows.first?.status == "transient" && rows.first?.error == "boom" && rows.first?.cursorChanged == false)
            #expect(try await store.tickHistory(jobID: "j", limit: 1).map(\.startedAtMs) == [2000])
            #expect(try await store.tickHistory(jobID: "none", limit: 10).isEmpty)
        }
    }

    /// `tick_history` bounds what is kept a job; 0 keeps nothing.
    @Test(arguments: StoreFactory.all)
    func historyKeepsTheNewestTicksUpToItsLimit(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            _ = try await store.register(regs(["j", "none"]), nowMs: 0)
            for i in 1...7 { try await historyTick(store, at: Int64(i) * 1000, keep: 3) }
            #expect(try await store.tickHistory(jobID: "j", limit: 100).map(\.startedAtMs) == [7000, 6000, 5000])
            try await historyTick(store, "none", at: 8000, keep: 0)
            #expect(try await store.tickHistory(jobID: "none", limit: 100).isEmpty)
        }
    }

    /// A skipped slot is kept in the history with its reason, read back in its place.
    @Test(arguments: StoreFactory.all)
    func aSkippedSlotIsKeptInTheHistory(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            _ = try await store.register([reg], nowMs: 0)
            let g = try await historyTick(store, at: 1000, keep: 10)
            store.recordSkip(
                TickRecord(
                    seq: g.token, jobID: "j", slotMs: 2000, startedAtMs: 2000, durationMs: 0, status: "skipped",
                    error: "backpressure", itemsFound: 0, itemsNew: 0, duplicates: 0, cursor: nil, cursorChanged: false,
                    holder: "A"), historyLimit: 10)
            let rows = try await store.tickHistory(jobID: "j", limit: 10)
            #expect(rows.map(\.status) == ["skipped", "ok"])
            #expect(rows.first?.error == "backpressure" && rows.first?.slotMs == 2000)
        }
    }

    /// An operator's cursor replaces the job's, fences a tick in flight and is audited; an
    /// unknown job is refused.
    @Test(arguments: StoreFactory.all)
    func setCursorReplacesFencesAndAudits(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            _ = try await store.register([reg], nowMs: 0)
            let inFlight = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 1, slotMs: nil))
            let audit = AuditEntry(atMs: 5, actor: "cli", action: "cursor.set", jobID: "j", detail: "to c0")
            #expect(try await store.setCursor(jobID: "j", cursor: Data("c0".utf8), audit: audit))
            #expect(try await store.commitTick(commit(inFlight, cursor: "stale"), nowMs: 6) == false)
            #expect(try await store.state(jobID: "j")?.cursor == Data("c0".utf8))
            #expect(try await store.auditLog(jobID: "j", limit: 10) == [audit])
            // nil clears it.
            #expect(try await store.setCursor(jobID: "j", cursor: nil, audit: audit))
            #expect(try await store.state(jobID: "j")?.cursor == nil)
            #expect(try await store.setCursor(jobID: "none", cursor: Data(), audit: audit) == false)
        }
    }

    /// The audit log is newest first, one job's or everyone's, at most the limit; entries keep
    /// every field as written.
    @Test(arguments: StoreFactory.all)
    func theAuditLogIsNewestFirst(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            let entries = [
                AuditEntry(atMs: 1, actor: "cli", action: "pause", jobID: "a", detail: "for the night"),
                AuditEntry(atMs: 2, actor: "admin-api (admin)", action: "resume", jobID: "b", detail: nil),
                AuditEntry(atMs: 3, actor: "cli", action: "reload", jobID: nil, detail: "ünïcode \u{1F600}"),
                AuditEntry(atMs: 4, actor: "cli", action: "reset", jobID: "a", detail: nil),
            ]
            for e in entries { try await store.recordAudit(e) }
            #expect(try await store.auditLog(jobID: nil, limit: 10) == entries.reversed())
            #expect(try await store.auditLog(jobID: "a", limit: 10) == [entries[3], entries[0]])
            #expect(try await store.auditLog(jobID: nil, limit: 2) == [entries[3], entries[2]])
            #expect(try await store.auditLog(jobID: "none", limit: 10).isEmpty)
        }
    }

    /// Errors that pass are not damage: a cancelled call, a broken contract, an error of the
    /// caller's own. (Each backend's damage itself is checked against a damaged store: SQLite's in
    /// `SQLiteDamageTests`.)
    @Test(arguments: StoreFactory.all)
    func onlyDamageIsDamage(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            #expect(!store.isDamage(CancellationError()))
            #expect(!store.isDamage(StoreContractViolation(call: "x", detail: "y")))
            #expect(!store.isDamage(URLError(.timedOut)))
        }
    }

    /// The outbox's views: when the next lane falls due, each lane's counts, and a dead letter by
    /// its id; and its operator commands: forgetting the dedup keys, dropping dead letters.
    @Test(arguments: StoreFactory.all)
    func theOutboxViewsAndCommands(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            _ = try await store.register([reg], nowMs: 0)
            #expect(try await store.nextLaneDueMs() == nil)
            #expect(try await store.outboxStats().isEmpty)
            #expect(try await tickWith(store, ["x", "y", "z"], at: 10))
            try await store.serveSinks(holder: "D", [ServedSink(jobID: "j", sink: "s", fingerprint: "any")])
            let due = try #require(try await store.nextLaneDueMs())
            let claimed = try #require(
                try await store.claimLanes(holder: "D", nowMs: max(due, 20), claimMs: 5000, limit: 1, batchSize: 10)
                    .first)
            let lane = claimed.lane
            let items = claimed.items
            // Claimed: due again when the claim runs out, at the latest.
            #expect(try await store.nextLaneDueMs().map { $0 > max(due, 20) } == true)
            #expect(
                try await store.settle(
                    lane, holder: "D", LaneSettlement(acked: [items[0].seq], failure: .retry(atMs: 900, error: "503")),
                    nowMs: 30))
            #expect(try await store.nextLaneDueMs() == 900)
            var stats = try #require(try await store.outboxStats().first)
            #expect(stats.jobID == "j" && stats.sink == "s" && stats.pending == 2 && stats.attempts == 1)
            #expect(stats.nextAttemptAtMs == 900 && stats.lastError == "503" && stats.oldestFoundAtMs == 1)
            #expect(stats.delivered == 1 && stats.retried == 1 && stats.deadLettered == 0)
            // y dead-letters, z is delivered.
            let again = try #require(
                try await store.claimLanes(holder: "D", nowMs: 900, claimMs: 5000, limit: 1, batchSize: 10).first?.lane)
            #expect(
                try await store.settle(
                    again, holder: "D", LaneSettlement(acked: [], failure: .deadLetter(error: "410")), nowMs: 901))
            let last = try #require(
                try await store.claimLanes(holder: "D", nowMs: 902, claimMs: 5000, limit: 1, batchSize: 10).first?.lane)
            #expect(
                try await store.settle(
                    last, holder: "D", LaneSettlement(acked: [items[2].seq], failure: nil), nowMs: 903))
            #expect(try await store.nextLaneDueMs() == nil)
            stats = try #require(try await store.outboxStats().first)
            #expect(
                stats.pending == 0 && stats.delivered == 2 && stats.deadLettered == 1 && stats.oldestFoundAtMs == nil)
            let dead = try #require(try await store.deadLetters(jobID: nil, limit: 10).first)
            #expect(try await store.deadLetter(id: dead.id) == dead)
            #expect(dead.key == "j:y" && dead.sink == "s" && dead.lastError == "410" && dead.envelope.contains("\"y\""))
            #expect(try await store.deadLetter(id: dead.id + 1000) == nil)
            // Dropping: by id, by job, all; each says how many went.
            #expect(try await store.dropDeadLetters(.ids([dead.id + 1000])) == 0)
            #expect(try await store.dropDeadLetters(.job("other")) == 0)
            #expect(try await store.dropDeadLetters(.ids([dead.id])) == 1)
            #expect(try await store.deadLetters(jobID: "j", limit: 10).isEmpty)
            // The dedup keys: x, y, z are remembered until forgotten.
            #expect(try await tickWith(store, ["x"], at: 1000))
            #expect(try await store.state(jobID: "j")?.outboxBacklog == 0)
            #expect(try await store.forgetSeen(jobID: "j") == 3)
            #expect(try await tickWith(store, ["x"], at: 1100))
            #expect(try await store.state(jobID: "j")?.outboxBacklog == 1)
            #expect(try await store.forgetSeen(jobID: "none") == 0)
        }
    }

    /// A claim hands each lane out with its first items, oldest first, up to the batch size; one
    /// settle call settles a batch of lanes, each fenced on its own.
    @Test(arguments: StoreFactory.all)
    func claimsComeWithTheirItemsAndSettlesComeInBatches(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            _ = try await store.register([reg], nowMs: 0)
            #expect(try await tickWith(store, ["a", "b", "c"], at: 10))
            var two = batch(["d"], sinks: ["s", "t"])
            two.sinkFingerprints = []
            let g = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 11, slotMs: nil))
            #expect(try await store.commitTick(commit(g, cursor: "c", outbox: two), nowMs: 11))
            try await store.serveSinks(
                holder: "D", ["s", "t"].map { ServedSink(jobID: "j", sink: $0, fingerprint: "any") })
            let lanes = try await store.claimLanes(holder: "D", nowMs: 20, claimMs: 60_000, limit: 10, batchSize: 2)
            let bySink = Dictionary(uniqueKeysWithValues: lanes.map { ($0.lane.sink, $0) })
            #expect(bySink["s"]?.items.map(\.key) == ["j:a", "j:b"])
            #expect(bySink["t"]?.items.map(\.key) == ["j:d"])
            let s = try #require(bySink["s"])
            let t = try #require(bySink["t"])
            var stale = s.lane
            stale.token -= 1
            let answers = try await store.settle(
                [
                    LaneSettle(s.lane, LaneSettlement(acked: s.items.map(\.seq), failure: nil)),
                    LaneSettle(t.lane, LaneSettlement(acked: t.items.map(\.seq), failure: nil)),
                    LaneSettle(stale, LaneSettlement(acked: [], failure: .deadLetter(error: "stale"))),
                ], holder: "D", nowMs: 30)
            #expect(answers == [true, true, false])
            #expect(try await store.settle([], holder: "D", nowMs: 31).isEmpty)
            let rest = try await store.claimLanes(holder: "D", nowMs: 40, claimMs: 60_000, limit: 10, batchSize: 10)
            #expect(rest.map(\.lane.sink) == ["s"] && rest.first?.items.map(\.key) == ["j:c", "j:d"])
            #expect(try await store.deadLetters(jobID: nil, limit: 10).isEmpty)
        }
    }

    /// A failure alert is queued with the tick, to the alert's sinks, and the job's last alert
    /// time with it; the next claim carries that time (the cooldown holds across daemons).
    @Test(arguments: StoreFactory.all)
    func anAlertIsQueuedWithItsTick(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            _ = try await store.register([reg], nowMs: 0)
            let g = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 10, slotMs: nil))
            var c = commit(g, cursor: nil, status: "permanent")
            c.pause = true
            c.pausedReason = "failing"
            c.alert = OutboxBatch(
                sinks: ["pager"],
                entries: [
                    ItemEnvelope.make(
                        jobID: "j", kind: "pollerd.alert", agent: "default", foundAtMs: 777,
                        item: .object(["id": .string("alert-1")]))
                ], dedupWindow: 0, foundAtMs: 777)
            #expect(try await store.commitTick(c, nowMs: 11))
            let row = try #require(try await store.state(jobID: "j"))
            #expect(row.lastAlertAtMs == 777 && row.paused)
            let lanes = try await store.outboxStats()
            #expect(lanes.map(\.sink) == ["pager"] && lanes.first?.pending == 1)
            _ = try await store.setPaused(jobID: "j", paused: false, reason: nil, nowMs: 12)
            let next = try grant(
                try await store.acquireLease(jobID: "j", holder: "B", ttlMs: 60_000, nowMs: 13, slotMs: nil))
            #expect(next.lastAlertAtMs == 777)
        }
    }

    /// The lane claims of a crashed deliverer on this host are freed; live ones, and other
    /// hosts', are not.
    @Test(arguments: StoreFactory.all)
    func aCrashedDeliverersLaneClaimsAreReclaimed(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            _ = try await store.register(regs(["j"]), nowMs: 0)
            var b = batch(["x"], sinks: ["s1", "s2", "s3"])
            b.sinkFingerprints = []
            let g = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 1, slotMs: nil))
            #expect(try await store.commitTick(commit(g, cursor: "c", outbox: b), nowMs: 1))
            for (holder, sink) in [("host:111:dead", "s1"), ("host:222:alive", "s2"), ("far:111:other", "s3")] {
                try await store.serveSinks(holder: holder, [ServedSink(jobID: "j", sink: sink, fingerprint: "f")])
                #expect(
                    try await store.claimLanes(holder: holder, nowMs: 2, claimMs: 60_000, limit: 10, batchSize: 10)
                        .count == 1)
            }
            #expect(try await store.reclaimLaneClaims(on: HostProcesses(host: "host", alive: [222]), nowMs: 3) == 1)
            try await store.serveSinks(
                holder: "host:333:new", ["s1", "s2", "s3"].map { ServedSink(jobID: "j", sink: $0, fingerprint: "f") })
            #expect(
                try await store.claimLanes(holder: "host:333:new", nowMs: 4, claimMs: 60_000, limit: 10, batchSize: 10)
                    .map(\.lane.sink)
                    == ["s1"])
        }
    }

    /// `run` is the store's background work: it returns once its task is cancelled, and the
    /// store answers while it runs and after.
    @Test(arguments: StoreFactory.all)
    func runReturnsWhenCancelledAndTheStoreAnswersMeanwhile(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            let clock = ManualClock(nowMs: 0)
            let run = Task { try await store.run(clock: clock) }
            _ = try await store.register([reg], nowMs: 0)
            clock.advance(byMs: 1000)
            #expect(try await store.state(jobID: "j") != nil)
            run.cancel()
            _ = try? await run.value
            #expect(try await store.allStates().map(\.jobID) == ["j"])
        }
    }

    /// A job's row says which daemon holds its lease, or ran it last (the views' DAEMON column).
    @Test(arguments: StoreFactory.all)
    func theRowSaysWhoHoldsOrLastRanTheJob(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            _ = try await store.register([reg], nowMs: 0)
            #expect(try await store.state(jobID: "j")?.leaseHolder == nil)
            let g = try grant(
                try await store.acquireLease(jobID: "j", holder: "h:42:x", ttlMs: 30_000, nowMs: 10, slotMs: nil))
            let held = try #require(try await store.state(jobID: "j"))
            #expect(held.leaseHolder == "h:42:x" && held.leaseUntilMs == g.untilMs)
            #expect(try await store.commitTick(commit(g, cursor: "c"), nowMs: 20))
            let ran = try #require(try await store.allStates().first)
            #expect(ran.leaseHolder == "h:42:x" && ran.leaseUntilMs == 0)
        }
    }
}
