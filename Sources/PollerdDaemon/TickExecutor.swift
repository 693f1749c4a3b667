import Foundation
import Synchronization
public import PollerdCore
public import Logging

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

    /// `ok`, `transient`, `permanent`, `config`, `cancelled` (shutdown or the caller cancelled
    /// it; nothing committed), or `skipped`.
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
    public func execute(_ due: DueTick, settings: GlobalSettings, dryRun: Bool = false, manual: Bool = false) async -> TickReport {
        var report = await attempt(due, settings: settings, dryRun: dryRun, manual: manual)
        report.dueMs = due.dueMs
        return report
    }

    private func attempt(_ due: DueTick, settings: GlobalSettings, dryRun: Bool, manual: Bool) async -> TickReport {
        let job = due.spec
        let start = clock.nowMs
        var log = logger
        log[metadataKey: "pollerd.job.id"] = "\(job.id)"
        let ttl = TickPlanner.leaseTTLMs(job: job, factor: settings.leaseTTLFactor, nowMs: start)
        let acq: LeaseAcquisition
        do {
            acq = try await store.acquireLease(jobID: job.id, holder: holder, ttlMs: ttl, nowMs: start, slotMs: manual ? nil : due.dueMs,
                                              maxBacklog: job.deliver.isEmpty ? nil : settings.delivery.maxBacklog)
        } catch {
            log.warning("lease acquisition failed", metadata: ["pollerd.error": "\(error)"])
            let err = PollerError.transient(.store, "state store error while taking the lease: \(error)", cause: error)
            let plan = TickPlanner.plan(job: job, outcome: .failed(err), previousErrors: 0, breakerThreshold: settings.breakerThreshold, offsetMs: due.offsetMs, nowMs: clock.nowMs)
            return TickReport(jobID: job.id, kind: job.kind, disposition: .ran(committed: false), ack: nil, error: err, plan: plan, startedAtMs: start, durationMs: 0, latenessMs: start - due.dueMs)
        }
        guard case .granted(let lease) = acq else {
            if case .backlogged(let pending, let limit) = acq {
                log.warning("tick skipped: undelivered items over the backlog bound", metadata: ["pollerd.outbox.backlog": "\(pending)", "pollerd.outbox.limit": "\(limit)"])
            }
            return TickReport(jobID: job.id, kind: job.kind, disposition: .skipped(acq), ack: nil, error: nil, plan: nil, startedAtMs: start, durationMs: 0, latenessMs: start - due.dueMs)
        }

        // Lateness counts from the due time to the moment the poller is called, lease included.
        let tickStart = clock.nowMs
        let poller = registry.poller(for: job.kind)
        let cap = poller?.timeoutCapSecs
        let ctx = TickContext(jobID: job.id, kind: job.kind, agent: job.agent, config: job.config, cursor: lease.cursor,
                              nowMs: tickStart, intervalHintSecs: job.schedule.nominalIntervalSecs(nowMs: tickStart),
                              timeoutSecs: min(job.timeoutSecs, cap ?? job.timeoutSecs))
        guard let outcome = await runGuarded(ctx, poller: poller, lease: lease, ttlMs: ttl, heldSinceMs: start) else {
            try? await store.releaseLease(lease)
            log.info("tick cancelled by shutdown; lease released")
            return TickReport(jobID: job.id, kind: job.kind, disposition: .cancelled, ack: nil, error: nil, plan: nil, startedAtMs: start, durationMs: clock.nowMs - start, latenessMs: start - due.dueMs)
        }
        let end = clock.nowMs
        let plan = TickPlanner.plan(job: job, outcome: outcome, previousErrors: lease.consecutiveErrors, breakerThreshold: settings.breakerThreshold, offsetMs: due.offsetMs, nowMs: end)
        var ack: TickAck?
        var failure: PollerError?
        switch outcome {
        case .ok(let a): ack = a
        case .failed(let e): failure = e
        }
        var committed = false
        if dryRun {
            try? await store.releaseLease(lease)
        } else {
            let commit = TickCommit(lease: lease, startedAtMs: start, durationMs: end - start, status: plan.status, error: plan.error,
                                    newCursor: ack?.nextCursor, itemsSeen: ack?.itemsSeen ?? 0, itemsDispatched: ack?.itemsDispatched ?? 0,
                                    consecutiveErrors: plan.consecutiveErrors, nextRunAtMs: plan.nextRunAtMs, pause: plan.pause,
                                    pausedReason: plan.pausedReason, done: plan.done, scheduleFingerprint: job.schedule.fingerprint,
                                    outbox: Self.outbox(job: job, items: ack?.items ?? [], foundAtMs: end, settings: settings))
            do {
                committed = try await store.commit(commit, nowMs: end)
                if committed, !commit.outbox.entries.isEmpty { outboxBell.ring() }
                if !committed {
                    log.warning("tick result discarded: lease lost to another holder", metadata: ["pollerd.lease.token": "\(lease.token)"])
                }
            } catch {
                log.error("tick commit failed", metadata: ["pollerd.error": "\(error)"])
            }
        }
        if let failure {
            log.warning("tick failed", metadata: ["pollerd.status": "\(plan.status)", "pollerd.error": "\(failure.message)"])
        }
        if plan.breakerOpen {
            log.warning("circuit breaker open", metadata: ["pollerd.consecutive_errors": "\(plan.consecutiveErrors)"])
        }
        return TickReport(jobID: job.id, kind: job.kind, disposition: .ran(committed: committed), ack: ack, error: failure, plan: plan,
                          startedAtMs: start, durationMs: end - start, latenessMs: tickStart - due.dueMs)
    }

    /// The tick's items as outbox entries for the job's sinks (none when the job has no sinks).
    static func outbox(job: JobSpec, items: [JSONValue], foundAtMs: Int64, settings: GlobalSettings) -> OutboxBatch {
        guard !job.deliver.isEmpty, !items.isEmpty else { return .empty }
        let builder = ItemEnvelope.Builder(jobID: job.id, kind: job.kind, agent: job.agent, foundAtMs: foundAtMs)
        let entries = items.map(builder.entry(for:))
        return OutboxBatch(sinks: job.deliver.map(\.name), entries: entries, dedupWindow: settings.delivery.dedupWindow, foundAtMs: foundAtMs)
    }

    /// Runs the poller under the watchdog (timeout, lease renewal); nil when the calling task
    /// itself was cancelled (shutdown).
    private func runGuarded(_ ctx: TickContext, poller: (any Poller)?, lease: LeaseGrant, ttlMs: Int64, heldSinceMs: Int64) async -> TickOutcome? {
        guard let poller else {
            return .failed(.config(.unknownKind, "no poller for kind '\(ctx.kind)'"))
        }
        let deadline = ctx.nowMs + max(1, ctx.timeoutSecs) * 1000
        let expiry = Mutex<TickWatchdog.Expiry?>(nil)
        // Unstructured on purpose: the watchdog must be able to cancel this one tick. It starts
        // where the poller wants its ticks to run (a long-lived plugin's reader thread).
        let task = Task(executorPreference: poller.preferredExecutor) { () -> TickOutcome in
            do throws(PollerError) {
                return .ok(try await poller.tick(ctx))
            } catch {
                return .failed(error)
            }
        }
        let id = watchdog.watch(deadlineMs: deadline, lease: lease, ttlMs: ttlMs, heldSinceMs: heldSinceMs) { why in
            expiry.withLock { $0 = why }
            task.cancel()
        }
        let outcome = await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            task.cancel()
        }
        watchdog.unwatch(id)
        if Task.isCancelled { return nil }
        switch expiry.withLock({ $0 }) {
        case .timedOut?: return .failed(.transient(.timeout, "tick timed out after \(ctx.timeoutSecs)s"))
        case .leaseLost?: return .failed(.transient(.leaseLost, "lease lost, or not renewed within its TTL, while the tick ran"))
        case nil: return outcome
        }
    }
}

/// Shares the executor's replaceable registry between its copies.
final class RegistryBox: Sendable {
    let value: Mutex<PollerRegistry>
    init(value: consuming Mutex<PollerRegistry>) { self.value = value }
}
