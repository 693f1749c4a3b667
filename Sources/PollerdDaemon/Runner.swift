import CPollerdSpawn
import Logging
public import PollerdCore
public import ServiceLifecycle
import Synchronization

/// Something that happened in the runner; tests and benchmarks observe these instead of sleeping.
public enum RunnerEvent: Sendable {
    /// Boot finished: every job is loaded and scheduled.
    case started(jobs: Int)
    /// A tick attempt ended (ran, skipped or cancelled).
    case tick(TickReport)
    /// A reload was applied.
    case reloaded(ReloadPlan)
    /// An operator's control change was applied.
    case control(ControlChange)
    /// The runner stopped; `cancelled` ticks were cut off at the end of the grace period.
    case stopped(cancelled: Int)
}

/// The scheduler loop: one min-heap of due times for every job, a global cap on ticks in flight,
/// graceful shutdown, hot reload and operator controls picked up from the store. A `Service`:
/// graceful shutdown stops new ticks and gives those in flight `shutdown_grace_secs`.
public final class Runner: Service, Sendable {
    private struct State {
        var core: SchedulerCore
        var started = false
        var shuttingDown = false
        var shutdownDeadlineMs: Int64?
        var controlCursor = ControlCursor(token: "")
        var lastHeartbeatMs: Int64 = 0
        var cancelledAtShutdown = 0
        /// When the loop next wakes by itself (nil: only a ring wakes it).
        var loopWakeMs: Int64?
        /// Reloads that arrived while the jobs were still loading.
        var bootWaiters: [CheckedContinuation<Void, Never>] = []
        var bootOver = false
    }

    /// The loop never sleeps less than this while work is due later: due jobs are taken in
    /// batches, and a busy daemon does not wake once per tick.
    static let wakeQuantumMs: Int64 = 2
    /// With every slot taken and jobs due, the loop looks for free slots at least this often
    /// (ticks' ends wake it sooner once `SchedulerCore.refillSlots` are free).
    static let backlogPollMs: Int64 = 5
    /// The most due jobs claimed in one store call.
    static let claimBatch = 1024

    public let executor: TickExecutor
    /// Lease claims and tick commits, each gathered into one store call per batch.
    private let claims: StoreBatcher<LeaseRequest, LeaseAcquisition>
    private let health: StoreHealthReporter
    /// Why the store is failing the runner's calls, while it is; nil while it answers.
    public var storeFailure: String? { health.failure }
    /// True once boot is done (jobs registered and planned) and until shutdown begins.
    public var isServing: Bool { state.withLock { $0.started && !$0.shuttingDown } }
    private let commits: StoreBatcher<TickCommit, Int64?>
    private let state: Mutex<State>
    private let bell = Doorbell()
    private let initialJobs: [JobSpec]
    private let onEvent: @Sendable (RunnerEvent) -> Void
    private let controlPollMs: Int64
    private let hostProcesses: @Sendable () -> HostProcesses?
    /// The job file this daemon runs, as it is announced to the store.
    public let jobFile: String

    /// How long a daemon counts as alive after its last heartbeat; it beats every third of that.
    public static let daemonTTLMs: Int64 = 60_000

    /// - Parameters:
    ///   - jobFile: the job file's path, recorded with the daemon's jobs in the store.
    ///   - controlPollMs: how often to look for operator controls in the store.
    ///   - onEvent: called for every event, from any task; keep it cheap.
    ///   - hostProcesses: the processes alive on this host, read at boot: the leases of crashed
    ///     daemons here are freed (nil: none are).
    public init(
        settings: GlobalSettings, jobs: [JobSpec], executor: TickExecutor, jobFile: String = "",
        controlPollMs: Int64 = 1000,
        hostProcesses: @escaping @Sendable () -> HostProcesses? = { nil },
        onEvent: @escaping @Sendable (RunnerEvent) -> Void = { _ in }
    ) {
        self.executor = executor
        let store = executor.store
        let clock = executor.clock
        let holder = executor.holder
        let health = StoreHealthReporter(logger: executor.logger, isDamage: { [store] in store.isDamage($0) })
        self.health = health
        self.claims = StoreBatcher(maxBatch: Self.claimBatch) { requests in
            try await health.observe(.claim) {
                try await store.acquireLeases(requests, holder: holder, nowMs: clock.nowMs)
            }
        }
        self.commits = StoreBatcher(maxBatch: 1024) { ticks in
            try await health.observe(.commit) { try await store.commit(ticks, nowMs: clock.nowMs) }
        }
        self.hostProcesses = hostProcesses
        self.initialJobs = jobs
        self.jobFile = jobFile
        self.onEvent = onEvent
        self.controlPollMs = controlPollMs
        self.state = Mutex(State(core: SchedulerCore(settings: settings)))
    }

    private var clock: any WallClock { executor.clock }
    private var store: any StateStore { executor.store }
    private var logger: Logger { executor.logger }

    /// A snapshot of the scheduler's state.
    public var core: SchedulerCore { state.withLock { $0.core } }

    /// The daemon id under which this runner announces its jobs: its lease holder id.
    public var daemonID: String { executor.holder }

    /// The state database turned out damaged while the daemon ran: it stopped instead of
    /// retrying every tick against it.
    public struct StoreDamaged: Error, CustomStringConvertible {
        public var error: String
        public var description: String {
            "the state database is damaged (\(error)); no tick ran or committed after that. Restore it from a backup, or run "
                + "`pollerd state check` to see the damage and `pollerd state recover` to copy what is readable into a new file"
        }
    }

    /// Runs until graceful shutdown (or `beginShutdown()`) and the grace period are over.
    /// Throws `StoreDamaged` when it stopped because the store's data is damaged.
    public func run() async throws {
        health.onDamage { [self] _ in self.beginShutdown() }
        try await withGracefulShutdownHandler {
            try await runLoops()
        } onGracefulShutdown: {
            self.beginShutdown()
        }
        if let why = health.damaged { throw StoreDamaged(error: why) }
    }

    private func runLoops() async throws {
        // The scheduler runs while boot loads the jobs (each chunk ticks once recorded); a
        // boot that fails stops it, and the error is the runner's.
        let bootFailure = ErrorSlot()
        await withDiscardingTaskGroup { group in
            group.addTask {
                do {
                    try await self.boot()
                    self.bootOver()
                } catch {
                    self.bootOver()
                    // A shutdown during boot cancels it: that is no failure.
                    if self.state.withLock({ $0.shuttingDown }) { return }
                    bootFailure.set(error)
                    self.beginShutdown()
                    return
                }
                await self.controlLoop()
            }
            await self.schedulerLoop(group: &group)
            group.cancelAll()
        }
        if let error = bootFailure.error { throw error }
        // Its jobs leave the active set unless another live daemon runs them too.
        do { try await store.retire(daemonID: daemonID, nowMs: clock.nowMs) } catch {
            logger.warning(
                "could not retire the daemon in the store; its heartbeat will lapse",
                metadata: ["pollerd.error": "\(error)"])
        }
        let cancelled = state.withLock { $0.cancelledAtShutdown }
        logger.info("runner stopped", metadata: ["pollerd.cancelled_ticks": "\(cancelled)"])
        onEvent(.stopped(cancelled: cancelled))
    }

    /// Stops starting ticks; ticks in flight get the grace period, then are cancelled.
    func beginShutdown() {
        let now = clock.nowMs
        state.withLock { s in
            if !s.shuttingDown {
                s.shuttingDown = true
                s.shutdownDeadlineMs = now + s.core.settings.shutdownGraceSecs * 1000
            }
        }
        bell.ring()
    }

    /// Jobs registered and planned per store call at boot.
    static let bootChunk = 8192

    /// Store start-up work, announces the jobs, then registers, plans and records them chunk by
    /// chunk, in the order they fall due. Each chunk may tick as soon as its plans are
    /// recorded, while the next chunks load: a job's first run is planned from the moment its
    /// chunk is (never from the start of a boot that took seconds), and a million-job boot
    /// leaves no backlog behind it.
    private func boot() async throws {
        // Run here, inside the service lifecycle, so a store that is itself a service (a
        // PostgreSQL client) is already running.
        var reclaimed = 0
        if let host = hostProcesses() { reclaimed = try await store.reclaimLeases(on: host, nowMs: clock.nowMs) }
        if reclaimed > 0 {
            logger.notice("freed leases of a crashed daemon on this host", metadata: ["pollerd.leases": "\(reclaimed)"])
        }
        let enabled = state.withLock { $0.core.settings.enabled }
        let jobs = enabled ? initialJobs : []
        if !enabled { logger.warning("pollers.enabled is false: no job runs") }
        // Read before any row: a control recorded from here on is applied after boot, to the
        // row as it then is (applying one twice does no harm; missing one would).
        let cursor = try await store.controlCursor()
        let limits = kindLimits()
        state.withLock { s in
            s.controlCursor = cursor
            s.core.setLimits(limits)
        }
        // The job set first, before anything ticks: at 100k jobs it holds the store's writer
        // for half a second, which ticks already running would wait out.
        try await announce(bootJobSet(), nowMs: clock.nowMs)
        // The announce's job set (two strings a job) is gone: give its pages back before the
        // scheduler fills, or a million-job daemon keeps them as its peak.
        _ = cpollerd_release_free_memory()
        let order = registrationOrder(jobs, nowMs: clock.nowMs)
        for start in stride(from: 0, to: order.count, by: Self.bootChunk) {
            if state.withLock({ $0.shuttingDown }) { return }
            // A boot longer than the daemon's TTL must not let it lapse.
            await heartbeatIfDue()
            let chunk = order[start..<min(start + Self.bootChunk, order.count)]
            let rows = try await store.register(
                chunk.map { i in
                    let j = jobs[i]
                    return JobRegistration(jobID: j.id, kind: j.kind, agent: j.agent, pausedOnBoot: j.pausedOnBoot)
                }, nowMs: clock.nowMs)
            let planNow = clock.nowMs
            let records: [ScheduleRecord] = state.withLock { s in
                chunk.map { i in s.core.load(jobs[i], row: rows[jobs[i].id], nowMs: planNow, held: true) }
            }
            try await store.recordSchedules(records, nowMs: planNow)
            state.withLock { s in s.core.release(chunk.lazy.map { jobs[$0].id }) }
            bell.ring()
        }
        logger.info("runner started", metadata: ["pollerd.jobs": "\(jobs.count)"])
        state.withLock { $0.started = true }
        onEvent(.started(jobs: jobs.count))
    }

    /// An error one task leaves for another.
    final class ErrorSlot: Sendable {
        private let slot = Mutex<(any Error)?>(nil)
        func set(_ e: any Error) { slot.withLock { $0 = e } }
        var error: (any Error)? { slot.withLock { $0 } }
    }

    struct BootUnfinished: Error, CustomStringConvertible {
        var description: String {
            "the runner did not finish loading its jobs (it failed, or the daemon is stopping): nothing to reload"
        }
    }

    /// Boot ended (done, failed or cut short): what waits for it goes on.
    private func bootOver() {
        let waiters = state.withLock { s in
            s.bootOver = true
            defer { s.bootWaiters = [] }
            return s.bootWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Returns once boot is over; throws when it did not finish.
    private func bootDone() async throws {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                if s.bootOver { return true }
                s.bootWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
        guard state.withLock({ $0.started }) else {
            throw BootUnfinished()
        }
    }

    /// Positions in `jobs`, in the order their rows are first written: by the job's offset in
    /// its period, which is the order they fall due. A store that appends new rows then keeps
    /// jobs due together side by side (on SQLite, on the same pages), so a batch of claims or
    /// commits writes a few pages instead of one a job.
    private func registrationOrder(_ jobs: [JobSpec], nowMs: Int64) -> [Int] {
        let jitter = state.withLock { $0.core.settings.defaultJitterMs }
        let keys = jobs.map { $0.schedule.jitterOffsetMs(jobID: $0.id, defaultJitterMs: jitter, nowMs: nowMs) }
        return jobs.indices.sorted { keys[$0] < keys[$1] }
    }

    private func schedulerLoop(group: inout DiscardingTaskGroup) async {
        while true {
            // Cancelled rather than shut down (another service of the group failed): waits return
            // at once from now on, so stop here, cancelling the ticks in flight.
            if Task.isCancelled {
                let inFlight = state.withLock { s in
                    s.cancelledAtShutdown = s.core.inFlightCount
                    return s.core.inFlightCount
                }
                logger.warning("runner cancelled: stopping", metadata: ["pollerd.ticks_in_flight": "\(inFlight)"])
                group.cancelAll()
                return
            }
            let now = clock.nowMs
            enum Step {
                case start([DueTick])
                case stop, cancelAndStop
            }
            let (step, wake): (Step, Int64?) = state.withLock { s in
                if s.shuttingDown {
                    if s.core.inFlightCount == 0 { return (.stop, nil) }
                    if let d = s.shutdownDeadlineMs, now >= d {
                        s.cancelledAtShutdown = s.core.inFlightCount
                        return (.cancelAndStop, nil)
                    }
                    return (.start([]), s.shutdownDeadlineMs)
                }
                let due = s.core.takeDue(nowMs: now)
                var wake: Int64?
                if s.core.hasBacklog(nowMs: now) {
                    // Every slot is taken: ticks' ends wake the loop once a few are free.
                    wake = now + Self.backlogPollMs
                } else if let next = s.core.nextDueMs() {
                    wake = max(next, now + Self.wakeQuantumMs)
                }
                s.loopWakeMs = wake
                return (.start(due), wake)
            }
            switch step {
            case .stop:
                return
            case .cancelAndStop:
                logger.warning("grace period over: cancelling ticks in flight")
                group.cancelAll()
                return
            case .start(let due):
                let settings = state.withLock { $0.core.settings }
                var rest = due[...]
                while !rest.isEmpty {
                    let batch = Array(rest.prefix(Self.claimBatch))
                    rest = rest.dropFirst(batch.count)
                    group.addTask { await self.runBatch(batch, settings: settings) }
                }
                if !due.isEmpty { continue }
                await bell.wait(untilMs: wake, clock: clock)
            }
        }
    }

    /// Runs a batch of due ticks: their leases are claimed in one store call, the granted ticks
    /// run concurrently, and each commits through the batcher (one store call per batch of
    /// finished ticks).
    private func runBatch(_ batch: [DueTick], settings: GlobalSettings) async {
        let start = clock.nowMs
        let requests = batch.map { executor.leaseRequest($0, settings: settings, nowMs: start) }
        let answers: ArraySlice<LeaseAcquisition>
        switch await claims.submit(requests) {
        case .success(let a): answers = a
        case .failure(let error):
            for d in batch {
                // Cut off by shutdown: the slots stay due in the store.
                if Task.isCancelled {
                    finished(
                        d,
                        TickReport(
                            jobID: d.jobID, kind: d.spec.kind, disposition: .cancelled, ack: nil, error: nil, plan: nil,
                            startedAtMs: start, durationMs: 0, latenessMs: start - d.dueMs, dueMs: d.dueMs))
                } else {
                    finished(d, executor.leaseFailed(d, error: error, settings: settings, startedAtMs: start))
                }
            }
            return
        }
        var ticks: [Task<Void, Never>] = []
        for (d, (answer, request)) in zip(batch, zip(answers, requests)) {
            guard case .granted(let lease) = answer else {
                finished(d, executor.skipped(d, answer, startedAtMs: start, historyLimit: settings.tickHistory))
                continue
            }
            // One task per tick (the watchdog cancels the one tick); this batch waits for them
            // all and passes its own cancellation (shutdown) on.
            let task = executor.startTick(d) { handle in
                let ran = await self.executor.run(
                    d, lease: lease, ttlMs: request.ttlMs, settings: settings, startedAtMs: start, handle: handle)
                guard let commit = ran.commit else { return self.finished(d, ran.report) }
                let result = await self.commits.submit([commit]).map { $0[$0.startIndex] }
                self.finished(d, self.executor.committed(ran.report, commit, result))
            }
            ticks.append(task)
        }
        let all = ticks
        await withTaskCancellationHandler {
            for t in all { await t.value }
        } onCancel: {
            for t in all { t.cancel() }
        }
    }

    /// A tick attempt ended: the scheduler plans the job's next run.
    private func finished(_ due: DueTick, _ report: TickReport) {
        let now = clock.nowMs
        // Skipped ticks write nothing back: whoever holds the lease commits the job's next run.
        let wakeLoop: Bool = state.withLock { s in
            switch report.disposition {
            case .ran:
                _ = s.core.finish(due.jobID, plan: report.plan!)
            case .skipped(let acq):
                _ = s.core.skipped(due.jobID, because: acq, nowMs: now)
            case .cancelled:
                // Shutdown: the slot stays due in the store, so the next start runs it (catch-up rules).
                let plan = TickPlan(
                    status: "cancelled", error: nil, consecutiveErrors: s.core.jobs[due.jobID]?.consecutiveErrors ?? 0,
                    nextRunAtMs: due.dueMs, pause: false, pausedReason: nil, done: false, breakerOpen: false)
                _ = s.core.finish(due.jobID, plan: plan)
            }
            // Wake the loop only when this changes what it waits for: the job's next run, or a
            // parked job of its group that may go now, is earlier than the loop's wake-up; or
            // enough slots are free for jobs already due.
            if s.shuttingDown { return true }
            return s.core.shouldWakeLoop(sleepingUntil: s.loopWakeMs, nowMs: now, pollMs: Self.backlogPollMs)
        }
        logTick(report)
        onEvent(.tick(report))
        if wakeLoop { bell.ring() }
    }

    /// One line per tick that ran, at `tick_log_level` (info by default): the job, the status,
    /// the duration, items found and new, and the next run.
    private func logTick(_ report: TickReport) {
        guard case .ran = report.disposition else { return }
        let level = Logger.Level(rawValue: state.withLock { $0.core.settings.tickLogLevel }) ?? .info
        guard logger.logLevel <= level else { return }
        var meta: Logger.Metadata = [
            "pollerd.job.id": "\(report.jobID)", "pollerd.kind": "\(report.kind)", "pollerd.status": "\(report.status)",
            "pollerd.duration_ms": "\(report.durationMs)", "pollerd.items.found": "\(report.ack?.items.count ?? 0)",
        ]
        if let n = report.itemsNew { meta["pollerd.items.new"] = "\(n)" }
        if let next = report.plan?.nextRunAtMs { meta["pollerd.next_run"] = "\(RFC3339.format(ms: next))" }
        if let e = report.error { meta["pollerd.error"] = "\(e.message)" }
        logger.log(level: level, "tick", metadata: meta)
    }

    /// The concurrency groups of the kinds the executor runs (plugins' `max_concurrent_ticks`).
    private func kindLimits() -> [String: ConcurrencyLimit] {
        let registry = executor.registry
        var out: [String: ConcurrencyLimit] = [:]
        for kind in registry.kinds {
            if let l = registry.poller(for: kind)?.concurrencyLimit { out[kind] = l }
        }
        return out
    }

    /// Records this daemon's job set (and its liveness) under its id; jobs that no live daemon
    /// has any more leave the active set.
    private func announce(nowMs: Int64) async throws {
        // While boot loads them, the scheduler has only part of the jobs: announce all.
        let loaded: [String: String]? = state.withLock { s in
            guard s.started else { return nil }
            var out: [String: String] = [:]
            for (id, rt) in s.core.jobs where !rt.removed { out[id] = rt.definitionFingerprint }
            return out
        }
        try await announce(loaded ?? bootJobSet(), nowMs: nowMs)
    }

    /// The jobs boot loads, by id, with their definition fingerprints.
    private func bootJobSet() -> [String: String] {
        let enabled = state.withLock { $0.core.settings.enabled }
        guard enabled else { return [:] }
        return Dictionary(initialJobs.map { ($0.id, $0.fingerprint) }, uniquingKeysWith: { a, _ in a })
    }

    /// The same, for these jobs (id: definition fingerprint).
    private func announce(_ jobs: [String: String], nowMs: Int64) async throws {
        state.withLock { $0.lastHeartbeatMs = nowMs }
        let gone = try await store.announce(
            DaemonAnnouncement(
                daemonID: daemonID, jobFile: jobFile, jobs: jobs, ttlMs: Self.daemonTTLMs), nowMs: nowMs)
        if !gone.isEmpty {
            logger.info("jobs no live daemon runs left the active set", metadata: ["pollerd.jobs": "\(gone)"])
        }
    }

    /// Extends this daemon's liveness every third of its TTL; announces again when the store
    /// forgot it (its heartbeat lapsed, say while the process was stopped).
    private func heartbeatIfDue() async {
        let now = clock.nowMs
        let due = state.withLock { now - $0.lastHeartbeatMs >= Self.daemonTTLMs / 3 }
        guard due else { return }
        do {
            if try await store.heartbeat(daemonID: daemonID, ttlMs: Self.daemonTTLMs, nowMs: now) {
                state.withLock { $0.lastHeartbeatMs = now }
            } else {
                logger.warning("the store had forgotten this daemon (heartbeat lapsed): announcing its jobs again")
                try await announce(nowMs: now)
            }
        } catch {
            logger.warning("daemon heartbeat failed", metadata: ["pollerd.error": "\(error)"])
        }
    }

    private func controlLoop() async {
        while !Task.isCancelled {
            await controlBell.wait(untilMs: clock.nowMs + controlPollMs, clock: clock)
            if Task.isCancelled { return }
            await pollControls()
            await heartbeatIfDue()
        }
    }

    /// Rung when the store tells of a new control (`PollerdStore.onWake`): the control loop looks
    /// at once instead of at its next poll.
    public let controlBell = Doorbell()

    /// Applies operator controls recorded in the store since the last look.
    public func pollControls() async {
        let after = state.withLock { $0.controlCursor }
        guard let batch = try? await store.controlChanges(after: after) else { return }
        state.withLock { $0.controlCursor = batch.next }
        guard !batch.changes.isEmpty else { return }
        let now = clock.nowMs
        for ch in batch.changes {
            let row = try? await store.state(jobID: ch.jobID)
            _ = state.withLock { s in
                s.core.control(ch.action, jobID: ch.jobID, row: row, nowMs: now)
            }
            logger.info(
                "operator control applied",
                metadata: ["pollerd.job.id": "\(ch.jobID)", "pollerd.action": "\(ch.action.rawValue)"])
            onEvent(.control(ch))
        }
        bell.ring()
    }

    /// The plan a reload to these jobs would apply.
    public func plan(for jobs: [JobSpec], settings: GlobalSettings) -> ReloadPlan {
        let current = state.withLock { s in s.core.jobs.filter { !$0.value.removed }.mapValues { $0.spec.fingerprint } }
        let next = settings.enabled ? jobs : []
        return ReloadPlan.between(current: current, next: next.map { ($0.id, $0.fingerprint) })
    }

    /// Applies a validated new job set: adds, replaces and removes jobs; kept jobs keep their
    /// clocks, breakers and ticks in flight, and take the new global settings.
    @discardableResult
    public func reload(jobs: [JobSpec], settings: GlobalSettings) async throws -> ReloadPlan {
        // Against the whole job set, not the part boot has loaded so far.
        try await bootDone()
        let plan = self.plan(for: jobs, settings: settings)
        let next = settings.enabled ? jobs : []
        let byID = Dictionary(next.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let added = plan.add.compactMap { byID[$0] }
        let now = clock.nowMs
        let rows = try await store.register(
            added.map { JobRegistration(jobID: $0.id, kind: $0.kind, agent: $0.agent, pausedOnBoot: $0.pausedOnBoot) },
            nowMs: now)
        let limits = kindLimits()
        let records: [ScheduleRecord] = state.withLock { s in
            var out: [ScheduleRecord] = []
            s.core.updateSettings(settings, nowMs: now)
            s.core.setLimits(limits)
            for id in plan.remove { s.core.remove(id) }
            for id in plan.replace { if let r = s.core.update(byID[id]!, nowMs: now) { out.append(r) } }
            for job in added { out.append(s.core.load(job, row: rows[job.id], nowMs: now)) }
            return out
        }
        try await store.recordSchedules(records, nowMs: now)
        try await announce(nowMs: now)
        logger.info(
            "reload applied",
            metadata: [
                "pollerd.add": "\(plan.add.count)", "pollerd.replace": "\(plan.replace.count)",
                "pollerd.remove": "\(plan.remove.count)", "pollerd.keep": "\(plan.keep.count)",
            ])
        onEvent(.reloaded(plan))
        bell.ring()
        return plan
    }
}
