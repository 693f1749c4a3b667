import Foundation
import GRDB
import PollerdCore
import Synchronization

/// Collects the small writes of concurrent callers (lease renewals and releases, a planned next
/// run) and applies them in one transaction. Whoever finds no drain running
/// starts one; it drains until the queue is empty. (Claims and commits come in batches of their
/// own, gathered by the daemon: `acquireLeases`, `commit([TickCommit])`, `settle([LaneSettle])`.)
final class GroupCommitter: Sendable {
    enum Op: Sendable {
        case renew(LeaseGrant, ttlMs: Int64, nowMs: Int64)
        case release(LeaseGrant)
        case schedule(ScheduleRecord, nowMs: Int64)
    }

    private struct Pending: Sendable {
        var op: Op
        /// Whether the write changed what it was to change (false: fenced off).
        var continuation: CheckedContinuation<Bool, any Error>
    }

    private struct State: Sendable {
        var queue: [Pending] = []
        var draining = false
    }

    /// The most operations in one transaction, to bound a transaction's latency.
    static let maxBatch = 1024
    /// How long a drain lingers for more operations when its batch is small: a tick's lease and
    /// commit wait at most this long, and a busy daemon shares each transaction (and fsync)
    /// among many ticks instead of paying one per operation.
    static let linger: Duration = .microseconds(500)
    static let lingerBelow = 64

    private let pool: DatabasePool
    private let state = Mutex(State())
    /// The store's own clock, when it decides lease expiry (`StoreTime.store`).
    private let storeNow: (@Sendable () -> Int64)?

    init(pool: DatabasePool, storeNow: (@Sendable () -> Int64)?) {
        self.pool = pool
        self.storeNow = storeNow
    }

    /// Applies `op` in the next transaction; returns whether it changed what it was to change
    /// (false: its token no longer held).
    func submit(_ op: Op) async throws -> Bool {
        try await withCheckedThrowingContinuation { c in
            let startDrain = state.withLock { s in
                s.queue.append(Pending(op: op, continuation: c))
                if s.draining { return false }
                s.draining = true
                return true
            }
            if startDrain {
                // Unstructured on purpose: the drain outlives the submitter's continuation closure,
                // and serves every submitter that queues while it runs. It ends when the queue is empty.
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while true {
            if state.withLock({ $0.queue.count }) < Self.lingerBelow {
                try? await Task.sleep(for: Self.linger)
            }
            let batch: [Pending] = state.withLock { s in
                if s.queue.isEmpty {
                    s.draining = false
                    return []
                }
                let n = min(s.queue.count, Self.maxBatch)
                let b = Array(s.queue.prefix(n))
                s.queue.removeFirst(n)
                return b
            }
            if batch.isEmpty { return }
            do {
                let ops = batch.map(\.op)
                let storeNow = self.storeNow
                let replies: [Result<Bool, any Error>] = try await pool.write { db in
                    // One instant of the store's clock per transaction, read inside it.
                    let now = storeNow?()
                    return ops.map { op in Result { try Self.apply(op, storeNowMs: now, db) } }
                }
                for (p, r) in zip(batch, replies) { p.continuation.resume(with: r) }
            } catch {
                for p in batch { p.continuation.resume(throwing: error) }
            }
        }
    }

    /// Applies one operation; `storeNowMs` (the store's clock) replaces the caller's instant
    /// in lease expiry decisions when set.
    static func apply(_ op: Op, storeNowMs: Int64?, _ db: Database) throws -> Bool {
        switch op {
        case .renew(let lease, let ttlMs, let nowMs):
            try db.cachedStatement(
                sql:
                    "UPDATE poll_state SET lease_until = ? WHERE job_id = ? AND lease_holder = ? AND lease_token = ? AND lease_until > 0"
            )
            .execute(arguments: [(storeNowMs ?? nowMs) + ttlMs, lease.jobID, lease.holder, lease.token])
            return db.changesCount == 1
        case .release(let lease):
            try db.cachedStatement(
                sql: "UPDATE poll_state SET lease_until = 0 WHERE job_id = ? AND lease_holder = ? AND lease_token = ?"
            )
            .execute(arguments: [lease.jobID, lease.holder, lease.token])
            return db.changesCount == 1
        case .schedule(let r, let nowMs):
            try applySchedule(r, nowMs: nowMs, db)
            return true
        }
    }

    static func applySchedule(_ r: ScheduleRecord, nowMs: Int64, _ db: Database) throws {
        try db.cachedStatement(
            sql:
                "UPDATE poll_state SET next_run_at = ?, schedule_fp = ?, definition_fp = ?, updated_at = ? WHERE job_id = ?"
        )
        .execute(arguments: [r.nextRunAtMs, r.scheduleFingerprint, r.definitionFingerprint, nowMs, r.jobID])
    }

    /// The claim: the usual case in two statements on the job's row. The job is runnable, the
    /// slot is due, the lease is free, expired, or this holder's own (a holder asks only for jobs
    /// it has no tick of in flight, so its own lease is one a failed commit left behind: it must
    /// not block the holder until it expires). The token increases, fencing off whatever held it
    /// before; the cursor comes back with it. A read, then a write by rowid, in the writer's
    /// transaction (nothing runs between them): an `UPDATE … RETURNING` runs its RETURNING
    /// clause as a trigger program into a table of its own, 5.5 µs a claim against 3.6–4.0 µs
    /// for the two on the store's 1 KiB pages, 10–14 µs with 4 KiB ones
    /// (`Benchmarks/sqlite-claim/claim.c`, 100k rows).
    struct Claim {
        /// The read of a job without a backlog bound (no sinks), and with one.
        let read: Statement
        let readBounded: Statement
        let write: Statement

        init(_ db: Database) throws {
            read = try db.cachedStatement(sql: GroupCommitter.claimReadSQL)
            readBounded = try db.cachedStatement(sql: GroupCommitter.claimReadBoundedSQL)
            write = try db.cachedStatement(sql: GroupCommitter.claimWriteSQL)
        }
    }

    static let claimReadSQL = """
        SELECT rowid, lease_token, cursor, consecutive_errors, last_alert_at FROM poll_state
        WHERE job_id = ? AND (lease_until <= ? OR lease_holder = ?) AND paused = 0 AND done = 0
          AND (? IS NULL OR next_run_at IS NULL OR next_run_at <= ?)
        """
    /// The backlog lives in a table of its own (`outbox_backlog`), which a settle writes: a settle
    /// never writes the job's state row, so on a store with row locks it never holds the row a
    /// claim needs.
    static let claimReadBoundedSQL =
        claimReadSQL + " AND COALESCE((SELECT items FROM outbox_backlog b WHERE b.job_id = poll_state.job_id), 0) < ?"
    static let claimWriteSQL =
        "UPDATE poll_state SET lease_holder = ?, lease_token = ?, lease_until = ? WHERE rowid = ?"

    /// One job's claim in a batch, with the claim's statements fetched once for the batch.
    static func acquire(
        jobID: String, holder: String, ttlMs: Int64, nowMs: Int64, slotMs: Int64?, maxBacklog: Int64?, claim: Claim,
        _ db: Database
    ) throws -> LeaseAcquisition {
        let until = nowMs + ttlMs
        let backlogLimit = maxBacklog ?? Int64.max
        var st = HotStatement(maxBacklog == nil ? claim.read : claim.readBounded, db)
        st.bind(jobID)
        st.bind(nowMs)
        st.bind(holder)
        st.bind(slotMs)
        st.bind(slotMs)
        if let maxBacklog { st.bind(maxBacklog) }
        if try st.step() {
            let row = st.int64(0)
            let token = st.int64(1) + 1
            let grant = LeaseGrant(
                jobID: jobID, holder: holder, token: token, untilMs: until, cursor: st.data(2),
                consecutiveErrors: Int(st.int64(3)), lastAlertAtMs: st.optionalInt64(4), handle: StoreHandle(row))
            st.finish()
            var w = HotStatement(claim.write, db)
            w.bind(holder)
            w.bind(token)
            w.bind(until)
            w.bind(row)
            guard try w.run() == 1 else {
                throw DatabaseError(message: "claim of \(jobID): its state row \(row) went away mid-transaction")
            }
            return .granted(grant)
        }
        st.finish()
        // Otherwise say why (columns by position: name lookups cost more than the query).
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(
                    sql:
                        """
                        SELECT paused, paused_reason, done, next_run_at, lease_holder, lease_until,
                          COALESCE((SELECT items FROM outbox_backlog b WHERE b.job_id = poll_state.job_id), 0)
                        FROM poll_state WHERE job_id = ?
                        """
                ), arguments: [jobID])
        else {
            return .paused(reason: "job has no state row (not registered)")
        }
        if row[0] as Bool { return .paused(reason: row[1]) }
        if row[2] as Bool { return .done }
        if let slotMs, let planned = row[3] as Int64?, planned > slotMs { return .notDue(untilMs: planned) }
        if (row[6] as Int64) >= backlogLimit {
            // Say why the job does not tick, where `jobs list` and `jobs show` look.
            try db.cachedStatement(
                sql: "UPDATE poll_state SET last_status = 'backpressure', last_error = ? WHERE job_id = ?"
            )
            .execute(arguments: [
                "\(row[6] as Int64) undelivered items (limit \(backlogLimit)); ticks wait until the outbox drains",
                jobID,
            ])
            return .backlogged(pending: row[6], limit: backlogLimit)
        }
        return .held(by: (row[4] as String?) ?? "?", untilMs: row[5])
    }

    /// The history row of a committed tick, numbered by its lease token (unique and increasing
    /// per job). Without sinks nothing is queued and nothing deduplicated: every item is new.
    static func record(_ c: TickCommit, queued: Int) -> TickRecord {
        let new = c.outbox.sinks.isEmpty ? c.itemsFound : Int64(queued)
        let changed = c.newCursor != nil && c.newCursor != c.lease.cursor
        return TickRecord(
            seq: c.lease.token, jobID: c.lease.jobID, slotMs: c.slotMs, startedAtMs: c.startedAtMs,
            durationMs: c.durationMs,
            status: c.status, error: c.error, itemsFound: c.itemsFound, itemsNew: new,
            duplicates: max(0, c.itemsFound - new),
            cursor: changed ? c.newCursor : nil, cursorChanged: changed, holder: c.lease.holder)
    }

    /// The commit statement (`StateRowStatement`: by the rowid the claim read, or the job's id).
    /// Fenced: nothing changes unless this holder's token still holds; the lease is released too.
    static func commitSQL(_ rowCondition: String) -> String {
        """
        UPDATE poll_state SET
          cursor = COALESCE(?, cursor), last_run_at = ?, next_run_at = ?, last_status = ?, last_error = ?,
          last_duration_ms = ?, consecutive_errors = ?, ticks_total = ticks_total + 1,
          items_seen_total = items_seen_total + ?, items_dispatched_total = items_dispatched_total + ?,
          paused = CASE WHEN ? THEN 1 ELSE paused END,
          paused_reason = CASE WHEN ? THEN ? ELSE paused_reason END,
          paused_at = CASE WHEN ? THEN ? ELSE paused_at END,
          done = CASE WHEN ? THEN 1 ELSE done END,
          last_alert_at = COALESCE(?, last_alert_at),
          last_ok_at = CASE WHEN ? = 'ok' THEN ? ELSE last_ok_at END,
          schedule_fp = ?, updated_at = ?, lease_until = 0,
          hist_prev = CASE WHEN ? IS NULL THEN hist_prev ELSE hist_head END, hist_head = COALESCE(?, hist_head),
          hist_n = hist_n + (? IS NOT NULL)
        WHERE \(rowCondition)job_id = ? AND lease_holder = ? AND lease_token = ?
        """
    }

    /// The commit statement, fetched once per batch.
    static func commitStatement(_ db: Database) throws -> StateRowStatement {
        try StateRowStatement(db, sql: commitSQL)
    }

    /// Commits one tick; nil when fenced off, else how many items it queued.
    static func commitCounting(_ c: TickCommit, nowMs: Int64, _ db: Database) throws -> Int? {
        try commitCounting(c, nowMs: nowMs, statement: commitStatement(db), historyAt: nil, db)
    }

    /// The same, with the commit statement already fetched (a batch fetches it once). With
    /// `historyAt`, the job's history head moves to that position of the log, in the same
    /// statement; the caller writes the row there. (Without RETURNING: SQLite gathers a
    /// RETURNING statement's rows in a table of their own, 0.2 of a core at 50k ticks/s.)
    static func commitCounting(
        _ c: TickCommit, nowMs: Int64, statement: StateRowStatement, historyAt: Int64?, _ db: Database
    ) throws -> Int? {
        let changed = try statement.run(
            row: c.lease.handle?.bits, db,
            values: { st in
                st.bind(c.newCursor)
                st.bind(c.startedAtMs)
                st.bind(c.nextRunAtMs)
                st.bind(c.status)
                st.bind(c.error)
                st.bind(c.durationMs)
                st.bind(c.consecutiveErrors)
                st.bind(c.itemsSeen)
                st.bind(c.itemsDispatched)
                st.bind(c.pause)
                st.bind(c.pause)
                st.bind(c.pausedReason)
                st.bind(c.pause)
                st.bind(nowMs)
                st.bind(c.done)
                st.bind(c.alert.entries.isEmpty ? nil : c.alert.foundAtMs)
                st.bind(c.status)
                st.bind(c.startedAtMs)
                st.bind(c.scheduleFingerprint)
                st.bind(nowMs)
                st.bind(historyAt)
                st.bind(historyAt)
                st.bind(historyAt)
            },
            key: { st in
                st.bind(c.lease.jobID)
                st.bind(c.lease.holder)
                st.bind(c.lease.token)
            })
        guard changed == 1 else { return nil }
        let queued = try OutboxSQL.enqueue(c.outbox, jobID: c.lease.jobID, nowMs: nowMs, db)
        if !c.alert.entries.isEmpty { try OutboxSQL.enqueue(c.alert, jobID: c.lease.jobID, nowMs: nowMs, db) }
        return queued
    }
}
