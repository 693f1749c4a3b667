import Foundation
import GRDB
import PollerdCore
import Testing

@testable import PollerdSQLite

/// The SQLite store's tick history: a log in write order with each job's rows chained, kept at
/// `tick_history` rows a job in all, the rows of slower jobs moved aside (`tick_log_kept`) when
/// the log passes them. (Rows counted, newest first and trimmed to the limit through the
/// daemon: `HistoryTests`.)
@Suite struct SQLiteHistoryTests {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-hist-\(UUID().uuidString)")
    var path: String { dir.appendingPathComponent("state.db").path }

    func open() async throws -> SQLiteStateStore {
        let store = try SQLiteStateStore(path: path, synchronousFull: false)
        try await store.prepare()
        return store
    }

    func register(_ store: SQLiteStateStore, _ ids: [String]) async throws {
        _ = try await store.register(
            ids.map { JobRegistration(jobID: $0, kind: "noop", agent: "a", pausedOnBoot: false) }, nowMs: 0)
    }

    /// One tick of `job`, committed with its history row; its start time numbers it.
    func tick(_ store: SQLiteStateStore, _ job: String, at ms: Int64, keep: Int) async throws {
        guard
            case .granted(let lease) = try await store.acquireLease(
                jobID: job, holder: "h", ttlMs: 60_000, nowMs: ms, slotMs: nil, maxBacklog: nil)
        else {
            Issue.record("no lease for \(job)")
            return
        }
        var c = TickCommit(
            lease: lease, startedAtMs: ms, durationMs: 1, status: "ok", error: nil, newCursor: Data("\(ms)".utf8),
            itemsSeen: 0,
            itemsDispatched: 0, consecutiveErrors: 0, nextRunAtMs: nil, pause: false, pausedReason: nil, done: false,
            scheduleFingerprint: "")
        c.historyLimit = keep
        #expect(try await store.commit([c], nowMs: ms) == [0])
    }

    func started(_ store: SQLiteStateStore, _ job: String, limit: Int = 100) async throws -> [Int64] {
        try await store.tickHistory(jobID: job, limit: limit).map(\.startedAtMs)
    }

    func count(_ store: SQLiteStateStore, _ table: String) async throws -> Int {
        try await store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0 }
    }

    @Test func eachJobReadsItsOwnRowsNewestFirstUpToItsLimit() async throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await open()
        try await register(store, ["a", "b"])
        for i in 1...5 {
            try await tick(store, "a", at: Int64(i), keep: 3)
            try await tick(store, "b", at: Int64(100 + i), keep: 3)
        }
        #expect(try await started(store, "a") == [5, 4, 3])
        #expect(try await started(store, "b") == [105, 104, 103])
        #expect(try await started(store, "a", limit: 2) == [5, 4])
        #expect(try await started(store, "nobody") == [])
        // A skipped slot joins its job's chain in order.
        store.recordSkip(
            TickRecord(
                seq: 0, jobID: "a", slotMs: 6, startedAtMs: 6, durationMs: 0, status: "skipped", error: "held",
                itemsFound: 0, itemsNew: 0, duplicates: 0, cursor: nil, cursorChanged: false, holder: "h"),
            historyLimit: 3)
        #expect(try await store.tickHistory(jobID: "a", limit: 10).map(\.status) == ["skipped", "ok", "ok"])
    }

    /// A commit fenced off writes no row: the history and the commit are one transaction.
    @Test func aFencedOffCommitLeavesNoRow() async throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await open()
        try await register(store, ["a"])
        guard
            case .granted(let stale) = try await store.acquireLease(
                jobID: "a", holder: "h", ttlMs: 1, nowMs: 0, slotMs: nil, maxBacklog: nil)
        else {
            Issue.record("no lease")
            return
        }
        try await tick(store, "a", at: 10, keep: 5) // takes the expired lease over
        var c = TickCommit(
            lease: stale, startedAtMs: 20, durationMs: 1, status: "ok", error: nil, newCursor: nil, itemsSeen: 0,
            itemsDispatched: 0,
            consecutiveErrors: 0, nextRunAtMs: nil, pause: false, pausedReason: nil, done: false,
            scheduleFingerprint: "")
        c.historyLimit = 5
        #expect(try await store.commit([c], nowMs: 20) == [nil])
        #expect(try await started(store, "a") == [10])
        #expect(try await count(store, "tick_log") == 1)
    }

    /// A claim hands back the job's rowid, and the commit and its history row find the row by
    /// it. A rowid that no longer holds the job (a `VACUUM` may renumber rows) is not trusted:
    /// the commit finds the job by its id, writes its row, and leaves the rowid's job alone.
    @Test func aCommitWhoseRowHandleNoLongerHoldsTheJobCommitsByTheJobsID() async throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await open()
        try await register(store, ["a", "b"])
        guard
            case .granted(var lease) = try await store.acquireLease(
                jobID: "a", holder: "h", ttlMs: 60_000, nowMs: 0, slotMs: nil, maxBacklog: nil)
        else {
            Issue.record("no lease")
            return
        }
        let rowids = try await store.read { db in
            try Dictionary(
                uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT job_id, rowid FROM poll_state").map {
                    ($0[0] as String, $0[1] as Int64)
                })
        }
        #expect(lease.handle?.bits == rowids["a"])
        lease.handle = rowids["b"].map(StoreHandle.init)
        var c = TickCommit(
            lease: lease, startedAtMs: 7, durationMs: 1, status: "ok", error: nil, newCursor: Data("7".utf8),
            itemsSeen: 0,
            itemsDispatched: 0, consecutiveErrors: 0, nextRunAtMs: nil, pause: false, pausedReason: nil, done: false,
            scheduleFingerprint: "")
        c.historyLimit = 5
        #expect(try await store.commit([c], nowMs: 7) == [0])
        #expect(try await store.state(jobID: "a")?.cursor == Data("7".utf8))
        #expect(try await store.state(jobID: "b")?.ticksTotal == 0)
        #expect(try await started(store, "a") == [7])
        #expect(try await started(store, "b") == [])
        // A handle that names no row at all: the same.
        try await tick(store, "a", at: 8, keep: 5)
        guard
            case .granted(var again) = try await store.acquireLease(
                jobID: "a", holder: "h", ttlMs: 60_000, nowMs: 9, slotMs: nil, maxBacklog: nil)
        else {
            Issue.record("no lease")
            return
        }
        again.handle = StoreHandle(1_000_000)
        c.lease = again
        c.startedAtMs = 9
        #expect(try await store.commit([c], nowMs: 9) == [0])
        #expect(try await started(store, "a") == [9, 8, 7])
    }

    /// The log holds `keep` rows a job in all. Its oldest rows go once it holds more; a slow
    /// job's rows that are still among its newest move aside and stay readable; the rows moved
    /// aside are trimmed to `keep` a job later.
    @Test func theSweepKeepsASlowJobsRowsAndDropsAFastJobsOldOnes() async throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await open()
        try await register(store, ["fast", "slow"])
        try await tick(store, "slow", at: 1, keep: 3)
        try await tick(store, "slow", at: 2, keep: 3)
        for i in 1...10 { try await tick(store, "fast", at: Int64(100 + i), keep: 3) }
        var jobs = 0
        // 12 rows for a budget of 6: the 6 oldest are the slow job's 2 and the fast job's first 4.
        #expect(try await store.sweepHistory(keep: 3, jobs: &jobs, maxRows: 1_000) == 6)
        #expect(jobs == 2)
        #expect(try await count(store, "tick_log") == 6)
        #expect(try await count(store, "tick_log_kept") == 2)
        #expect(try await started(store, "slow") == [2, 1])
        #expect(try await started(store, "fast") == [110, 109, 108])
        // Within budget: nothing more goes.
        #expect(try await store.sweepHistory(keep: 3, jobs: &jobs, maxRows: 1_000) == 0)

        // Three newer rows of the slow job: its moved rows are past its newest 3, and the trim
        // takes them away.
        for i in 3...5 { try await tick(store, "slow", at: Int64(i), keep: 3) }
        #expect(try await started(store, "slow") == [5, 4, 3])
        #expect(try await store.trimKeptHistory(keep: 3, after: "", maxJobs: 10) == nil)
        #expect(try await count(store, "tick_log_kept") == 0)
        #expect(try await started(store, "slow") == [5, 4, 3])
    }

    /// A sweep takes at most `maxRows`, and a log swept empty starts its positions again: a
    /// job whose newest row was swept must not read another job's row now at that position.
    @Test func aSweptPositionWrittenAgainEndsTheChain() async throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try await open()
        try await register(store, ["a", "b"])
        for i in 1...4 { try await tick(store, "a", at: Int64(i), keep: 5) }
        var jobs = 0
        // keep 0 (tick_history set to 0): everything goes, two rows a sweep.
        #expect(try await store.sweepHistory(keep: 0, jobs: &jobs, maxRows: 2) == 2)
        #expect(try await store.sweepHistory(keep: 0, jobs: &jobs, maxRows: 2) == 2)
        #expect(try await count(store, "tick_log") == 0)
        for i in 1...4 { try await tick(store, "b", at: Int64(100 + i), keep: 5) }
        #expect(try await store.read { db in try Int64.fetchOne(db, sql: "SELECT MIN(pos) FROM tick_log") } == 1)
        #expect(try await started(store, "a") == [])
        #expect(try await started(store, "b") == [104, 103, 102, 101])
    }

    /// A store written before the log (rows by `(job_id, seq)`) keeps its history: new rows are
    /// read first, then the old ones, up to `tick_history` in all; once a job has that many new
    /// rows its old ones are deleted.
    @Test func rowsOfTheEarlierLayoutAreKeptAndReadAfterTheNewOnes() async throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: path)
        try await old.writeWithoutTransaction { db in
            _ = try SQLiteMigrations.apply(db, path: self.path, upTo: "007_last_ok")
        }
        try await old.write { db in
            try db.execute(
                sql:
                    "INSERT INTO poll_state (job_id, kind, agent, created_at, updated_at, lease_token) VALUES ('a', 'noop', 'a', 0, 0, 7)"
            )
            for (seq, at) in [(5, 50), (3, 30), (4, 40)] {
                try db.execute(
                    sql: """
                        INSERT INTO tick_log (job_id, seq, slot_at, started_at, duration_ms, status, error, items_found, items_new, duplicates, cursor, cursor_changed, holder)
                        VALUES ('a', ?, NULL, ?, 1, 'ok', NULL, 0, 0, 0, NULL, 0, 'h')
                        """, arguments: [seq, at])
            }
        }
        try old.close()
        let store = try await open()
        #expect(try await store.tickHistory(jobID: "a", limit: 10).map(\.seq) == [5, 4, 3])
        try await tick(store, "a", at: 60, keep: 4)
        #expect(try await started(store, "a") == [60, 50, 40, 30])
        try await tick(store, "a", at: 70, keep: 4)
        #expect(try await started(store, "a") == [70, 60, 50, 40])
        #expect(try await store.trimLegacyHistory(keep: 4, after: "", maxJobs: 10) == nil)
        #expect(try await count(store, "tick_log_006") == 3)
        for at: Int64 in [80, 90] { try await tick(store, "a", at: at, keep: 4) }
        #expect(try await started(store, "a") == [90, 80, 70, 60])
        #expect(try await store.trimLegacyHistory(keep: 4, after: "", maxJobs: 10) == nil)
        #expect(try await count(store, "tick_log_006") == 0)
        #expect(try await started(store, "a") == [90, 80, 70, 60])
    }
}
