import GRDB
public import PollerdCore

extension SQLiteStateStore: OutboxStore {
    public func claimLanes(
        holder: String, nowMs: Int64, claimMs: Int64, limit: Int, batchSize: Int
    ) async throws -> [ClaimedLane] {
        let claimNow = expiryNow(nowMs)
        return try await write { db in
            try OutboxSQL.claim(
                holder: holder, dueMs: nowMs, claimNowMs: claimNow, claimMs: claimMs, limit: limit,
                batchSize: batchSize, db)
        }
    }

    public func serveSinks(holder: String, _ sinks: [ServedSink]) async throws {
        try await write { db in try OutboxSQL.serve(holder: holder, sinks, db) }
    }

    public func settle(_ batch: [LaneSettle], holder: String, nowMs: Int64) async throws -> [Bool] {
        guard !batch.isEmpty else { return [] }
        return try await write { db in
            try batch.map { try OutboxSQL.settle($0.lane, holder: holder, $0.settlement, nowMs: nowMs, db) }
        }
    }

    public func nextLaneDueMs() async throws -> Int64? {
        try await read { db in
            try Int64.fetchOne(
                db, sql: "SELECT MIN(MAX(next_attempt_at, claim_until)) FROM outbox_lane WHERE pending > 0")
        }
    }

    public func outboxStats() async throws -> [OutboxLaneStats] {
        try await read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT l.job_id, l.sink, l.pending, l.attempts, l.next_attempt_at, l.last_error,
                      (SELECT i.found_at FROM outbox_pending p JOIN outbox_item i ON i.seq = p.seq
                       WHERE p.job_id = l.job_id AND p.sink = l.sink ORDER BY p.seq LIMIT 1),
                      l.delivered_total, l.retried_total, l.dead_total
                    FROM outbox_lane l ORDER BY l.job_id, l.sink
                    """
            ).map {
                OutboxLaneStats(
                    jobID: $0[0], sink: $0[1], pending: $0[2], attempts: $0[3], nextAttemptAtMs: $0[4],
                    lastError: $0[5],
                    oldestFoundAtMs: $0[6], delivered: $0[7], retried: $0[8], deadLettered: $0[9])
            }
        }
    }

    public func forgetSeen(jobID: String) async throws -> Int {
        try await write { db in
            try db.execute(sql: "DELETE FROM dedup_key WHERE job_id = ?", arguments: [jobID])
            return db.changesCount
        }
    }

    public func deadLetters(jobID: String?, limit: Int) async throws -> [DeadLetter] {
        try await read { db in
            if let jobID {
                return try Row.fetchAll(
                    db,
                    sql:
                        "SELECT \(OutboxSQL.deadLetterColumns) FROM dead_letter WHERE job_id = ? ORDER BY id DESC LIMIT ?",
                    arguments: [jobID, limit]
                ).map(OutboxSQL.deadLetter)
            }
            return try Row.fetchAll(
                db, sql: "SELECT \(OutboxSQL.deadLetterColumns) FROM dead_letter ORDER BY id DESC LIMIT ?",
                arguments: [limit]
            ).map(OutboxSQL.deadLetter)
        }
    }

    public func deadLetter(id: Int64) async throws -> DeadLetter? {
        try await read { db in
            try Row.fetchOne(
                db, sql: "SELECT \(OutboxSQL.deadLetterColumns) FROM dead_letter WHERE id = ?", arguments: [id]
            ).map(OutboxSQL.deadLetter)
        }
    }

    public func replayDeadLetters(_ selection: DeadLetterSelection, nowMs: Int64) async throws -> Int {
        try await write { db in try OutboxSQL.replay(selection, nowMs: nowMs, db) }
    }

    public func dropDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        try await write { db in
            let (w, args) = OutboxSQL.condition(selection)
            try db.execute(sql: "DELETE FROM dead_letter WHERE \(w)", arguments: args)
            return db.changesCount
        }
    }

    public func reclaimLaneClaims(on host: HostProcesses, nowMs: Int64) async throws -> Int {
        let now = expiryNow(nowMs)
        return try await write { db in
            let holders = try String.fetchAll(
                db,
                sql: """
                    SELECT DISTINCT claimed_by FROM outbox_lane
                    WHERE claim_until > ? AND claimed_by >= ? AND claimed_by < ?
                    """,
                arguments: [now, host.host + ":", host.host + ";"])
            var n = 0
            for h in holders where host.isAbandoned(h) {
                try db.execute(
                    sql: "UPDATE outbox_lane SET claim_until = 0 WHERE claimed_by = ? AND claim_until > ?",
                    arguments: [h, now])
                n += db.changesCount
            }
            return n
        }
    }
}
