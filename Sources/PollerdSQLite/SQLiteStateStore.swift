public import Foundation
import GRDB
import GRDBSQLite
public import PollerdCore
import Synchronization

/// The embedded default store: SQLite in WAL mode through GRDB, `synchronous=FULL` by default.
/// Lease and commit writes from many ticks are grouped into one transaction (group commit),
/// so a busy daemon does not pay one fsync per tick.
public final class SQLiteStateStore: StateStore {
    private let pool: DatabasePool
    private let committer: GroupCommitter
    /// The database file.
    public let path: String
    /// Whose clock decides lease expiry.
    public let time: StoreTime
    /// The store's own clock, when it keeps time (`StoreTime.store`).
    private let storeNow: (@Sendable () -> Int64)?

    /// Opens (creating if needed) the store at `path`, creating the parent directory.
    /// - Parameters:
    ///   - synchronousFull: `false` uses `synchronous=NORMAL` (safe against crashes, not power loss).
    ///   - time: `.store` decides every expiry (leases, lane claims, daemons' liveness) by this
    ///     host's real-time clock, read by the store, rather than by the `nowMs` callers pass: as
    ///     PostgreSQL's `now()` does for daemons on several hosts.
    public init(path: String, synchronousFull: Bool = true, time: StoreTime = .caller) throws {
        self.path = path
        self.time = time
        self.storeNow = time == .store ? Self.realTimeMs : nil
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        var config = GRDB.Configuration()
        config.busyMode = .timeout(TimeInterval(Self.busyTimeoutMs) / 1000)
        config.prepareDatabase { db in
            // A page cache of up to 32 MiB per connection (SQLite's default is 2 MiB): with 100k
            // jobs the state table no longer fits the default, and every tick's lease and commit
            // re-read their pages from the kernel (a third of the daemon's CPU was in read copies).
            try db.execute(sql: "PRAGMA cache_size = -32768")
            // 1 KiB pages: a tick dirties one row of the state table, and the WAL gets the
            // whole page, so a smaller page writes a quarter of the bytes per tick. (Only
            // takes effect when the database file is created.)
            try db.execute(sql: "PRAGMA page_size = 1024")
        }
        do {
            pool = try Self.openPool(path: path, configuration: config)
            // `synchronous` is set here, on the writer, not in `prepareDatabase`: GRDB sets it to
            // NORMAL when it turns WAL on, after a connection was prepared, so `state_sync: full`
            // (the default) silently ran at NORMAL (no sync per commit: the last commits could be
            // lost with power). Readers do not write, so their setting does not matter.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: synchronousFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
                // The lanes each deliverer serves: the writer's own, made once (claims read it).
                try db.execute(sql: OutboxSQL.servedSinksTable)
            }
        } catch let e as DatabaseError where e.resultCode == .SQLITE_CORRUPT || e.resultCode == .SQLITE_NOTADB {
            throw Corrupt(path: path, problems: [e.message ?? "\(e)"])
        }
        committer = GroupCommitter(pool: pool, storeNow: storeNow)
    }

    /// Opens the pool, which turns WAL on. On a new file that switch needs the file to itself, and
    /// SQLite answers SQLITE_BUSY at once, without its busy handler, while another process opens
    /// the same new file: seen with eight daemons started together. So a busy open is tried
    /// again, a few milliseconds later, for up to the busy timeout.
    static func openPool(path: String, configuration: GRDB.Configuration) throws -> DatabasePool {
        var waitedMs: Int32 = 0
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let e as DatabaseError where e.resultCode == .SQLITE_BUSY && waitedMs < busyTimeoutMs {
                let ms = Int32.random(in: 2...10)
                usleep(UInt32(ms) * 1000)
                waitedMs += ms
            }
        }
    }

    /// Checks the file (`quick_check`, bounded in time) and brings its schema up to date. Two
    /// daemons that prepare one new file at once migrate it once (`SQLiteMigrations`); one that
    /// finds the write lock held longer than the busy timeout (the other's migration of a large
    /// file) tries again, up to `prepareBusyTries` times.
    public func prepare() async throws {
        try await Self.quickCheck(pool, path: path)
        var tries = 0
        while true {
            do {
                let path = self.path
                try await pool.writeWithoutTransaction { db in _ = try SQLiteMigrations.apply(db, path: path) }
                return
            } catch let e as DatabaseError where e.resultCode == .SQLITE_BUSY && tries + 1 < Self.prepareBusyTries {
                tries += 1
                try Task.checkCancellation()
            } catch let e as DatabaseError where e.resultCode == .SQLITE_CORRUPT || e.resultCode == .SQLITE_NOTADB {
                throw Corrupt(path: path, problems: [e.message ?? "\(e)"])
            }
        }
    }

    /// How many busy timeouts `prepare` waits through for another process's migration.
    static let prepareBusyTries = 30

    /// The writer connection's `PRAGMA synchronous` (1: NORMAL, 2: FULL).
    public func writerSynchronous() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// The state database failed its integrity check: the daemon refuses to start on it.
    public struct Corrupt: Error, CustomStringConvertible {
        public var path: String
        public var problems: [String]
        public init(path: String, problems: [String]) {
            self.path = path
            self.problems = problems
        }
        public var description: String {
            "the state database \(path) is damaged (\(problems.prefix(3).joined(separator: "; "))). Nothing was changed. "
                + "Restore it from a backup, or run `pollerd state check` to see the damage and `pollerd state recover` to copy what is readable into a new file."
        }
    }

    /// A damaged file (its pages or header unreadable as a database), as opposed to a full disk
    /// or a busy lock, which pass.
    public func isDamage(_ error: any Error) -> Bool {
        if error is Corrupt { return true }
        guard let e = error as? DatabaseError else { return false }
        return e.resultCode == .SQLITE_CORRUPT || e.resultCode == .SQLITE_NOTADB
    }

    /// How long the start-up check may take on a large file before it is cut short (the rest
    /// is left to `pollerd state check`).
    static let quickCheckBudget: DispatchTimeInterval = .seconds(10)

    /// SQLite's `quick_check` at open, bounded in time: a database damaged in its middle is
    /// refused at start instead of failing every commit while the daemon runs on.
    static func quickCheck(_ pool: DatabasePool, path: String) async throws {
        let stop = DispatchWorkItem { pool.interrupt() }
        DispatchQueue.global().asyncAfter(deadline: .now() + quickCheckBudget, execute: stop)
        defer { stop.cancel() }
        let result: [String]
        do {
            result = try await pool.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check(10)") }
        } catch let e as DatabaseError where e.resultCode == .SQLITE_INTERRUPT {
            return // cut short on a large file: not a verdict
        } catch let e as DatabaseError where e.resultCode == .SQLITE_CORRUPT || e.resultCode == .SQLITE_NOTADB {
            throw Corrupt(path: path, problems: [e.message ?? "\(e)"])
        }
        if result != ["ok"] { throw Corrupt(path: path, problems: result) }
    }

    /// SQLite's full `integrity_check`: "ok", or the problems found (at most `limit`).
    public static func check(path: String, limit: Int = 100) throws -> [String] {
        let queue = try DatabaseQueue(path: path)
        do {
            return try queue.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check(\(limit))") }
        } catch let e as DatabaseError where e.resultCode == .SQLITE_CORRUPT || e.resultCode == .SQLITE_NOTADB {
            // So damaged that the check itself stops: that is its verdict.
            return [e.message ?? "\(e)"]
        }
    }

    /// A damaged file from which `recover` can take nothing: its schema cannot be read.
    public struct Unrecoverable: Error, CustomStringConvertible {
        public let path: String
        public let cause: String
        public var description: String {
            "\(path): its schema (the table list on its first pages) is damaged (\(cause)): SQLite cannot tell its "
                + "tables apart, so no row can be read by table and `state recover` can keep nothing. Restore the "
                + "file from a backup, or move it aside (with its -wal and -shm) so that the daemon starts a new one: "
                + "every job then starts again from its first tick, and its cursor, history and undelivered items "
                + "are lost"
        }
    }

    /// Copies every row that can still be read from a damaged database into a new one, table by
    /// table, and returns how many rows each table kept and lost. The damaged file is left as it
    /// is; the caller puts the new one in its place. A file whose schema cannot be read throws
    /// `Unrecoverable` before anything is written; a try that fails later removes what it wrote.
    public static func recover(from damaged: String, to fresh: String) throws -> [(table: String, kept: Int, lost: Int)]
    {
        let source: DatabaseQueue
        do {
            source = try DatabaseQueue(path: damaged) // GRDB reads the schema as it opens
            _ = try source.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") }
        } catch let e as DatabaseError where e.resultCode == .SQLITE_CORRUPT || e.resultCode == .SQLITE_NOTADB {
            throw Unrecoverable(path: damaged, cause: e.message ?? "\(e.resultCode)")
        }
        do {
            return try copyReadableRows(from: source, to: fresh)
        } catch {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: fresh + suffix) }
            throw error
        }
    }

    private static func copyReadableRows(
        from source: DatabaseQueue, to fresh: String
    ) throws -> [(table: String, kept: Int, lost: Int)] {
        let target = try DatabaseQueue(path: fresh)
        // The current schema.
        try target.writeWithoutTransaction { db in _ = try SQLiteMigrations.apply(db, path: fresh) }
        var report: [(String, Int, Int)] = []
        let tables = [
            "poll_state", "control_log", "daemons", "daemon_jobs", "plugin_status", "outbox_item", "outbox_pending",
            "outbox_lane", "dedup_key", "dead_letter", "tick_log", "tick_log_kept", "tick_log_006", "audit_log",
        ]
        for table in tables {
            var kept = 0
            var lost = 0
            let rowids: [Int64] =
                (try? source.read { db in try Int64.fetchAll(db, sql: "SELECT rowid FROM \(table)") }) ?? []
            let columns: [String] = (try? target.read { db in try db.columns(in: table).map(\.name) }) ?? []
            guard !columns.isEmpty else { continue }
            let list = columns.map { "\"\($0)\"" }.joined(separator: ", ")
            let marks = Array(repeating: "?", count: columns.count).joined(separator: ", ")
            if rowids.isEmpty {
                // WITHOUT ROWID tables (and a table whose rowids cannot be listed): copy in one go.
                do {
                    let rows = try source.read { db in try Row.fetchAll(db, sql: "SELECT \(list) FROM \(table)") }
                    try target.write { db in
                        for r in rows {
                            try db.execute(
                                sql: "INSERT OR IGNORE INTO \(table) (\(list)) VALUES (\(marks))",
                                arguments: StatementArguments(r.databaseValues))
                        }
                    }
                    kept = rows.count
                } catch { lost = -1 }
            } else {
                for id in rowids {
                    do {
                        let row = try source.read { db in
                            try Row.fetchOne(db, sql: "SELECT \(list) FROM \(table) WHERE rowid = ?", arguments: [id])
                        }
                        guard let row else {
                            lost += 1
                            continue
                        }
                        try target.write { db in
                            try db.execute(
                                sql: "INSERT OR IGNORE INTO \(table) (\(list)) VALUES (\(marks))",
                                arguments: StatementArguments(row.databaseValues))
                        }
                        kept += 1
                    } catch { lost += 1 }
                }
            }
            report.append((table, kept, lost))
        }
        return report
    }

    /// The store's background work while the daemon runs: WAL checkpoints on a connection of
    /// their own, every `checkpointEveryMs`, instead of inside the writer's commits (measured:
    /// checkpoints in the commit path cost a third of the tick rate at 100k jobs). When it
    /// ends, the writer checkpoints by itself again. The CLI, which does not run it, keeps
    /// SQLite's automatic checkpoints.
    ///
    /// A PASSIVE checkpoint never lets the WAL start over while the writer never pauses: frames
    /// committed while it copies are always left, and SQLite rewinds the WAL only once every
    /// frame is copied. Measured at 100k jobs every 2 s, the WAL grew by about 60 MB a second,
    /// without end. So once the WAL holds `restartAfterFrames` frames, the writer itself copies
    /// the few frames the PASSIVE left and rewinds it (RESTART, between two transactions), and
    /// `journal_size_limit` gives the file back its space.
    public func run(clock: any WallClock) async throws {
        let checkpointer = try DatabaseQueue(path: path)
        try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
            try db.execute(sql: "PRAGMA journal_size_limit = \(Self.walSizeLimitBytes)")
        }
        defer {
            flushHistoryNow()
            try? pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 1000")
                _ = try? db.checkpoint(.passive)
            }
        }
        var upkeep = HistoryUpkeep()
        while !Task.isCancelled {
            do { try await clock.sleep(untilMs: clock.nowMs + Self.checkpointEveryMs) } catch { break }
            try? await flushHistory()
            if let keep = historyKeep.withLock({ $0 }) { try? await upkeep.tend(self, keep: keep, nowMs: clock.nowMs) }
            // PASSIVE: copies what it can without blocking the writer or readers.
            guard
                let (frames, _) = try? await checkpointer.writeWithoutTransaction({ db in try db.checkpoint(.passive) }
                ),
                frames >= Self.restartAfterFrames
            else { continue }
            _ = try? await restartWAL()
        }
    }

    /// Copies what is left of the WAL and rewinds it, on the writer's connection (so it never
    /// waits for the writer). A reader still on an old snapshot is waited for at most
    /// `restartWaitMs`; then this throws SQLITE_BUSY and the WAL stays as it is until the next try.
    func restartWAL() async throws {
        try await pool.writeWithoutTransaction { db in
            sqlite3_busy_timeout(db.sqliteConnection, Self.restartWaitMs)
            defer { sqlite3_busy_timeout(db.sqliteConnection, Self.busyTimeoutMs) }
            _ = try db.checkpoint(.restart)
        }
    }

    /// How often `run()` checkpoints the WAL.
    static let checkpointEveryMs: Int64 = 200
    /// The WAL is rewound once it holds this many frames (16 MiB of 1 KiB pages).
    static let restartAfterFrames = 16_384
    /// What a rewound WAL file is cut back to.
    static let walSizeLimitBytes = 64 << 20
    /// How long a rewind waits for readers on an old snapshot.
    static let restartWaitMs: Int32 = 20
    /// The connections' busy timeout (`busyMode`).
    static let busyTimeoutMs: Int32 = 10_000

    /// Runs a read on the pool (the outbox extension's queries).
    func read<T: Sendable>(_ body: @Sendable @escaping (Database) throws -> T) async throws -> T {
        try await pool.read(body)
    }

    /// Runs a write transaction on the pool (the outbox extension's operator commands).
    func write<T: Sendable>(_ body: @Sendable @escaping (Database) throws -> T) async throws -> T {
        try await pool.write(body)
    }

    public func recordPluginStatuses(_ records: [PluginStatusRecord], daemonID: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM plugin_status WHERE daemon_id = ?", arguments: [daemonID])
            for r in records {
                let tail = String(decoding: (try? JSONEncoder().encode(r.stderrTail)) ?? Data("[]".utf8), as: UTF8.self)
                try db.execute(
                    sql: """
                        INSERT INTO plugin_status (daemon_id, plugin_id, lifecycle, phase, pid, restarts, ticks, failures, last_error, stderr_tail, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        daemonID, r.pluginID, r.lifecycle, r.phase, r.pid, r.restarts, r.ticks, r.failures, r.lastError,
                        tail, r.updatedAtMs,
                    ])
            }
        }
    }

    public func pluginStatuses() async throws -> [DaemonPluginStatus] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT daemon_id, plugin_id, lifecycle, phase, pid, restarts, ticks, failures, last_error, stderr_tail, updated_at
                    FROM plugin_status ORDER BY plugin_id, daemon_id
                    """
            ).map { r in
                let tailText: String = r[9]
                let tail = (try? JSONDecoder().decode([String].self, from: Data(tailText.utf8))) ?? []
                return DaemonPluginStatus(
                    daemonID: r[0],
                    status: PluginStatusRecord(
                        pluginID: r[1], lifecycle: r[2], phase: r[3], pid: r[4], restarts: r[5], ticks: r[6],
                        failures: r[7], lastError: r[8], stderrTail: tail, updatedAtMs: r[10]))
            }
        }
    }

    // MARK: StateStore

    public func register(_ jobs: [JobRegistration], nowMs: Int64) async throws -> [String: JobStateRow] {
        guard !jobs.isEmpty else { return [:] }
        // The ids as one JSON array parameter, so the read-back touches only these rows (a
        // manual tick registers one job; reading every row of a 100k-job store for it cost more
        // than the tick).
        let ids = JSONValue.array(jobs.map { .string($0.jobID) }).canonicalString
        return try await pool.write { db in
            let insert = try db.cachedStatement(
                sql: """
                    INSERT INTO poll_state (job_id, kind, agent, paused, paused_reason, paused_at, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(job_id) DO UPDATE SET kind = excluded.kind, agent = excluded.agent
                    """)
            for j in jobs {
                try insert.execute(arguments: [
                    j.jobID, j.kind, j.agent, j.pausedOnBoot, j.pausedOnBoot ? "paused_on_boot" : nil,
                    j.pausedOnBoot ? nowMs : nil, nowMs, nowMs,
                ])
            }
            var out: [String: JobStateRow] = [:]
            out.reserveCapacity(jobs.count)
            let rows = try Row.fetchCursor(
                db, sql: "SELECT \(Self.columns) FROM poll_state WHERE job_id IN (SELECT value FROM json_each(?))",
                arguments: [ids])
            while let r = try rows.next() {
                let row = Self.row(r)
                out[row.jobID] = row
            }
            return out
        }
    }

    public func acquireLeases(
        _ requests: [LeaseRequest], holder: String, nowMs: Int64
    ) async throws -> [LeaseAcquisition] {
        guard !requests.isEmpty else { return [] }
        let storeNow = self.storeNow
        return try await pool.write { db in
            // The store's own instant, read inside the transaction, when it keeps time.
            try Self.claim(requests, holder: holder, nowMs: storeNow?() ?? nowMs, db)
        }
    }

    public func commit(_ ticks: [TickCommit], nowMs: Int64) async throws -> [Int64?] {
        guard !ticks.isEmpty else { return [] }
        if let last = ticks.last { historyKeep.withLock { $0 = last.historyLimit } }
        return try await pool.write { db in try Self.commit(ticks, nowMs: nowMs, db) }
    }

    private static func claim(
        _ requests: [LeaseRequest], holder: String, nowMs: Int64, _ db: Database
    ) throws -> [LeaseAcquisition] {
        guard !requests.isEmpty else { return [] }
        let claim = try GroupCommitter.Claim(db)
        return try requests.map { r in
            try GroupCommitter.acquire(
                jobID: r.jobID, holder: holder, ttlMs: r.ttlMs, nowMs: nowMs, slotMs: r.slotMs,
                maxBacklog: r.maxBacklog, claim: claim, db)
        }
    }

    /// Commits a batch; each committed tick's history row is appended in the same transaction.
    private static func commit(_ ticks: [TickCommit], nowMs: Int64, _ db: Database) throws -> [Int64?] {
        guard !ticks.isEmpty else { return [] }
        let statement = try GroupCommitter.commitStatement(db)
        var history = HistoryAppender(db)
        return try ticks.map { c -> Int64? in
            // The commit itself makes the history row its job's newest.
            let pos = c.historyLimit > 0 ? try history.next() : nil
            guard
                let queued = try GroupCommitter.commitCounting(
                    c, nowMs: nowMs, statement: statement, historyAt: pos, db)
            else { return nil }
            let record = GroupCommitter.record(c, queued: queued)
            if pos != nil { try history.insert(record, keep: c.historyLimit, row: c.lease.handle?.bits) }
            return record.itemsNew
        }
    }

    /// Skipped slots' rows (`recordSkip`), written by run() every 200 ms and before a read: a
    /// crash may lose the last moments of them. A committed tick's row is written with its commit.
    private let skipped = Mutex<[(TickRecord, Int)]>([])
    /// The `tick_history` of the latest commit or skip (nil: none yet), which `run()` keeps the
    /// log to.
    private let historyKeep = Mutex<Int?>(nil)

    /// Writes the buffered skipped slots' rows in one transaction.
    func flushHistory() async throws {
        let rows = takeSkipped()
        guard !rows.isEmpty else { return }
        try await pool.write { db in try Self.writeHistory(rows, db) }
    }

    /// The same, blocking (at shutdown, when async work is cancelled).
    func flushHistoryNow() {
        let rows = takeSkipped()
        guard !rows.isEmpty else { return }
        try? pool.write { db in try Self.writeHistory(rows, db) }
    }

    private func takeSkipped() -> [(TickRecord, Int)] {
        skipped.withLock { b -> [(TickRecord, Int)] in
            defer { b.removeAll(keepingCapacity: true) }
            return b
        }
    }

    static func writeHistory(_ rows: [(TickRecord, Int)], _ db: Database) throws {
        var history = HistoryAppender(db)
        for (t, keep) in rows { try history.append(t, keep: keep) }
    }

    public func renewLease(_ lease: LeaseGrant, ttlMs: Int64, nowMs: Int64) async throws -> Bool {
        try await committer.submit(.renew(lease, ttlMs: ttlMs, nowMs: nowMs))
    }

    public func releaseLease(_ lease: LeaseGrant) async throws {
        _ = try await committer.submit(.release(lease))
    }

    public func recordSchedules(_ records: [ScheduleRecord], nowMs: Int64) async throws {
        guard !records.isEmpty else { return }
        if records.count == 1 {
            _ = try await committer.submit(.schedule(records[0], nowMs: nowMs))
            return
        }
        try await pool.write { db in
            for r in records { try GroupCommitter.applySchedule(r, nowMs: nowMs, db) }
        }
    }

    // The control log's cursor is its highest seq read. SQLite has one writer at a time, and
    // AUTOINCREMENT hands out seqs in commit order, so no row can commit below a seq seen.
    public func controlChanges(after cursor: ControlCursor) async throws -> ControlBatch {
        let after = Int64(cursor.token) ?? 0
        return try await pool.read { db in
            var last = after
            let changes: [ControlChange] = try Row.fetchAll(
                db, sql: "SELECT seq, job_id, action FROM control_log WHERE seq > ? ORDER BY seq", arguments: [after]
            ).compactMap { r in
                last = max(last, r[0])
                guard let a = ControlChange.Action(rawValue: r[2]) else { return nil }
                return ControlChange(jobID: r[1], action: a)
            }
            return ControlBatch(changes: changes, next: ControlCursor(token: String(last)))
        }
    }

    public func controlCursor() async throws -> ControlCursor {
        try await pool.read { db in
            ControlCursor(
                token: String(try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM control_log") ?? 0))
        }
    }

    static let columns = """
        job_id, kind, agent, cursor, last_run_at, next_run_at, last_status, last_error, last_duration_ms,
        consecutive_errors, ticks_total, items_seen_total, items_dispatched_total, paused, paused_reason, done,
        schedule_fp, definition_fp, updated_at, \(OutboxSQL.backlogColumn), paused_at, last_alert_at, last_ok_at,
        lease_holder, lease_until
        """

    public func states(after jobID: String?, limit: Int) async throws -> [JobStateRow] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT \(Self.columns) FROM poll_state WHERE (? IS NULL OR job_id > ?) ORDER BY job_id LIMIT ?",
                arguments: [jobID, jobID, max(0, limit)]
            ).map(Self.row)
        }
    }

    public func jobHealth(_ q: JobHealthQuery) async throws -> JobHealthCounts {
        try await pool.read { db in
            // JobHealth.of, in SQL: paused, done, backlogged, breaker open, backing off,
            // failing, never ran, ok; over the jobs the daemon announced.
            let mine = "FROM poll_state p JOIN daemon_jobs d ON d.job_id = p.job_id AND d.daemon_id = ?"
            let state = """
                CASE
                  WHEN p.paused THEN 'paused'
                  WHEN p.done THEN 'done'
                  WHEN p.last_status IS 'backpressure' THEN 'backlogged'
                  WHEN p.consecutive_errors >= ? THEN 'breaker_open'
                  WHEN p.consecutive_errors > 0 AND p.last_status IS 'transient' THEN 'backing_off'
                  WHEN p.consecutive_errors > 0 THEN 'failing'
                  WHEN p.last_run_at IS NULL THEN 'never_ran'
                  ELSE 'ok'
                END
                """
            var byState: [JobHealth: Int] = [:]
            for r in try Row.fetchAll(
                db, sql: "SELECT \(state) AS s, COUNT(*) \(mine) GROUP BY s",
                arguments: [max(1, q.breakerThreshold), q.daemonID])
            {
                if let h = JobHealth(rawValue: r[0]) { byState[h] = r[1] }
            }
            let oldest = try Int64.fetchOne(
                db, sql: "SELECT MIN(p.last_ok_at) \(mine) WHERE NOT p.paused AND NOT p.done", arguments: [q.daemonID])
            var stale = 0
            for (limitSecs, ids) in q.staleAfterSecs where !ids.isEmpty {
                let idList = String(decoding: try JSONEncoder().encode(ids), as: UTF8.self)
                stale +=
                    try Int.fetchOne(
                        db,
                        sql: """
                            SELECT COUNT(*) \(mine)
                            WHERE p.job_id IN (SELECT value FROM json_each(?)) AND NOT p.paused AND NOT p.done
                              AND ? - COALESCE(p.last_ok_at, ?) > ?
                            """,
                        arguments: [q.daemonID, idList, q.nowMs, q.registeredAtMs, limitSecs * 1000]) ?? 0
            }
            return JobHealthCounts(byState: byState, stale: stale, oldestLastOkAtMs: oldest)
        }
    }

    public func state(jobID: String) async throws -> JobStateRow? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.columns) FROM poll_state WHERE job_id = ?", arguments: [jobID])
                .map(Self.row)
        }
    }

    public func setPaused(jobID: String, paused: Bool, reason: String?, nowMs: Int64) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql:
                    "UPDATE poll_state SET paused = ?, paused_reason = ?, paused_at = ?, updated_at = ? WHERE job_id = ?",
                arguments: [paused, paused ? reason : nil, paused ? nowMs : nil, nowMs, jobID])
            guard db.changesCount > 0 else { return false }
            if !paused {
                try db.execute(
                    sql:
                        "UPDATE poll_state SET consecutive_errors = 0 WHERE job_id = ? AND last_status IN ('permanent', 'config')",
                    arguments: [jobID])
            }
            try db.execute(
                sql: "INSERT INTO control_log (job_id, action, at) VALUES (?, ?, ?)",
                arguments: [jobID, paused ? "pause" : "resume", nowMs])
            return true
        }
    }

    public func reset(jobID: String, nowMs: Int64) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE poll_state SET cursor = NULL, consecutive_errors = 0, last_error = NULL, done = 0, updated_at = ?
                    WHERE job_id = ?
                    """, arguments: [nowMs, jobID])
            guard db.changesCount > 0 else { return false }
            // Fence off a tick in flight: its commit would write the old cursor back.
            try db.execute(
                sql: "UPDATE poll_state SET lease_token = lease_token + 1, lease_until = 0 WHERE job_id = ?",
                arguments: [jobID])
            try db.execute(
                sql: "INSERT INTO control_log (job_id, action, at) VALUES (?, 'reset', ?)", arguments: [jobID, nowMs])
            return true
        }
    }

    public func recordSkip(_ record: TickRecord, historyLimit: Int) {
        historyKeep.withLock { $0 = historyLimit }
        guard historyLimit > 0 else { return }
        skipped.withLock { $0.append((record, historyLimit)) }
    }

    public func tickHistory(jobID: String, limit: Int) async throws -> [TickRecord] {
        try await flushHistory()
        return try await pool.read { db in try Self.readHistory(jobID: jobID, limit: limit, db) }
    }

    public func setCursor(jobID: String, cursor: Data?, audit: AuditEntry) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE poll_state SET cursor = ?, updated_at = ? WHERE job_id = ?",
                arguments: [cursor, audit.atMs, jobID])
            guard db.changesCount > 0 else { return false }
            // Fence off a tick in flight: its commit would write its own cursor over this one.
            try db.execute(
                sql: "UPDATE poll_state SET lease_token = lease_token + 1, lease_until = 0 WHERE job_id = ?",
                arguments: [jobID])
            try Self.insertAudit(audit, db)
            return true
        }
    }

    public func recordAudit(_ entry: AuditEntry) async throws {
        try await pool.write { db in try Self.insertAudit(entry, db) }
    }

    static func insertAudit(_ e: AuditEntry, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO audit_log (at, actor, action, job_id, detail) VALUES (?, ?, ?, ?, ?)",
            arguments: [e.atMs, e.actor, e.action, e.jobID, e.detail])
    }

    public func auditLog(jobID: String?, limit: Int) async throws -> [AuditEntry] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT at, actor, action, job_id, detail FROM audit_log WHERE (? IS NULL OR job_id = ?) ORDER BY seq DESC LIMIT ?
                    """, arguments: [jobID, jobID, limit]
            ).map { r in
                AuditEntry(atMs: r[0], actor: r[1], action: r[2], jobID: r[3], detail: r[4])
            }
        }
    }

    /// The instant that decides expiries: the store's clock when it keeps time, else the caller's.
    func expiryNow(_ callerMs: Int64) -> Int64 { storeNow?() ?? callerMs }

    /// This host's real-time clock, in ms since the epoch: the store's own clock with `time: .store`.
    @Sendable static func realTimeMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    public func announce(_ d: DaemonAnnouncement, nowMs: Int64) async throws -> [String] {
        let now = expiryNow(nowMs)
        return try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO daemons (daemon_id, job_file, started_at, alive_until) VALUES (?, ?, ?, ?)
                    ON CONFLICT(daemon_id) DO UPDATE SET job_file = excluded.job_file, alive_until = excluded.alive_until
                    """, arguments: [d.daemonID, d.jobFile, nowMs, now + d.ttlMs])
            try db.execute(sql: "DELETE FROM daemon_jobs WHERE daemon_id = ?", arguments: [d.daemonID])
            let add = try db.cachedStatement(
                sql: "INSERT INTO daemon_jobs (daemon_id, job_id, definition_fp) VALUES (?, ?, ?)")
            let activate = try db.cachedStatement(
                sql: "UPDATE poll_state SET definition_fp = ? WHERE job_id = ? AND definition_fp IS NOT ?")
            // In id order, so the daemon's rows go in side by side (in a dictionary's order
            // each landed on a page of its own), bound through the C API.
            for (id, fp) in d.jobs.sorted(by: { $0.key < $1.key }) {
                var a = HotStatement(add, db)
                a.bind(d.daemonID)
                a.bind(id)
                a.bind(fp)
                _ = try a.run()
                var u = HotStatement(activate, db)
                u.bind(fp)
                u.bind(id)
                u.bind(fp)
                _ = try u.run()
            }
            return try Self.deactivateOrphans(nowMs: now, stampMs: nowMs, db)
        }
    }

    public func heartbeat(daemonID: String, ttlMs: Int64, nowMs: Int64) async throws -> Bool {
        let until = expiryNow(nowMs) + ttlMs
        return try await pool.write { db in
            try db.execute(sql: "UPDATE daemons SET alive_until = ? WHERE daemon_id = ?", arguments: [until, daemonID])
            return db.changesCount == 1
        }
    }

    public func retire(daemonID: String, nowMs: Int64) async throws {
        let now = expiryNow(nowMs)
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM daemons WHERE daemon_id = ?", arguments: [daemonID])
            _ = try Self.deactivateOrphans(nowMs: now, stampMs: nowMs, db)
        }
    }

    public func liveDaemons(nowMs: Int64) async throws -> [DaemonRecord] {
        let now = expiryNow(nowMs)
        return try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT d.daemon_id, d.job_file, d.started_at, d.alive_until, (SELECT COUNT(*) FROM daemon_jobs j WHERE j.daemon_id = d.daemon_id)
                    FROM daemons d WHERE d.alive_until > ? ORDER BY d.started_at, d.daemon_id
                    """, arguments: [now]
            ).map {
                DaemonRecord(daemonID: $0[0], jobFile: $0[1], startedAtMs: $0[2], aliveUntilMs: $0[3], jobs: $0[4])
            }
        }
    }

    public func jobOwners(jobID: String, nowMs: Int64) async throws -> [String] {
        let now = expiryNow(nowMs)
        return try await pool.read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT j.daemon_id FROM daemon_jobs j JOIN daemons d ON d.daemon_id = j.daemon_id
                    WHERE j.job_id = ? AND d.alive_until > ? ORDER BY j.daemon_id
                    """, arguments: [jobID, now])
        }
    }

    public func liveDefinitions(jobIDs: [String], nowMs: Int64) async throws -> [String: [String: String]] {
        let now = expiryNow(nowMs)
        return try await pool.read { db in
            var out: [String: [String: String]] = [:]
            let rows = try db.cachedStatement(
                sql: """
                    SELECT j.daemon_id, j.definition_fp FROM daemon_jobs j JOIN daemons d ON d.daemon_id = j.daemon_id
                    WHERE j.job_id = ? AND d.alive_until > ? AND j.definition_fp IS NOT NULL
                    """)
            for id in jobIDs {
                for r in try Row.fetchAll(rows, arguments: [id, now]) {
                    out[id, default: [:]][r[0]] = r[1]
                }
            }
            return out
        }
    }

    public func divergentDefinitions(nowMs: Int64) async throws -> [String: [String: String]] {
        let now = expiryNow(nowMs)
        return try await pool.read { db in
            // One live daemon cannot disagree with itself: no scan of its jobs.
            let live = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM daemons WHERE alive_until > ?", arguments: [now])
            guard (live ?? 0) > 1 else { return [:] }
            var out: [String: [String: String]] = [:]
            let rows = try Row.fetchAll(
                db,
                sql: """
                    WITH live AS (
                      SELECT j.job_id, j.daemon_id, j.definition_fp FROM daemon_jobs j
                      JOIN daemons d ON d.daemon_id = j.daemon_id
                      WHERE d.alive_until > ? AND j.definition_fp IS NOT NULL)
                    SELECT job_id, daemon_id, definition_fp FROM live WHERE job_id IN (
                      SELECT job_id FROM live GROUP BY job_id HAVING COUNT(DISTINCT definition_fp) > 1)
                    """, arguments: [now])
            for r in rows { out[r[0], default: [:]][r[1]] = r[2] }
            return out
        }
    }

    /// Forgets daemons whose heartbeat lapsed, then takes out of the active set every job that
    /// no live daemon has; returns their ids.
    /// Forgets the daemons whose liveness ran out by `nowMs` and takes the jobs no live daemon has
    /// out of the active set (their rows stamped `stampMs`); returns those jobs' ids. A job's
    /// planned run stays with its state: a daemon that has it again (a restart) keeps the plan, a
    /// backoff's or an open breaker's included.
    static func deactivateOrphans(nowMs: Int64, stampMs: Int64, _ db: Database) throws -> [String] {
        try db.execute(
            sql: "DELETE FROM daemon_jobs WHERE daemon_id NOT IN (SELECT daemon_id FROM daemons WHERE alive_until > ?)",
            arguments: [nowMs])
        try db.execute(sql: "DELETE FROM daemons WHERE alive_until <= ?", arguments: [nowMs])
        let gone = try String.fetchAll(
            db,
            sql: """
                SELECT job_id FROM poll_state p WHERE definition_fp IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM daemon_jobs j WHERE j.job_id = p.job_id)
                ORDER BY job_id
                """)
        let off = try db.cachedStatement(
            sql: "UPDATE poll_state SET definition_fp = NULL, updated_at = ? WHERE job_id = ?")
        for id in gone { try off.execute(arguments: [stampMs, id]) }
        return gone
    }

    public func reclaimLeases(on host: HostProcesses, nowMs: Int64) async throws -> Int {
        let now = expiryNow(nowMs)
        return try await pool.write { db in
            // This host's holders only (`host:` as a prefix, by range so the match is exact),
            // read and freed in one transaction.
            let held = try Row.fetchAll(
                db,
                sql: """
                    SELECT job_id, lease_holder, lease_token FROM poll_state
                    WHERE lease_until > ? AND lease_holder >= ? AND lease_holder < ?
                    """,
                arguments: [now, host.host + ":", host.host + ";"]
            )
            .map { (jobID: $0[0] as String, holder: $0[1] as String, token: $0[2] as Int64) }
            var n = 0
            for d in held where host.isAbandoned(d.holder) {
                try db.execute(
                    sql:
                        "UPDATE poll_state SET lease_until = 0 WHERE job_id = ? AND lease_holder = ? AND lease_token = ?",
                    arguments: [d.jobID, d.holder, d.token])
                n += db.changesCount
            }
            return n
        }
    }

    public func lease(jobID: String) async throws -> LeaseRecord? {
        try await pool.read { db in
            try Row.fetchOne(
                db,
                sql:
                    "SELECT lease_holder, lease_token, lease_until FROM poll_state WHERE job_id = ? AND lease_holder IS NOT NULL",
                arguments: [jobID]
            )
            .map { LeaseRecord(holder: $0[0], token: $0[1], untilMs: $0[2]) }
        }
    }

    /// Decodes a row selected with `columns`, by position (100k rows at boot).
    static func row(_ r: Row) -> JobStateRow {
        JobStateRow(
            jobID: r[0], kind: r[1], agent: r[2], cursor: r[3], lastRunAtMs: r[4], nextRunAtMs: r[5], lastStatus: r[6],
            lastError: r[7], lastDurationMs: r[8], consecutiveErrors: r[9], ticksTotal: r[10], itemsSeenTotal: r[11],
            itemsDispatchedTotal: r[12], paused: r[13], pausedReason: r[14], done: r[15], scheduleFingerprint: r[16],
            definitionFingerprint: r[17], updatedAtMs: r[18], outboxBacklog: r[19], pausedAtMs: r[20],
            lastAlertAtMs: r[21], lastOkAtMs: r[22], leaseHolder: r[23], leaseUntilMs: r[24])
    }
}

extension SQLiteStateStore: PollerdStore {}
