import Foundation
import GRDB
import PollerdCore

/// The tick history: a log in the order rows were written, with each job's rows chained.
///
/// A history kept per job (`(job_id, seq)` order) puts each tick's row on its job's own page: at
/// 100,000 jobs every 2 s with 100 rows a job that is a random page a tick, and the writer
/// sustained 15-26k ticks a second once the history had filled (`pollerd-bench scheduler
/// --warmup-secs 230`). So rows are appended in the order they are written (`tick_log`, by
/// `pos`), which dirties a few pages at the log's end, in the same transaction as the tick's
/// commit. Each row points at its job's previous row (`prev`), and the job's state row at its
/// newest (`poll_state.hist_head`, numbered `hist_n`), so a job's rows are read by following
/// the chain.
///
/// The log is kept at `tick_history` rows for each job in the store in all (`sweepHistory`):
/// its oldest rows go, except those still among their job's newest `tick_history`. A job
/// slower than most still has those rows when the log passes them; they move to
/// `tick_log_kept`, kept by job, which `trimKeptHistory` cuts back to `tick_history` a job.
/// Only those rows are written to a page of their job's own. Rows from before the log stay in
/// `tick_log_006` until their job has `tick_history` new ones (`trimLegacyHistory`).
extension SQLiteStateStore {
    static let historyFields =
        "seq, slot_at, started_at, duration_ms, status, error, items_found, items_new, duplicates, cursor, cursor_changed, holder"

    /// A row at the log's end, numbered and chained from its job's state row, whose head
    /// already points at it (`StateRowStatement`: the state row found by the rowid the tick's
    /// claim read, or the job's id).
    static func insertHistorySQL(_ rowCondition: String) -> String {
        """
        INSERT INTO tick_log (pos, job_id, n, prev, keep, \(historyFields))
        SELECT ?, job_id, hist_n, hist_prev, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM poll_state
        WHERE \(rowCondition)job_id = ?
        """
    }
    static let historyHeadSQL = """
        UPDATE poll_state SET hist_prev = hist_head, hist_head = ?, hist_n = hist_n + 1 WHERE job_id = ?
        """

    /// Appends history rows within one write transaction: at the log's end, read once (the
    /// transaction holds the write lock, so no other writer appends meanwhile), through
    /// statements fetched once.
    struct HistoryAppender {
        private let db: Database
        private var pos: Int64?
        private var insert: StateRowStatement?

        init(_ db: Database) { self.db = db }

        /// The next row's position; `insert` moves past it.
        mutating func next() throws -> Int64 {
            if let pos { return pos }
            let end = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(pos), 0) + 1 FROM tick_log") ?? 1
            pos = end
            return end
        }

        /// Writes a row at `next()`, whose job's head already points at it. `row`: the job's
        /// state row as its claim read it.
        mutating func insert(_ t: TickRecord, keep: Int, row: Int64? = nil) throws {
            let at = try next()
            if insert == nil { insert = try StateRowStatement(db, sql: SQLiteStateStore.insertHistorySQL) }
            _ = try insert!.run(
                row: row, db,
                values: { st in
                    st.bind(at)
                    st.bind(keep)
                    st.bind(t.seq)
                    st.bind(t.slotMs)
                    st.bind(t.startedAtMs)
                    st.bind(t.durationMs)
                    st.bind(t.status)
                    st.bind(t.error)
                    st.bind(t.itemsFound)
                    st.bind(t.itemsNew)
                    st.bind(t.duplicates)
                    st.bind(t.cursor)
                    st.bind(t.cursorChanged)
                    st.bind(t.holder)
                }, key: { st in st.bind(t.jobID) })
            pos = at + 1
        }

        /// Appends a row and makes it its job's newest (a skipped slot's row; a committed
        /// tick's head moves in its commit statement). Nothing is written for a job the store
        /// has no row of.
        mutating func append(_ t: TickRecord, keep: Int) throws {
            let at = try next()
            var head = HotStatement(try db.cachedStatement(sql: SQLiteStateStore.historyHeadSQL), db)
            head.bind(at)
            head.bind(t.jobID)
            guard try head.run() == 1 else { return }
            try insert(t, keep: keep)
        }
    }

    /// A job's newest `limit` rows (at most its `keep`), newest first: along the chain in the
    /// log, then from the rows kept by job.
    static func readHistory(jobID: String, limit: Int, _ db: Database) throws -> [TickRecord] {
        guard limit > 0,
            let head = try Row.fetchOne(
                db, sql: "SELECT hist_head, hist_n FROM poll_state WHERE job_id = ?", arguments: [jobID])
        else { return [] }
        let headN: Int64 = head[1]
        var out: [TickRecord] = []
        var next: Int64? = head[0]
        var below = headN + 1
        var keep: Int64?
        let step = try db.cachedStatement(
            sql: "SELECT job_id, n, prev, keep, \(historyFields) FROM tick_log WHERE pos = ?")
        while let pos = next, out.count < limit {
            // A row swept away, or a position written again since, ends the chain.
            guard let r = try Row.fetchOne(step, arguments: [pos]), (r[0] as String) == jobID, (r[1] as Int64) < below
            else { break }
            let n: Int64 = r[1]
            keep = keep ?? r[3]
            if let keep, n <= headN - keep { return out }
            out.append(record(jobID: jobID, r, from: 4))
            below = n
            next = r[2]
        }
        guard out.count < limit else { return out }
        let kept = try Row.fetchAll(
            db,
            sql: """
                SELECT n, keep, \(historyFields) FROM tick_log_kept WHERE job_id = ? AND n < ? ORDER BY n DESC LIMIT ?
                """, arguments: [jobID, below, limit - out.count])
        for r in kept {
            keep = keep ?? r[1]
            if let keep, (r[0] as Int64) <= headN - keep { return out }
            out.append(record(jobID: jobID, r, from: 2))
        }
        // Rows from before the log (migration 008), older than every numbered one: they count as
        // numbers 0, -1, -2 and so on. A job whose numbered rows have all gone reads none.
        let legacy = keep.map { max(0, Int($0 - headN)) } ?? (headN > 0 ? 0 : limit)
        guard out.count < limit, legacy > 0 else { return out }
        let old = try Row.fetchAll(
            db,
            sql: """
                SELECT \(historyFields) FROM tick_log_006 WHERE job_id = ? ORDER BY started_at DESC, seq DESC LIMIT ?
                """, arguments: [jobID, min(limit - out.count, legacy)])
        return out + old.map { record(jobID: jobID, $0, from: 0) }
    }

    private static func record(jobID: String, _ r: Row, from i: Int) -> TickRecord {
        TickRecord(
            seq: r[i], jobID: jobID, slotMs: r[i + 1], startedAtMs: r[i + 2], durationMs: r[i + 3], status: r[i + 4],
            error: r[i + 5],
            itemsFound: r[i + 6], itemsNew: r[i + 7], duplicates: r[i + 8], cursor: r[i + 9], cursorChanged: r[i + 10],
            holder: r[i + 11])
    }

    /// Takes up to `maxRows` of the log's oldest rows away while it holds more than `keep` rows
    /// for each job in the store: those still among their job's newest `keep` move to the rows
    /// kept by job, the others go. Which rows move is decided on a read snapshot, off the
    /// writer (a job's `hist_n` only grows, so a row found too old stays too old); the write is
    /// the moves and one range delete at the log's start. Returns the rows taken off the log.
    /// The budget only decides how much of the log is looked at: a row goes only once its job
    /// has `keep` newer ones, so a low count (a boot still registering) moves more, loses none.
    ///
    /// `jobs` is the store's job count as last seen; it is counted again (a whole index read)
    /// only when the log holds more than `keep` rows for each of those, and the new count is
    /// handed back.
    func sweepHistory(keep: Int, jobs: inout Int, maxRows: Int) async throws -> Int {
        let known = jobs
        let plan: (jobs: Int, cutoff: Int64?, movers: [Int64])? = try await read { db in
            // Two subqueries: SQLite finds a lone MIN or MAX at the tree's edge, but scans the
            // whole table for both in one query.
            guard
                let bounds = try Row.fetchOne(
                    db, sql: "SELECT (SELECT MIN(pos) FROM tick_log), (SELECT MAX(pos) FROM tick_log)"),
                let lo = bounds[0] as Int64?, let hi = bounds[1] as Int64?
            else { return nil }
            let rows = hi - lo + 1
            guard rows > Int64(keep) * Int64(known) else { return nil }
            let jobs = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM poll_state") ?? 0
            let over = rows - Int64(keep) * Int64(jobs)
            guard over > 0 else { return (jobs, nil, []) }
            let cutoff = lo + min(over, Int64(maxRows))
            let movers = try Int64.fetchAll(
                db,
                sql: """
                    SELECT t.pos FROM tick_log t JOIN poll_state p ON p.job_id = t.job_id WHERE t.pos < ? AND p.hist_n - t.n < ?
                    """, arguments: [cutoff, keep])
            return (jobs, cutoff, movers)
        }
        guard let plan else { return 0 }
        jobs = plan.jobs
        guard let cutoff = plan.cutoff else { return 0 }
        return try await write { db in
            let move = try db.cachedStatement(
                sql: """
                    INSERT OR REPLACE INTO tick_log_kept (job_id, n, keep, \(Self.historyFields))
                    SELECT job_id, n, keep, \(Self.historyFields) FROM tick_log WHERE pos = ?
                    """)
            for pos in plan.movers { try move.execute(arguments: [pos]) }
            try db.execute(sql: "DELETE FROM tick_log WHERE pos < ?", arguments: [cutoff])
            return db.changesCount
        }
    }

    /// Cuts the rows kept by job back to each job's newest `keep`, for up to `maxJobs` jobs
    /// after `after` (in id order). Returns the last job looked at (nil: the end, start again).
    func trimKeptHistory(keep: Int, after: String, maxJobs: Int) async throws -> String? {
        try await trimByJob("tick_log_kept", number: "n", keep: keep, after: after, maxJobs: maxJobs)
    }

    /// The same for the rows from before the log (migration 008), which count as numbers 0 and
    /// below: a job's go once it has `keep` numbered rows.
    func trimLegacyHistory(keep: Int, after: String, maxJobs: Int) async throws -> String? {
        try await trimByJob("tick_log_006", number: "0", keep: keep, after: after, maxJobs: maxJobs)
    }

    /// One step of a pass over `table`'s jobs in id order: the rows numbered (`number`) at or
    /// below the job's `hist_n - keep` go, all of them for a job with no state row any more.
    /// Which jobs have such rows is read on a snapshot; only those are written.
    private func trimByJob(
        _ table: String, number: String, keep: Int, after: String, maxJobs: Int
    ) async throws -> String? {
        let (trim, last): ([(String, Int64)], String?) = try await read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT k.job_id, k.lo, p.hist_n FROM
                      (SELECT job_id, MIN(\(number)) AS lo FROM \(table) WHERE job_id > ? GROUP BY job_id ORDER BY job_id LIMIT ?) k
                    LEFT JOIN poll_state p ON p.job_id = k.job_id
                    """, arguments: [after, maxJobs])
            var trim: [(String, Int64)] = []
            for r in rows {
                let upTo: Int64 = if let headN = r[2] as Int64? { headN - Int64(keep) } else { .max }
                if (r[1] as Int64) <= upTo { trim.append((r[0], upTo)) }
            }
            return (trim, rows.count < maxJobs ? nil : rows.last.map { $0[0] as String })
        }
        if !trim.isEmpty {
            try await write { db in
                let delete = try db.cachedStatement(sql: "DELETE FROM \(table) WHERE job_id = ? AND \(number) <= ?")
                for (job, upTo) in trim { try delete.execute(arguments: [job, upTo]) }
            }
        }
        return last
    }

    /// What `run()` does for the history on each of its rounds (every 200 ms): one sweep of the
    /// log's start, and, about once a second, the next jobs' kept rows trimmed.
    struct HistoryUpkeep {
        /// The most rows one sweep takes off the log: five sweeps a second keep up with 160k
        /// rows a second, and one delete stays a few milliseconds of the writer.
        static let sweepRows = 32_768
        /// Jobs whose kept rows one trim looks at.
        static let trimJobs = 1_024
        /// Jobs whose rows from before the log one trim looks at: each may have a hundred rows
        /// spread over the old table's pages, so few at a time (a store of 100k jobs is cleared in
        /// about 13 minutes).
        static let legacyJobs = 128
        static let trimEveryMs: Int64 = 1_000

        private var jobs = 0
        private var trimmedAtMs: Int64?
        private var trimAfter = ""
        private var legacyAfter = ""

        mutating func tend(_ store: SQLiteStateStore, keep: Int, nowMs: Int64) async throws {
            _ = try await store.sweepHistory(keep: keep, jobs: &jobs, maxRows: Self.sweepRows)
            if trimmedAtMs.map({ nowMs - $0 >= Self.trimEveryMs }) ?? true {
                trimmedAtMs = nowMs
                trimAfter = try await store.trimKeptHistory(keep: keep, after: trimAfter, maxJobs: Self.trimJobs) ?? ""
                legacyAfter =
                    try await store.trimLegacyHistory(keep: keep, after: legacyAfter, maxJobs: Self.legacyJobs) ?? ""
            }
        }
    }

    /// The history's schema (migration 008): the log, the rows kept by job, each job's chain
    /// head. Rows in the earlier layout (`(job_id, seq)`, trimmed per job) stay where they are, in
    /// `tick_log_006`, read after a job's numbered rows and deleted in the background once the
    /// job has `tick_history` new ones: numbering them here took 50 s for 10M rows (100k jobs),
    /// a boot that long before the first tick.
    static func migrateToHistoryLog(_ db: Database) throws {
        // A tick's columns, as both tables have them (this migration's, kept as it is).
        let tick = """
            seq INTEGER NOT NULL, slot_at INTEGER, started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
            status TEXT NOT NULL, error TEXT, items_found INTEGER NOT NULL, items_new INTEGER NOT NULL,
            duplicates INTEGER NOT NULL, cursor BLOB, cursor_changed INTEGER NOT NULL, holder TEXT NOT NULL
            """
        try db.execute(
            sql: """
                ALTER TABLE tick_log RENAME TO tick_log_006;
                CREATE TABLE tick_log (
                  pos INTEGER PRIMARY KEY,
                  job_id TEXT NOT NULL,
                  n INTEGER NOT NULL,
                  prev INTEGER,
                  keep INTEGER NOT NULL,
                  \(tick)
                );
                CREATE TABLE tick_log_kept (
                  job_id TEXT NOT NULL,
                  n INTEGER NOT NULL,
                  keep INTEGER NOT NULL,
                  \(tick),
                  PRIMARY KEY (job_id, n)
                ) WITHOUT ROWID;
                ALTER TABLE poll_state ADD COLUMN hist_head INTEGER;
                ALTER TABLE poll_state ADD COLUMN hist_prev INTEGER;
                ALTER TABLE poll_state ADD COLUMN hist_n INTEGER NOT NULL DEFAULT 0;
                """)
    }
}
