/// What a tick attempt came to, before it is committed.
public enum TickOutcome: Sendable {
    case ok(TickAck)
    case failed(PollerError)
}

/// What the planner decides after a tick: the state to commit and when to run next.
public struct TickPlan: Sendable, Equatable {
    public var status: String
    public var error: String?
    public var consecutiveErrors: Int
    public var nextRunAtMs: Int64?
    public var pause: Bool
    public var pausedReason: String?
    public var done: Bool
    /// True when this failure opened (or re-opened) the circuit breaker.
    public var breakerOpen: Bool
    /// The job's count of consecutive errors stays as it was (a failure of the store, not the job's).
    public var keepsErrorCount = false

    public init(
        status: String, error: String?, consecutiveErrors: Int, nextRunAtMs: Int64?, pause: Bool, pausedReason: String?,
        done: Bool, breakerOpen: Bool
    ) {
        self.status = status
        self.error = error
        self.consecutiveErrors = consecutiveErrors
        self.nextRunAtMs = nextRunAtMs
        self.pause = pause
        self.pausedReason = pausedReason
        self.done = done
        self.breakerOpen = breakerOpen
    }
}

/// The retry rules: exponential backoff with jitter below the breaker threshold, the breaker above it.
public enum TickPlanner {
    /// How soon, at the latest, a tick the store failed (its lease or its commit) is tried
    /// again: the store is retried, not backed off from, so work resumes within a second of the
    /// store answering again (a disk with space again, a database back up).
    public static let storeRetryMs: Int64 = 1000

    /// The plan after the store failed a tick: again in 750 ms to `storeRetryMs` (a per-job
    /// spread, so a fleet does not retry in one burst), without counting against the job's
    /// breaker. The tick committed nothing, so its work is simply done again.
    public static func storeRetry(jobID: String, error: String, nowMs: Int64) -> TickPlan {
        let spread = Int64(StableHash.fnv1a(jobID) % UInt64(storeRetryMs / 4 + 1))
        var plan = TickPlan(
            status: "store_error", error: error, consecutiveErrors: 0,
            nextRunAtMs: nowMs + storeRetryMs * 3 / 4 + spread,
            pause: false, pausedReason: nil, done: false, breakerOpen: false)
        plan.keepsErrorCount = true
        return plan
    }

    /// First transient retry delay.
    public static let backoffBaseMs: Int64 = 30_000
    /// Longest retry delay, and the breaker's open window.
    public static let backoffCapMs: Int64 = 300_000

    /// Backoff before retry number `failures` (1-based): 30 s doubling to 300 s, ±10 % stable jitter.
    public static func backoffMs(jobID: String, failures: Int) -> Int64 {
        let exp = min(max(failures - 1, 0), 20)
        let raw = min(backoffBaseMs << Int64(exp), backoffCapMs)
        let u = Double(StableHash.fnv1a("\(jobID)#\(failures)") % 10_000) / 10_000 // [0, 1)
        return Int64(Double(raw) * (0.9 + 0.2 * u))
    }

    /// Plans the state after a tick that ended at `nowMs` with `outcome`, after `previousErrors`
    /// failures in a row; `offsetMs` is the job's jitter offset.
    public static func plan(
        job: JobSpec, outcome: TickOutcome, previousErrors: Int, breakerThreshold: Int, offsetMs: Int64, nowMs: Int64
    ) -> TickPlan {
        let threshold = max(1, breakerThreshold)
        switch outcome {
        case .ok(let ack):
            let next: Int64?
            if job.schedule.isOneShot {
                next = nil
            } else if let hint = ack.nextIntervalSecs {
                next = nowMs + max(1, hint) * 1000
            } else {
                next = job.schedule.nextFire(afterMs: nowMs, offsetMs: offsetMs)
            }
            return TickPlan(
                status: "ok", error: nil, consecutiveErrors: 0, nextRunAtMs: next, pause: false, pausedReason: nil,
                done: job.schedule.isOneShot, breakerOpen: false)
        case .failed(let err):
            let failures = previousErrors + 1
            switch err.errorClass {
            case .transient:
                let open = failures >= threshold
                var delay = open ? backoffCapMs : backoffMs(jobID: job.id, failures: failures)
                if let asked = err.retryAfterSecs {
                    // The source said when to come back (Retry-After): that is the delay, but an
                    // open breaker still waits at least its window. Bounded to a day.
                    let askedMs = min(max(asked, 1), 86_400) * 1000
                    delay = open ? max(askedMs, backoffCapMs) : askedMs
                }
                let regular = job.schedule.nextFire(afterMs: nowMs, offsetMs: offsetMs)
                let next = max(nowMs + delay, regular ?? Int64.min)
                return TickPlan(
                    status: "transient", error: err.message, consecutiveErrors: failures, nextRunAtMs: next,
                    pause: false, pausedReason: nil, done: false, breakerOpen: open)
            case .permanent, .config:
                let reason = "\(err.errorClass.rawValue) error: \(err.message)"
                return TickPlan(
                    status: err.errorClass.rawValue, error: err.message, consecutiveErrors: failures, nextRunAtMs: nil,
                    pause: true, pausedReason: reason, done: false, breakerOpen: false)
            }
        }
    }

    /// The first due time of a job at boot or when first loaded, from its stored row.
    /// Returns nil for a job that must not be scheduled (paused, done, or a past one-shot).
    public static func initialDue(
        job: JobSpec, row: JobStateRow?, offsetMs: Int64, nowMs: Int64
    ) -> (due: Int64?, markDone: Bool) {
        if let row, row.paused || row.done { return (nil, false) }
        let fresh = job.schedule.nextFire(afterMs: nowMs, offsetMs: offsetMs)
        guard let row, let planned = row.nextRunAtMs, row.scheduleFingerprint == job.schedule.fingerprint else {
            // New job, or its schedule was edited: next regular slot, never a surprise run.
            return (fresh, false)
        }
        if planned > nowMs { return (planned, false) }
        // The planned slot passed while the daemon was down (or was not running this job).
        switch job.catchUp {
        case .once:
            return (nowMs + offsetMs, false)
        case .skip:
            return (fresh, job.schedule.isOneShot)
        }
    }

    /// The lease TTL for a job: its nominal interval, its timeout or 30 s, whichever is longest, times the factor.
    public static func leaseTTLMs(job: JobSpec, factor: Double, nowMs: Int64) -> Int64 {
        let base = max(30, job.schedule.nominalIntervalSecs(nowMs: nowMs), job.timeoutSecs)
        return Int64(Double(base) * max(1.0, factor) * 1000)
    }
}
