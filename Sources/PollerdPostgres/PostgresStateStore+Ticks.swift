import Foundation
import PollerdCore
import PostgresNIO

/// Claims and commits: each batch is one statement.
extension PostgresStateStore {
    /// A batch claim in one statement. Each requested row is locked with `FOR UPDATE SKIP LOCKED`
    /// and then judged on its latest version: a row another transaction holds (a commit or a claim
    /// in flight) is passed over and answered `.busy`, never waited for. The grants take the lease
    /// (token + 1, expiry on the store's clock); a job refused for its backlog says so in its row,
    /// where `jobs list` looks.
    func acquireLeases(_ requests: [LeaseRequest], holder: String, nowMs: Int64) async throws -> [LeaseAcquisition] {
        guard !requests.isEmpty else { return [] }
        // A job asked twice is asked in a batch of its own, in order, as alone.
        var answers = [LeaseAcquisition](repeating: .busy, count: requests.count)
        for b in Self.runsWithoutRepeats(requests.map(\.jobID)) {
            let part = b.map { requests[$0] }
            for (i, a) in zip(b, try await claim(part, holder: holder, nowMs: nowMs)) { answers[i] = a }
        }
        return answers
    }

    /// The positions of `jobIDs`, cut into consecutive runs in which no job comes twice: one
    /// statement cannot claim or commit a job twice, so a repeat starts a run of its own.
    static func runsWithoutRepeats(_ jobIDs: [String]) -> [[Int]] {
        var runs: [[Int]] = [[]]
        var inRun: Set<String> = []
        for (i, id) in jobIDs.enumerated() {
            if inRun.contains(id) {
                runs.append([])
                inRun = []
            }
            runs[runs.count - 1].append(i)
            inRun.insert(id)
        }
        return runs
    }

    private func claim(_ requests: [LeaseRequest], holder: String, nowMs: Int64) async throws -> [LeaseAcquisition] {
        let ids = requests.map(\.jobID)
        let slots = requests.map { $0.slotMs ?? 0 }
        let hasSlot = requests.map { $0.slotMs != nil }
        let bounds = requests.map { $0.maxBacklog ?? 0 }
        let hasBound = requests.map { $0.maxBacklog != nil }
        var binds = PostgresBindings(capacity: 8)
        binds.append(ids)
        binds.append(requests.map(\.ttlMs))
        binds.append(slots)
        binds.append(hasSlot)
        binds.append(bounds)
        binds.append(hasBound)
        binds.append(holder)
        binds.append(time == .store ? nil : nowMs)
        let result = try await rows(PostgresQuery(unsafeSQL: Self.claimSQL, binds: binds))
        guard result.count == requests.count else {
            throw StoreContractViolation(
                call: "acquireLeases", detail: "\(result.count) rows for \(requests.count) requests")
        }
        return try zip(requests, result).map { req, row in
            let r = row.makeRandomAccess()
            if let token = try r[3].decode(Int64?.self) {
                return .granted(
                    LeaseGrant(
                        jobID: req.jobID, holder: holder, token: token, untilMs: try r[4].decode(Int64.self),
                        cursor: try r[5].decode(Data?.self), consecutiveErrors: try r[6].decode(Int.self),
                        lastAlertAtMs: try r[7].decode(Int64?.self)))
            }
            guard try r[2].decode(Bool.self) else { return .paused(reason: "job has no state row (not registered)") }
            guard try r[1].decode(Bool.self) else { return .busy }
            if try r[8].decode(Bool.self) { return .paused(reason: try r[9].decode(String?.self)) }
            if try r[10].decode(Bool.self) { return .done }
            if let slot = req.slotMs, let planned = try r[11].decode(Int64?.self), planned > slot {
                return .notDue(untilMs: planned)
            }
            let backlog = try r[14].decode(Int64.self)
            if let bound = req.maxBacklog, backlog >= bound { return .backlogged(pending: backlog, limit: bound) }
            return .held(by: try r[12].decode(String?.self) ?? "?", untilMs: try r[13].decode(Int64.self))
        }
    }

    /// The claim statement. $1 job ids, $2 lease TTLs (ms), $3 slots and $4 whether each has one,
    /// $5 backlog bounds and $6 whether each has one, $7 the holder, $8 the caller's instant (ms;
    /// null: the database's clock decides expiries). One row per request, in order.
    static let claimSQL = """
            WITH req AS (
              SELECT job_id, ttl, CASE WHEN has_slot THEN slot END AS slot,
                CASE WHEN has_bound THEN bound END AS max_backlog, ord
              FROM unnest($1::text[], $2::int8[], $3::int8[], $4::bool[], $5::int8[],
                $6::bool[]) WITH ORDINALITY AS r(job_id, ttl, slot, has_slot, bound, has_bound, ord)),
            lk AS (
              SELECT p.job_id, p.paused, p.paused_reason, p.done, p.next_run_at, p.lease_holder, p.lease_until,
                p.cursor, p.consecutive_errors, p.last_alert_at
              FROM poll_state p WHERE p.job_id = ANY($1::text[]) FOR UPDATE SKIP LOCKED),
            ev AS (
              SELECT lk.*, req.ttl, req.slot, req.max_backlog, req.ord,
                COALESCE((SELECT max(l.pending) FROM outbox_lane l WHERE l.job_id = lk.job_id), 0) AS backlog,
                NOT lk.paused AND NOT lk.done
                  AND (req.slot IS NULL OR lk.next_run_at IS NULL OR lk.next_run_at <= req.slot) AS runnable
              FROM lk JOIN req ON req.job_id = lk.job_id),
            el AS (
              SELECT * FROM ev WHERE runnable AND (max_backlog IS NULL OR backlog < max_backlog)
                AND (lease_until <= COALESCE($8::int8, (floor(extract(epoch FROM now()) * 1000))::int8) OR lease_holder = $7::text)),
            granted AS (
              UPDATE poll_state p SET lease_holder = $7::text, lease_token = p.lease_token + 1,
                lease_until = COALESCE($8::int8, (floor(extract(epoch FROM now()) * 1000))::int8) + el.ttl
              FROM el WHERE p.job_id = el.job_id
              RETURNING p.job_id, p.lease_token, p.lease_until),
            bp AS (
              UPDATE poll_state p SET last_status = 'backpressure',
                last_error = ev.backlog || ' undelivered items (limit ' || ev.max_backlog || '); ticks wait until the outbox drains'
              FROM ev WHERE p.job_id = ev.job_id AND ev.runnable AND ev.max_backlog IS NOT NULL
                AND ev.backlog >= ev.max_backlog
              RETURNING p.job_id)
            SELECT req.ord, (ev.job_id IS NOT NULL), EXISTS (SELECT 1 FROM poll_state s WHERE s.job_id = req.job_id),
              g.lease_token, g.lease_until, ev.cursor, ev.consecutive_errors, ev.last_alert_at, ev.paused,
              ev.paused_reason, ev.done, ev.next_run_at, ev.lease_holder, ev.lease_until, ev.backlog
            FROM req LEFT JOIN ev ON ev.ord = req.ord LEFT JOIN granted g ON g.job_id = req.job_id
            ORDER BY req.ord
        """

    /// A batch commit in one statement: the fenced state update (holder and token in its `WHERE`),
    /// and for the ticks it committed, their history rows (each job's history trimmed to its limit),
    /// their outbox items (less those the job's dedup window remembers) with their pending rows,
    /// lanes and dedup keys (the window trimmed), and their alerts. Lane rows are locked in
    /// (job, sink) order, as a settle locks them, so the two cannot deadlock on them.
    func commit(_ ticks: [TickCommit], nowMs: Int64) async throws -> [Int64?] {
        guard !ticks.isEmpty else { return [] }
        // A job twice in one batch: the second commits in a statement of its own (its token
        // cannot hold after the first, and the answer says so).
        var out = [Int64?](repeating: nil, count: ticks.count)
        for b in Self.runsWithoutRepeats(ticks.map(\.lease.jobID)) {
            for (i, a) in zip(b, try await commitBatch(b.map { ticks[$0] }, nowMs: nowMs)) { out[i] = a }
        }
        return out
    }

    /// The commit statement. $1 the ticks, $2 their outbox batches (items and alerts), $3 the
    /// batches' sinks, $4 their items, each a JSON array of objects (`jsonb_to_recordset`); $5 the
    /// caller's instant (ms), which stamps what it records. One row per tick, in order.
    static let commitSQL = """
            WITH c AS (
              SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(i int4, job_id text, holder text,
                token int8, cursor text, started_at int8, next_run_at int8, status text, error text, duration_ms int8,
                consecutive_errors int4, items_seen int8, items_dispatched int8, pause bool, paused_reason text,
                done bool, alert_at int8, schedule_fp text, keep int4, slot_at int8, items_found int8,
                hist_cursor text, cursor_changed bool, has_sinks bool)),
            done AS (
              UPDATE poll_state p SET
                cursor = COALESCE(decode(c.cursor, 'base64'), p.cursor), last_run_at = c.started_at,
                next_run_at = c.next_run_at, last_status = c.status, last_error = c.error,
                last_duration_ms = c.duration_ms, consecutive_errors = c.consecutive_errors,
                ticks_total = p.ticks_total + 1, items_seen_total = p.items_seen_total + c.items_seen,
                items_dispatched_total = p.items_dispatched_total + c.items_dispatched,
                paused = p.paused OR c.pause,
                paused_reason = CASE WHEN c.pause THEN c.paused_reason ELSE p.paused_reason END,
                paused_at = CASE WHEN c.pause THEN $5::int8 ELSE p.paused_at END,
                done = p.done OR c.done, last_alert_at = COALESCE(c.alert_at, p.last_alert_at),
                last_ok_at = CASE WHEN c.status = 'ok' THEN c.started_at ELSE p.last_ok_at END,
                schedule_fp = c.schedule_fp, updated_at = $5::int8, lease_until = 0
              FROM c WHERE p.job_id = c.job_id AND p.lease_holder = c.holder AND p.lease_token = c.token
              RETURNING c.i),
            units AS (
              SELECT un.* FROM jsonb_to_recordset($2::jsonb)
                AS un(u int4, i int4, alert bool, win int4, found_at int8)
              JOIN done ON done.i = un.i),
            sinks AS (
              SELECT * FROM jsonb_to_recordset($3::jsonb) AS s(u int4, sink text, fp text)),
            fresh AS (
              SELECT it.u, it.ord, it.key, it.envelope, un.win, un.found_at, c.job_id,
                (SELECT count(*) FROM sinks s WHERE s.u = it.u)::int4 AS nsinks
              FROM jsonb_to_recordset($4::jsonb) AS it(u int4, ord int4, key text, envelope text)
              JOIN units un ON un.u = it.u JOIN c ON c.i = un.i
              WHERE un.win = 0 OR NOT EXISTS (
                SELECT 1 FROM dedup_key d WHERE d.job_id = c.job_id AND d.item_key = it.key)),
            firsts AS (
              SELECT * FROM fresh WHERE win = 0
              UNION ALL
              (SELECT DISTINCT ON (u, key) * FROM fresh WHERE win > 0 ORDER BY u, key, ord)),
            q AS (
              SELECT nextval(pg_get_serial_sequence('outbox_item', 'seq')) AS seq, f.*
              FROM (SELECT * FROM firsts ORDER BY u, ord) f),
            ins AS (
              INSERT INTO outbox_item (seq, job_id, item_key, envelope, found_at, remaining)
              SELECT seq, job_id, key, envelope, found_at, nsinks FROM q),
            pend AS (
              INSERT INTO outbox_pending (job_id, sink, seq)
              SELECT q.job_id, s.sink, q.seq FROM q JOIN sinks s ON s.u = q.u),
            cnt AS (SELECT u, job_id, count(*)::int8 AS n FROM q GROUP BY u, job_id),
            lanes AS (
              INSERT INTO outbox_lane (job_id, sink, pending, next_attempt_at, sink_fp)
              SELECT cnt.job_id, s.sink, sum(cnt.n), $5::int8, (array_agg(s.fp ORDER BY cnt.u))[1]
              FROM cnt JOIN sinks s ON s.u = cnt.u GROUP BY cnt.job_id, s.sink ORDER BY cnt.job_id, s.sink
              ON CONFLICT (job_id, sink) DO UPDATE SET pending = outbox_lane.pending + excluded.pending,
                sink_fp = COALESCE(excluded.sink_fp, outbox_lane.sink_fp)),
            keys AS (
              SELECT job_id, key, seq, win FROM (
                SELECT q.*, row_number() OVER (PARTITION BY q.job_id ORDER BY q.seq DESC) AS rn FROM q WHERE q.win > 0) z
              WHERE rn <= win),
            remember AS (
              INSERT INTO dedup_key (job_id, item_key, seq)
              SELECT DISTINCT ON (job_id, key) job_id, key, seq FROM keys ORDER BY job_id, key, seq DESC
              ON CONFLICT (job_id, item_key) DO UPDATE SET seq = excluded.seq),
            forget AS (
              DELETE FROM dedup_key d USING (SELECT job_id, max(win) - count(*) AS keep FROM keys GROUP BY job_id) k
              WHERE d.job_id = k.job_id AND d.seq <= COALESCE((
                SELECT y.seq FROM dedup_key y WHERE y.job_id = k.job_id ORDER BY y.seq DESC
                OFFSET greatest(k.keep, 0) LIMIT 1), -1)),
            queued AS (
              SELECT un.i, COALESCE(sum(cnt.n), 0)::int8 AS n FROM units un LEFT JOIN cnt ON cnt.u = un.u
              WHERE NOT un.alert GROUP BY un.i),
            hist AS (
              INSERT INTO tick_log (job_id, keep, \(historyFields))
              SELECT c.job_id, c.keep, c.token, c.slot_at, c.started_at, c.duration_ms, c.status, c.error, c.items_found,
                CASE WHEN c.has_sinks THEN COALESCE(queued.n, 0) ELSE c.items_found END,
                greatest(0, c.items_found - CASE WHEN c.has_sinks THEN COALESCE(queued.n, 0) ELSE c.items_found END),
                decode(c.hist_cursor, 'base64'), c.cursor_changed, c.holder
              FROM c JOIN done ON done.i = c.i LEFT JOIN queued ON queued.i = c.i
              WHERE c.keep > 0 ORDER BY c.i),
            trim AS (
              \(trimHistorySQL("(SELECT c.job_id, c.keep - 1 AS keep FROM c JOIN done ON done.i = c.i WHERE c.keep > 0)"))),
            -- Deliverers everywhere hear of the new items when the statement commits.
            notified AS (SELECT pg_notify('pollerd_outbox', '') FROM (SELECT 1 FROM q LIMIT 1) any_item)
            SELECT c.i, done.i IS NOT NULL,
              CASE WHEN c.has_sinks THEN COALESCE(queued.n, 0) ELSE c.items_found END
            FROM c LEFT JOIN done ON done.i = c.i LEFT JOIN queued ON queued.i = c.i
              CROSS JOIN (SELECT count(*) FROM notified) n
            ORDER BY c.i
        """

    private struct CommitRow: Encodable {
        var i: Int
        var jobID: String
        var holder: String
        var token: Int64
        var cursor: Data?
        var startedAt: Int64
        var nextRunAt: Int64?
        var status: String
        var error: String?
        var durationMs: Int64
        var consecutiveErrors: Int
        var itemsSeen: Int64
        var itemsDispatched: Int64
        var pause: Bool
        var pausedReason: String?
        var done: Bool
        var alertAt: Int64?
        var scheduleFp: String
        var keep: Int
        var slotAt: Int64?
        var itemsFound: Int64
        var histCursor: Data?
        var cursorChanged: Bool
        var hasSinks: Bool
    }

    /// An outbox batch of a tick (its items, or its alert).
    private struct UnitRow: Encodable {
        var u: Int
        var i: Int
        var alert: Bool
        var win: Int
        var foundAt: Int64
    }

    private struct ItemRow: Encodable {
        var u: Int
        var ord: Int
        var key: String
        var envelope: String
    }

    private struct SinkRow: Encodable {
        var u: Int
        var sink: String
        var fp: String?
    }

    private func commitBatch(_ ticks: [TickCommit], nowMs: Int64) async throws -> [Int64?] {
        var commits: [CommitRow] = []
        var units: [UnitRow] = []
        var items: [ItemRow] = []
        var sinks: [SinkRow] = []
        for (i, c) in ticks.enumerated() {
            let changed = c.newCursor != nil && c.newCursor != c.lease.cursor
            commits.append(
                CommitRow(
                    i: i, jobID: c.lease.jobID, holder: c.lease.holder, token: c.lease.token, cursor: c.newCursor,
                    startedAt: c.startedAtMs, nextRunAt: c.nextRunAtMs, status: c.status, error: c.error,
                    durationMs: c.durationMs, consecutiveErrors: c.consecutiveErrors, itemsSeen: c.itemsSeen,
                    itemsDispatched: c.itemsDispatched, pause: c.pause, pausedReason: c.pausedReason, done: c.done,
                    alertAt: c.alert.entries.isEmpty ? nil : c.alert.foundAtMs, scheduleFp: c.scheduleFingerprint,
                    keep: c.historyLimit, slotAt: c.slotMs, itemsFound: c.itemsFound,
                    histCursor: changed ? c.newCursor : nil, cursorChanged: changed,
                    hasSinks: !c.outbox.sinks.isEmpty))
            for (batch, alert) in [(c.outbox, false), (c.alert, true)]
            where !batch.sinks.isEmpty && !batch.entries.isEmpty {
                let u = units.count
                units.append(UnitRow(u: u, i: i, alert: alert, win: batch.dedupWindow, foundAt: batch.foundAtMs))
                for (ord, e) in batch.entries.enumerated() {
                    items.append(ItemRow(u: u, ord: ord, key: e.key, envelope: e.envelope))
                }
                for (k, sink) in batch.sinks.enumerated() {
                    sinks.append(
                        SinkRow(
                            u: u, sink: sink, fp: k < batch.sinkFingerprints.count ? batch.sinkFingerprints[k] : nil))
                }
            }
        }
        var binds = PostgresBindings(capacity: 5)
        binds.append(try Self.json(commits))
        binds.append(try Self.json(units))
        binds.append(try Self.json(sinks))
        binds.append(try Self.json(items))
        binds.append(nowMs)
        let result = try await rows(PostgresQuery(unsafeSQL: Self.commitSQL, binds: binds))
        guard result.count == ticks.count else {
            throw StoreContractViolation(call: "commit", detail: "\(result.count) rows for \(ticks.count) ticks")
        }
        return try result.map { row in
            let (_, committed, n) = try row.decode((Int, Bool, Int64).self)
            return committed ? n : nil
        }
    }
}
