import Foundation
public import Logging
public import PollerdCore
import Synchronization

/// The report of one tick attempt through the whole path (lease, tick, plan, commit).
public struct TickReport: Sendable {
    public enum Disposition: Sendable, Equatable {
        /// The tick ran; `committed` is false when fenced off or in a dry run.
        case ran(committed: Bool)
        /// The lease, a pause or a finished one-shot stopped it before it ran.
        case skipped(LeaseAcquisition)
        /// Shutdown cancelled it; the lease was released and nothing committed.
        case cancelled
    }
    public var jobID: String
    public var kind: String
    public var disposition: Disposition
    public var ack: TickAck?
    public var error: PollerError?
    public var plan: TickPlan?
    public var startedAtMs: Int64
    public var durationMs: Int64
    /// Scheduling lateness: the poller's call minus the due time.
    public var latenessMs: Int64
    /// The slot this attempt was for.
    public var dueMs: Int64 = 0
    /// What an operator should know of this tick (also logged): items beyond the job's dedup
    /// window, say.
    public var warnings: [String] = []
    /// Items the commit queued for delivery (found minus duplicates); nil until committed.
    public var itemsNew: Int64?

    /// `ok`, `transient`, `permanent`, `config`, `store_error` (the store failed the lease or
    /// the commit; nothing committed, tried again in about a second), `cancelled` (shutdown or
    /// the caller cancelled it; nothing committed), or `skipped`.
    public var status: String {
        if let plan { return plan.status }
        if case .cancelled = disposition { return "cancelled" }
        return "skipped"
    }
}

/// Runs one tick of one job the way the scheduler does: lease with fencing token, timeout
/// (cancelling the poller), lease renewal past half the TTL, classification, and one commit.
public struct TickExecutor: Sendable {
    public let store: any StateStore
    private let registryBox: RegistryBox
    /// The kinds ticks run with (replaced on reload when plugins change).
    public var registry: PollerRegistry { registryBox.value.withLock { $0 } }
    public let clock: any WallClock
    public let holder: String
    public let logger: Logger
    private let watchdog: TickWatchdog
    /// Rung after a commit that put items in the outbox, so the deliverer starts at once.
    public let outboxBell = Doorbell()

    public init(store: any StateStore, registry: PollerRegistry, clock: any WallClock, holder: String, logger: Logger) {
        self.store = store
        self.registryBox = RegistryBox(value: Mutex(registry))
        self.clock = clock
        self.holder = holder
        self.logger = logger
        self.watchdog = TickWatchdog(clock: clock, store: store)
    }

    /// Replaces the kinds (a reload that loaded other plugins).
    public func replaceRegistry(_ r: PollerRegistry) {
        registryBox.value.withLock { $0 = r }
    }

    /// Runs a due tick. `dryRun` ticks for real but commits nothing and releases the lease.
    /// `manual` ticks (the CLI's) run now even if the store plans the job later.
    public func execute(
        _ due: DueTick, settings: GlobalSettings, dryRun: Bool = false, manual: Bool = false
    ) async -> TickReport {
        let start = clock.nowMs
        let request = leaseRequest(due, settings: settings, manual: manual, nowMs: start)
        let acq: LeaseAcquisition
        do {
            acq = try await store.acquireLease(
                jobID: request.jobID, holder: holder, ttlMs: request.ttlMs, nowMs: start,
                slotMs: request.slotMs, maxBacklog: request.maxBacklog)
        } catch {
            logger.warning(
                "lease acquisition failed", metadata: ["pollerd.job.id": "\(due.jobID)", "pollerd.error": "\(error)"])
            return leaseFailed(due, error: error, settings: settings, startedAtMs: start)
        }
        guard case .granted(let lease) = acq else {
            return skipped(due, acq, startedAtMs: start, historyLimit: settings.tickHistory)
        }
        let task = startTick(due) { handle in
            await self.run(
                due, lease: lease, ttlMs: request.ttlMs, settings: settings, startedAtMs: start, handle: handle)
        }
        let ran = await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            task.cancel()
        }
        guard let commit = ran.commit else { return ran.report }
        if dryRun {
            try? await store.releaseLease(lease)
            return ran.report
        }
        let committed: Result<Int64?, any Error>
        do { committed = .success(try await store.commit([commit], nowMs: clock.nowMs)[0]) } catch {
            logger.error(
                "tick commit failed", metadata: ["pollerd.job.id": "\(due.jobID)", "pollerd.error": "\(error)"])
            committed = .failure(error)
        }
        return self.committed(ran.report, commit, committed)
    }

    // MARK: Phases, for the runner's batches

    /// The lease a due tick asks for.
    func leaseRequest(_ due: DueTick, settings: GlobalSettings, manual: Bool = false, nowMs: Int64) -> LeaseRequest {
        let job = due.spec
        return LeaseRequest(
            jobID: job.id, ttlMs: TickPlanner.leaseTTLMs(job: job, factor: settings.leaseTTLFactor, nowMs: nowMs),
            slotMs: manual ? nil : due.dueMs, maxBacklog: job.deliver.isEmpty ? nil : settings.delivery.maxBacklog)
    }

    /// The report of a tick whose lease could not be asked for (the store failed): tried again
    /// in about a second, not counted against the job.
    func leaseFailed(_ due: DueTick, error: any Error, settings: GlobalSettings, startedAtMs start: Int64) -> TickReport
    {
        let job = due.spec
        // Debug only: the runner reports a failing store once per change, not per tick.
        logger.debug(
            "lease acquisition failed", metadata: ["pollerd.job.id": "\(job.id)", "pollerd.error": "\(error)"])
        let err = PollerError.transient(.store, "state store error while taking the lease: \(error)", cause: error)
        let plan = TickPlanner.storeRetry(jobID: job.id, error: err.message, nowMs: clock.nowMs)
        return TickReport(
            jobID: job.id, kind: job.kind, disposition: .ran(committed: false), ack: nil, error: err, plan: plan,
            startedAtMs: start, durationMs: 0, latenessMs: start - due.dueMs, dueMs: due.dueMs)
    }

    /// The report of a tick the store did not grant a lease.
    func skipped(_ due: DueTick, _ acq: LeaseAcquisition, startedAtMs start: Int64, historyLimit: Int = 0) -> TickReport
    {
        var reason: String?
        switch acq {
        case .backlogged(let pending, let limit):
            logger.warning(
                "tick skipped: undelivered items over the backlog bound",
                metadata: [
                    "pollerd.job.id": "\(due.jobID)", "pollerd.outbox.backlog": "\(pending)",
                    "pollerd.outbox.limit": "\(limit)",
                ])
            reason = "backpressure: \(pending) undelivered items (limit \(limit))"
        case .paused(let why):
            reason = "paused" + (why.map { ": \($0)" } ?? "")
        default:
            // A slot another daemon holds or already ran is not this job's news: not kept.
            break
        }
        if let reason {
            // The slot is kept in the job's history, so "why didn't it run?" has an answer there.
            store.recordSkip(
                TickRecord(
                    seq: -due.dueMs, jobID: due.jobID, slotMs: due.dueMs, startedAtMs: start, durationMs: 0,
                    status: "skipped",
                    error: reason, itemsFound: 0, itemsNew: 0, duplicates: 0, cursor: nil, cursorChanged: false,
                    holder: holder),
                historyLimit: historyLimit)
        }
        return TickReport(
            jobID: due.jobID, kind: due.spec.kind, disposition: .skipped(acq), ack: nil, error: nil, plan: nil,
            startedAtMs: start, durationMs: 0, latenessMs: start - due.dueMs, dueMs: due.dueMs)
    }

    /// A granted tick, run: its report so far (not yet committed) and what to commit (nil:
    /// cancelled by shutdown, the lease was released).
    struct Ran: Sendable {
        var report: TickReport
        var commit: TickCommit?
    }

    /// Starts a granted tick in a task of its own, where its poller wants it (a long-lived
    /// plugin's reader thread). Unstructured on purpose: the watchdog cancels the one tick,
    /// through the handle `body` gets; whoever waits for the task passes its own cancellation
    /// (shutdown) on.
    func startTick<T: Sendable>(_ due: DueTick, _ body: @escaping @Sendable (TickHandle) async -> T) -> Task<T, Never> {
        let handle = TickHandle()
        let task = Task(executorPreference: registry.poller(for: due.spec.kind)?.preferredExecutor) {
            await body(handle)
        }
        handle.attach { task.cancel() }
        return task
    }

    /// Runs a granted tick, in its own task (`startTick`): the poller under the watchdog
    /// (timeout, lease renewal), then the plan. `startedAtMs` is when the lease was asked for, on
    /// this daemon's clock.
    func run(
        _ due: DueTick, lease: LeaseGrant, ttlMs: Int64, settings: GlobalSettings, startedAtMs start: Int64,
        handle: TickHandle
    ) async -> Ran {
        let job = due.spec
        // Lateness counts from the due time to the moment the poller is called, lease included.
        let tickStart = clock.nowMs
        let poller = registry.poller(for: job.kind)
        let cap = poller?.timeoutCapSecs
        let ctx = TickContext(
            jobID: job.id, kind: job.kind, agent: job.agent, config: job.config, cursor: lease.cursor,
            nowMs: tickStart, intervalHintSecs: job.schedule.nominalIntervalSecs(nowMs: tickStart),
            timeoutSecs: min(job.timeoutSecs, cap ?? job.timeoutSecs), slotMs: due.dueMs)
        guard
            let outcome = await runGuarded(
                ctx, poller: poller, lease: lease, ttlMs: ttlMs, heldSinceMs: start, handle: handle)
        else {
            try? await store.releaseLease(lease)
            logger.info("tick cancelled by shutdown; lease released", metadata: ["pollerd.job.id": "\(job.id)"])
            return Ran(
                report: TickReport(
                    jobID: job.id, kind: job.kind, disposition: .cancelled, ack: nil, error: nil, plan: nil,
                    startedAtMs: start, durationMs: clock.nowMs - start, latenessMs: start - due.dueMs, dueMs: due.dueMs
                ), commit: nil)
        }
        let end = clock.nowMs
        let plan = TickPlanner.plan(
            job: job, outcome: outcome, previousErrors: lease.consecutiveErrors,
            breakerThreshold: settings.breakerThreshold, offsetMs: due.offsetMs, nowMs: end)
        var ack: TickAck?
        var failure: PollerError?
        switch outcome {
        case .ok(let a): ack = a
        case .failed(let e): failure = e
        }
        if failure != nil || plan.breakerOpen {
            var log = logger
            log[metadataKey: "pollerd.job.id"] = "\(job.id)"
            if let failure {
                log.warning(
                    "tick failed",
                    metadata: ["pollerd.status": "\(plan.status)", "pollerd.error": "\(failure.message)"])
            }
            if plan.breakerOpen {
                log.warning(
                    "circuit breaker open", metadata: ["pollerd.consecutive_errors": "\(plan.consecutiveErrors)"])
            }
        }
        var commit = TickCommit(
            lease: lease, startedAtMs: start, durationMs: end - start, status: plan.status, error: plan.error,
            newCursor: ack?.nextCursor, itemsSeen: ack?.itemsSeen ?? 0, itemsDispatched: ack?.itemsDispatched ?? 0,
            consecutiveErrors: plan.consecutiveErrors, nextRunAtMs: plan.nextRunAtMs, pause: plan.pause,
            pausedReason: plan.pausedReason, done: plan.done, scheduleFingerprint: job.schedule.fingerprint,
            outbox: Self.outbox(job: job, items: ack?.items ?? [], foundAtMs: end, settings: settings))
        commit.slotMs = due.dueMs
        commit.itemsFound = Int64(ack?.items.count ?? 0)
        commit.historyLimit = settings.tickHistory
        if let alert = Self.alert(job: job, plan: plan, lease: lease, settings: settings, nowMs: end) {
            commit.alert = alert
            logger.warning(
                "failure alert queued",
                metadata: ["pollerd.job.id": "\(job.id)", "pollerd.alert.sink": "\(job.alertSinks.map(\.name))"])
        }
        var report = TickReport(
            jobID: job.id, kind: job.kind, disposition: .ran(committed: false), ack: ack, error: failure, plan: plan,
            startedAtMs: start, durationMs: end - start, latenessMs: tickStart - due.dueMs, dueMs: due.dueMs)
        if let warning = Self.dedupOverflow(job: job, items: ack?.items.count ?? 0, settings: settings) {
            logger.warning(
                "tick returned more items than the dedup window",
                metadata: ["pollerd.job.id": "\(job.id)", "pollerd.warning": "\(warning)"])
            report.warnings.append(warning)
        }
        return Ran(report: report, commit: commit)
    }

    /// The report once the store answered the commit (true: committed; false: fenced off).
    func committed(_ report: TickReport, _ commit: TickCommit, _ result: Result<Int64?, any Error>) -> TickReport {
        var report = report
        switch result {
        case .success(let queued?):
            report.disposition = .ran(committed: true)
            report.itemsNew = queued
            if !commit.outbox.entries.isEmpty || !commit.alert.entries.isEmpty { outboxBell.ring() }
        case .success(nil):
            logger.warning(
                "tick result discarded: lease lost to another holder",
                metadata: ["pollerd.job.id": "\(commit.lease.jobID)", "pollerd.lease.token": "\(commit.lease.token)"])
        case .failure(let error):
            // Debug only: the runner reports a failing store once per change, not per tick.
            logger.debug(
                "tick commit failed",
                metadata: ["pollerd.job.id": "\(commit.lease.jobID)", "pollerd.error": "\(error)"])
            // Nothing was committed (cursor, items, counters): the tick runs again in about a
            // second, whatever it found, and its failure is the store's, not the job's.
            let err = PollerError.transient(
                .store, "state store error while committing the tick: \(error)", cause: error)
            report.error = err
            report.plan = TickPlanner.storeRetry(jobID: commit.lease.jobID, error: err.message, nowMs: clock.nowMs)
        }
        return report
    }

    /// The failure alert a tick queues for the job's `failure_to` sink: when the job pauses on a
    /// permanent or config error, or its consecutive errors open the breaker; at most one per
    /// `failure_alert_cooldown_secs`.
    static func alert(
        job: JobSpec, plan: TickPlan, lease: LeaseGrant, settings: GlobalSettings, nowMs: Int64
    ) -> OutboxBatch? {
        guard let target = job.failureTo, !job.alertSinks.isEmpty else { return nil }
        let reason: String
        if plan.pause { reason = "paused" } else if plan.breakerOpen { reason = "breaker_open" } else { return nil }
        if let last = lease.lastAlertAtMs, nowMs - last < settings.failureAlertCooldownSecs * 1000 { return nil }
        let text =
            reason == "paused"
            ? "pollerd: job \(job.id) (\(job.kind)) is paused after a \(plan.status) error: \(plan.error ?? "no message")"
            : "pollerd: job \(job.id) (\(job.kind)) failed \(plan.consecutiveErrors) times in a row; its circuit breaker is open: \(plan.error ?? "no message")"
        let item: JSONValue = .object([
            "id": .string("alert-\(nowMs)"), "type": .string("pollerd.alert"), "reason": .string(reason),
            "job_id": .string(job.id),
            "kind": .string(job.kind), "status": .string(plan.status),
            "error": plan.error.map(JSONValue.string) ?? .null,
            "consecutive_errors": .int(Int64(plan.consecutiveErrors)), "at": .string(RFC3339.format(ms: nowMs)),
            "channel": .string(target.channel), "to": .string(target.to), "text": .string(text),
        ])
        let builder = ItemEnvelope.Builder(jobID: job.id, kind: job.kind, agent: job.agent, foundAtMs: nowMs)
        return OutboxBatch(sinks: job.alertSinks, entries: [builder.entry(for: item)], dedupWindow: 0, foundAtMs: nowMs)
    }

    /// A tick with more items than the job's dedup window cannot be deduplicated against the
    /// next one: a source that returns them all again re-queues the overflow every time.
    static func dedupOverflow(job: JobSpec, items: Int, settings: GlobalSettings) -> String? {
        let window = job.dedupWindow ?? settings.delivery.dedupWindow
        guard window > 0, !job.deliver.isEmpty, items > window else { return nil }
        return
            "\(items) items is more than the dedup window (\(window)): items past the window are not remembered, so a source "
            + "that returns them again delivers them again; raise the job's dedup_window or have the source return only new items"
    }

    /// The tick's items as outbox entries for the job's sinks (none when the job has no sinks).
    static func outbox(job: JobSpec, items: [JSONValue], foundAtMs: Int64, settings: GlobalSettings) -> OutboxBatch {
        guard !job.deliver.isEmpty, !items.isEmpty else { return .empty }
        let builder = ItemEnvelope.Builder(jobID: job.id, kind: job.kind, agent: job.agent, foundAtMs: foundAtMs)
        let entries = items.map(builder.entry(for:))
        return OutboxBatch(
            sinks: job.deliver, entries: entries,
            dedupWindow: job.dedupWindow ?? settings.delivery.dedupWindow, foundAtMs: foundAtMs)
    }

    /// Runs the poller under the watchdog (timeout, lease renewal), in the calling task, the
    /// tick's own, which the watchdog cancels through `handle`; nil when the task was cancelled
    /// with no expiry recorded (shutdown).
    private func runGuarded(
        _ ctx: TickContext, poller: (any Poller)?, lease: LeaseGrant, ttlMs: Int64, heldSinceMs: Int64,
        handle: TickHandle
    ) async -> TickOutcome? {
        guard let poller else {
            return .failed(.config(.unknownKind, "no poller for kind '\(ctx.kind)'"))
        }
        let deadline = ctx.nowMs + max(1, ctx.timeoutSecs) * 1000
        let expiry = Mutex<TickWatchdog.Expiry?>(nil)
        let id = watchdog.watch(deadlineMs: deadline, lease: lease, ttlMs: ttlMs, heldSinceMs: heldSinceMs) { why in
            expiry.withLock { $0 = why }
            handle.cancel()
        }
        let outcome: TickOutcome
        do throws(PollerError) { outcome = .ok(try await poller.tick(ctx)) } catch { outcome = .failed(error) }
        watchdog.unwatch(id)
        switch expiry.withLock({ $0 }) {
        case .timedOut?: return .failed(.transient(.timeout, "tick timed out after \(ctx.timeoutSecs)s"))
        case .leaseLost?:
            return .failed(.transient(.leaseLost, "lease lost, or not renewed within its TTL, while the tick ran"))
        case nil: return Task.isCancelled ? nil : outcome
        }
    }
}

/// A tick's own task, for the watchdog to cancel. A cancel asked for before the task is
/// attached happens when it is.
final class TickHandle: Sendable {
    private let state = Mutex<(cancelTask: (@Sendable () -> Void)?, cancelled: Bool)>((nil, false))

    init() {}

    func attach(_ cancelTask: @escaping @Sendable () -> Void) {
        let cancelled = state.withLock { s in
            s.cancelTask = cancelTask
            return s.cancelled
        }
        if cancelled { cancelTask() }
    }

    func cancel() {
        let cancelTask = state.withLock { s in
            s.cancelled = true
            return s.cancelTask
        }
        cancelTask?()
    }
}

/// Shares the executor's replaceable registry between its copies.
final class RegistryBox: Sendable {
    let value: Mutex<PollerRegistry>
    init(value: consuming Mutex<PollerRegistry>) { self.value = value }
}
