/// When a job fires: every N seconds, on a cron expression in a time zone, or once at an instant.
public enum ScheduleSpec: Sendable, Hashable {
    /// Every N seconds on a grid aligned to the Unix epoch (N ≥ 1).
    case every(seconds: Int64)
    /// On a cron expression, evaluated in a time zone. Boxed (`indirect`): the expression and
    /// the zone's rules take ~90 bytes, which every `every` job would otherwise carry too.
    indirect case cron(CronExpression, ZoneRules)
    /// Once, at an instant (ms since the epoch).
    case at(Int64)
}

/// A schedule plus its jitter bound.
public struct Schedule: Sendable, Hashable {
    /// The firing rule.
    public var spec: ScheduleSpec
    /// `stagger_jitter_ms` when the job sets it; otherwise the global default applies.
    public var jitterMs: Int64?

    public init(_ spec: ScheduleSpec, jitterMs: Int64? = nil) {
        self.spec = spec
        self.jitterMs = jitterMs
    }

    /// The first slot strictly after `t`, without jitter; nil when there is none (a past `at`).
    public func nextSlot(afterMs t: Int64) -> Int64? {
        switch spec {
        case .every(let s):
            let p = s * 1000
            return (floorDiv(t, p) + 1) * p
        case .cron(let expr, let zone):
            return expr.next(afterMs: t, in: zone)
        case .at(let at):
            return at > t ? at : nil
        }
    }

    /// The nominal interval in seconds: the period, the gap between the next two cron slots, or 0 for `at`.
    public func nominalIntervalSecs(nowMs: Int64) -> Int64 {
        switch spec {
        case .every(let s): return s
        case .cron:
            guard let a = nextSlot(afterMs: nowMs), let b = nextSlot(afterMs: a) else { return 0 }
            return max(1, (b - a) / 1000)
        case .at: return 0
        }
    }

    /// The job's stable jitter offset in ms: a hash of its id, bounded by the jitter setting and,
    /// for periodic schedules, by the period, so that a job never skips a slot because of it.
    public func jitterOffsetMs(jobID: String, defaultJitterMs: Int64, nowMs: Int64) -> Int64 {
        if case .at = spec { return 0 }
        var bound = jitterMs ?? defaultJitterMs
        let nominal = nominalIntervalSecs(nowMs: nowMs) * 1000
        if nominal > 0 { bound = min(bound, nominal) }
        guard bound > 0 else { return 0 }
        return Int64(StableHash.fnv1a(jobID) % UInt64(bound))
    }

    /// The next firing instant strictly after `t`, including the job's stable offset.
    public func nextFire(afterMs t: Int64, offsetMs: Int64) -> Int64? {
        if case .at = spec { return nextSlot(afterMs: t) }
        guard let slot = nextSlot(afterMs: t - offsetMs) else { return nil }
        return slot + offsetMs
    }

    /// True for `at`: the job fires once and is then done.
    public var isOneShot: Bool {
        if case .at = spec { return true }
        return false
    }

    /// A short stable text identifying the schedule, stored so that an edited schedule is noticed.
    public var fingerprint: String {
        let j = jitterMs.map { ";j=\($0)" } ?? ""
        switch spec {
        case .every(let s): return "every=\(s)\(j)"
        case .cron(let e, let z): return "cron=\(e.source);tz=\(z.identifier)\(j)"
        case .at(let t): return "at=\(t)"
        }
    }
}

@inline(__always)
func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}
