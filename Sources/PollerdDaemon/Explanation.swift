public import PollerdCore

/// The answer to "why did this job (not) run, and when will it run next?", built from the
/// store alone, so it is the same whichever daemon or CLI asks.
public struct Explanation: Sendable, Equatable {
    /// Why the job will not run, or when it will.
    public enum Next: Sendable, Equatable {
        /// Paused since the instant (nil: unknown, from before pollerd recorded it).
        /// `cause` says who paused it; `note` is the operator's or the error's text.
        case paused(sinceMs: Int64?, cause: PauseCause, note: String?)
        /// A one-shot job that already ran.
        case done
        /// Consecutive transient failures reached the breaker threshold: no tick until then.
        case breakerOpen(untilMs: Int64, failures: Int)
        /// A transient failure: retrying at the instant.
        case backingOff(untilMs: Int64, failures: Int)
        /// Its undelivered items reached `delivery.max_backlog`: ticks wait until the outbox drains.
        case backlogFull(pending: Int64, limit: Int64)
        /// A tick is running now, under a lease held by another holder (or this daemon) until then.
        case leaseHeld(holder: String, untilMs: Int64)
        /// No running daemon has the job in its job file: nothing will run it.
        case notInAnyJobFile
        /// The next run is planned at the instant.
        case nextRun(atMs: Int64)
        /// The job is active but no daemon has planned a next run.
        case unplanned
    }

    /// Who paused a job.
    public enum PauseCause: String, Sendable, Equatable {
        case `operator`, error
        case pausedOnBoot = "paused_on_boot"
    }

    /// What happened at the job's last slot.
    public enum Last: Sendable, Equatable {
        /// It has never run.
        case never
        /// It ran at the instant, with the status and error recorded.
        case ran(atMs: Int64, status: String, error: String?, durationMs: Int64?)
    }

    public var jobID: String
    public var last: Last
    public var next: Next
    /// The live daemons whose job file has the job.
    public var owners: [String]
    /// When live daemons define the job differently: each one's definition fingerprint (else empty).
    public var divergentDefinitions: [String: String] = [:]

    public init(jobID: String, last: Last, next: Next, owners: [String]) {
        self.jobID = jobID
        self.last = last
        self.next = next
        self.owners = owners
    }

    /// Decides the answer from the job's row, its lease, the live daemons that have it and the
    /// backlog bound (nil: no bound known). Pure: `nowMs` is the only time it reads.
    public static func decide(
        row: JobStateRow, lease: LeaseRecord?, owners: [String], breakerThreshold: Int, maxBacklog: Int64?, nowMs: Int64
    ) -> Explanation {
        let last: Last =
            row.lastRunAtMs.map {
                .ran(
                    atMs: $0, status: row.lastStatus ?? "unknown", error: row.lastError, durationMs: row.lastDurationMs)
            } ?? .never
        let next: Next
        if owners.isEmpty {
            next = .notInAnyJobFile
        } else if row.paused {
            next = .paused(sinceMs: row.pausedAtMs, cause: pauseCause(row), note: row.pausedReason)
        } else if row.done {
            next = .done
        } else if let lease, lease.untilMs > nowMs {
            next = .leaseHeld(holder: lease.holder, untilMs: lease.untilMs)
        } else if let maxBacklog, row.outboxBacklog >= maxBacklog {
            next = .backlogFull(pending: row.outboxBacklog, limit: maxBacklog)
        } else if row.lastStatus == "transient", row.consecutiveErrors > 0, let at = row.nextRunAtMs, at > nowMs {
            next =
                row.consecutiveErrors >= max(1, breakerThreshold)
                ? .breakerOpen(untilMs: at, failures: row.consecutiveErrors)
                : .backingOff(untilMs: at, failures: row.consecutiveErrors)
        } else if let at = row.nextRunAtMs {
            next = .nextRun(atMs: at)
        } else {
            next = .unplanned
        }
        return Explanation(jobID: row.jobID, last: last, next: next, owners: owners)
    }

    /// True for a job the daemon paused itself, on a permanent or config error: it waits for an
    /// operator to resume it.
    public static func pausedByError(_ row: JobStateRow) -> Bool { row.paused && pauseCause(row) == .error }

    private static func pauseCause(_ row: JobStateRow) -> PauseCause {
        let reason = row.pausedReason ?? ""
        if reason == "paused_on_boot" { return .pausedOnBoot }
        if ["permanent", "config"].contains(row.lastStatus ?? ""),
            reason.hasPrefix("permanent error:") || reason.hasPrefix("config error:")
        {
            return .error
        }
        return .operator
    }

    /// A stable code for the `next` case (`paused`, `breaker_open`, …), for JSON and metrics.
    public var code: String {
        switch next {
        case .paused: "paused"
        case .done: "done"
        case .breakerOpen: "breaker_open"
        case .backingOff: "backing_off"
        case .backlogFull: "backlog_full"
        case .leaseHeld: "lease_held"
        case .notInAnyJobFile: "not_in_any_job_file"
        case .nextRun: "next_run"
        case .unplanned: "unplanned"
        }
    }

    /// The answer in two sentences for people.
    public var text: String {
        let t = RFC3339.format(ms:)
        let lastText: String
        switch last {
        case .never: lastText = "It has never run."
        case .ran(let at, let status, let error, _):
            lastText = "It last ran at \(t(at)): \(status)\(error.map { " (\($0))" } ?? "")."
        }
        let nextText: String
        switch next {
        case .paused(let since, let cause, let note):
            let who =
                switch cause {
                case .operator: "by an operator"
                case .error: "after an error"
                case .pausedOnBoot: "by paused_on_boot"
                }
            nextText =
                "It will not run: paused \(who)\(since.map { " since \(t($0))" } ?? "")\(note.map { ": \($0)" } ?? ""). `pollerd jobs resume \(jobID)` resumes it."
        case .done:
            nextText =
                "It will not run: a one-shot job that already ran. `pollerd jobs reset \(jobID)` allows it again."
        case .breakerOpen(let until, let n):
            nextText = "Circuit breaker open after \(n) consecutive failures: the next try is at \(t(until))."
        case .backingOff(let until, let n):
            nextText = "Backing off after \(n) failure(s): the next try is at \(t(until))."
        case .backlogFull(let pending, let limit):
            nextText =
                "Its ticks wait: \(pending) undelivered items reached the backlog bound (\(limit)); see `pollerd outbox stats`."
        case .leaseHeld(let holder, let until):
            nextText = "A tick is running now: the lease is held by \(holder) until \(t(until))."
        case .notInAnyJobFile:
            nextText = "It will not run: no running daemon has it in its job file."
        case .nextRun(let at):
            nextText = "Next run at \(t(at))."
        case .unplanned:
            nextText = "No next run is planned."
        }
        var text = lastText + " " + nextText
        if divergentDefinitions.count > 1 {
            let daemons = divergentDefinitions.keys.sorted().joined(separator: ", ")
            text +=
                " Warning: live daemons define it differently (\(daemons)): each tick runs under the definition of "
                + "the daemon that claims it, and its items go to that daemon's sinks. Give it one definition."
        }
        return text
    }
}
