import Foundation
import GRDB
import PollerdCore
import Synchronization

/// Collects lease and commit writes from concurrent ticks and applies them in one transaction.
/// Whoever finds no drain running starts one; it drains until the queue is empty.
final class GroupCommitter: Sendable {
    enum Op: Sendable {
        case acquire(jobID: String, holder: String, ttlMs: Int64, nowMs: Int64, slotMs: Int64?)
        case renew(LeaseGrant, untilMs: Int64)
        case release(LeaseGrant)
        case commit(TickCommit, nowMs: Int64)
        case schedule(ScheduleRecord, nowMs: Int64)
    }

    enum Reply: Sendable {
        case acquired(LeaseAcquisition)
        case done(Bool)

        var flag: Bool {
            if case .done(let b) = self { return b }
            return false
        }
    }

    private struct Pending: Sendable {
        var op: Op
        var continuation: CheckedContinuation<Reply, any Error>
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

    init(pool: DatabasePool) {
        self.pool = pool
    }

    func submit(_ op: Op) async throws -> Reply {
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
                if s.queue.isEmpty { s.draining = false; return [] }
                let n = min(s.queue.count, Self.maxBatch)
                let b = Array(s.queue.prefix(n))
                s.queue.removeFirst(n)
                return b
            }
            if batch.isEmpty { return }
            do {
                let ops = batch.map(\.op)
                let replies: [Result<Reply, any Error>] = try await pool.write { db in
                    ops.map { op in Result { try Self.apply(op, db) } }
                }
                for (p, r) in zip(batch, replies) { p.continuation.resume(with: r) }
            } catch {
                for p in batch { p.continuation.resume(throwing: error) }
            }
        }
    }

    static func apply(_ op: Op, _ db: Database) throws -> Reply {
        switch op {
        case .acquire(let jobID, let holder, let ttlMs, let nowMs, let slotMs):
            return .acquired(try acquire(jobID: jobID, holder: holder, ttlMs: ttlMs, nowMs: nowMs, slotMs: slotMs, db))
        case .renew(let lease, let untilMs):
            try db.cachedStatement(sql: "UPDATE poll_lease SET running_until = ? WHERE job_id = ? AND leaseholder = ? AND token = ?")
                .execute(arguments: [untilMs, lease.jobID, lease.holder, lease.token])
            return .done(db.changesCount == 1)
        case .release(let lease):
            try db.cachedStatement(sql: "UPDATE poll_lease SET running_until = 0 WHERE job_id = ? AND leaseholder = ? AND token = ?")
                .execute(arguments: [lease.jobID, lease.holder, lease.token])
            return .done(db.changesCount == 1)
        case .commit(let c, let nowMs):
            return .done(try commit(c, nowMs: nowMs, db))
        case .schedule(let r, let nowMs):
            try applySchedule(r, nowMs: nowMs, db)
            return .done(true)
        }
    }

    static func applySchedule(_ r: ScheduleRecord, nowMs: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: "UPDATE poll_state SET next_run_at = ?, schedule_fp = ?, definition_fp = ?, updated_at = ? WHERE job_id = ?")
            .execute(arguments: [r.nextRunAtMs, r.scheduleFingerprint, r.definitionFingerprint, nowMs, r.jobID])
    }

    static func acquire(jobID: String, holder: String, ttlMs: Int64, nowMs: Int64, slotMs: Int64?, _ db: Database) throws -> LeaseAcquisition {
        guard let st = try Row.fetchOne(db.cachedStatement(sql: "SELECT paused, paused_reason, done, cursor, consecutive_errors, next_run_at FROM poll_state WHERE job_id = ?"), arguments: [jobID]) else {
            return .paused(reason: "job has no state row (not registered)")
        }
        // Columns by position: name lookups are case-insensitive and cost more than the query.
        if st[0] as Bool { return .paused(reason: st[1]) }
        if st[2] as Bool { return .done }
        if let slotMs, let planned = st[5] as Int64?, planned > slotMs {
            return .notDue(untilMs: planned)
        }
        let until = nowMs + ttlMs
        // Take a free or expired lease, bumping the fencing token, in one statement.
        let taken = try Int64.fetchOne(db.cachedStatement(sql: """
            UPDATE poll_lease SET leaseholder = ?, token = token + 1, running_until = ?
            WHERE job_id = ? AND running_until <= ? RETURNING token
            """), arguments: [holder, until, jobID, nowMs])
        let token: Int64
        if let taken {
            token = taken
        } else if let l = try Row.fetchOne(db.cachedStatement(sql: "SELECT leaseholder, running_until FROM poll_lease WHERE job_id = ?"), arguments: [jobID]) {
            return .held(by: l[0], untilMs: l[1])
        } else {
            try db.cachedStatement(sql: "INSERT INTO poll_lease (job_id, leaseholder, token, running_until) VALUES (?, ?, 1, ?)")
                .execute(arguments: [jobID, holder, until])
            token = 1
        }
        return .granted(LeaseGrant(jobID: jobID, holder: holder, token: token, untilMs: until, cursor: st[3], consecutiveErrors: st[4]))
    }

    static func commit(_ c: TickCommit, nowMs: Int64, _ db: Database) throws -> Bool {
        // The fence and the release in one statement: no row changes unless the token still holds.
        try db.cachedStatement(sql: "UPDATE poll_lease SET running_until = 0 WHERE job_id = ? AND leaseholder = ? AND token = ?")
            .execute(arguments: [c.lease.jobID, c.lease.holder, c.lease.token])
        guard db.changesCount == 1 else { return false }
        try db.cachedStatement(sql: """
            UPDATE poll_state SET
              cursor = COALESCE(?, cursor), last_run_at = ?, next_run_at = ?, last_status = ?, last_error = ?,
              last_duration_ms = ?, consecutive_errors = ?, ticks_total = ticks_total + 1,
              items_seen_total = items_seen_total + ?, items_dispatched_total = items_dispatched_total + ?,
              paused = CASE WHEN ? THEN 1 ELSE paused END,
              paused_reason = CASE WHEN ? THEN ? ELSE paused_reason END,
              done = CASE WHEN ? THEN 1 ELSE done END,
              schedule_fp = ?, updated_at = ?
            WHERE job_id = ?
            """).execute(arguments: [
                c.newCursor, c.startedAtMs, c.nextRunAtMs, c.status, c.error,
                c.durationMs, c.consecutiveErrors, c.itemsSeen, c.itemsDispatched,
                c.pause, c.pause, c.pausedReason, c.done, c.scheduleFingerprint, nowMs, c.lease.jobID,
            ])
        return true
    }
}
