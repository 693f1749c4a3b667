import PollerdCore
import Testing

@testable import PollerdDaemon

/// Every answer of `explain`, decided from a row, a lease and the live daemons that have the job.
@Suite struct ExplanationTests {
    let now: Int64 = 1_000_000

    func row(_ edit: (inout JobStateRow) -> Void = { _ in }) -> JobStateRow {
        var r = JobStateRow(
            jobID: "j", kind: "noop", agent: "default", lastRunAtMs: 900_000, nextRunAtMs: 1_010_000, lastStatus: "ok",
            lastDurationMs: 12, definitionFingerprint: "fp")
        edit(&r)
        return r
    }

    func decide(
        _ r: JobStateRow, lease: LeaseRecord? = nil, owners: [String] = ["d1"], maxBacklog: Int64? = 10_000
    ) -> Explanation {
        Explanation.decide(
            row: r, lease: lease, owners: owners, breakerThreshold: 5, maxBacklog: maxBacklog, nowMs: now)
    }

    @Test func nextRunAtItsPlannedInstant() {
        let e = decide(row())
        #expect(e.next == .nextRun(atMs: 1_010_000))
        #expect(e.last == .ran(atMs: 900_000, status: "ok", error: nil, durationMs: 12))
        #expect(e.code == "next_run")
        #expect(e.text == "It last ran at 1970-01-01T00:15:00Z: ok. Next run at 1970-01-01T00:16:50Z.")
    }

    @Test func pausedByAnOperatorSaysWhenWhyAndTheNote() {
        let e = decide(
            row {
                $0.paused = true
                $0.pausedReason = "vendor maintenance"
                $0.pausedAtMs = 950_000
            })
        #expect(e.next == .paused(sinceMs: 950_000, cause: .operator, note: "vendor maintenance"))
        #expect(e.text.contains("paused by an operator since") && e.text.contains("vendor maintenance"))
    }

    @Test func pausedByAnErrorAndByPausedOnBoot() {
        let err = decide(
            row {
                $0.paused = true
                $0.lastStatus = "permanent"
                $0.pausedReason = "permanent error: 404"
                $0.pausedAtMs = 1
            })
        #expect(err.next == .paused(sinceMs: 1, cause: .error, note: "permanent error: 404"))
        let boot = decide(
            row {
                $0.paused = true
                $0.pausedReason = "paused_on_boot"
                $0.lastRunAtMs = nil
            })
        #expect(boot.next == .paused(sinceMs: nil, cause: .pausedOnBoot, note: "paused_on_boot"))
        #expect(boot.last == .never)
    }

    @Test func aOneShotThatRanIsDone() {
        #expect(
            decide(
                row {
                    $0.done = true
                    $0.nextRunAtMs = nil
                }
            ).next == .done)
    }

    @Test func transientFailuresBackOffThenOpenTheBreaker() {
        let backoff = decide(
            row {
                $0.lastStatus = "transient"
                $0.lastError = "503"
                $0.consecutiveErrors = 2
                $0.nextRunAtMs = 1_060_000
            })
        #expect(backoff.next == .backingOff(untilMs: 1_060_000, failures: 2))
        #expect(backoff.last == .ran(atMs: 900_000, status: "transient", error: "503", durationMs: 12))
        let open = decide(
            row {
                $0.lastStatus = "transient"
                $0.consecutiveErrors = 5
                $0.nextRunAtMs = 1_300_000
            })
        #expect(open.next == .breakerOpen(untilMs: 1_300_000, failures: 5))
        #expect(open.code == "breaker_open")
    }

    @Test func aFullBacklogHoldsTheTicks() {
        #expect(decide(row { $0.outboxBacklog = 10_000 }).next == .backlogFull(pending: 10_000, limit: 10_000))
        #expect(decide(row { $0.outboxBacklog = 9_999 }).next == .nextRun(atMs: 1_010_000))
        #expect(decide(row { $0.outboxBacklog = 10_000 }, maxBacklog: nil).next == .nextRun(atMs: 1_010_000))
    }

    @Test func aLiveLeaseNamesItsHolderAndAnExpiredOneDoesNot() {
        let held = decide(row(), lease: LeaseRecord(holder: "host:42:ab", token: 7, untilMs: now + 30_000))
        #expect(held.next == .leaseHeld(holder: "host:42:ab", untilMs: now + 30_000))
        #expect(held.text.contains("host:42:ab"))
        #expect(
            decide(row(), lease: LeaseRecord(holder: "host:42:ab", token: 7, untilMs: now)).next
                == .nextRun(atMs: 1_010_000))
    }

    @Test func aJobNoRunningDaemonHasWillNotRun() {
        let e = decide(row { $0.definitionFingerprint = nil }, owners: [])
        #expect(e.next == .notInAnyJobFile)
        #expect(e.code == "not_in_any_job_file")
    }

    @Test func anActiveJobWithNoPlannedRunSaysSo() {
        #expect(decide(row { $0.nextRunAtMs = nil }).next == .unplanned)
    }
}
