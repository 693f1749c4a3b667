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
        // One statement: the holder's rows of lanes it no longer serves deleted, the others upserted.
        try await exec(
            """
            WITH x AS (
              SELECT DISTINCT ON (job_id, sink) * FROM unnest(\(sinks.map(\.jobID))::text[],
                \(sinks.map(\.sink))::text[], \(sinks.map(\.fingerprint))::text[]) WITH ORDINALITY AS x(job_id, sink, fp, ord)
              ORDER BY job_id, sink, ord DESC),
            gone AS (
              DELETE FROM served_sink s WHERE s.holder = \(holder)
                AND NOT EXISTS (SELECT 1 FROM x WHERE x.job_id = s.job_id AND x.sink = s.sink))
            INSERT INTO served_sink (holder, job_id, sink, fingerprint)
            SELECT \(holder), job_id, sink, fp FROM x ORDER BY job_id, sink
            ON CONFLICT (holder, job_id, sink) DO UPDATE SET fingerprint = excluded.fingerprint
            WHERE served_sink.fingerprint IS DISTINCT FROM excluded.fingerprint
            """)
    }

    /// One lane's settlement as the settle statement reads it.
    private struct LaneUpdate: Encodable {
        var i: Int
        var jobID: String
        var sink: String
        var token: Int64
        var attempts: Int
        var next: Int64
        var lastError: String?
        var acked: Int64
        var retried: Int64
        var deadLetter: Bool
        var dlAttempts: Int
        var recount: Bool
    }

    /// A batch of settlements in one statement. The lanes whose claim still holds are locked in
    /// (job, sink) order, as a commit locks them; their acknowledged items and the heads they
    /// dead-letter leave the pending rows; an item no sink waits for any more goes, the others
    /// wait for one sink fewer; each lane gets its counts, its next attempt, and its claim back.
    func settle(_ batch: [LaneSettle], holder: String, nowMs: Int64) async throws -> [Bool] {
        guard !batch.isEmpty else { return [] }
        var updates: [LaneUpdate] = []
        var ackLane: [Int32] = []
        var ackSeq: [Int64] = []
        for (i, s) in batch.enumerated() {
            let o = s.settlement.outcome(laneAttempts: s.lane.attempts, nowMs: nowMs)
            updates.append(
                LaneUpdate(
                    i: i, jobID: s.lane.jobID, sink: s.lane.sink, token: s.lane.token, attempts: o.attempts,
                    next: o.nextAttemptAtMs, lastError: o.lastError, acked: Int64(s.settlement.acked.count),
                    retried: o.retried ? 1 : 0, deadLetter: o.deadLetter, dlAttempts: o.deadLetterAttempts,
                    recount: o.recount))
            for seq in s.settlement.acked {
                ackLane.append(Int32(i))
                ackSeq.append(seq)
            }
        }
        let valid = try await rows(
            """
            WITH v AS (
              SELECT * FROM jsonb_to_recordset(\(try Self.json(updates))::jsonb) AS v(i int4, job_id text, sink text,
                token int8, attempts int4, next int8, last_error text, acked int8, retried int8, dead_letter bool,
                dl_attempts int4, recount bool)),
            valid AS (
              SELECT v.* FROM v JOIN outbox_lane l ON l.job_id = v.job_id AND l.sink = v.sink
                AND l.claimed_by = \(holder) AND l.claim_token = v.token
              ORDER BY l.job_id, l.sink
              FOR UPDATE OF l),
            ack AS (SELECT * FROM unnest(\(ackLane)::int4[], \(ackSeq)::int8[]) AS a(i, seq)),
            heads AS (
              SELECT valid.i, valid.job_id, valid.sink, valid.dl_attempts, valid.last_error, h.*
              FROM valid CROSS JOIN LATERAL (
                SELECT p.seq, it.item_key, it.envelope, it.found_at
                FROM outbox_pending p JOIN outbox_item it ON it.seq = p.seq
                WHERE p.job_id = valid.job_id AND p.sink = valid.sink
                  AND NOT (p.seq = ANY(ARRAY(SELECT ack.seq FROM ack WHERE ack.i = valid.i)))
                ORDER BY p.seq LIMIT 1) h
              WHERE valid.dead_letter),
            dead AS (
              INSERT INTO dead_letter (job_id, sink, item_key, envelope, attempts, last_error, found_at, failed_at)
              SELECT job_id, sink, item_key, envelope, dl_attempts, last_error, found_at, \(nowMs)::int8
              FROM heads ORDER BY i),
            rel AS (
              DELETE FROM outbox_pending p USING (
                SELECT valid.job_id, valid.sink, ack.seq FROM valid JOIN ack ON ack.i = valid.i
                UNION ALL SELECT job_id, sink, seq FROM heads) r
              WHERE p.job_id = r.job_id AND p.sink = r.sink AND p.seq = r.seq
              RETURNING p.job_id, p.sink, p.seq),
            per_item AS (SELECT seq, count(*) AS n FROM rel GROUP BY seq),
            gone AS (DELETE FROM outbox_item it USING per_item x WHERE it.seq = x.seq AND it.remaining <= x.n),
            fewer AS (
              UPDATE outbox_item it SET remaining = it.remaining - x.n FROM per_item x
              WHERE it.seq = x.seq AND it.remaining > x.n),
            released AS (SELECT job_id, sink, count(*) AS n FROM rel GROUP BY job_id, sink),
            lanes AS (
              UPDATE outbox_lane l SET
                pending = CASE WHEN valid.recount THEN (
                    SELECT count(*) FROM outbox_pending p WHERE p.job_id = l.job_id AND p.sink = l.sink)
                  ELSE greatest(l.pending - COALESCE(r.n, 0), 0) END,
                attempts = valid.attempts, next_attempt_at = valid.next, last_error = valid.last_error,
                claim_until = 0, delivered_total = l.delivered_total + valid.acked,
                retried_total = l.retried_total + valid.retried,
                dead_total = l.dead_total + (SELECT count(*) FROM heads h WHERE h.i = valid.i)
              FROM valid LEFT JOIN released r ON r.job_id = valid.job_id AND r.sink = valid.sink
              WHERE l.job_id = valid.job_id AND l.sink = valid.sink)
            SELECT i FROM valid
            """
        ).map { Int(try $0.decode(Int32.self)) }
        let settled = Set(valid)
        return batch.indices.map { settled.contains($0) }
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
                  SELECT job_id, sink, count(*), \(nowMs)::int8 FROM q GROUP BY job_id, sink ORDER BY job_id, sink
                  ON CONFLICT (job_id, sink) DO UPDATE SET pending = outbox_lane.pending + excluded.pending),
                notified AS (SELECT pg_notify('pollerd_outbox', '') FROM (SELECT 1 FROM q LIMIT 1) any_item)
                SELECT count(*)::int8 FROM q CROSS JOIN (SELECT count(*) FROM notified) n
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
