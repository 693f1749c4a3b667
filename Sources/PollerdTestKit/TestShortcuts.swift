public import PollerdCore

extension ItemEnvelope {
    /// The outbox entry of one item (the daemon builds a tick's entries with a `Builder`).
    public static func make(
        jobID: String, kind: String, agent: String, foundAtMs: Int64, item: JSONValue
    ) -> OutboxEntry {
        Builder(jobID: jobID, kind: kind, agent: agent, foundAtMs: foundAtMs).entry(for: item)
    }
}

/// Breaker state as a test reads it off the scheduler.
public enum BreakerState: String, Sendable {
    case closed, open
    case halfOpen = "half_open"
}

extension SchedulerCore {
    /// The breaker state of a job, derived from its consecutive failures.
    public func breakerState(_ jobID: String) -> BreakerState {
        guard let rt = jobs[jobID], rt.consecutiveErrors >= max(1, settings.breakerThreshold) else { return .closed }
        return rt.inFlight ? .halfOpen : .open
    }
}
