import GRDB
import PollerdCore

/// The outbox's SQL, run inside the store's write transactions.
///
/// Tables: `outbox_item` holds each item's envelope once, with the number of sinks still to
/// take it; `outbox_pending` lists (job, sink, item) rows not yet acknowledged; `outbox_lane`
/// holds one row per job and sink with its retry state and claim; `dedup_key` is each job's
/// window of recent item keys; `dead_letter` keeps what a sink would not take.
enum OutboxSQL {
    static let migration = """
        ALTER TABLE poll_state ADD COLUMN outbox_backlog INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE outbox_item (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          job_id TEXT NOT NULL,
          item_key TEXT NOT NULL,
          envelope TEXT NOT NULL,
          found_at INTEGER NOT NULL,
          remaining INTEGER NOT NULL
        );
        CREATE TABLE outbox_pending (
          job_id TEXT NOT NULL,
          sink TEXT NOT NULL,
          seq INTEGER NOT NULL,
          PRIMARY KEY (job_id, sink, seq)
        ) WITHOUT ROWID;
        CREATE TABLE outbox_lane (
          job_id TEXT NOT NULL,
          sink TEXT NOT NULL,
          pending INTEGER NOT NULL DEFAULT 0,
          attempts INTEGER NOT NULL DEFAULT 0,
          next_attempt_at INTEGER NOT NULL DEFAULT 0,
          last_error TEXT,
          claimed_by TEXT,
          claim_token INTEGER NOT NULL DEFAULT 0,
          claim_until INTEGER NOT NULL DEFAULT 0,
          delivered_total INTEGER NOT NULL DEFAULT 0,
          retried_total INTEGER NOT NULL DEFAULT 0,
          dead_total INTEGER NOT NULL DEFAULT 0,
          PRIMARY KEY (job_id, sink)
        );
        CREATE INDEX outbox_lane_due ON outbox_lane(next_attempt_at) WHERE pending > 0;
        CREATE TABLE dedup_key (
          job_id TEXT NOT NULL,
          item_key TEXT NOT NULL,
          seq INTEGER NOT NULL,
          PRIMARY KEY (job_id, item_key)
        ) WITHOUT ROWID;
        CREATE INDEX dedup_key_seq ON dedup_key(job_id, seq);
        CREATE TABLE dead_letter (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          job_id TEXT NOT NULL,
          sink TEXT NOT NULL,
          item_key TEXT NOT NULL,
          envelope TEXT NOT NULL,
          attempts INTEGER NOT NULL,
          last_error TEXT NOT NULL,
          found_at INTEGER NOT NULL,
          failed_at INTEGER NOT NULL
        );
        CREATE INDEX dead_letter_job ON dead_letter(job_id, id);
        """

    /// Queues a committed tick's items for each sink; items whose key is in the job's dedup
    /// window are left out. Returns how many items were queued.
    @discardableResult
    static func enqueue(_ batch: OutboxBatch, jobID: String, nowMs: Int64, _ db: Database) throws -> Int {
        guard !batch.sinks.isEmpty, !batch.entries.isEmpty else { return 0 }
        let seen = try db.cachedStatement(sql: "SELECT 1 FROM dedup_key WHERE job_id = ? AND item_key = ?")
        let remember = try db.cachedStatement(sql: "INSERT INTO dedup_key (job_id, item_key, seq) VALUES (?, ?, ?)")
        let insertItem = try db.cachedStatement(
            sql: "INSERT INTO outbox_item (job_id, item_key, envelope, found_at, remaining) VALUES (?, ?, ?, ?, ?)")
        let insertPending = try db.cachedStatement(
            sql: "INSERT INTO outbox_pending (job_id, sink, seq) VALUES (?, ?, ?)")
        let dedup = batch.dedupWindow > 0
        var queued = 0
        for e in batch.entries {
            if dedup, try Bool.fetchOne(seen, arguments: [jobID, e.key]) != nil { continue }
            try insertItem.execute(arguments: [jobID, e.key, e.envelope, batch.foundAtMs, batch.sinks.count])
            let seq = db.lastInsertedRowID
            if dedup { try remember.execute(arguments: [jobID, e.key, seq]) }
            for sink in batch.sinks { try insertPending.execute(arguments: [jobID, sink, seq]) }
            queued += 1
        }
        guard queued > 0 else { return 0 }
        // The lane records the definition its newest items were queued under: a deliverer whose
        // job file defines the sink otherwise does not claim it.
        let lane = try db.cachedStatement(
            sql: """
                INSERT INTO outbox_lane (job_id, sink, pending, next_attempt_at, sink_fp) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (job_id, sink) DO UPDATE SET pending = pending + excluded.pending,
                  sink_fp = COALESCE(excluded.sink_fp, sink_fp)
                """)
        for (i, sink) in batch.sinks.enumerated() {
            let fp: String? = i < batch.sinkFingerprints.count ? batch.sinkFingerprints[i] : nil
            try lane.execute(arguments: [jobID, sink, queued, nowMs, fp])
        }
        try addBacklog(queued, jobID: jobID, db)
        if dedup {
            // Keep the newest `dedupWindow` keys of the job.
            try db.cachedStatement(
                sql: """
                    DELETE FROM dedup_key WHERE job_id = ? AND seq < (
                      SELECT seq FROM dedup_key WHERE job_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)
                    """
            ).execute(arguments: [jobID, jobID, batch.dedupWindow - 1])
        }
        return queued
    }

    /// Items of the job not yet delivered to every sink: a row of its own per job, apart from the
    /// job's state row, which claims and commits write.
    static let backlogTable = """
        CREATE TABLE outbox_backlog (
          job_id TEXT PRIMARY KEY NOT NULL,
          items INTEGER NOT NULL
        ) WITHOUT ROWID
        """

    /// The backlog of a job, as `JobStateRow.outboxBacklog` reads it beside its state row.
    static let backlogColumn =
        "COALESCE((SELECT items FROM outbox_backlog b WHERE b.job_id = poll_state.job_id), 0) AS outbox_backlog"

    static func addBacklog(_ n: Int, jobID: String, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO outbox_backlog (job_id, items) VALUES (?, ?)
                ON CONFLICT (job_id) DO UPDATE SET items = items + excluded.items
                """
        ).execute(arguments: [jobID, n])
    }

    /// The lanes each holder on this connection serves: a temporary table of the writer's own,
    /// which no other daemon sees and which goes with the connection.
    static let servedSinksTable = """
        CREATE TEMP TABLE IF NOT EXISTS served_sink (
          holder TEXT NOT NULL, job_id TEXT NOT NULL, sink TEXT NOT NULL, fingerprint TEXT NOT NULL,
          PRIMARY KEY (holder, job_id, sink)
        ) WITHOUT ROWID
        """

    static func serve(holder: String, _ sinks: [ServedSink], _ db: Database) throws {
        try db.execute(sql: "DELETE FROM temp.served_sink WHERE holder = ?", arguments: [holder])
        let add = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO temp.served_sink (holder, job_id, sink, fingerprint) VALUES (?, ?, ?, ?)")
        for s in sinks { try add.execute(arguments: [holder, s.jobID, s.sink, s.fingerprint]) }
    }

    /// Claims due lanes: due by `dueMs` (the caller's clock, as the settles that set the next
    /// attempts), free and claimed by `claimNowMs` (the clock that decides expiry).
    static func claim(
        holder: String, dueMs: Int64, claimNowMs: Int64, claimMs: Int64, limit: Int, batchSize: Int, _ db: Database
    ) throws -> [ClaimedLane] {
        // The lanes, then each one's first items, in the claim's own transaction: the writer
        // has the pages the ticks just wrote in its cache.
        let lanes = try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    UPDATE outbox_lane SET claimed_by = ?, claim_token = claim_token + 1, claim_until = ?
                    WHERE rowid IN (
                      SELECT l.rowid FROM outbox_lane l
                      WHERE l.pending > 0 AND l.next_attempt_at <= ? AND l.claim_until <= ?
                        AND EXISTS (
                          SELECT 1 FROM temp.served_sink s
                          WHERE s.holder = ? AND s.job_id = l.job_id AND s.sink = l.sink
                            AND (l.sink_fp IS NULL OR s.fingerprint = l.sink_fp))
                      ORDER BY l.next_attempt_at LIMIT ?)
                    RETURNING job_id, sink, claim_token, attempts
                    """), arguments: [holder, claimNowMs + claimMs, dueMs, claimNowMs, holder, limit]
        ).map {
            OutboxLane(jobID: $0[0], sink: $0[1], token: $0[2], attempts: $0[3])
        }
        return try lanes.map { ClaimedLane(lane: $0, items: try items($0, limit: max(1, batchSize), db)) }
    }

    static let maxBatchBytes = ClaimedLane.maxBatchBytes

    /// A lane's first items, oldest first: up to `limit`, and no more once `maxBatchBytes` of
    /// envelopes are read (at least one item, however large). Read row by row, so a lane of large
    /// items is never read whole.
    static func items(_ lane: OutboxLane, limit: Int, _ db: Database) throws -> [OutboxRecord] {
        let rows = try Row.fetchCursor(
            db.cachedStatement(
                sql: """
                    SELECT p.seq, i.item_key, i.envelope, i.found_at
                    FROM outbox_pending p JOIN outbox_item i ON i.seq = p.seq
                    WHERE p.job_id = ? AND p.sink = ? ORDER BY p.seq LIMIT ?
                    """), arguments: [lane.jobID, lane.sink, limit])
        var out: [OutboxRecord] = []
        out.reserveCapacity(min(limit, 1024))
        var bytes = 0
        while bytes < maxBatchBytes, let r = try rows.next() {
            let envelope: String = r[2]
            bytes += envelope.utf8.count
            out.append(OutboxRecord(seq: r[0], key: r[1], envelope: envelope, foundAtMs: r[3]))
        }
        return out
    }

    /// Removes (job, sink, item) pending rows; drops items no sink waits for any more and
    /// lowers the job's backlog by their number. Set-based: one statement per step for a batch.
    /// Returns how many rows were pending.
    static func release(jobID: String, sink: String, seqs: [Int64], _ db: Database) throws -> Int64 {
        guard !seqs.isEmpty else { return 0 }
        let list = "[" + seqs.map(String.init).joined(separator: ",") + "]"
        let released = try Int64.fetchAll(
            db.cachedStatement(
                sql: """
                    DELETE FROM outbox_pending WHERE job_id = ? AND sink = ? AND seq IN (SELECT value FROM json_each(?)) RETURNING seq
                    """), arguments: [jobID, sink, list])
        guard !released.isEmpty else { return 0 }
        let releasedList =
            released.count == seqs.count ? list : "[" + released.map(String.init).joined(separator: ",") + "]"
        // An item this was the last sink of goes; the others wait for one sink fewer. (Deleting
        // first spares rewriting a row that is about to go: most items have one sink.)
        try db.cachedStatement(
            sql: "DELETE FROM outbox_item WHERE seq IN (SELECT value FROM json_each(?)) AND remaining <= 1"
        )
        .execute(arguments: [releasedList])
        let gone = db.changesCount
        if gone < released.count {
            try db.cachedStatement(
                sql: "UPDATE outbox_item SET remaining = remaining - 1 WHERE seq IN (SELECT value FROM json_each(?))"
            )
            .execute(arguments: [releasedList])
        }
        if gone > 0 {
            try db.cachedStatement(sql: "UPDATE outbox_backlog SET items = MAX(items - ?, 0) WHERE job_id = ?")
                .execute(arguments: [gone, jobID])
        }
        return Int64(released.count)
    }

    static func settle(
        _ lane: OutboxLane, holder: String, _ s: LaneSettlement, nowMs: Int64, _ db: Database
    ) throws -> Bool {
        guard
            try Bool.fetchOne(
                db.cachedStatement(
                    sql:
                        "SELECT 1 FROM outbox_lane WHERE job_id = ? AND sink = ? AND claimed_by = ? AND claim_token = ?"
                ),
                arguments: [lane.jobID, lane.sink, holder, lane.token]) != nil
        else { return false }
        var released = try release(jobID: lane.jobID, sink: lane.sink, seqs: s.acked, db)
        let o = s.outcome(laneAttempts: lane.attempts, nowMs: nowMs)
        var dead: Int64 = 0
        if o.deadLetter {
            // The head: the first pending item after the acked ones.
            if let head = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT p.seq, i.item_key, i.envelope, i.found_at FROM outbox_pending p JOIN outbox_item i ON i.seq = p.seq
                        WHERE p.job_id = ? AND p.sink = ? ORDER BY p.seq LIMIT 1
                        """), arguments: [lane.jobID, lane.sink])
            {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO dead_letter (job_id, sink, item_key, envelope, attempts, last_error, found_at, failed_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """
                ).execute(arguments: [
                    lane.jobID, lane.sink, head[1] as String, head[2] as String, o.deadLetterAttempts, o.lastError,
                    head[3] as Int64, nowMs,
                ])
                if try release(jobID: lane.jobID, sink: lane.sink, seqs: [head[0]], db) == 1 {
                    released += 1
                    dead = 1
                }
            }
        }
        try db.cachedStatement(
            sql: """
                UPDATE outbox_lane SET pending = MAX(pending - ?, 0), attempts = ?, next_attempt_at = ?, last_error = ?,
                  claim_until = 0, delivered_total = delivered_total + ?, retried_total = retried_total + ?, dead_total = dead_total + ?
                WHERE job_id = ? AND sink = ?
                """
        ).execute(arguments: [
            released, o.attempts, o.nextAttemptAtMs, o.lastError, Int64(s.acked.count), o.retried ? 1 : 0, dead,
            lane.jobID, lane.sink,
        ])
        if o.recount {
            // Nothing was handed over although the lane counted items: trust the rows.
            try db.cachedStatement(
                sql:
                    "UPDATE outbox_lane SET pending = (SELECT COUNT(*) FROM outbox_pending WHERE job_id = ? AND sink = ?) WHERE job_id = ? AND sink = ?"
            )
            .execute(arguments: [lane.jobID, lane.sink, lane.jobID, lane.sink])
        }
        return true
    }

    static func condition(_ sel: DeadLetterSelection) -> (String, StatementArguments) {
        switch sel {
        case .all: return ("1", [])
        case .job(let j): return ("job_id = ?", [j])
        case .ids(let ids): return ("id IN (\(ids.map { _ in "?" }.joined(separator: ",")))", StatementArguments(ids))
        }
    }

    static func replay(_ sel: DeadLetterSelection, nowMs: Int64, _ db: Database) throws -> Int {
        let (w, args) = condition(sel)
        let rows = try Row.fetchAll(
            db, sql: "SELECT id, job_id, sink, item_key, envelope, found_at FROM dead_letter WHERE \(w) ORDER BY id",
            arguments: args)
        for r in rows {
            let jobID: String = r[1]
            let sink: String = r[2]
            try db.execute(
                sql: "INSERT INTO outbox_item (job_id, item_key, envelope, found_at, remaining) VALUES (?, ?, ?, ?, 1)",
                arguments: [jobID, r[3] as String, r[4] as String, r[5] as Int64])
            let seq = db.lastInsertedRowID
            try db.execute(
                sql: "INSERT INTO outbox_pending (job_id, sink, seq) VALUES (?, ?, ?)", arguments: [jobID, sink, seq])
            try db.execute(
                sql: """
                    INSERT INTO outbox_lane (job_id, sink, pending, next_attempt_at) VALUES (?, ?, 1, ?)
                    ON CONFLICT (job_id, sink) DO UPDATE SET pending = pending + 1
                    """, arguments: [jobID, sink, nowMs])
            try addBacklog(1, jobID: jobID, db)
            try db.execute(sql: "DELETE FROM dead_letter WHERE id = ?", arguments: [r[0] as Int64])
        }
        return rows.count
    }

    static func deadLetter(_ r: Row) -> DeadLetter {
        DeadLetter(
            id: r[0], jobID: r[1], sink: r[2], key: r[3], envelope: r[4], attempts: r[5], lastError: r[6],
            foundAtMs: r[7], failedAtMs: r[8])
    }
    static let deadLetterColumns = "id, job_id, sink, item_key, envelope, attempts, last_error, found_at, failed_at"
}
