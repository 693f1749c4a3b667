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
    /// When the job was paused (by an operator, an error, or `paused_on_boot`).
    public var pausedAtMs: Int64?
    /// When the last failure alert for the job was queued.
    public var lastAlertAtMs: Int64?
    /// When the job last ticked ok.
    public var lastOkAtMs: Int64?
    /// The daemon that holds the job's lease, or last held it (`host:pid:nonce`); nil: never leased.
    public var leaseHolder: String?
    /// Until when that lease runs (0 or past: released; the holder then last ran the job).
    public var leaseUntilMs: Int64 = 0

    public init(
        jobID: String, kind: String, agent: String, cursor: Data? = nil, lastRunAtMs: Int64? = nil,
        nextRunAtMs: Int64? = nil, lastStatus: String? = nil, lastError: String? = nil, lastDurationMs: Int64? = nil,
        consecutiveErrors: Int = 0, ticksTotal: Int64 = 0, itemsSeenTotal: Int64 = 0, itemsDispatchedTotal: Int64 = 0,
        paused: Bool = false, pausedReason: String? = nil, done: Bool = false, scheduleFingerprint: String? = nil,
        definitionFingerprint: String? = nil, updatedAtMs: Int64 = 0, outboxBacklog: Int64 = 0,
        pausedAtMs: Int64? = nil, lastAlertAtMs: Int64? = nil, lastOkAtMs: Int64? = nil, leaseHolder: String? = nil,
        leaseUntilMs: Int64 = 0
    ) {
        self.leaseHolder = leaseHolder
        self.leaseUntilMs = leaseUntilMs
        self.jobID = jobID
        self.kind = kind
        self.agent = agent
        self.cursor = cursor
        self.lastRunAtMs = lastRunAtMs
        self.nextRunAtMs = nextRunAtMs
        self.lastStatus = lastStatus
        self.lastError = lastError
        self.lastDurationMs = lastDurationMs
        self.consecutiveErrors = consecutiveErrors
        self.ticksTotal = ticksTotal
        self.itemsSeenTotal = itemsSeenTotal
        self.itemsDispatchedTotal = itemsDispatchedTotal
        self.paused = paused
        self.pausedReason = pausedReason
        self.done = done
        self.scheduleFingerprint = scheduleFingerprint
        self.definitionFingerprint = definitionFingerprint
        self.updatedAtMs = updatedAtMs
        self.outboxBacklog = outboxBacklog
        self.pausedAtMs = pausedAtMs
        self.lastAlertAtMs = lastAlertAtMs
        self.lastOkAtMs = lastOkAtMs
    }
}

extension JobStateRow {
    /// The next run a view shows: the planned one, unless the job is paused, done, or run by no
    /// daemon (out of the active set, its kept plan is not a next run).
    public var shownNextRunMs: Int64? {
        paused || done || definitionFingerprint == nil ? nil : nextRunAtMs
    }
}

/// A job as the daemon registers it at boot or reload.
public struct JobRegistration: Sendable, Equatable {
    public var jobID: String
    public var kind: String
    public var agent: String
    public var pausedOnBoot: Bool
    public init(jobID: String, kind: String, agent: String, pausedOnBoot: Bool) {
        self.jobID = jobID
        self.kind = kind
        self.agent = agent
        self.pausedOnBoot = pausedOnBoot
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
    /// When the last failure alert was queued (the cooldown starts there).
    public var lastAlertAtMs: Int64?
    /// The store's own handle on the job's state row, if it has one, so that the commit finds
    /// the row without a key lookup. Opaque outside the stores; only the store that granted the
    /// lease reads it, and it still checks the job id.
    public var handle: StoreHandle?

    public init(
        jobID: String, holder: String, token: Int64, untilMs: Int64, cursor: Data?, consecutiveErrors: Int,
        lastAlertAtMs: Int64? = nil,
        handle: StoreHandle? = nil
    ) {
        self.jobID = jobID
        self.holder = holder
        self.token = token
        self.untilMs = untilMs
        self.cursor = cursor
        self.consecutiveErrors = consecutiveErrors
        self.lastAlertAtMs = lastAlertAtMs
        self.handle = handle
    }
}

/// A store's handle on one of its rows (SQLite: a rowid), carried by a lease from the claim to
/// the commit. Only the stores of this package make and read it.
public struct StoreHandle: Sendable, Equatable {
    package let bits: Int64
    package init(_ bits: Int64) { self.bits = bits }
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
    /// The job's row was locked by another transaction at that moment (a store with row locks
    /// claims with `SKIP LOCKED` and passes over it rather than wait): nothing was decided, the
    /// slot stays due, and the caller asks again within `busyRetryMs`. A store with one writer
    /// (SQLite) never answers this: each request there gets a definite answer.
    case busy

    /// How soon a claim answered `.busy` is asked again.
    public static let busyRetryMs: Int64 = 1000
}

/// One job's lease request in a batch claim.
public struct LeaseRequest: Sendable, Equatable {
    public var jobID: String
    public var ttlMs: Int64
    /// The slot a scheduled tick is for (nil: a manual tick, run now whatever the store plans).
    public var slotMs: Int64?
    /// Refuse while the job has this many undelivered items (nil: no bound).
    public var maxBacklog: Int64?

    public init(jobID: String, ttlMs: Int64, slotMs: Int64?, maxBacklog: Int64?) {
        self.jobID = jobID
        self.ttlMs = ttlMs
        self.slotMs = slotMs
        self.maxBacklog = maxBacklog
    }
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
    /// A failure alert for the job's `failure_to` sinks, queued in the same transaction (its
    /// `foundAtMs` becomes the job's last alert time).
    public var alert: OutboxBatch = .empty
    /// The slot the tick was for (nil: a manual tick), for the history.
    public var slotMs: Int64?
    /// Items the tick returned (the outbox may queue fewer: the dedup window drops repeats).
    public var itemsFound: Int64 = 0
    /// Ticks of this job the history keeps (`tick_history`; 0: none).
    public var historyLimit: Int = 0

    public init(
        lease: LeaseGrant, startedAtMs: Int64, durationMs: Int64, status: String, error: String?, newCursor: Data?,
        itemsSeen: Int64, itemsDispatched: Int64, consecutiveErrors: Int, nextRunAtMs: Int64?, pause: Bool,
        pausedReason: String?, done: Bool, scheduleFingerprint: String, outbox: OutboxBatch = .empty
    ) {
        self.lease = lease
        self.startedAtMs = startedAtMs
        self.durationMs = durationMs
        self.status = status
        self.error = error
        self.newCursor = newCursor
        self.itemsSeen = itemsSeen
        self.itemsDispatched = itemsDispatched
        self.consecutiveErrors = consecutiveErrors
        self.nextRunAtMs = nextRunAtMs
        self.pause = pause
        self.pausedReason = pausedReason
        self.done = done
        self.scheduleFingerprint = scheduleFingerprint
        self.outbox = outbox
    }
}

/// One tick as the history keeps it.
public struct TickRecord: Sendable, Equatable {
    public var seq: Int64
    public var jobID: String
    /// The slot the tick was for (nil: a manual tick).
    public var slotMs: Int64?
    public var startedAtMs: Int64
    public var durationMs: Int64
    public var status: String
    public var error: String?
    /// Items the tick returned.
    public var itemsFound: Int64
    /// Items queued for delivery (found minus duplicates).
    public var itemsNew: Int64
    /// Items the job's dedup window dropped.
    public var duplicates: Int64
    /// The cursor the tick committed, when it changed it.
    public var cursor: Data?
    public var cursorChanged: Bool
    public var holder: String

    public init(
        seq: Int64, jobID: String, slotMs: Int64?, startedAtMs: Int64, durationMs: Int64, status: String,
        error: String?,
        itemsFound: Int64, itemsNew: Int64, duplicates: Int64, cursor: Data?, cursorChanged: Bool, holder: String
    ) {
        self.seq = seq
        self.jobID = jobID
        self.slotMs = slotMs
        self.startedAtMs = startedAtMs
        self.durationMs = durationMs
        self.status = status
        self.error = error
        self.itemsFound = itemsFound
        self.itemsNew = itemsNew
        self.duplicates = duplicates
        self.cursor = cursor
        self.cursorChanged = cursorChanged
        self.holder = holder
    }
}

/// Who did what to a job, and when.
public struct AuditEntry: Sendable, Equatable {
    public var atMs: Int64
    /// `cli`, `admin-api (admin)`, …
    public var actor: String
    /// `pause`, `resume`, `reset`, `cursor.set`, `cursor.rewind`, …
    public var action: String
    public var jobID: String?
    public var detail: String?

    public init(atMs: Int64, actor: String, action: String, jobID: String?, detail: String?) {
        self.atMs = atMs
        self.actor = actor
        self.action = action
        self.jobID = jobID
        self.detail = detail
    }
}

/// An operator action recorded in the store, which a running daemon picks up.
public struct ControlChange: Sendable, Equatable {
    public enum Action: String, Sendable { case pause, resume, reset }
    public var jobID: String
    public var action: Action
    public init(jobID: String, action: Action) {
        self.jobID = jobID
        self.action = action
    }
}

/// Where a reader of the control log stands. Opaque: only the store that made it reads it. A
/// store must never hand out a cursor past a change that can still commit (on PostgreSQL a
/// sequence number is taken before the commit, so reading `seq > last` would miss such a row).
public struct ControlCursor: Sendable, Hashable {
    /// The store's own encoding.
    public var token: String
    public init(token: String) { self.token = token }
}

/// Controls recorded after a cursor, and the cursor to read from next.
public struct ControlBatch: Sendable, Equatable {
    public var changes: [ControlChange]
    public var next: ControlCursor
    public init(changes: [ControlChange], next: ControlCursor) {
        self.changes = changes
        self.next = next
    }
}

/// A daemon as the store knows it: what it runs and until when it counts as alive.
public struct DaemonRecord: Sendable, Equatable {
    /// The daemon's id (its lease holder id: `host:pid:nonce`).
    public var daemonID: String
    /// The job file it runs.
    public var jobFile: String
    public var startedAtMs: Int64
    /// Past this instant without a heartbeat the daemon counts as gone.
    public var aliveUntilMs: Int64
    /// How many jobs its file has.
    public var jobs: Int

    public init(daemonID: String, jobFile: String, startedAtMs: Int64, aliveUntilMs: Int64, jobs: Int) {
        self.daemonID = daemonID
        self.jobFile = jobFile
        self.startedAtMs = startedAtMs
        self.aliveUntilMs = aliveUntilMs
        self.jobs = jobs
    }
}

/// A daemon's job set, as it announces it at boot, on reload and after a lapse of its heartbeat.
public struct DaemonAnnouncement: Sendable, Equatable {
    public var daemonID: String
    public var jobFile: String
    /// Each job of its file, with its definition fingerprint.
    public var jobs: [String: String]
    /// How long the daemon counts as alive without a heartbeat, from the store's now.
    public var ttlMs: Int64

    public init(daemonID: String, jobFile: String, jobs: [String: String], ttlMs: Int64) {
        self.daemonID = daemonID
        self.jobFile = jobFile
        self.jobs = jobs
        self.ttlMs = ttlMs
    }
}

/// The processes alive on one host, read at one moment: what a store needs to free the leases
/// and lane claims of daemons that crashed there. A holder id is `host:pid:nonce`
/// (`HolderIdentity`); a holder is abandoned when its host is this one and its pid is not alive.
/// Passed as data, not as a predicate, so a store over a network decides in one statement.
public struct HostProcesses: Sendable, Equatable {
    public var host: String
    /// Every process id alive on the host when it was read (the reader's own among them).
    public var alive: Set<Int32>

    public init(host: String, alive: Set<Int32>) {
        self.host = host
        self.alive = alive
    }

    /// True for a holder that ran on this host in a process that was not alive at the reading.
    public func isAbandoned(_ holder: String) -> Bool {
        guard let pid = Self.pid(ofHolder: holder, onHost: host) else { return false }
        return !alive.contains(pid)
    }

    /// The process id in a holder id (`host:pid:nonce`) that ran on `host`; nil for another
    /// host's holder, or an id of another shape.
    public static func pid(ofHolder holder: String, onHost host: String) -> Int32? {
        let parts = holder.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == host, let pid = Int32(parts[1]), pid > 1 else { return nil }
        return pid
    }
}

/// A job's lease as recorded, for operators (`jobs show`, explain).
public struct LeaseRecord: Sendable, Equatable {
    public var holder: String
    public var token: Int64
    /// 0 once released.
    public var untilMs: Int64
    public init(holder: String, token: Int64, untilMs: Int64) {
        self.holder = holder
        self.token = token
        self.untilMs = untilMs
    }
}

/// A planned next run, written when the daemon reschedules without a tick.
public struct ScheduleRecord: Sendable, Equatable {
    public var jobID: String
    public var nextRunAtMs: Int64?
    public var scheduleFingerprint: String
    public var definitionFingerprint: String
    public init(jobID: String, nextRunAtMs: Int64?, scheduleFingerprint: String, definitionFingerprint: String) {
        self.jobID = jobID
        self.nextRunAtMs = nextRunAtMs
        self.scheduleFingerprint = scheduleFingerprint
        self.definitionFingerprint = definitionFingerprint
    }
}

/// Durable job state, leases with fencing tokens, operator controls, and the daemons that share
/// the store. The rules every implementation keeps are pinned by the store contract suite
/// (`Tests/PollerdSQLiteTests/StoreContractTests.swift`) and listed in docs/architecture.md.
public protocol StateStore: Sendable {
    /// Creates rows for jobs not seen before (`paused_on_boot` applies only then); returns every job's row.
    func register(_ jobs: [JobRegistration], nowMs: Int64) async throws -> [String: JobStateRow]
    /// Claims a batch of due jobs in one round trip: each request is answered as it would be
    /// alone, in order, and every grant carries its fencing token and cursor. A job's lease is
    /// taken if it is free, expired or this holder's own (a holder asks only for jobs it has no
    /// tick of in flight, so its own lease was left by a commit that failed), and the job is
    /// neither paused nor done; the token increases either way. With `slotMs` (scheduled ticks),
    /// a slot earlier than the stored next run is refused, so two daemons never both run one
    /// slot; manual ticks pass nil. With `maxBacklog`, the claim is refused while the job has that
    /// many undelivered items (backpressure). Expiry is decided on the store's `time`. On PostgreSQL this is one
    /// `UPDATE … WHERE job_id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …`.
    func acquireLeases(_ requests: [LeaseRequest], holder: String, nowMs: Int64) async throws -> [LeaseAcquisition]
    /// Commits a batch of finished ticks in one round trip; each is fenced on its own (true:
    /// committed, false: fenced off), in order.
    /// Per tick, nil when it was fenced off, else how many of its items were queued for
    /// delivery (found minus the duplicates the dedup window dropped; all found when the job
    /// has no sinks).
    func commit(_ ticks: [TickCommit], nowMs: Int64) async throws -> [Int64?]
    /// Extends a lease to `ttlMs` from now; false when the fencing token no longer holds.
    func renewLease(_ lease: LeaseGrant, ttlMs: Int64, nowMs: Int64) async throws -> Bool
    /// Gives a lease back without committing a tick.
    func releaseLease(_ lease: LeaseGrant) async throws
    /// Records planned next runs (boot, reload, skipped slots).
    func recordSchedules(_ records: [ScheduleRecord], nowMs: Int64) async throws
    /// Operator actions recorded after `cursor`, and where to read from next.
    func controlChanges(after cursor: ControlCursor) async throws -> ControlBatch
    /// A cursor at the end of the control log as of now.
    func controlCursor() async throws -> ControlCursor
    /// Up to `limit` jobs' rows, by job id, after `jobID` (nil: from the first): a page, so that
    /// no read returns a million rows at once.
    func states(after jobID: String?, limit: Int) async throws -> [JobStateRow]
    /// How the jobs a daemon announced stand, counted by the store (one aggregate read, however
    /// many jobs): by `JobHealth`, stale, and the oldest last success.
    func jobHealth(_ query: JobHealthQuery) async throws -> JobHealthCounts
    /// One job's row.
    func state(jobID: String) async throws -> JobStateRow?
    /// A job's lease as recorded; nil if it was never taken.
    func lease(jobID: String) async throws -> LeaseRecord?
    /// Pauses or resumes a job and records the control change; false if the job has no row.
    func setPaused(jobID: String, paused: Bool, reason: String?, nowMs: Int64) async throws -> Bool
    /// Clears a job's cursor and error counters and records the control change; false if unknown.
    /// A tick in flight is fenced off, so it cannot write its old cursor back.
    func reset(jobID: String, nowMs: Int64) async throws -> Bool
    /// The job's last `limit` ticks, newest first (kept per `tick_history`).
    func tickHistory(jobID: String, limit: Int) async throws -> [TickRecord]
    /// Keeps a slot that did not run in the job's history (status `skipped`, the reason as its
    /// error). Buffered like the ticks' rows; never fails the caller.
    func recordSkip(_ record: TickRecord, historyLimit: Int)
    /// Sets a job's cursor (nil clears it), fencing off a tick in flight as `reset` does, and
    /// records it in the audit log; false if the job has no row.
    func setCursor(jobID: String, cursor: Data?, audit: AuditEntry) async throws -> Bool
    /// Appends to the audit log.
    func recordAudit(_ entry: AuditEntry) async throws
    /// The audit log, newest first (one job's, or everyone's).
    func auditLog(jobID: String?, limit: Int) async throws -> [AuditEntry]
    /// Records a daemon's job set under its id (replacing what it announced before) and its
    /// liveness (`ttlMs` from the store's now). Then every job that no live daemon has any more leaves the active set: its
    /// state (cursor included) is kept in case it comes back. Returns the ids that left it.
    func announce(_ daemon: DaemonAnnouncement, nowMs: Int64) async throws -> [String]
    /// Extends a daemon's liveness to `ttlMs` from the store's now; false when the store no
    /// longer knows it (its heartbeat lapsed and another daemon retired it): it must announce again.
    func heartbeat(daemonID: String, ttlMs: Int64, nowMs: Int64) async throws -> Bool
    /// Removes a daemon that stops; its jobs leave the active set unless another live daemon has them.
    func retire(daemonID: String, nowMs: Int64) async throws
    /// The daemons alive now, oldest start first (ties by id).
    func liveDaemons(nowMs: Int64) async throws -> [DaemonRecord]
    /// The live daemons whose job file has the job, by id.
    func jobOwners(jobID: String, nowMs: Int64) async throws -> [String]
    /// How the live daemons define each of `jobIDs` (job id → daemon id → the definition's
    /// fingerprint, as announced), for the jobs that at least one live daemon has: a job two
    /// daemons define differently runs under either definition and delivers to either's sinks.
    func liveDefinitions(jobIDs: [String], nowMs: Int64) async throws -> [String: [String: String]]
    /// The jobs that live daemons define differently, as `liveDefinitions` gives them.
    func divergentDefinitions(nowMs: Int64) async throws -> [String: [String: String]]
    /// Frees unexpired leases whose holder ran on `host` in a process that is no longer alive (a
    /// crashed daemon on this host), in one round trip. Returns the number freed.
    func reclaimLeases(on host: HostProcesses, nowMs: Int64) async throws -> Int
    /// True when an error this store threw means its data is damaged (SQLite: `SQLITE_CORRUPT`,
    /// `SQLITE_NOTADB`): retrying cannot help, and the daemon stops instead of spinning. A full
    /// disk or a lost connection is not damage: those are retried until they pass.
    func isDamage(_ error: any Error) -> Bool
    /// Whose clock decides when leases, lane claims and daemons' liveness expire. With
    /// `.store`, every `nowMs` a caller passes is used only to stamp what it records (when a tick
    /// started, when a job was paused), never to decide an expiry: daemons whose clocks are
    /// skewed still agree on who holds what and who is alive.
    var time: StoreTime { get }
}

extension StateStore {
    public func isDamage(_ error: any Error) -> Bool { false }

    /// Every job's row, by job id, read a page (`statesPage`) at a time.
    public func allStates() async throws -> [JobStateRow] {
        var rows: [JobStateRow] = []
        while true {
            let page = try await states(after: rows.last?.jobID, limit: Self.statesPage)
            rows += page
            if page.count < Self.statesPage { return rows }
        }
    }

    /// How many rows `allStates` reads at a time.
    public static var statesPage: Int { 10_000 }

    /// One job's claim: a batch of one (`acquireLeases`).
    public func acquireLease(
        jobID: String, holder: String, ttlMs: Int64, nowMs: Int64, slotMs: Int64?, maxBacklog: Int64? = nil
    ) async throws -> LeaseAcquisition {
        let request = LeaseRequest(jobID: jobID, ttlMs: ttlMs, slotMs: slotMs, maxBacklog: maxBacklog)
        let answers = try await acquireLeases([request], holder: holder, nowMs: nowMs)
        guard answers.count == 1, let answer = answers.first else {
            throw StoreContractViolation(call: "acquireLeases", detail: "\(answers.count) answers to 1 request")
        }
        return answer
    }
}

/// What `jobHealth` counts: the jobs `daemonID` announced, classified as `JobHealth.of` does.
public struct JobHealthQuery: Sendable, Equatable {
    public var daemonID: String
    /// A job with this many consecutive errors or more counts as `breakerOpen`.
    public var breakerThreshold: Int
    public var nowMs: Int64
    /// Jobs with a staleness limit, by the limit in seconds: such a job is stale when it has
    /// not ticked ok for longer (counted from `registeredAtMs` when it never did), unless it is
    /// paused or done.
    public var staleAfterSecs: [Int64: [String]]
    public var registeredAtMs: Int64

    public init(
        daemonID: String, breakerThreshold: Int, nowMs: Int64, staleAfterSecs: [Int64: [String]] = [:],
        registeredAtMs: Int64
    ) {
        self.daemonID = daemonID
        self.breakerThreshold = breakerThreshold
        self.nowMs = nowMs
        self.staleAfterSecs = staleAfterSecs
        self.registeredAtMs = registeredAtMs
    }
}

/// The answer to a `JobHealthQuery`.
public struct JobHealthCounts: Sendable, Equatable {
    public var byState: [JobHealth: Int]
    public var stale: Int
    /// The earliest last success among the jobs neither paused nor done (nil: none succeeded).
    public var oldestLastOkAtMs: Int64?

    public init(byState: [JobHealth: Int], stale: Int, oldestLastOkAtMs: Int64?) {
        self.byState = byState
        self.stale = stale
        self.oldestLastOkAtMs = oldestLastOkAtMs
    }
}

/// A store answered outside its contract (a batch call with a wrong number of answers, say).
public struct StoreContractViolation: Error, CustomStringConvertible {
    public var call: String
    public var detail: String
    public init(call: String, detail: String) {
        self.call = call
        self.detail = detail
    }
    public var description: String { "the store broke its contract in \(call): \(detail)" }
}

/// Whose clock decides when a lease, a lane claim or a daemon's liveness expires.
public enum StoreTime: Sendable, Equatable {
    /// The `nowMs` each caller passes (one daemon, or daemons on one host, sharing its clock).
    case caller
    /// The store's own clock (PostgreSQL's `now()`): daemons whose clocks are skewed still
    /// agree on when each of these expires.
    case store
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

    public init(
        pluginID: String, lifecycle: String, phase: String, pid: Int32?, restarts: Int,
        ticks: Int64, failures: Int64, lastError: String?, stderrTail: [String], updatedAtMs: Int64
    ) {
        self.pluginID = pluginID
        self.lifecycle = lifecycle
        self.phase = phase
        self.pid = pid
        self.restarts = restarts
        self.ticks = ticks
        self.failures = failures
        self.lastError = lastError
        self.stderrTail = stderrTail
        self.updatedAtMs = updatedAtMs
    }
}

/// One daemon's report of one plugin, as the store gives it back.
public struct DaemonPluginStatus: Sendable, Equatable {
    /// The daemon that runs the plugin (each daemon keeps its own rows).
    public var daemonID: String
    public var status: PluginStatusRecord
    public init(daemonID: String, status: PluginStatusRecord) {
        self.daemonID = daemonID
        self.status = status
    }
}

/// The one store contract: everything the daemon (runner, deliverer, plugin status) and the
/// operator facade need. Items enter the outbox in `StateStore.commit`, so one type, on one
/// database, implements both halves.
///
/// A store has a life of three steps. It is opened (no I/O past what finding it takes), then
/// `run(clock:)` starts its background work, then `prepare()` checks it and brings its schema up to
/// date. Every other call waits until `prepare()` has returned: the daemon's store service runs
/// both and opens `StoreReadiness` when `prepare()` returns, and the services that use the store
/// wait for it; the CLI and the tests go through `withStore(clock:_:)`, which does the same for the
/// span of one body.
public protocol PollerdStore: StateStore, OutboxStore {
    /// The store's own background work (a connection pool, WAL checkpoints), for as long as the
    /// daemon runs; returns when the task is cancelled. The daemon runs it first in its service
    /// group and stops it last. `prepare()` and every other call may need it running (a pool
    /// hands out connections only while it runs). Its timers run on `clock`.
    func run(clock: any WallClock) async throws
    /// Checks the store and brings its schema up to date; the first call other than `run`.
    /// Several daemons may prepare one store at once: the schema is changed once, under a lock
    /// the backend provides and holds across reading which migrations are applied and applying
    /// the rest (SQLite: one `BEGIN IMMEDIATE` transaction; PostgreSQL: a transaction-scoped
    /// advisory lock). A damaged store throws an error that `isDamage` recognises; a store
    /// written by a newer version throws without changing it.
    func prepare() async throws
    /// Replaces what one daemon reports of its plugins; other daemons' rows stay.
    func recordPluginStatuses(_ records: [PluginStatusRecord], daemonID: String) async throws
    /// What every daemon last reported of its plugins, by plugin id, then daemon id.
    func pluginStatuses() async throws -> [DaemonPluginStatus]
    /// Calls `handler` when another daemon (or a CLI) writes what this daemon should act on at
    /// once: new outbox items, an operator control. A store that can tell (PostgreSQL:
    /// `LISTEN/NOTIFY`, heard while `run(clock:)` runs) calls it from its own task; after a lost
    /// connection it calls it for every kind, since it may have missed some. Polling stays the
    /// fallback: a store that cannot tell (SQLite) never calls it.
    func onWake(_ handler: @escaping @Sendable (StoreWake) -> Void)
    /// What the store's own upkeep looks like (PostgreSQL: the oldest open transaction, which holds
    /// back vacuum, and each table's size and dead rows), with warnings for an operator when a
    /// bound is passed. A store with nothing to report (SQLite) answers an empty report.
    func maintenance() async throws -> StoreMaintenance
}

/// The store's upkeep as the dashboard's banner and `/metrics` show it.
public struct StoreMaintenance: Sendable, Equatable {
    public struct Table: Sendable, Equatable {
        public var name: String
        /// The table with its indexes and TOAST.
        public var bytes: Int64
        public var liveRows: Int64
        public var deadRows: Int64
        public init(name: String, bytes: Int64, liveRows: Int64, deadRows: Int64) {
            self.name = name
            self.bytes = bytes
            self.liveRows = liveRows
            self.deadRows = deadRows
        }
    }
    /// How long the oldest transaction on the server has been open (nil: none, or not known).
    public var oldestTransactionSecs: Double?
    public var tables: [Table]
    public var warnings: [String]

    public init(oldestTransactionSecs: Double? = nil, tables: [Table] = [], warnings: [String] = []) {
        self.oldestTransactionSecs = oldestTransactionSecs
        self.tables = tables
        self.warnings = warnings
    }
}

/// What a store's wake-up (`PollerdStore.onWake`) is about.
public enum StoreWake: Sendable, Equatable, CaseIterable {
    /// Items were queued in the outbox (or dead letters replayed).
    case outbox
    /// An operator control was recorded (pause, resume, reset).
    case controls
}

extension PollerdStore {
    /// A store that hears nothing from other processes.
    public func onWake(_ handler: @escaping @Sendable (StoreWake) -> Void) {}

    /// A store with no upkeep to report.
    public func maintenance() async throws -> StoreMaintenance { StoreMaintenance() }

    /// Runs the store for the span of `body`: starts `run(clock:)`, prepares the store, runs the
    /// body, then stops the background work. For a process that uses a store for one command (the
    /// CLI) or one test; the daemon runs the store as a service instead.
    public func withStore<T>(clock: any WallClock, _ body: (Self) async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run(clock: clock) }
            defer { group.cancelAll() }
            try await prepare()
            return try await body(self)
        }
    }
}
