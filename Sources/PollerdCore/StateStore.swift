public import Foundation

/// What the store remembers of a job between ticks and restarts.
public struct JobStateRow: Sendable, Equatable, Codable {
    public var jobID: String
    public var kind: String
    public var agent: String
    public var cursor: Data?
    public var lastRunAtMs: Int64?
    public var nextRunAtMs: Int64?
    public var lastStatus: String?
    public var lastError: String?
    public var lastDurationMs: Int64?
    public var consecutiveErrors: Int
    public var ticksTotal: Int64
    public var itemsSeenTotal: Int64
    public var itemsDispatchedTotal: Int64
    public var paused: Bool
    public var pausedReason: String?
    public var done: Bool
    public var scheduleFingerprint: String?
    public var definitionFingerprint: String?
    public var updatedAtMs: Int64
    /// Items found by the job and not yet delivered to every sink (nor dead-lettered).
    public var outboxBacklog: Int64 = 0

    public init(jobID: String, kind: String, agent: String, cursor: Data? = nil, lastRunAtMs: Int64? = nil, nextRunAtMs: Int64? = nil, lastStatus: String? = nil, lastError: String? = nil, lastDurationMs: Int64? = nil, consecutiveErrors: Int = 0, ticksTotal: Int64 = 0, itemsSeenTotal: Int64 = 0, itemsDispatchedTotal: Int64 = 0, paused: Bool = false, pausedReason: String? = nil, done: Bool = false, scheduleFingerprint: String? = nil, definitionFingerprint: String? = nil, updatedAtMs: Int64 = 0, outboxBacklog: Int64 = 0) {
        self.jobID = jobID; self.kind = kind; self.agent = agent; self.cursor = cursor
        self.lastRunAtMs = lastRunAtMs; self.nextRunAtMs = nextRunAtMs; self.lastStatus = lastStatus
        self.lastError = lastError; self.lastDurationMs = lastDurationMs; self.consecutiveErrors = consecutiveErrors
        self.ticksTotal = ticksTotal; self.itemsSeenTotal = itemsSeenTotal; self.itemsDispatchedTotal = itemsDispatchedTotal
        self.paused = paused; self.pausedReason = pausedReason; self.done = done
        self.scheduleFingerprint = scheduleFingerprint; self.definitionFingerprint = definitionFingerprint
        self.updatedAtMs = updatedAtMs
        self.outboxBacklog = outboxBacklog
    }
}

/// A job as the daemon registers it at boot or reload.
public struct JobRegistration: Sendable, Equatable {
    public var jobID: String
    public var kind: String
    public var agent: String
    public var pausedOnBoot: Bool
    public init(jobID: String, kind: String, agent: String, pausedOnBoot: Bool) {
        self.jobID = jobID; self.kind = kind; self.agent = agent; self.pausedOnBoot = pausedOnBoot
    }
}

/// A lease held on a job: proof that this daemon may commit the tick.
public struct LeaseGrant: Sendable, Equatable {
    public var jobID: String
    public var holder: String
    /// The fencing token: increases on every acquisition of this job's lease.
    public var token: Int64
    public var untilMs: Int64
    /// The job's state as of the acquisition.
    public var cursor: Data?
    public var consecutiveErrors: Int

    public init(jobID: String, holder: String, token: Int64, untilMs: Int64, cursor: Data?, consecutiveErrors: Int) {
        self.jobID = jobID; self.holder = holder; self.token = token; self.untilMs = untilMs
        self.cursor = cursor; self.consecutiveErrors = consecutiveErrors
    }
}

/// The answer to a lease request.
public enum LeaseAcquisition: Sendable, Equatable {
    case granted(LeaseGrant)
    /// Another holder has it until the instant.
    case held(by: String, untilMs: Int64)
    /// The job is paused in the store.
    case paused(reason: String?)
    /// The one-shot job already ran.
    case done
    /// The store plans this job later than the slot asked for (another daemon ran the slot,
    /// or backed the job off): run it at `untilMs` instead.
    case notDue(untilMs: Int64)
    /// The job's undelivered items reached the backlog bound: its ticks wait until they drain.
    case backlogged(pending: Int64, limit: Int64)
}

/// Everything one tick writes, committed in one transaction if the fencing token still holds.
public struct TickCommit: Sendable, Equatable {
    public var lease: LeaseGrant
    public var startedAtMs: Int64
    public var durationMs: Int64
    public var status: String
    public var error: String?
    public var newCursor: Data?
    public var itemsSeen: Int64
    public var itemsDispatched: Int64
    public var consecutiveErrors: Int
    public var nextRunAtMs: Int64?
    public var pause: Bool
    public var pausedReason: String?
    public var done: Bool
    public var scheduleFingerprint: String
    /// New items found by the tick, stored in the outbox in the same transaction as the cursor.
    public var outbox: OutboxBatch

    public init(lease: LeaseGrant, startedAtMs: Int64, durationMs: Int64, status: String, error: String?, newCursor: Data?, itemsSeen: Int64, itemsDispatched: Int64, consecutiveErrors: Int, nextRunAtMs: Int64?, pause: Bool, pausedReason: String?, done: Bool, scheduleFingerprint: String, outbox: OutboxBatch = .empty) {
        self.lease = lease; self.startedAtMs = startedAtMs; self.durationMs = durationMs; self.status = status
        self.error = error; self.newCursor = newCursor; self.itemsSeen = itemsSeen; self.itemsDispatched = itemsDispatched
        self.consecutiveErrors = consecutiveErrors; self.nextRunAtMs = nextRunAtMs; self.pause = pause
        self.pausedReason = pausedReason; self.done = done; self.scheduleFingerprint = scheduleFingerprint; self.outbox = outbox
    }
}

/// An operator action recorded in the store, which a running daemon picks up.
public struct ControlChange: Sendable, Equatable {
    public enum Action: String, Sendable { case pause, resume, reset }
    public var seq: Int64
    public var jobID: String
    public var action: Action
    public init(seq: Int64, jobID: String, action: Action) { self.seq = seq; self.jobID = jobID; self.action = action }
}

/// A planned next run, written when the daemon reschedules without a tick.
public struct ScheduleRecord: Sendable, Equatable {
    public var jobID: String
    public var nextRunAtMs: Int64?
    public var scheduleFingerprint: String
    public var definitionFingerprint: String
    public init(jobID: String, nextRunAtMs: Int64?, scheduleFingerprint: String, definitionFingerprint: String) {
        self.jobID = jobID; self.nextRunAtMs = nextRunAtMs
        self.scheduleFingerprint = scheduleFingerprint; self.definitionFingerprint = definitionFingerprint
    }
}

/// Durable job state, leases with fencing tokens, and operator controls.
public protocol StateStore: Sendable {
    /// Creates rows for jobs not seen before (`paused_on_boot` applies only then); returns every job's row.
    func register(_ jobs: [JobRegistration], nowMs: Int64) async throws -> [String: JobStateRow]
    /// Takes the job's lease if it is free or expired, and the job is neither paused nor done.
    /// With `slotMs` (scheduled ticks), it also refuses a slot earlier than the stored next run,
    /// so two daemons never both run one slot; manual ticks pass nil. With `maxBacklog`, it
    /// refuses while the job has that many undelivered items (backpressure).
    func acquireLease(jobID: String, holder: String, ttlMs: Int64, nowMs: Int64, slotMs: Int64?, maxBacklog: Int64?) async throws -> LeaseAcquisition
    /// Extends a lease; false when the fencing token no longer holds.
    func renewLease(_ lease: LeaseGrant, untilMs: Int64) async throws -> Bool
    /// Gives a lease back without committing a tick.
    func releaseLease(_ lease: LeaseGrant) async throws
    /// Commits a tick and releases its lease, in one transaction; false when fenced off.
    func commit(_ tick: TickCommit, nowMs: Int64) async throws -> Bool
    /// Records planned next runs (boot, reload, skipped slots).
    func recordSchedules(_ records: [ScheduleRecord], nowMs: Int64) async throws
    /// Operator actions after a sequence number.
    func controlChanges(after seq: Int64) async throws -> [ControlChange]
    /// The newest control sequence number.
    func lastControlSeq() async throws -> Int64
    /// Every job's row.
    func allStates() async throws -> [JobStateRow]
    /// Ids of the jobs recorded as active (in the job file the daemon last applied).
    func activeJobIDs() async throws -> [String]
    /// One job's row.
    func state(jobID: String) async throws -> JobStateRow?
    /// Pauses or resumes a job and records the control change; false if the job has no row.
    func setPaused(jobID: String, paused: Bool, reason: String?, nowMs: Int64) async throws -> Bool
    /// Clears a job's cursor and error counters and records the control change; false if unknown.
    /// A tick in flight is fenced off, so it cannot write its old cursor back.
    func reset(jobID: String, nowMs: Int64) async throws -> Bool
    /// Marks jobs as no longer in the job file: their state (cursor included) is kept, in case
    /// they come back, but they no longer count as active.
    func deactivate(jobIDs: [String], nowMs: Int64) async throws
    /// Frees unexpired leases whose holder is known to be gone (a crashed daemon on this host).
    /// Returns the number freed.
    func reclaimLeases(isAbandoned: @Sendable (String) -> Bool, nowMs: Int64) async throws -> Int
}

extension StateStore {
    /// Takes a lease without a backlog bound.
    public func acquireLease(jobID: String, holder: String, ttlMs: Int64, nowMs: Int64, slotMs: Int64?) async throws -> LeaseAcquisition {
        try await acquireLease(jobID: jobID, holder: holder, ttlMs: ttlMs, nowMs: nowMs, slotMs: slotMs, maxBacklog: nil)
    }

    /// Convenience for one schedule record.
    public func recordSchedule(_ record: ScheduleRecord, nowMs: Int64) async throws {
        try await recordSchedules([record], nowMs: nowMs)
    }
}

/// What a running daemon reports of one plugin, for `pollerd plugins list` in another process.
public struct PluginStatusRecord: Sendable, Equatable {
    public var pluginID: String
    public var lifecycle: String
    /// `idle`, `starting`, `running`, `backing_off`, `failed: …`, `stopped` (long-lived), or `ready`.
    public var phase: String
    public var pid: Int32?
    public var restarts: Int
    public var ticks: Int64
    public var failures: Int64
    public var lastError: String?
    public var stderrTail: [String]
    public var updatedAtMs: Int64

    public init(pluginID: String, lifecycle: String, phase: String, pid: Int32?, restarts: Int, ticks: Int64, failures: Int64, lastError: String?, stderrTail: [String], updatedAtMs: Int64) {
        self.pluginID = pluginID; self.lifecycle = lifecycle; self.phase = phase; self.pid = pid; self.restarts = restarts
        self.ticks = ticks; self.failures = failures; self.lastError = lastError; self.stderrTail = stderrTail; self.updatedAtMs = updatedAtMs
    }
}
