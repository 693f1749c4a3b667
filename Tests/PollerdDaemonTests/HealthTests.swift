import Foundation
import PollerdCore
import Testing

@testable import PollerdDaemon

@Suite struct HealthTests {
    func row(
        _ id: String, status: String? = "ok", errors: Int = 0, paused: Bool = false, lastOk: Int64? = t0,
        ran: Bool = true
    ) -> JobStateRow {
        JobStateRow(
            jobID: id, kind: "noop", agent: "default", lastRunAtMs: ran ? t0 : nil, lastStatus: status,
            consecutiveErrors: errors,
            paused: paused, lastOkAtMs: lastOk)
    }

    @Test func eachStateIsNamed() {
        #expect(JobHealth.of(row("a"), breakerThreshold: 5) == .ok)
        #expect(JobHealth.of(row("a", status: "transient", errors: 2), breakerThreshold: 5) == .backingOff)
        #expect(JobHealth.of(row("a", status: "transient", errors: 5), breakerThreshold: 5) == .breakerOpen)
        #expect(JobHealth.of(row("a", status: "permanent", errors: 1, paused: true), breakerThreshold: 5) == .paused)
        #expect(JobHealth.of(row("a", status: "backpressure"), breakerThreshold: 5) == .backlogged)
        #expect(JobHealth.of(row("a", status: nil, lastOk: nil, ran: false), breakerThreshold: 5) == .neverRan)
    }

    @Test func stalenessCountsFromTheLastOkTick() {
        let now = t0 + 3_600_000
        #expect(JobHealth.isStale(row("a", lastOk: t0), maxStalenessSecs: 1800, nowMs: now))
        #expect(!JobHealth.isStale(row("a", lastOk: t0), maxStalenessSecs: 7200, nowMs: now))
        #expect(!JobHealth.isStale(row("a", lastOk: t0), maxStalenessSecs: nil, nowMs: now))
        #expect(!JobHealth.isStale(row("a", paused: true, lastOk: t0), maxStalenessSecs: 60, nowMs: now))
        // Never ok: counted from the daemon's start.
        #expect(
            JobHealth.isStale(
                row("a", status: "transient", errors: 3, lastOk: nil), maxStalenessSecs: 60, registeredAtMs: t0,
                nowMs: now))
    }

    @Test func theGaugesSnapshot() {
        var stale = JobSpec(id: "b", kind: "noop", schedule: Schedule(.every(seconds: 60)))
        stale.maxStalenessSecs = 60
        let jobs = [
            JobSpec(id: "a", kind: "noop", schedule: Schedule(.every(seconds: 60))), stale,
            JobSpec(id: "c", kind: "noop", schedule: Schedule(.every(seconds: 60))),
        ]
        let rows = [
            row("a", lastOk: t0 + 3_000_000), row("b", status: "transient", errors: 1, lastOk: t0),
            row("c", paused: true), row("gone"),
        ]
        let s = HealthService.snapshot(
            rows: rows, jobs: jobs, breakerThreshold: 5, startedAtMs: t0, nowMs: t0 + 3_600_000)
        #expect(s.byState == [.ok: 1, .backingOff: 1, .paused: 1])
        #expect(s.stale == 1)
        #expect(s.oldestSuccessAgeSecs == 3600)
    }
}
