public import Foundation
public import Logging
public import PollerdCore

/// The operator facade: every query and control an operator has, over the store contract alone.
/// The CLI calls it; the admin API serves the same calls over HTTP. Controls are recorded in the
/// store, where every running daemon picks them up (within `controlPollMs`).
public struct Operator: Sendable {
    public let store: any PollerdStore
    public let clock: any WallClock
    /// The job file's settings: the breaker threshold and backlog bound that explain reads.
    public let settings: GlobalSettings
    /// True for a daemon id whose process is known to be gone (one on this host that no longer
    /// runs): explain does not name it as the job's owner while its heartbeat has yet to lapse.
    let isGone: @Sendable (String) -> Bool

    public init(
        store: any PollerdStore, clock: any WallClock, settings: GlobalSettings = GlobalSettings(),
        isGone: @escaping @Sendable (String) -> Bool = HolderIdentity.isAbandoned
    ) {
        self.store = store
        self.clock = clock
        self.settings = settings
        self.isGone = isGone
    }

    /// A control or query named a job the store does not know.
    public struct UnknownJob: Error, Sendable, CustomStringConvertible {
        public var jobID: String
        public var description: String { "no job '\(jobID)' in the state store" }
    }

    /// One job as `jobs show` presents it.
    public struct JobDetail: Sendable, Equatable {
        public var row: JobStateRow
        public var lease: LeaseRecord?
        public var explanation: Explanation
    }

    // MARK: Jobs

    /// Every job the store knows; without `includeInactive`, only those some live daemon runs.
    public func jobs(includeInactive: Bool = false) async throws -> [JobStateRow] {
        try await store.allStates().filter { includeInactive || $0.definitionFingerprint != nil }
    }

    /// One job: its row, its lease and the explain answer.
    public func job(_ jobID: String) async throws -> JobDetail {
        guard let row = try await store.state(jobID: jobID) else { throw UnknownJob(jobID: jobID) }
        let lease = try await store.lease(jobID: jobID)
        let explanation = try await explain(row: row, lease: lease)
        return JobDetail(row: row, lease: lease, explanation: explanation)
    }

    /// The jobs that live daemons define differently (job id → daemon id → definition
    /// fingerprint), not counting a daemon known to be gone, for the log and the dashboard.
    public func divergentDefinitions() async throws -> [String: [String: String]] {
        try await store.divergentDefinitions(nowMs: clock.nowMs).compactMapValues { defs in
            let live = defs.filter { !isGone($0.key) }
            return Set(live.values).count > 1 ? live : nil
        }
    }

    /// For each of `jobs` that a live daemon defines otherwise than `jobs` does, a warning naming
    /// the daemons: once this file runs beside them, the job's ticks and items would split
    /// between the two definitions.
    public func definitionWarnings(_ jobs: [JobSpec]) async throws -> [String] {
        let live = try await store.liveDefinitions(jobIDs: jobs.map(\.id), nowMs: clock.nowMs)
        return jobs.compactMap { job in
            let others = (live[job.id] ?? [:]).filter { !isGone($0.key) && $0.value != job.fingerprint }
            guard !others.isEmpty else { return nil }
            return "job '\(job.id)': the live daemon(s) \(others.keys.sorted().joined(separator: ", ")) define it "
                + "differently; its ticks and items would split between the two definitions (if one of them runs this "
                + "file, reload it)"
        }
    }

    /// Why the job did or did not run at its last slot, and when it will run next or why not.
    public func explain(_ jobID: String) async throws -> Explanation {
        try await job(jobID).explanation
    }

    private func explain(row: JobStateRow, lease: LeaseRecord?) async throws -> Explanation {
        let now = clock.nowMs
        let owners = try await store.jobOwners(jobID: row.jobID, nowMs: now).filter { !isGone($0) }
        var e = Explanation.decide(
            row: row, lease: lease, owners: owners, breakerThreshold: settings.breakerThreshold,
            maxBacklog: settings.delivery.maxBacklog, nowMs: now)
        let definitions = (try await store.liveDefinitions(jobIDs: [row.jobID], nowMs: now)[row.jobID] ?? [:])
            .filter { !isGone($0.key) }
        if Set(definitions.values).count > 1 { e.divergentDefinitions = definitions }
        return e
    }

    /// Pauses a job; it stays paused across restarts. `note` is shown wherever the job is.
    /// `actor` (who asked) goes to the audit log.
    public func pause(_ jobID: String, note: String?, actor: String = "cli") async throws {
        guard
            try await store.setPaused(
                jobID: jobID, paused: true, reason: note ?? "paused by operator", nowMs: clock.nowMs)
        else {
            throw UnknownJob(jobID: jobID)
        }
        try await store.recordAudit(
            AuditEntry(atMs: clock.nowMs, actor: actor, action: "pause", jobID: jobID, detail: note))
    }

    /// Resumes a paused job.
    public func resume(_ jobID: String, actor: String = "cli") async throws {
        guard try await store.setPaused(jobID: jobID, paused: false, reason: nil, nowMs: clock.nowMs) else {
            throw UnknownJob(jobID: jobID)
        }
        try await store.recordAudit(
            AuditEntry(atMs: clock.nowMs, actor: actor, action: "resume", jobID: jobID, detail: nil))
    }

    /// Clears a job's cursor and error counters; a tick in flight is fenced off. With
    /// `forgetSeen`, the job's dedup window is cleared too (items seen before count as new).
    public func reset(_ jobID: String, forgetSeen: Bool = false, actor: String = "cli") async throws {
        guard try await store.reset(jobID: jobID, nowMs: clock.nowMs) else { throw UnknownJob(jobID: jobID) }
        var detail: String?
        if forgetSeen { detail = "forgot \(try await store.forgetSeen(jobID: jobID)) dedup key(s)" }
        try await store.recordAudit(
            AuditEntry(atMs: clock.nowMs, actor: actor, action: "reset", jobID: jobID, detail: detail))
    }

    // MARK: History and cursors

    /// The job's last ticks, newest first.
    public func history(_ jobID: String, limit: Int = 50) async throws -> [TickRecord] {
        guard try await store.state(jobID: jobID) != nil else { throw UnknownJob(jobID: jobID) }
        return try await store.tickHistory(jobID: jobID, limit: limit)
    }

    /// The cursors the job's kept ticks committed, newest first (one per tick that changed it).
    public func cursorHistory(_ jobID: String, limit: Int = 50) async throws -> [TickRecord] {
        try await history(jobID, limit: 10_000).filter(\.cursorChanged).prefix(limit).map { $0 }
    }

    /// A cursor change an operator cannot make: no such tick, or the tick changed no cursor.
    public struct NoSuchCursor: Error, Sendable, CustomStringConvertible {
        public var jobID: String
        public var tick: Int64
        public var description: String { "job '\(jobID)' has no kept tick \(tick) that committed a cursor" }
    }

    /// Sets the job's cursor (nil clears it); a tick in flight is fenced off; audited.
    public func setCursor(_ jobID: String, to cursor: Data?, actor: String = "cli") async throws {
        let entry = AuditEntry(
            atMs: clock.nowMs, actor: actor, action: "cursor.set", jobID: jobID,
            detail: cursor.map { "\($0.count) bytes: \(Base64URL.encode($0).prefix(64))" } ?? "cleared")
        guard try await store.setCursor(jobID: jobID, cursor: cursor, audit: entry) else {
            throw UnknownJob(jobID: jobID)
        }
    }

    /// Puts back the cursor the tick `seq` committed; a tick in flight is fenced off; audited.
    public func rewindCursor(_ jobID: String, toTick seq: Int64, actor: String = "cli") async throws -> TickRecord {
        guard let record = try await cursorHistory(jobID, limit: 10_000).first(where: { $0.seq == seq }) else {
            throw NoSuchCursor(jobID: jobID, tick: seq)
        }
        let entry = AuditEntry(
            atMs: clock.nowMs, actor: actor, action: "cursor.rewind", jobID: jobID,
            detail: "to the cursor of tick \(seq) (\(RFC3339.format(ms: record.startedAtMs)))")
        guard try await store.setCursor(jobID: jobID, cursor: record.cursor, audit: entry) else {
            throw UnknownJob(jobID: jobID)
        }
        return record
    }

    /// The audit log, newest first.
    public func audit(jobID: String?, limit: Int = 100) async throws -> [AuditEntry] {
        try await store.auditLog(jobID: jobID, limit: limit)
    }

    /// The store's upkeep: its oldest transaction, its tables' sizes, and what to warn about.
    public func maintenance() async throws -> StoreMaintenance {
        try await store.maintenance()
    }

    /// The daemons alive now, with the job files they run.
    public func daemons() async throws -> [DaemonRecord] {
        try await store.liveDaemons(nowMs: clock.nowMs)
    }

    // MARK: Tick

    /// Runs one tick of `job` now through the scheduler's path (lease, timeout, classification,
    /// commit), as the holder `holder`. `dryRun` ticks for real but commits nothing.
    public func tick(
        _ job: JobSpec, registry: PollerRegistry, holder: String, dryRun: Bool, logger: Logger
    ) async throws -> ManualTick {
        let now = clock.nowMs
        _ = try await store.register(
            [JobRegistration(jobID: job.id, kind: job.kind, agent: job.agent, pausedOnBoot: job.pausedOnBoot)],
            nowMs: now)
        let executor = TickExecutor(store: store, registry: registry, clock: clock, holder: holder, logger: logger)
        let offset = job.schedule.jitterOffsetMs(jobID: job.id, defaultJitterMs: settings.defaultJitterMs, nowMs: now)
        let report = await executor.execute(
            DueTick(jobID: job.id, dueMs: now, spec: job, offsetMs: offset), settings: settings, dryRun: dryRun,
            manual: true)
        var manual = ManualTick(report: report)
        if report.disposition == .ran(committed: true), settings.tickHistory > 0 {
            manual.record = try? await store.tickHistory(jobID: job.id, limit: 1).first
        }
        return manual
    }

    // MARK: Outbox and dead letters

    /// Every outbox lane with items or history.
    public func outboxStats() async throws -> [OutboxLaneStats] { try await store.outboxStats() }

    /// Dead letters, newest first.
    public func deadLetters(jobID: String?, limit: Int) async throws -> [DeadLetter] {
        try await store.deadLetters(jobID: jobID, limit: limit)
    }

    /// One dead letter.
    public func deadLetter(id: Int64) async throws -> DeadLetter? { try await store.deadLetter(id: id) }

    /// Queues dead letters again at the end of their lanes; returns how many.
    public func replayDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        try await store.replayDeadLetters(selection, nowMs: clock.nowMs)
    }

    /// Deletes dead letters; returns how many.
    public func dropDeadLetters(_ selection: DeadLetterSelection) async throws -> Int {
        try await store.dropDeadLetters(selection)
    }

    // MARK: Plugins

    /// What every daemon last reported of its plugins.
    public func pluginStatuses() async throws -> [DaemonPluginStatus] { try await store.pluginStatuses() }
}

/// A manual tick's outcome as an operator reads it: the status, the error in words (a skip says
/// why, and what to do about it) and the class the exit code follows.
public struct ManualTick: Sendable {
    public var report: TickReport
    /// `ok`, `transient`, `permanent`, `config`, `store_error`, or `cancelled`.
    public var status: String
    public var error: String?
    /// How a command-line caller should exit.
    public var outcome: Outcome
    /// The tick as the history kept it (items new and duplicates), when it committed.
    public var record: TickRecord?

    /// The exit classes of `pollerd tick`.
    public enum Outcome: Sendable, Equatable {
        case ok, transient, permanent, config
    }

    public init(report: TickReport) {
        self.report = report
        status = report.status
        error = report.error?.message
        switch report.disposition {
        case .cancelled:
            // Interrupted (SIGINT, say): nothing was committed; trying again is the remedy.
            error = "the tick was cancelled before it finished; nothing was committed"
            outcome = .transient
        case .ran:
            switch report.status {
            case "ok": outcome = .ok
            case "transient", "store_error": outcome = .transient
            case "permanent": outcome = .permanent
            default: outcome = .config
            }
        case .skipped(let acq):
            let (s, o, e) = Self.skipReason(acq, jobID: report.jobID)
            status = s
            outcome = o
            error = e
        }
    }

    /// Why a manual tick did not run, in the operator's words, and how it counts.
    static func skipReason(_ acq: LeaseAcquisition, jobID: String) -> (String, Outcome, String?) {
        switch acq {
        case .held(let by, let until):
            return (
                "transient", .transient,
                "lease held by \(by) until \(RFC3339.format(ms: until)); another tick of this job is running"
            )
        case .paused(let reason):
            return (
                "permanent", .permanent,
                "job is paused\(reason.map { " (\($0))" } ?? ""); run `pollerd jobs resume \(jobID)` first"
            )
        case .done:
            return ("permanent", .permanent, "one-shot job already ran; `pollerd jobs reset \(jobID)` allows it again")
        case .backlogged(let pending, let limit):
            return (
                "transient", .transient,
                "backpressure: \(pending) undelivered items (limit \(limit)); see `pollerd outbox stats`"
            )
        case .notDue(let until):
            // Manual ticks pass no slot, so the store never answers this; say it plainly anyway.
            return ("transient", .transient, "the store plans this job at \(RFC3339.format(ms: until))")
        case .busy:
            return (
                "transient", .transient,
                "the store was busy with this job's row (another daemon's claim or commit); try again in a second"
            )
        case .granted:
            return ("ok", .ok, nil)
        }
    }
}
