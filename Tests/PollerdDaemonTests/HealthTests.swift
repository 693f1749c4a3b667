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

    /// The store is asked about this daemon's jobs with its file's staleness limits, grouped by
    /// limit; the gauges read its counts.
    @Test func theQueryAndTheGauges() {
        var stale = JobSpec(id: "b", kind: "noop", schedule: Schedule(.every(seconds: 60)))
        stale.maxStalenessSecs = 60
        var alsoStale = stale
        alsoStale.id = "d"
        let jobs = [JobSpec(id: "a", kind: "noop", schedule: Schedule(.every(seconds: 60))), stale, alsoStale]
        let q = HealthService.query(jobs: jobs, daemonID: "me", breakerThreshold: 5, startedAtMs: t0, nowMs: t0 + 1)
        #expect(q.daemonID == "me" && q.breakerThreshold == 5 && q.registeredAtMs == t0 && q.nowMs == t0 + 1)
        #expect(q.staleAfterSecs == [60: ["b", "d"]])
        let s = HealthService.snapshot(
            JobHealthCounts(byState: [.ok: 2], stale: 1, oldestLastOkAtMs: t0), nowMs: t0 + 3_600_000)
        #expect(s == HealthService.Snapshot(byState: [.ok: 2], stale: 1, oldestSuccessAgeSecs: 3600))
        #expect(
            HealthService.snapshot(JobHealthCounts(byState: [:], stale: 0, oldestLastOkAtMs: nil), nowMs: t0)
                .oldestSuccessAgeSecs == 0)
    }
}
