import Metrics
import PollerdCore

/// Turns runner events into Prometheus series (bounded labels: kind, status, reason; no job ids).
public enum RunnerMetrics {
    /// Records one runner event; pass as the runner's `onEvent`.
    @Sendable public static func record(_ event: RunnerEvent) {
        switch event {
        case .tick(let r):
            switch r.disposition {
            case .ran:
                Counter(label: "pollerd_ticks_total", dimensions: [("kind", r.kind), ("status", r.status)]).increment()
                Timer(
                    label: "pollerd_tick_duration_seconds", dimensions: [("kind", r.kind)],
                    preferredDisplayUnit: .seconds
                )
                .recordMilliseconds(r.durationMs)
                Timer(label: "pollerd_tick_lateness_seconds", preferredDisplayUnit: .seconds).recordMilliseconds(
                    max(0, r.latenessMs))
                Counter(label: "pollerd_items_found_total", dimensions: [("kind", r.kind)]).increment(
                    by: r.ack?.items.count ?? 0)
                if let n = r.itemsNew {
                    Counter(label: "pollerd_items_new_total", dimensions: [("kind", r.kind)]).increment(by: Int(n))
                }
            case .skipped(let why):
                Counter(label: "pollerd_ticks_skipped_total", dimensions: [("reason", reason(why))]).increment()
            case .cancelled:
                Counter(label: "pollerd_ticks_total", dimensions: [("kind", r.kind), ("status", "cancelled")])
                    .increment()
            }
        case .started(let jobs):
            Gauge(label: "pollerd_jobs").record(jobs)
        case .reloaded(let plan):
            Counter(label: "pollerd_reloads_total").increment()
            Gauge(label: "pollerd_jobs").record(plan.keep.count + plan.add.count + plan.replace.count)
        case .control, .stopped:
            break
        }
    }

    static func reason(_ a: LeaseAcquisition) -> String {
        switch a {
        case .granted: "granted"
        case .held: "lease_held"
        case .paused: "paused"
        case .done: "done"
        case .notDue: "not_due"
        case .backlogged: "backpressure"
        case .busy: "row_busy"
        }
    }
}
