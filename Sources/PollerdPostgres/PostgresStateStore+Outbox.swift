import Foundation
import PollerdCore
import PostgresNIO

/// The outbox: lanes that deliverers claim (one statement with their first items) and settle
/// (one transaction per batch).
extension PostgresStateStore {
    func claimLanes(
        holder: String, nowMs: Int64, claimMs: Int64, limit: Int, batchSize: Int
    ) async throws -> [ClaimedLane] {
        guard limit > 0 else { return [] }
        let now = expiry(nowMs)
        let result = try await rows(
            """
            WITH c AS (
              SELECT l.job_id, l.sink FROM outbox_lane l
              WHERE l.pending > 0 AND l.next_attempt_at <= \(nowMs)::int8 AND l.claim_until <= \(unescaped: now)
                AND EXISTS (
                  SELECT 1 FROM served_sink s WHERE s.holder = \(holder) AND s.job_id = l.job_id AND s.sink = l.sink
                    AND (l.sink_fp IS NULL OR s.fingerprint = l.sink_fp))
              ORDER BY l.next_attempt_at LIMIT \(limit)
              FOR UPDATE OF l SKIP LOCKED),
            cl AS (
              UPDATE outbox_lane l SET claimed_by = \(holder), claim_token = l.claim_token + 1,
                claim_until = \(unescaped: now) + \(claimMs)::int8
              FROM c WHERE l.job_id = c.job_id AND l.sink = c.sink
              RETURNING l.job_id, l.sink, l.claim_token, l.attempts, l.next_attempt_at)
            SELECT cl.job_id, cl.sink, cl.claim_token, cl.attempts, it.seq, it.item_key, it.envelope, it.found_at
            FROM cl LEFT JOIN LATERAL (
              SELECT * FROM (
                SELECT z.*, sum(octet_length(z.envelope)) OVER (ORDER BY z.seq) - octet_length(z.envelope) AS before
                FROM (
                  SELECT p.seq, i.item_key, i.envelope, i.found_at
                  FROM outbox_pending p JOIN outbox_item i ON i.seq = p.seq
                  WHERE p.job_id = cl.job_id AND p.sink = cl.sink ORDER BY p.seq LIMIT \(max(1, batchSize))) z) w
              WHERE w.before < \(ClaimedLane.maxBatchBytes)) it ON true
            ORDER BY cl.next_attempt_at, cl.job_id, cl.sink, it.seq
            """)
        var out: [ClaimedLane] = []
        for row in result {
            let r = row.makeRandomAccess()
            let lane = OutboxLane(
                jobID: try r[0].decode(String.self), sink: try r[1].decode(String.self),
                token: try r[2].decode(Int64.self), attempts: try r[3].decode(Int.self))
            if out.last?.lane != lane { out.append(ClaimedLane(lane: lane, items: [])) }
            if let seq = try r[4].decode(Int64?.self) {
                out[out.count - 1].items.append(
                    OutboxRecord(
                        seq: seq, key: try r[5].decode(String.self), envelope: try r[6].decode(String.self),
                        foundAtMs: try r[7].decode(Int64.self)))
            }
        }
        return out
    }

    /// The lanes a holder serves, in a table keyed by holder: a holder id is one daemon process's
    /// own, and its rows go when it retires or when its liveness runs out (`deactivateOrphans`).
    func serveSinks(holder: String, _ sinks: [ServedSink]) async throws {
        try await transaction { conn in
            try await conn.query("DELETE FROM served_sink WHERE holder = \(holder)", logger: logger)
            guard !sinks.isEmpty else { return }
            try await conn.query(
                """
                INSERT INTO served_sink (holder, job_id, sink, fingerprint)
                SELECT \(holder), job_id, sink, fp
                FROM unnest(\(sinks.map(\.jobID))::text[], \(sinks.map(\.sink))::text[], \(sinks.map(\.fingerprint))::text[])
                  AS x(job_id, sink, fp)
                ON CONFLICT (holder, job_id, sink) DO UPDATE SET fingerprint = excluded.fingerprint
                """, logger: logger)
        }
    }

    private struct LaneUpdate: Encodable {
        var jobID: String
        var sink: String
        var released: Int64
        var attempts: Int
        var next: Int64
        var lastError: String?
        var acked: Int64
        var retried: Int64
        var dead: Int64
        var recount: Bool
    }

    func settle(_ batch: [LaneSettle], holder: String, nowMs: Int64) async throws -> [Bool] {
        guard !batch.isEmpty else { return [] }
        return try await transaction { conn in
            // The lanes whose claim still holds, locked until the transaction ends.
            let valid = Set(
                try await self.rows(
                    """
                    SELECT x.i FROM unnest(\(batch.map(\.lane.jobID))::text[], \(batch.map(\.lane.sink))::text[],
                      \(batch.map(\.lane.token))::int8[]) WITH ORDINALITY AS x(job_id, sink, token, i)
                    JOIN outbox_lane l ON l.job_id = x.job_id AND l.sink = x.sink AND l.claimed_by = \(holder)
                      AND l.claim_token = x.token
                    ORDER BY x.i
                    FOR UPDATE OF l
                    """, on: conn
                ).map { Int(try $0.decode(Int64.self)) - 1 })
            // Every acknowledged item of the valid lanes, released in one statement.
            var jobs: [String] = []
            var sinks: [String] = []
            var seqs: [Int64] = []
            for (i, s) in batch.enumerated() where valid.contains(i) {
                for seq in s.settlement.acked {
                    jobs.append(s.lane.jobID)
                    sinks.append(s.lane.sink)
                    seqs.append(seq)
                }
            }
            var released = try await self.release(jobs: jobs, sinks: sinks, seqs: seqs, conn)
            var updates: [LaneUpdate] = []
            for (i, s) in batch.enumerated() where valid.contains(i) {
                let key = LaneKey(jobID: s.lane.jobID, sink: s.lane.sink)
                var attempts = s.settlement.acked.isEmpty ? s.lane.attempts : 0
                var next = nowMs
                var lastError: String?
                var retried: Int64 = 0
                var dead: Int64 = 0
                switch s.settlement.failure {
                case nil:
                    attempts = 0
                case .retry(let at, let error)?:
                    attempts += 1
                    next = at
                    lastError = error
                    retried = 1
                case .park(let until, let reason)?:
                    next = until
                    lastError = reason
                case .deadLetter(let error)?:
                    if try await self.deadLetterHead(s.lane, attempts: attempts + 1, error: error, nowMs: nowMs, conn) {
                        released[key, default: 0] += 1
                        dead = 1
                    }
                    attempts = 0
                    lastError = error
                }
                updates.append(
                    LaneUpdate(
                        jobID: s.lane.jobID, sink: s.lane.sink, released: released[key] ?? 0, attempts: attempts,
                        next: next, lastError: lastError, acked: Int64(s.settlement.acked.count), retried: retried,
                        dead: dead, recount: s.settlement.acked.isEmpty && s.settlement.failure == nil))
            }
            if !updates.isEmpty {
                // Nothing handed over although the lane counted items (`recount`): trust the rows.
                try await conn.query(
                    """
                    UPDATE outbox_lane l SET
                      pending = CASE WHEN v.recount THEN (
                          SELECT count(*) FROM outbox_pending p WHERE p.job_id = l.job_id AND p.sink = l.sink)
                        ELSE greatest(l.pending - v.released, 0) END,
                      attempts = v.attempts, next_attempt_at = v.next, last_error = v.last_error, claim_until = 0,
                      delivered_total = l.delivered_total + v.acked, retried_total = l.retried_total + v.retried,
                      dead_total = l.dead_total + v.dead
                    FROM jsonb_to_recordset(\(try Self.json(updates))::jsonb) AS v(job_id text, sink text,
                      released int8, attempts int4, next int8, last_error text, acked int8, retried int8, dead int8,
                      recount bool)
                    WHERE l.job_id = v.job_id AND l.sink = v.sink
                    """, logger: self.logger)
            }
            return batch.indices.map { valid.contains($0) }
        }
    }

    private struct LaneKey: Hashable {
        var jobID: String
        var sink: String
    }

    /// Removes (job, sink, item) pending rows; drops the items no sink waits for any more and
    /// lowers their jobs' backlogs; returns how many rows each lane released.
    private func release(
        jobs: [String], sinks: [String], seqs: [Int64], _ conn: PostgresConnection
    ) async throws -> [LaneKey: Int64] {
        guard !seqs.isEmpty else { return [:] }
        var out: [LaneKey: Int64] = [:]
        for row in try await rows(
            """
            WITH rel AS (
              DELETE FROM outbox_pending p
              USING unnest(\(jobs)::text[], \(sinks)::text[], \(seqs)::int8[]) AS r(job_id, sink, seq)
              WHERE p.job_id = r.job_id AND p.sink = r.sink AND p.seq = r.seq
              RETURNING p.job_id, p.sink, p.seq),
            per_item AS (SELECT seq, count(*) AS n FROM rel GROUP BY seq),
            gone AS (
              DELETE FROM outbox_item i USING per_item x WHERE i.seq = x.seq AND i.remaining <= x.n
              RETURNING i.job_id),
            fewer AS (
              UPDATE outbox_item i SET remaining = i.remaining - x.n FROM per_item x
              WHERE i.seq = x.seq AND i.remaining > x.n),
            backlog AS (
              UPDATE outbox_backlog b SET items = greatest(b.items - g.n, 0)
              FROM (SELECT job_id, count(*) AS n FROM gone GROUP BY job_id) g WHERE b.job_id = g.job_id)
            SELECT job_id, sink, count(*)::int8 FROM rel GROUP BY job_id, sink
            """, on: conn)
        {
            let (job, sink, n) = try row.decode((String, String, Int64).self)
            out[LaneKey(jobID: job, sink: sink)] = n
        }
        return out
    }

    /// Moves a lane's head (its first pending item) to the dead letters; false when it has none.
    private func deadLetterHead(
        _ lane: OutboxLane, attempts: Int, error: String, nowMs: Int64, _ conn: PostgresConnection
    ) async throws -> Bool {
        guard
            let head = try await rows(
                """
                WITH h AS (
                  SELECT p.seq, i.item_key, i.envelope, i.found_at FROM outbox_pending p JOIN outbox_item i ON i.seq = p.seq
                  WHERE p.job_id = \(lane.jobID) AND p.sink = \(lane.sink) ORDER BY p.seq LIMIT 1),
                d AS (
                  INSERT INTO dead_letter (job_id, sink, item_key, envelope, attempts, last_error, found_at, failed_at)
                  SELECT \(lane.jobID), \(lane.sink), item_key, envelope, \(attempts), \(error), found_at, \(nowMs) FROM h)
                SELECT seq FROM h
                """, on: conn
            ).first
        else { return false }
        let seq = try head.decode(Int64.self)
        let released = try await release(jobs: [lane.jobID], sinks: [lane.sink], seqs: [seq], conn)
        return released.values.reduce(0, +) == 1
    }

    func nextLaneDueMs() async throws -> Int64? {
        try await rows("SELECT MIN(greatest(next_attempt_at, claim_until)) FROM outbox_lane WHERE pending > 0")
            .first.map { try $0.decode(Int64?.self) } ?? nil
    }

    func outboxStats() async throws -> [OutboxLaneStats] {
        try await rows(
            """
            SELECT l.job_id, l.sink, l.pending, l.attempts, l.next_attempt_at, l.last_error,
              (SELECT i.found_at FROM outbox_pending p JOIN outbox_item i ON i.seq = p.seq
               WHERE p.job_id = l.job_id AND p.sink = l.sink ORDER BY p.seq LIMIT 1),
              l.delivered_total, l.retried_total, l.dead_total
            FROM outbox_lane l ORDER BY l.job_id, l.sink
            """
        ).map { row in
            let r = row.makeRandomAccess()
            return OutboxLaneStats(
                jobID: try r[0].decode(String.self), sink: try r[1].decode(String.self),
                pending: try r[2].decode(Int64.self), attempts: try r[3].decode(Int.self),
                nextAttemptAtMs: try r[4].decode(Int64.self), lastError: try r[5].decode(String?.self),
                oldestFoundAtMs: try r[6].decode(Int64?.self), delivered: try r[7].decode(Int64.self),
                retried: try r[8].decode(Int64.self), deadLettered: try r[9].decode(Int64.self))
        }
    }

    func forgetSeen(jobID: String) async throws -> Int {
        try await rows("DELETE FROM dedup_key WHERE job_id = \(jobID) RETURNING 1").count
    }

    static let deadLetterColumns = "id, job_id, sink, item_key, envelope, attempts, last_error, found_at, failed_at"

    static func deadLetter(_ row: PostgresRow) throws -> DeadLetter {
        let r = row.makeRandomAccess()
        return DeadLetter(
            id: try r[0].decode(Int64.self), jobID: try r[1].decode(String.self), sink: try r[2].decode(String.self),
            key: try r[3].decode(String.self), envelope: try r[4].decode(String.self),
            attempts: try r[5].decode(Int.self), lastError: try r[6].decode(String.self),
            foundAtMs: try r[7].decode(Int64.self), failedAtMs: try r[8].decode(Int64.self))
    }

    func deadLetters(jobID: String?, limit: Int) async throws -> [DeadLetter] {
        try await rows(
            """
            SELECT \(unescaped: Self.deadLetterColumns) FROM dead_letter
            WHERE (\(jobID)::text IS NULL OR job_id = \(jobID)::text) ORDER BY id DESC LIMIT \(max(0, limit))
            """
        ).map(Self.deadLetter)
    }

    func deadLetter(id: Int64) async throws -> DeadLetter? {
        try await rows("SELECT \(unescaped: Self.deadLetterColumns) FROM dead_letter WHERE id = \(id)").first.map(
            Self.deadLetter)
    }

    /// The selection's arguments for `WHERE (all OR job_id = job OR id = ANY(ids))`.
    private static func selection(_ sel: DeadLetterSelection) -> (all: Bool, job: String?, ids: [Int64]) {
        switch sel {
        case .all: return (true, nil, [])
        case .job(let j): return (false, j, [])
        case .ids(let ids): return (false, nil, ids)
        }
    }

    func replayDeadLetters(_ selection: DeadLetterSelection, nowMs: Int64) async throws -> Int {
        let (all, job, ids) = Self.selection(selection)
        return Int(
            try await rows(
                """
                WITH d AS (
                  DELETE FROM dead_letter WHERE (\(all) OR job_id = \(job)::text OR id = ANY(\(ids)::int8[]))
                  RETURNING id, job_id, sink, item_key, envelope, found_at),
                q AS (
                  SELECT nextval(pg_get_serial_sequence('outbox_item', 'seq')) AS seq, d.*
                  FROM (SELECT * FROM d ORDER BY id) d),
                ins AS (
                  INSERT INTO outbox_item (seq, job_id, item_key, envelope, found_at, remaining)
                  SELECT seq, job_id, item_key, envelope, found_at, 1 FROM q),
                pend AS (INSERT INTO outbox_pending (job_id, sink, seq) SELECT job_id, sink, seq FROM q),
                lanes AS (
                  INSERT INTO outbox_lane (job_id, sink, pending, next_attempt_at)
                  SELECT job_id, sink, count(*), \(nowMs)::int8 FROM q GROUP BY job_id, sink
                  ON CONFLICT (job_id, sink) DO UPDATE SET pending = outbox_lane.pending + excluded.pending),
                backlog AS (
                  INSERT INTO outbox_backlog (job_id, items) SELECT job_id, count(*) FROM q GROUP BY job_id
                  ON CONFLICT (job_id) DO UPDATE SET items = outbox_backlog.items + excluded.items)
                SELECT count(*)::int8 FROM q
                """
            ).first?.decode(Int64.self) ?? 0)
    }

    func dropDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        let (all, job, ids) = Self.selection(selection)
        return try await rows(
            """
            DELETE FROM dead_letter WHERE (\(all) OR job_id = \(job)::text OR id = ANY(\(ids)::int8[])) RETURNING 1
            """
        ).count
    }

    func reclaimLaneClaims(on host: HostProcesses, nowMs: Int64) async throws -> Int {
        let now = expiry(nowMs)
        let holders = try await rows(
            """
            SELECT DISTINCT claimed_by FROM outbox_lane
            WHERE claim_until > \(unescaped: now) AND claimed_by >= \(host.host + ":") AND claimed_by < \(host.host + ";")
            """
        ).map { try $0.decode(String.self) }.filter { host.isAbandoned($0) }
        guard !holders.isEmpty else { return 0 }
        return try await rows(
            """
            UPDATE outbox_lane SET claim_until = 0
            WHERE claimed_by = ANY(\(holders)::text[]) AND claim_until > \(unescaped: now) RETURNING 1
            """
        ).count
    }
}
