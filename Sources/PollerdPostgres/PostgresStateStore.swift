import Foundation
import Logging
import PollerdCore
import PostgresNIO
import Synchronization

/// The store on PostgreSQL, for several daemons on several hosts. Every batch the daemon hands
/// it (a claim, a commit) is one statement, so one round trip and one transaction; every write
/// is fenced by the lease token in its `WHERE`; every expiry follows the database's clock with
/// `time: .store` (the daemon's setting).
final class PostgresStateStore: PollerdStore {
    let url: PostgresURL
    private let configuration: PostgresClient.Configuration
    let time: StoreTime
    let logger: Logger
    /// Skipped slots' history rows (`recordSkip`), written by `run()` every 200 ms and before a
    /// history read.
    private let skipped = Mutex<[(TickRecord, Int)]>([])

    /// Hears other daemons' writes (`onWake`) while `run` runs.
    let listener: PostgresListener

    /// The server's statement timeout (0: none), as set for the pool's sessions.
    let statementTimeoutMs: Int

    init(url: PostgresURL, tuning: PostgresSettings, time: StoreTime, logger: Logger) {
        self.url = url
        statementTimeoutMs = tuning.statementTimeoutMs
        listener = PostgresListener(url: url, logger: logger)
        self.time = time
        self.logger = logger
        configuration = PostgresBackend.configuration(url, tuning: tuning)
        pool = Mutex(Pool(client: PostgresClient(configuration: configuration, backgroundLogger: logger)))
    }

    /// The connection pool, and the `run(clock:)` calls that keep it running. A `PostgresClient`
    /// runs once: the first `run` or the first call starts it (whichever comes first: `withStore`
    /// prepares as its `run` starts), the last `run` to end stops it and puts a new one in its
    /// place for a later `run`.
    private struct Pool: Sendable {
        var client: PostgresClient
        var runs = 0
        var task: Task<Void, Never>?
        /// Set by the pool's task as it calls `client.run()` (with no suspension between the two).
        var running = RunFlag()

        final class RunFlag: Sendable {
            private let value = Atomic<Bool>(false)
            func set() { value.store(true, ordering: .releasing) }
            var isSet: Bool { value.load(ordering: .acquiring) }
        }

        mutating func start() -> (PostgresClient, Bool) {
            if task == nil {
                let client = self.client
                let running = self.running
                // Unstructured: the pool outlives the call that starts it, until the last run ends.
                task = Task {
                    running.set()
                    await client.run()
                }
            }
            return (client, running.isSet)
        }
    }
    private let pool: Mutex<Pool>

    /// The pool the store's calls go through, once it runs (a lease before that waits as well,
    /// but PostgresNIO warns of it).
    var client: PostgresClient {
        get async {
            while true {
                let (client, running) = pool.withLock { $0.start() }
                if running { return client }
                await Task.yield()
            }
        }
    }

    // MARK: Life

    /// Runs the connection pool, and the store's upkeep (skipped slots' history rows every 200
    /// ms, the control log's old rows every minute), until cancelled. The pool runs in a task of
    /// its own, apart from this task's cancellation, so that the last history rows are written
    /// once upkeep stops; it is stopped after that.
    func run(clock: any WallClock) async throws {
        let first = pool.withLock { p in
            p.runs += 1
            _ = p.start()
            return p.runs == 1
        }
        // One listener for the store, with the first run (its task ends with this one's).
        let listening = first ? Task { [listener] in await listener.run(clock: clock) } : nil
        defer { listening?.cancel() }
        // And one probe: while the database does not answer, calls fail at once (below).
        let probing = first ? Task { await self.probe(clock: clock) } : nil
        defer { probing?.cancel() }
        var lastPrune: Int64 = 0
        while !Task.isCancelled {
            do { try await clock.sleep(untilMs: clock.nowMs + 200) } catch { break }
            try? await flushSkipped()
            if clock.nowMs - lastPrune >= 60_000 {
                lastPrune = clock.nowMs
                try? await pruneControlLog()
            }
        }
        // Not cancelled: the pool still runs, and this task's cancellation would refuse the query.
        await Task { try? await self.flushSkipped() }.value
        let (configuration, logger) = (self.configuration, self.logger)
        let stop: Task<Void, Never>? = pool.withLock { p in
            p.runs -= 1
            guard p.runs == 0, let task = p.task else { return nil }
            p.task = nil
            p.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
            p.running = Pool.RunFlag()
            return task
        }
        stop?.cancel()
        await stop?.value
    }

    func prepare() async throws {
        try await transaction { conn in
            try await conn.query("SELECT pg_advisory_xact_lock(\(PostgresSchema.migrationLock))", logger: logger)
            try await conn.query(
                "CREATE TABLE IF NOT EXISTS pollerd_migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger)
            var applied: Set<String> = []
            for try await id in try await conn.query("SELECT id FROM pollerd_migrations", logger: logger)
                .decode(String.self)
            {
                applied.insert(id)
            }
            let known = Set(PostgresSchema.migrations.map(\.id))
            let unknown = applied.subtracting(known)
            if !unknown.isEmpty {
                throw Newer(url: url.redacted, unknown: unknown.sorted())
            }
            for m in PostgresSchema.migrations where !applied.contains(m.id) {
                for statement in m.sql.components(separatedBy: ";\n") {
                    let sql = statement.trimmingCharacters(in: .whitespacesAndNewlines)
                    if sql.isEmpty { continue }
                    try await conn.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                }
                try await conn.query("INSERT INTO pollerd_migrations (id) VALUES (\(m.id))", logger: logger)
            }
        }
    }

    func onWake(_ handler: @escaping @Sendable (StoreWake) -> Void) {
        listener.add(handler)
    }

    /// A transaction open longer than this holds back vacuum long enough to warn about.
    static let oldTransactionSecs: Double = 300
    /// A table whose dead rows pass this share of its rows, once it is larger than
    /// `deadRowsMinBytes`, is one autovacuum is not keeping up with.
    static let deadRowsShare = 0.5
    static let deadRowsMinBytes: Int64 = 64 << 20
    /// A table (with its indexes) past this size is worth a look in any case.
    static let tableBoundBytes: Int64 = 4 << 30

    /// What pg-boss warns about: an old transaction holding back the xmin horizon (vacuum cannot
    /// remove the dead rows of pollerd's tables, which every tick updates, until it ends), and
    /// tables grown past a bound or full of dead rows.
    func maintenance() async throws -> StoreMaintenance {
        var m = StoreMaintenance()
        if let row = try await rows(
            """
            SELECT extract(epoch FROM now() - xact_start)::float8, pid, COALESCE(application_name, ''),
              COALESCE(state, '')
            FROM pg_stat_activity
            WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
            ORDER BY xact_start LIMIT 1
            """
        ).first {
            let (secs, pid, app, state) = try row.decode((Double, Int32, String, String).self)
            m.oldestTransactionSecs = secs
            if secs >= Self.oldTransactionSecs {
                m.warnings.append(
                    "A transaction on the database has been open for \(Int(secs / 60)) min (pid \(pid)"
                        + (app.isEmpty ? "" : ", \(app)") + (state.isEmpty ? "" : ", \(state)")
                        + "): until it ends, vacuum cannot remove the dead rows of pollerd's tables, which every "
                        + "tick updates, and they grow.")
            }
        }
        for row in try await rows(
            """
            SELECT relname::text, pg_total_relation_size(relid), n_live_tup, n_dead_tup FROM pg_stat_user_tables
            WHERE relname = ANY(\(PostgresSchema.tables)::text[]) ORDER BY relname
            """)
        {
            let (name, bytes, live, dead) = try row.decode((String, Int64, Int64, Int64).self)
            m.tables.append(.init(name: name, bytes: bytes, liveRows: live, deadRows: dead))
            let share = live + dead > 0 ? Double(dead) / Double(live + dead) : 0
            if bytes >= Self.deadRowsMinBytes && share >= Self.deadRowsShare {
                m.warnings.append(
                    "The table \(name) is \(bytes >> 20) MiB, \(Int(share * 100)) % of its rows dead: autovacuum is "
                        + "not keeping up (an old transaction, or autovacuum settings too slow for its updates).")
            } else if bytes >= Self.tableBoundBytes {
                m.warnings.append("The table \(name) has grown to \(bytes >> 20) MiB with its indexes.")
            }
        }
        return m
    }

    /// The schema's problems (none: `["ok"]`), without changing anything.
    func check() async throws -> [String] {
        var problems: [String] = []
        let hasTable = try await rows("SELECT to_regclass('pollerd_migrations') IS NOT NULL").first?.decode(Bool.self)
        guard hasTable == true else {
            return ["no pollerd schema yet: run `pollerd state migrate` (or start the daemon, which migrates)"]
        }
        let applied = Set(try await rows("SELECT id FROM pollerd_migrations").map { try $0.decode(String.self) })
        let known = PostgresSchema.migrations.map(\.id)
        let unknown = applied.subtracting(known)
        if !unknown.isEmpty {
            problems.append(
                "migrations from a newer pollerd: \(unknown.sorted().joined(separator: ", ")); run the newer version")
        }
        let missing = known.filter { !applied.contains($0) }
        if !missing.isEmpty {
            problems.append(
                "migrations not applied yet: \(missing.joined(separator: ", ")); run `pollerd state migrate`")
            return problems
        }
        for table in PostgresSchema.tables {
            do {
                _ = try await rows(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(table)"))
            } catch {
                problems.append("\(table): \(error)")
            }
        }
        return problems.isEmpty ? ["ok"] : problems
    }

    /// The database was migrated by a newer pollerd: this one refuses it and changes nothing.
    struct Newer: Error, CustomStringConvertible {
        var url: String
        var unknown: [String]
        var description: String {
            "the state database \(url) has migrations this pollerd does not know (\(unknown.joined(separator: ", "))): "
                + "it was written by a newer version. Nothing was changed; run the newer pollerd."
        }
    }

    /// Data the server reports damaged (SQLSTATE class XX: `data_corrupted`, `index_corrupted`);
    /// a lost connection, a timeout or a full disk is not damage.
    func isDamage(_ error: any Error) -> Bool {
        guard let e = error as? PostgresStoreError, let state = e.sqlState else { return false }
        return state == "XX001" || state == "XX002"
    }

    // MARK: Helpers

    /// The instant that decides expiries, as SQL: the database's clock (`now()`) when the store
    /// keeps time, else the caller's `nowMs` as a literal.
    func expiry(_ callerMs: Int64) -> String {
        time == .store ? "(floor(extract(epoch FROM now()) * 1000))::int8" : "(\(callerMs))::int8"
    }

    /// Runs a query (one statement, its own transaction) and collects its rows. A statement the
    /// server chose as a deadlock's victim, or failed for serialisation, was rolled back whole:
    /// it is run again (`retrying`).
    func rows(_ q: PostgresQuery) async throws -> [PostgresRow] {
        if let down = unreachable.withLock({ $0 }) {
            throw PostgresStoreError(message: "the database does not answer (\(down))", url: url)
        }
        return try await retrying {
            try await self.call { conn in
                var out: [PostgresRow] = []
                for try await r in try await conn.query(q, logger: self.logger) { out.append(r) }
                return out
            }
        }
    }

    /// Runs `body` on a connection from the pool, in a task of its own, and waits for it in
    /// `inFlight`. While the call waits for a connection, a probe that finds the database gone
    /// fails it at once (PostgresNIO keeps a lease request waiting while it tries to connect);
    /// once its statement is sent it is failed only past `callDeadlineMs` (the server may have run
    /// it: only its answer says so). Either way the caller is freed; what it left running ends
    /// with its connection.
    private func call<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T
    {
        let once = Once<T>()
        let id = ObjectIdentifier(once)
        let url = self.url
        let entry = InFlight(startedAt: .now) { reason in
            once.resume(with: .failure(PostgresStoreError(message: reason, url: url)))
        }
        inFlight.withLock { $0[id] = entry }
        defer { inFlight.withLock { _ = $0.removeValue(forKey: id) } }
        let client = await self.client
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            once.set(c)
            Task {
                let result: Result<T, any Error>
                do {
                    result = .success(
                        try await client.withConnection { conn in
                            self.inFlight.withLock { $0[id]?.sent = true }
                            return try await body(conn)
                        })
                } catch { result = .failure(error) }
                once.resume(with: result)
            }
        }
    }

    /// A call in flight: when it began, whether its statement was sent, and how to fail it.
    private struct InFlight: Sendable {
        var startedAt: ContinuousClock.Instant
        var sent = false
        var fail: @Sendable (String) -> Void

        init(startedAt: ContinuousClock.Instant, fail: @escaping @Sendable (String) -> Void) {
            self.startedAt = startedAt
            self.fail = fail
        }
    }

    private let inFlight = Mutex<[ObjectIdentifier: InFlight]>([:])

    /// Fails the calls still waiting for a connection (`unsentOnly`), or those past the deadline.
    private func failCalls(unsentOnly reason: String?) {
        let now = ContinuousClock.now
        let deadline = Duration.milliseconds(callDeadlineMs)
        let doomed: [(InFlight, String)] = inFlight.withLock { calls in
            calls.values.compactMap { c in
                if let reason, !c.sent { return (c, "the database does not answer (\(reason))") }
                if now - c.startedAt > deadline { return (c, "no answer within \(callDeadlineMs) ms") }
                return nil
            }
        }
        for (c, why) in doomed { c.fail(why) }
    }

    /// Why the database did not answer the last probe; nil while it does. Set and cleared by
    /// `probe`: calls then fail at once instead of waiting in the pool for a connection that
    /// cannot be made, so the daemon stops claiming, says so (its store health), and its leases
    /// lapse.
    private let unreachable = Mutex<String?>(nil)

    /// Asks the database `SELECT 1` every second, within `probeDeadlineMs`; when it does not
    /// answer, the calls waiting for a connection fail too; and calls past their deadline fail.
    private func probe(clock: any WallClock) async {
        while !Task.isCancelled {
            do {
                let client = await self.client
                _ = try await Self.withDeadline(Self.probeDeadlineMs, url: url, once: Once<Bool>()) {
                    for try await _ in try await client.query("SELECT 1", logger: self.logger) {}
                    return true
                }
                unreachable.withLock { $0 = nil }
                failCalls(unsentOnly: nil)
            } catch {
                if Task.isCancelled { return }
                let e = PostgresStoreError(error, url: url)
                unreachable.withLock { $0 = e.message }
                failCalls(unsentOnly: e.message)
            }
            do { try await clock.sleep(untilMs: clock.nowMs + 1000) } catch { return }
        }
    }

    static let probeDeadlineMs = 3000

    /// The most a call waits for its answer: the server's statement timeout and ten seconds more
    /// (a lease from the pool, the round trip). Past it the call throws; what it left running
    /// ends with its connection.
    var callDeadlineMs: Int { max(statementTimeoutMs, 30_000) + 10_000 }

    /// Runs `body`, or throws once `ms` have passed; a body that does not end at once when
    /// cancelled is left to end by itself.
    static func withDeadline<T: Sendable>(
        _ ms: Int, url: PostgresURL, once: Once<T>, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            once.set(c)
            // The timer ends with the work (thousands of calls a second must not leave as many
            // sleeping timers behind); the work is not cancelled when the timer fires, since a
            // statement already sent runs on regardless.
            let timer = Task {
                try? await Task.sleep(for: .milliseconds(ms))
                if !Task.isCancelled {
                    once.resume(with: .failure(PostgresStoreError(message: "no answer within \(ms) ms", url: url)))
                }
            }
            Task {
                let result: Result<T, any Error>
                do { result = .success(try await body()) } catch { result = .failure(error) }
                once.resume(with: result)
                timer.cancel()
            }
        }
    }

    func exec(_ q: PostgresQuery) async throws {
        _ = try await rows(q)
    }

    /// Runs `body` in a transaction (one connection, BEGIN … COMMIT, rolled back if it throws),
    /// again from the start if the server rolled it back as a deadlock's victim.
    func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await retrying {
            do {
                return try await self.client.withTransaction(logger: self.logger) { conn in try await body(conn) }
            } catch let e as PostgresTransactionError {
                throw e.closureError ?? e.beginError ?? e.commitError ?? e
            }
        }
    }

    /// Runs `body`, again (up to `retries` times, a few random milliseconds apart) when it fails
    /// with a deadlock (40P01) or a serialisation failure (40001): the server rolled the whole
    /// transaction back, so running it again is safe. Other errors pass as `PostgresStoreError`.
    func retrying<T>(_ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch {
                let e = PostgresStoreError(error, url: url)
                attempt += 1
                guard attempt < Self.retries, e.sqlState == "40P01" || e.sqlState == "40001" else { throw e }
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...(5 * attempt))))
            }
        }
    }

    /// How often a deadlock's victim is tried again.
    static let retries = 8

    /// `value` as JSON for `jsonb_to_recordset`, its keys in snake case (`jobID` is `job_id`).
    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static let columns = """
        p.job_id, p.kind, p.agent, p.cursor, p.last_run_at, p.next_run_at, p.last_status, p.last_error,
        p.last_duration_ms, p.consecutive_errors, p.ticks_total, p.items_seen_total, p.items_dispatched_total,
        p.paused, p.paused_reason, p.done, p.schedule_fp, p.definition_fp, p.updated_at,
        COALESCE((SELECT max(l.pending) FROM outbox_lane l WHERE l.job_id = p.job_id), 0), p.paused_at,
        p.last_alert_at, p.last_ok_at, p.lease_holder, p.lease_until
        """

    static func stateRow(_ row: PostgresRow) throws -> JobStateRow {
        let r = row.makeRandomAccess()
        return JobStateRow(
            jobID: try r[0].decode(String.self), kind: try r[1].decode(String.self),
            agent: try r[2].decode(String.self), cursor: try r[3].decode(Data?.self),
            lastRunAtMs: try r[4].decode(Int64?.self), nextRunAtMs: try r[5].decode(Int64?.self),
            lastStatus: try r[6].decode(String?.self), lastError: try r[7].decode(String?.self),
            lastDurationMs: try r[8].decode(Int64?.self), consecutiveErrors: try r[9].decode(Int.self),
            ticksTotal: try r[10].decode(Int64.self), itemsSeenTotal: try r[11].decode(Int64.self),
            itemsDispatchedTotal: try r[12].decode(Int64.self), paused: try r[13].decode(Bool.self),
            pausedReason: try r[14].decode(String?.self), done: try r[15].decode(Bool.self),
            scheduleFingerprint: try r[16].decode(String?.self), definitionFingerprint: try r[17].decode(String?.self),
            updatedAtMs: try r[18].decode(Int64.self), outboxBacklog: try r[19].decode(Int64.self),
            pausedAtMs: try r[20].decode(Int64?.self), lastAlertAtMs: try r[21].decode(Int64?.self),
            lastOkAtMs: try r[22].decode(Int64?.self), leaseHolder: try r[23].decode(String?.self),
            leaseUntilMs: try r[24].decode(Int64.self))
    }

    // MARK: Plugin status

    func recordPluginStatuses(_ records: [PluginStatusRecord], daemonID: String) async throws {
        struct Row: Encodable {
            var pluginID: String
            var lifecycle: String
            var phase: String
            var pid: Int32?
            var restarts: Int
            var ticks: Int64
            var failures: Int64
            var lastError: String?
            var stderrTail: String
            var updatedAt: Int64
            var ord: Int
        }
        let rows = try records.enumerated().map { ord, r in
            Row(
                pluginID: r.pluginID, lifecycle: r.lifecycle, phase: r.phase, pid: r.pid, restarts: r.restarts,
                ticks: r.ticks, failures: r.failures, lastError: r.lastError,
                stderrTail: try Self.json(r.stderrTail), updatedAt: r.updatedAtMs, ord: ord)
        }
        let doc = try Self.json(rows)
        // One statement: the reported plugins' rows upserted, the others of this daemon deleted
        // (two sets of rows apart, so one statement may touch both).
        try await exec(
            """
            WITH x AS (
              SELECT DISTINCT ON (x.plugin_id) x.* FROM jsonb_to_recordset(\(doc)::jsonb) AS x(plugin_id text,
                lifecycle text, phase text, pid int4, restarts int4, ticks int8, failures int8, last_error text,
                stderr_tail text, updated_at int8, ord int4)
              ORDER BY x.plugin_id, x.ord DESC),
            gone AS (
              DELETE FROM plugin_status WHERE daemon_id = \(daemonID)
                AND NOT (plugin_id = ANY(ARRAY(SELECT plugin_id FROM x))))
            INSERT INTO plugin_status (daemon_id, plugin_id, lifecycle, phase, pid, restarts, ticks, failures,
              last_error, stderr_tail, updated_at)
            SELECT \(daemonID), plugin_id, lifecycle, phase, pid, restarts, ticks, failures, last_error, stderr_tail,
              updated_at FROM x
            ON CONFLICT (plugin_id, daemon_id) DO UPDATE SET lifecycle = excluded.lifecycle, phase = excluded.phase,
              pid = excluded.pid, restarts = excluded.restarts, ticks = excluded.ticks, failures = excluded.failures,
              last_error = excluded.last_error, stderr_tail = excluded.stderr_tail, updated_at = excluded.updated_at
            """)
    }

    func pluginStatuses() async throws -> [DaemonPluginStatus] {
        try await rows(
            """
            SELECT daemon_id, plugin_id, lifecycle, phase, pid, restarts, ticks, failures, last_error, stderr_tail, updated_at
            FROM plugin_status ORDER BY plugin_id, daemon_id
            """
        ).map { row in
            let r = row.makeRandomAccess()
            let tailText = try r[9].decode(String.self)
            let tail = (try? JSONDecoder().decode([String].self, from: Data(tailText.utf8))) ?? []
            return DaemonPluginStatus(
                daemonID: try r[0].decode(String.self),
                status: PluginStatusRecord(
                    pluginID: try r[1].decode(String.self), lifecycle: try r[2].decode(String.self),
                    phase: try r[3].decode(String.self), pid: try r[4].decode(Int32?.self),
                    restarts: try r[5].decode(Int.self), ticks: try r[6].decode(Int64.self),
                    failures: try r[7].decode(Int64.self), lastError: try r[8].decode(String?.self), stderrTail: tail,
                    updatedAtMs: try r[10].decode(Int64.self)))
        }
    }

    // MARK: Jobs

    func register(_ jobs: [JobRegistration], nowMs: Int64) async throws -> [String: JobStateRow] {
        guard !jobs.isEmpty else { return [:] }
        let ids = jobs.map(\.jobID)
        let kinds = jobs.map(\.kind)
        let agents = jobs.map(\.agent)
        let pausedOnBoot = jobs.map(\.pausedOnBoot)
        try await exec(
            """
            INSERT INTO poll_state (job_id, kind, agent, paused, paused_reason, paused_at, created_at, updated_at)
            SELECT x.job_id, x.kind, x.agent, x.paused, CASE WHEN x.paused THEN 'paused_on_boot' END,
              CASE WHEN x.paused THEN \(nowMs)::int8 END, \(nowMs), \(nowMs)
            FROM unnest(\(ids)::text[], \(kinds)::text[], \(agents)::text[], \(pausedOnBoot)::bool[]) AS x(job_id, kind, agent, paused)
            ORDER BY x.job_id
            ON CONFLICT (job_id) DO UPDATE SET kind = excluded.kind, agent = excluded.agent
            WHERE poll_state.kind IS DISTINCT FROM excluded.kind OR poll_state.agent IS DISTINCT FROM excluded.agent
            """)
        var out: [String: JobStateRow] = [:]
        out.reserveCapacity(jobs.count)
        for r in try await rows(
            "SELECT \(unescaped: Self.columns) FROM poll_state p WHERE p.job_id = ANY(\(ids)::text[])")
        {
            let row = try Self.stateRow(r)
            out[row.jobID] = row
        }
        return out
    }

    func states(after jobID: String?, limit: Int) async throws -> [JobStateRow] {
        try await rows(
            """
            SELECT \(unescaped: Self.columns) FROM poll_state p
            WHERE (\(jobID)::text IS NULL OR p.job_id > \(jobID)::text) ORDER BY p.job_id LIMIT \(max(0, limit))
            """
        ).map(Self.stateRow)
    }

    func state(jobID: String) async throws -> JobStateRow? {
        try await rows("SELECT \(unescaped: Self.columns) FROM poll_state p WHERE p.job_id = \(jobID)").first.map(
            Self.stateRow)
    }

    func lease(jobID: String) async throws -> LeaseRecord? {
        try await rows(
            "SELECT lease_holder, lease_token, lease_until FROM poll_state WHERE job_id = \(jobID) AND lease_holder IS NOT NULL"
        ).first.map { row in
            let (holder, token, until) = try row.decode((String, Int64, Int64).self)
            return LeaseRecord(holder: holder, token: token, untilMs: until)
        }
    }

    func jobHealth(_ q: JobHealthQuery) async throws -> JobHealthCounts {
        // JobHealth.of, in SQL, over the jobs the daemon announced.
        let threshold = max(1, q.breakerThreshold)
        var byState: [JobHealth: Int] = [:]
        for row in try await rows(
            """
            SELECT s, COUNT(*)::int8 FROM (SELECT CASE
              WHEN p.paused THEN 'paused'
              WHEN p.done THEN 'done'
              WHEN p.last_status IS NOT DISTINCT FROM 'backpressure' THEN 'backlogged'
              WHEN p.consecutive_errors >= \(threshold) THEN 'breaker_open'
              WHEN p.consecutive_errors > 0 AND p.last_status IS NOT DISTINCT FROM 'transient' THEN 'backing_off'
              WHEN p.consecutive_errors > 0 THEN 'failing'
              WHEN p.last_run_at IS NULL THEN 'never_ran'
              ELSE 'ok'
            END AS s
            FROM poll_state p JOIN daemon_jobs d ON d.job_id = p.job_id AND d.daemon_id = \(q.daemonID)) x GROUP BY s
            """)
        {
            let (s, n) = try row.decode((String, Int64).self)
            if let h = JobHealth(rawValue: s) { byState[h] = Int(n) }
        }
        let oldest =
            try await rows(
                """
                SELECT MIN(p.last_ok_at) FROM poll_state p JOIN daemon_jobs d ON d.job_id = p.job_id AND d.daemon_id = \(q.daemonID)
                WHERE NOT p.paused AND NOT p.done
                """
            ).first.map { try $0.decode(Int64?.self) } ?? nil
        var stale = 0
        for (limitSecs, ids) in q.staleAfterSecs where !ids.isEmpty {
            stale +=
                try await rows(
                    """
                    SELECT COUNT(*)::int8 FROM poll_state p JOIN daemon_jobs d ON d.job_id = p.job_id AND d.daemon_id = \(q.daemonID)
                    WHERE p.job_id = ANY(\(ids)::text[]) AND NOT p.paused AND NOT p.done
                      AND \(q.nowMs)::int8 - COALESCE(p.last_ok_at, \(q.registeredAtMs)::int8) > \(limitSecs * 1000)::int8
                    """
                ).first.map { Int(try $0.decode(Int64.self)) } ?? 0
        }
        return JobHealthCounts(byState: byState, stale: stale, oldestLastOkAtMs: oldest)
    }

    // MARK: Controls

    func setPaused(jobID: String, paused: Bool, reason: String?, nowMs: Int64) async throws -> Bool {
        let action = paused ? "pause" : "resume"
        return
            !(try await rows(
                """
                WITH u AS (
                  UPDATE poll_state SET paused = \(paused), paused_reason = \(paused ? reason : nil)::text,
                    paused_at = \(paused ? nowMs : nil)::int8, updated_at = \(nowMs),
                    consecutive_errors = CASE WHEN NOT \(paused) AND last_status IN ('permanent', 'config') THEN 0
                      ELSE consecutive_errors END
                  WHERE job_id = \(jobID) RETURNING job_id),
                c AS (INSERT INTO control_log (job_id, action, at) SELECT job_id, \(action), \(nowMs) FROM u)
                SELECT 1 FROM u
                """
            ).isEmpty)
    }

    func reset(jobID: String, nowMs: Int64) async throws -> Bool {
        // Fences off a tick in flight (token + 1): its commit would write the old cursor back.
        !(try await rows(
            """
            WITH u AS (
              UPDATE poll_state SET cursor = NULL, consecutive_errors = 0, last_error = NULL, done = false,
                updated_at = \(nowMs), lease_token = lease_token + 1, lease_until = 0
              WHERE job_id = \(jobID) RETURNING job_id),
            c AS (INSERT INTO control_log (job_id, action, at) SELECT job_id, 'reset', \(nowMs) FROM u)
            SELECT pg_notify('pollerd_control', '') FROM u
            """
        ).isEmpty)
    }

    func setCursor(jobID: String, cursor: Data?, audit: AuditEntry) async throws -> Bool {
        !(try await rows(
            """
            WITH u AS (
              UPDATE poll_state SET cursor = \(cursor)::bytea, updated_at = \(audit.atMs),
                lease_token = lease_token + 1, lease_until = 0
              WHERE job_id = \(jobID) RETURNING job_id),
            a AS (INSERT INTO audit_log (at, actor, action, job_id, detail)
              SELECT \(audit.atMs), \(audit.actor), \(audit.action), \(audit.jobID)::text, \(audit.detail)::text FROM u)
            SELECT 1 FROM u
            """
        ).isEmpty)
    }

    func recordAudit(_ e: AuditEntry) async throws {
        try await exec(
            """
            INSERT INTO audit_log (at, actor, action, job_id, detail)
            VALUES (\(e.atMs), \(e.actor), \(e.action), \(e.jobID)::text, \(e.detail)::text)
            """)
    }

    func auditLog(jobID: String?, limit: Int) async throws -> [AuditEntry] {
        try await rows(
            """
            SELECT at, actor, action, job_id, detail FROM audit_log
            WHERE (\(jobID)::text IS NULL OR job_id = \(jobID)::text) ORDER BY seq DESC LIMIT \(max(0, limit))
            """
        ).map { row in
            let (at, actor, action, job, detail) = try row.decode((Int64, String, String, String?, String?).self)
            return AuditEntry(atMs: at, actor: actor, action: action, jobID: job, detail: detail)
        }
    }

    // The control log's cursor. A sequence number is taken before its row commits, so reading
    // `seq > last` would miss a row that commits after a later one was read. Each row carries
    // the id of the transaction that wrote it (`xid`, `pg_current_xact_id()`). A look reads, in
    // one snapshot, that snapshot's xmin (every transaction below it has ended: committed and
    // visible, or gone) and every row whose xid is at or above the last look's xmin. The cursor
    // is the new xmin and the seqs already returned at or above it; the next look reads from that
    // xmin again and leaves those seqs out. A row whose transaction was still open at a look has
    // an xid at or above that look's xmin, so a later look reads it once it commits. The seqs the
    // cursor carries are those of rows written while some transaction stayed open: a handful.

    func controlCursor() async throws -> ControlCursor {
        try await look(after: ControlPosition(xmin: nil, seen: [])).next
    }

    func controlChanges(after cursor: ControlCursor) async throws -> ControlBatch {
        try await look(after: ControlPosition(cursor))
    }

    /// One look at the log, in one statement (so one snapshot): the snapshot's xmin, and the rows
    /// at or above `from`'s xmin that it has not returned. With no xmin (a new reader) the rows
    /// are not returned, only counted into the cursor: it starts at the end of the log.
    private func look(after from: ControlPosition) async throws -> ControlBatch {
        let fromXmin = from.xmin.map(String.init) ?? "0"
        let seenSeqs = from.seen.map(\.seq)
        let result = try await rows(
            """
            SELECT pg_snapshot_xmin(pg_current_snapshot())::text, c.seq, c.xid::text, c.job_id, c.action
            FROM (SELECT 1) one LEFT JOIN control_log c
              ON c.xid >= (CASE WHEN \(from.xmin == nil) THEN pg_snapshot_xmin(pg_current_snapshot())
                               ELSE \(fromXmin)::text::xid8 END)
              AND NOT (c.seq = ANY(\(seenSeqs)::int8[]))
            ORDER BY c.seq
            """)
        var xminText = fromXmin
        var changes: [ControlChange] = []
        var read: [(seq: Int64, xid: UInt64)] = []
        for row in result {
            let (x, seq, xid, job, action) = try row.decode((String, Int64?, String?, String?, String?).self)
            xminText = x
            guard let seq, let xid = xid.flatMap(UInt64.init), let job, let action else { continue }
            read.append((seq, xid))
            if from.xmin != nil, let a = ControlChange.Action(rawValue: action) {
                changes.append(ControlChange(jobID: job, action: a))
            }
        }
        let xmin = UInt64(xminText) ?? 0
        // What the next look must leave out: the rows returned so far that it will read again.
        let seen = (from.seen + read).filter { $0.xid >= xmin }.sorted { $0.seq < $1.seq }
        return ControlBatch(changes: changes, next: ControlPosition(xmin: xmin, seen: seen).cursor)
    }

    /// Drops control rows older than a day: readers look every few seconds.
    func pruneControlLog() async throws {
        try await exec(
            """
            DELETE FROM control_log WHERE seq IN (
              SELECT seq FROM control_log WHERE at < \(Self.realTimeMs() - 86_400_000)::int8 ORDER BY seq LIMIT 10000)
            """)
    }

    static func realTimeMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: Schedules, renewals

    func recordSchedules(_ records: [ScheduleRecord], nowMs: Int64) async throws {
        guard !records.isEmpty else { return }
        struct Row: Encodable {
            var jobID: String
            var nextRunAt: Int64?
            var scheduleFp: String?
            var definitionFp: String?
            var ord: Int
        }
        let doc = try Self.json(
            records.enumerated().map { ord, r in
                Row(
                    jobID: r.jobID, nextRunAt: r.nextRunAtMs, scheduleFp: r.scheduleFingerprint,
                    definitionFp: r.definitionFingerprint, ord: ord)
            })
        try await exec(
            """
            UPDATE poll_state p SET next_run_at = x.next_run_at, schedule_fp = x.schedule_fp,
              definition_fp = x.definition_fp, updated_at = \(nowMs)
            FROM (SELECT DISTINCT ON (job_id) * FROM jsonb_to_recordset(\(doc)::jsonb)
                    AS r(job_id text, next_run_at int8, schedule_fp text, definition_fp text, ord int4)
                  ORDER BY job_id, ord DESC) x
            WHERE p.job_id = x.job_id
            """)
    }

    func renewLease(_ lease: LeaseGrant, ttlMs: Int64, nowMs: Int64) async throws -> Bool {
        !(try await rows(
            """
            UPDATE poll_state SET lease_until = \(unescaped: expiry(nowMs)) + \(ttlMs)::int8
            WHERE job_id = \(lease.jobID) AND lease_holder = \(lease.holder) AND lease_token = \(lease.token)
              AND lease_until > 0
            RETURNING 1
            """
        ).isEmpty)
    }

    func releaseLease(_ lease: LeaseGrant) async throws {
        try await exec(
            """
            UPDATE poll_state SET lease_until = 0
            WHERE job_id = \(lease.jobID) AND lease_holder = \(lease.holder) AND lease_token = \(lease.token)
            """)
    }

    func reclaimLeases(on host: HostProcesses, nowMs: Int64) async throws -> Int {
        // This host's holders only (`host:` as a prefix, by range so the match is exact).
        let held = try await rows(
            """
            SELECT job_id, lease_holder, lease_token FROM poll_state
            WHERE lease_until > \(unescaped: expiry(nowMs)) AND lease_holder >= \(host.host + ":")
              AND lease_holder < \(host.host + ";")
            """
        ).map { try $0.decode((String, String, Int64).self) }
        let gone = held.filter { host.isAbandoned($0.1) }
        guard !gone.isEmpty else { return 0 }
        return try await rows(
            """
            UPDATE poll_state p SET lease_until = 0
            FROM unnest(\(gone.map(\.0))::text[], \(gone.map(\.1))::text[], \(gone.map(\.2))::int8[]) AS g(job_id, holder, token)
            WHERE p.job_id = g.job_id AND p.lease_holder = g.holder AND p.lease_token = g.token
            RETURNING 1
            """
        ).count
    }

    // MARK: History

    static let historyFields =
        "seq, slot_at, started_at, duration_ms, status, error, items_found, items_new, duplicates, cursor, cursor_changed, holder"

    func recordSkip(_ record: TickRecord, historyLimit: Int) {
        guard historyLimit > 0 else { return }
        skipped.withLock { $0.append((record, historyLimit)) }
    }

    /// Writes the buffered skipped slots' rows in one statement, each job's history trimmed to
    /// its limit in the same statement.
    func flushSkipped() async throws {
        let batch = skipped.withLock { b -> [(TickRecord, Int)] in
            defer { b.removeAll(keepingCapacity: true) }
            return b
        }
        guard !batch.isEmpty else { return }
        let doc = try Self.json(batch.enumerated().map { HistoryRow($1.0, keep: $1.1, ord: $0) })
        do {
            try await exec(
                """
                WITH h AS (
                  SELECT * FROM jsonb_to_recordset(\(doc)::jsonb) AS x(\(unescaped: HistoryRow.columns))),
                ins AS (
                  INSERT INTO tick_log (job_id, keep, \(unescaped: Self.historyFields))
                  SELECT h.job_id, h.keep, h.seq, h.slot_at, h.started_at, h.duration_ms, h.status, h.error,
                    h.items_found, h.items_new, h.duplicates, decode(h.cursor, 'base64'), h.cursor_changed, h.holder
                  FROM h WHERE EXISTS (SELECT 1 FROM poll_state p WHERE p.job_id = h.job_id) ORDER BY h.ord)
                \(unescaped: Self.trimHistorySQL("(SELECT job_id, max(keep) - count(*) AS keep FROM h GROUP BY job_id)"))
                """)
        } catch {
            skipped.withLock { $0.insert(contentsOf: batch, at: 0) }
            throw error
        }
    }

    /// Deletes each job's history rows past its newest `keep`, counting the rows the same
    /// statement inserts (which it cannot see): `jobs` gives, per job, how many of the rows it
    /// can see to keep.
    static func trimHistorySQL(_ jobs: String) -> String {
        """
        DELETE FROM tick_log t USING \(jobs) k
        WHERE t.job_id = k.job_id AND t.pos <= COALESCE((
          SELECT y.pos FROM tick_log y WHERE y.job_id = k.job_id ORDER BY y.pos DESC
          OFFSET greatest(k.keep, 0) LIMIT 1), -1)
        """
    }

    func tickHistory(jobID: String, limit: Int) async throws -> [TickRecord] {
        try await flushSkipped()
        guard limit > 0 else { return [] }
        return try await rows(
            """
            SELECT \(unescaped: Self.historyFields) FROM tick_log WHERE job_id = \(jobID)
            ORDER BY pos DESC
            LIMIT least(\(limit)::int8, COALESCE((SELECT keep FROM tick_log WHERE job_id = \(jobID) ORDER BY pos DESC LIMIT 1), 0))
            """
        ).map { row in
            let r = row.makeRandomAccess()
            return TickRecord(
                seq: try r[0].decode(Int64.self), jobID: jobID, slotMs: try r[1].decode(Int64?.self),
                startedAtMs: try r[2].decode(Int64.self), durationMs: try r[3].decode(Int64.self),
                status: try r[4].decode(String.self), error: try r[5].decode(String?.self),
                itemsFound: try r[6].decode(Int64.self), itemsNew: try r[7].decode(Int64.self),
                duplicates: try r[8].decode(Int64.self), cursor: try r[9].decode(Data?.self),
                cursorChanged: try r[10].decode(Bool.self), holder: try r[11].decode(String.self))
        }
    }

    // MARK: Daemons

    // No call holds a transaction open across round trips: a daemon stopped (SIGSTOP) between
    // two statements of one would hold its locks until the server ends its session
    // (`idle_in_transaction_session_timeout`), and PostgresNIO was seen never to return from
    // the next statement on such a session. Each call is one statement, or several that each
    // stand alone.

    func announce(_ d: DaemonAnnouncement, nowMs: Int64) async throws -> [String] {
        let ids = d.jobs.keys.sorted()
        let fps = ids.map { d.jobs[$0] ?? "" }
        let now = expiry(nowMs)
        // The daemon and its job set (rows of jobs it no longer has deleted, the others upserted),
        // then the active set recomputed from every live daemon's.
        try await exec(
            """
            WITH daemon AS (
              INSERT INTO daemons (daemon_id, job_file, started_at, alive_until)
              VALUES (\(d.daemonID), \(d.jobFile), \(nowMs), \(unescaped: now) + \(d.ttlMs)::int8)
              ON CONFLICT (daemon_id) DO UPDATE SET job_file = excluded.job_file, alive_until = excluded.alive_until),
            j AS (SELECT * FROM unnest(\(ids)::text[], \(fps)::text[]) AS x(job_id, fp)),
            dropped AS (
              DELETE FROM daemon_jobs WHERE daemon_id = \(d.daemonID) AND NOT (job_id = ANY(\(ids)::text[]))),
            kept AS (
              INSERT INTO daemon_jobs (daemon_id, job_id, definition_fp) SELECT \(d.daemonID), job_id, fp FROM j
              ORDER BY job_id
              ON CONFLICT (daemon_id, job_id) DO UPDATE SET definition_fp = excluded.definition_fp
              WHERE daemon_jobs.definition_fp IS DISTINCT FROM excluded.definition_fp)
            UPDATE poll_state p SET definition_fp = j.fp FROM j
            WHERE p.job_id = j.job_id AND p.definition_fp IS DISTINCT FROM j.fp
            """)
        return try await deactivateOrphans(now: now, stampMs: nowMs)
    }

    /// Forgets the daemons whose liveness ran out by `now` (with what they served and their job
    /// sets) and takes the jobs no live daemon has out of the active set (their rows stamped
    /// `stampMs`), in one statement; returns those jobs' ids. The active set is read from the
    /// live daemons alone, so the rows of the forgotten ones, still visible to the statement, do
    /// not count. A job's planned run stays with its state: a daemon that has it again keeps it.
    func deactivateOrphans(now: String, stampMs: Int64) async throws -> [String] {
        try await rows(
            """
            WITH dead AS (DELETE FROM daemons WHERE alive_until <= \(unescaped: now) RETURNING daemon_id),
            served AS (DELETE FROM served_sink WHERE holder IN (SELECT daemon_id FROM dead)),
            jobsets AS (
              DELETE FROM daemon_jobs WHERE daemon_id IN (SELECT daemon_id FROM dead)
                OR daemon_id NOT IN (SELECT daemon_id FROM daemons))
            UPDATE poll_state p SET definition_fp = NULL, updated_at = \(stampMs)
            WHERE p.definition_fp IS NOT NULL AND NOT EXISTS (
              SELECT 1 FROM daemon_jobs j JOIN daemons d ON d.daemon_id = j.daemon_id
              WHERE j.job_id = p.job_id AND d.alive_until > \(unescaped: now))
            RETURNING p.job_id
            """
        ).map { try $0.decode(String.self) }.sorted()
    }

    func heartbeat(daemonID: String, ttlMs: Int64, nowMs: Int64) async throws -> Bool {
        !(try await rows(
            """
            UPDATE daemons SET alive_until = \(unescaped: expiry(nowMs)) + \(ttlMs)::int8 WHERE daemon_id = \(daemonID)
            RETURNING 1
            """
        ).isEmpty)
    }

    func retire(daemonID: String, nowMs: Int64) async throws {
        let now = expiry(nowMs)
        try await exec(
            """
            WITH d AS (DELETE FROM daemons WHERE daemon_id = \(daemonID)),
            s AS (DELETE FROM served_sink WHERE holder = \(daemonID))
            DELETE FROM daemon_jobs WHERE daemon_id = \(daemonID)
            """)
        _ = try await deactivateOrphans(now: now, stampMs: nowMs)
    }

    func liveDaemons(nowMs: Int64) async throws -> [DaemonRecord] {
        try await rows(
            """
            SELECT d.daemon_id, d.job_file, d.started_at, d.alive_until,
              (SELECT COUNT(*) FROM daemon_jobs j WHERE j.daemon_id = d.daemon_id)::int8
            FROM daemons d WHERE d.alive_until > \(unescaped: expiry(nowMs)) ORDER BY d.started_at, d.daemon_id
            """
        ).map { row in
            let (id, file, started, until, jobs) = try row.decode((String, String, Int64, Int64, Int64).self)
            return DaemonRecord(daemonID: id, jobFile: file, startedAtMs: started, aliveUntilMs: until, jobs: Int(jobs))
        }
    }

    func jobOwners(jobID: String, nowMs: Int64) async throws -> [String] {
        try await rows(
            """
            SELECT j.daemon_id FROM daemon_jobs j JOIN daemons d ON d.daemon_id = j.daemon_id
            WHERE j.job_id = \(jobID) AND d.alive_until > \(unescaped: expiry(nowMs)) ORDER BY j.daemon_id
            """
        ).map { try $0.decode(String.self) }
    }

    func liveDefinitions(jobIDs: [String], nowMs: Int64) async throws -> [String: [String: String]] {
        guard !jobIDs.isEmpty else { return [:] }
        var out: [String: [String: String]] = [:]
        for row in try await rows(
            """
            SELECT j.job_id, j.daemon_id, j.definition_fp FROM daemon_jobs j JOIN daemons d ON d.daemon_id = j.daemon_id
            WHERE j.job_id = ANY(\(jobIDs)::text[]) AND d.alive_until > \(unescaped: expiry(nowMs))
              AND j.definition_fp IS NOT NULL
            """)
        {
            let (job, daemon, fp) = try row.decode((String, String, String).self)
            out[job, default: [:]][daemon] = fp
        }
        return out
    }

    func divergentDefinitions(nowMs: Int64) async throws -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        for row in try await rows(
            """
            WITH live AS (
              SELECT j.job_id, j.daemon_id, j.definition_fp FROM daemon_jobs j
              JOIN daemons d ON d.daemon_id = j.daemon_id
              WHERE d.alive_until > \(unescaped: expiry(nowMs)) AND j.definition_fp IS NOT NULL)
            SELECT job_id, daemon_id, definition_fp FROM live WHERE job_id IN (
              SELECT job_id FROM live GROUP BY job_id HAVING COUNT(DISTINCT definition_fp) > 1)
            """)
        {
            let (job, daemon, fp) = try row.decode((String, String, String).self)
            out[job, default: [:]][daemon] = fp
        }
        return out
    }
}

/// A history row as the statements read it from JSON (`jsonb_to_recordset`).
struct HistoryRow: Encodable {
    var jobID: String
    var keep: Int
    var seq: Int64
    var slotAt: Int64?
    var startedAt: Int64
    var durationMs: Int64
    var status: String
    var error: String?
    var itemsFound: Int64
    var itemsNew: Int64
    var duplicates: Int64
    var cursor: Data?
    var cursorChanged: Bool
    var holder: String
    var ord: Int

    init(_ t: TickRecord, keep: Int, ord: Int) {
        self.ord = ord
        jobID = t.jobID
        self.keep = keep
        seq = t.seq
        slotAt = t.slotMs
        startedAt = t.startedAtMs
        durationMs = t.durationMs
        status = t.status
        error = t.error
        itemsFound = t.itemsFound
        itemsNew = t.itemsNew
        duplicates = t.duplicates
        cursor = t.cursor
        cursorChanged = t.cursorChanged
        holder = t.holder
    }

    static let columns = """
        job_id text, keep int4, seq int8, slot_at int8, started_at int8, duration_ms int8, status text, error text,
        items_found int8, items_new int8, duplicates int8, cursor text, cursor_changed bool, holder text, ord int4
        """
}

/// Where a reader of the control log stands (`ControlCursor`'s token on this store): the xmin of
/// its last look's snapshot, and the rows at or above it that it already returned.
/// Token: `x<xmin>[:<seq>@<xid>,…]`.
struct ControlPosition {
    var xmin: UInt64?
    var seen: [(seq: Int64, xid: UInt64)]

    init(xmin: UInt64?, seen: [(seq: Int64, xid: UInt64)]) {
        self.xmin = xmin
        self.seen = seen
    }

    /// A cursor of this store; one it cannot read (another store's) reads from the start of the log.
    init(_ c: ControlCursor) {
        xmin = 0
        seen = []
        guard c.token.hasPrefix("x") else { return }
        let parts = c.token.dropFirst().split(separator: ":", maxSplits: 1)
        guard let first = parts.first, let x = UInt64(first) else { return }
        xmin = x
        if parts.count > 1 {
            seen = parts[1].split(separator: ",").compactMap { pair in
                let p = pair.split(separator: "@")
                guard p.count == 2, let s = Int64(p[0]), let x = UInt64(p[1]) else { return nil }
                return (s, x)
            }
        }
    }

    var cursor: ControlCursor {
        ControlCursor(
            token: "x\(xmin ?? 0)"
                + (seen.isEmpty ? "" : ":" + seen.map { "\($0.seq)@\($0.xid)" }.joined(separator: ",")))
    }
}

/// A PostgreSQL error as the store reports it: the server's message and SQLSTATE (or the
/// connection's failure), and the database it came from, with no password and no bound values
/// (a cursor or an item may be anyone's data).
struct PostgresStoreError: Error, CustomStringConvertible {
    var message: String
    var sqlState: String?
    var database: String

    init(message: String, url: PostgresURL) {
        self.message = message
        sqlState = nil
        database = url.redacted
    }

    init(_ error: any Error, url: PostgresURL) {
        database = url.redacted
        if let e = error as? PostgresStoreError {
            self = e
            return
        }
        if let e = error as? PSQLError {
            if let info = e.serverInfo {
                sqlState = info[.sqlState]
                var m = info[.message] ?? "error"
                if let detail = info[.detail] { m += " (\(detail))" }
                if let hint = info[.hint] { m += "; hint: \(hint)" }
                if let position = info[.position] { m += " at character \(position) of the statement" }
                message = m
            } else {
                sqlState = nil
                message = "\(e.code)" + (e.underlying.map { ": \($0)" } ?? "")
            }
        } else {
            sqlState = nil
            message = "\(error)"
        }
    }

    var description: String {
        "PostgreSQL \(database): \(message)" + (sqlState.map { " [SQLSTATE \($0)]" } ?? "")
    }
}

/// A continuation resumed once, by whichever of two tasks comes first (`withDeadline`).
final class Once<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        /// A result that came before the continuation was set.
        var early: Result<T, any Error>?
        var done = false
    }
    private let state = Mutex(State())

    func set(_ c: CheckedContinuation<T, any Error>) {
        let early: Result<T, any Error>? = state.withLock { s in
            if let e = s.early {
                s.early = nil
                return e
            }
            s.continuation = c
            return nil
        }
        if let early { c.resume(with: early) }
    }

    /// Resumes the continuation if nobody did yet; true if this call did.
    @discardableResult
    func resume(with result: Result<T, any Error>) -> Bool {
        let c: CheckedContinuation<T, any Error>?? = state.withLock { s in
            guard !s.done else { return .none }
            s.done = true
            guard let c = s.continuation else {
                s.early = result
                return .some(nil)
            }
            s.continuation = nil
            return .some(c)
        }
        guard case .some(let pending) = c else { return false }
        pending?.resume(with: result)
        return true
    }
}
