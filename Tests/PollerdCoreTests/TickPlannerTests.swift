import PollerdCore
import Testing

@Suite struct TickPlannerTests {
    let t0 = ms("2026-01-01T00:00:00Z")
    func job(every: Int64 = 10, catchUp: CatchUp = .once) -> JobSpec {
        JobSpec(id: "j1", kind: "noop", schedule: Schedule(.every(seconds: every), jitterMs: 0), catchUp: catchUp)
    }

    @Test func backoffDoublesFromThirtySecondsToFiveMinutesWithJitter() {
        let expected: [Int64] = [30, 60, 120, 240, 300, 300]
        for (i, base) in expected.enumerated() {
            let d = TickPlanner.backoffMs(jobID: "j1", failures: i + 1)
            #expect(d >= base * 900 && d <= base * 1100, "failure \(i + 1): \(d) ms")
        }
        // Deterministic: the same job and attempt give the same delay.
        #expect(TickPlanner.backoffMs(jobID: "j1", failures: 2) == TickPlanner.backoffMs(jobID: "j1", failures: 2))
    }

    @Test func transientFailuresBackOffThenOpenTheBreaker() {
        var errors = 0
        var now = t0
        for n in 1...5 {
            let p = TickPlanner.plan(
                job: job(), outcome: .failed(.transient(.pluginError, "boom")), previousErrors: errors,
                breakerThreshold: 3, offsetMs: 0, nowMs: now)
            #expect(p.status == "transient")
            #expect(p.consecutiveErrors == n)
            #expect(!p.pause)
            let delay = p.nextRunAtMs! - now
            if n < 3 {
                #expect(!p.breakerOpen)
                #expect(delay == TickPlanner.backoffMs(jobID: "j1", failures: n))
            } else {
                #expect(p.breakerOpen)
                #expect(delay == TickPlanner.backoffCapMs)
            }
            errors = p.consecutiveErrors
            now = p.nextRunAtMs!
        }
        let ok = TickPlanner.plan(
            job: job(), outcome: .ok(TickAck()), previousErrors: errors, breakerThreshold: 3, offsetMs: 0, nowMs: now)
        #expect(ok.consecutiveErrors == 0 && !ok.breakerOpen && ok.status == "ok")
    }

    @Test func backoffNeverRunsSoonerThanTheJobsOwnInterval() {
        let p = TickPlanner.plan(
            job: job(every: 3600), outcome: .failed(.transient(.pluginError, "boom")), previousErrors: 0,
            breakerThreshold: 5, offsetMs: 0, nowMs: t0 + 1000)
        #expect(p.nextRunAtMs == t0 + 3_600_000)
    }

    @Test func permanentAndConfigPauseWithTheReason() {
        for cls in [ErrorClass.permanent, .config] {
            let p = TickPlanner.plan(
                job: job(), outcome: .failed(PollerError(cls, code: .pluginError, "token revoked")), previousErrors: 0,
                breakerThreshold: 5, offsetMs: 0, nowMs: t0)
            #expect(p.pause)
            #expect(p.status == cls.rawValue)
            #expect(p.pausedReason?.contains("token revoked") == true)
            #expect(p.nextRunAtMs == nil)
        }
    }

    @Test func nextIntervalHintReplacesTheNextDelayOnce() {
        let p = TickPlanner.plan(
            job: job(every: 60), outcome: .ok(TickAck(nextIntervalSecs: 7)), previousErrors: 0, breakerThreshold: 5,
            offsetMs: 0, nowMs: t0 + 500)
        #expect(p.nextRunAtMs == t0 + 7500)
        let q = TickPlanner.plan(
            job: job(every: 60), outcome: .ok(TickAck()), previousErrors: 0, breakerThreshold: 5, offsetMs: 0,
            nowMs: t0 + 7500)
        #expect(q.nextRunAtMs == t0 + 60_000)
    }

    @Test func atJobIsDoneAfterSuccess() {
        let j = JobSpec(id: "once", kind: "noop", schedule: Schedule(.at(t0)))
        let p = TickPlanner.plan(
            job: j, outcome: .ok(TickAck()), previousErrors: 0, breakerThreshold: 5, offsetMs: 0, nowMs: t0 + 5)
        #expect(p.done && p.nextRunAtMs == nil)
        let f = TickPlanner.plan(
            job: j, outcome: .failed(.transient(.pluginError, "y")), previousErrors: 0, breakerThreshold: 5,
            offsetMs: 0, nowMs: t0 + 5)
        #expect(!f.done && f.nextRunAtMs != nil) // retried with backoff
    }

    // MARK: catch-up

    func row(next: Int64?, fp: String? = nil, paused: Bool = false, done: Bool = false) -> JobStateRow {
        JobStateRow(
            jobID: "j1", kind: "noop", agent: "default", nextRunAtMs: next, paused: paused, done: done,
            scheduleFingerprint: fp ?? job().schedule.fingerprint)
    }

    @Test func newJobWaitsForItsFirstSlot() {
        let r = TickPlanner.initialDue(job: job(), row: nil, offsetMs: 0, nowMs: t0 + 3000)
        #expect(r.due == t0 + 10_000)
    }

    @Test func restartKeepsThePlannedSlot() {
        let r = TickPlanner.initialDue(job: job(), row: row(next: t0 + 7000), offsetMs: 0, nowMs: t0 + 3000)
        #expect(r.due == t0 + 7000)
    }

    @Test func missedSlotsFireOnceAtStartSpreadByJitter() {
        // Down for an hour: 360 slots missed, one run, at now + the job's stable offset.
        let r = TickPlanner.initialDue(job: job(), row: row(next: t0), offsetMs: 1234, nowMs: t0 + 3_600_000)
        #expect(r.due == t0 + 3_600_000 + 1234)
    }

    @Test func catchUpSkipWaitsForTheNextSlot() {
        let r = TickPlanner.initialDue(job: job(catchUp: .skip), row: row(next: t0), offsetMs: 0, nowMs: t0 + 3_605_000)
        #expect(r.due == t0 + 3_610_000)
        let at = JobSpec(id: "j1", kind: "noop", schedule: Schedule(.at(t0)), catchUp: .skip)
        let ra = TickPlanner.initialDue(
            job: at,
            row: JobStateRow(
                jobID: "j1", kind: "noop", agent: "d", nextRunAtMs: t0, scheduleFingerprint: at.schedule.fingerprint),
            offsetMs: 0, nowMs: t0 + 5000)
        #expect(ra.due == nil && ra.markDone)
    }

    @Test func editedScheduleNeverFiresBySurprise() {
        // The stored plan belongs to another schedule: even though it passed, no catch-up run.
        let r = TickPlanner.initialDue(
            job: job(every: 60), row: row(next: t0, fp: "every=10"), offsetMs: 0, nowMs: t0 + 30_000)
        #expect(r.due == t0 + 60_000)
    }

    @Test func pausedAndDoneJobsAreNotScheduled() {
        #expect(TickPlanner.initialDue(job: job(), row: row(next: t0, paused: true), offsetMs: 0, nowMs: t0).due == nil)
        #expect(TickPlanner.initialDue(job: job(), row: row(next: t0, done: true), offsetMs: 0, nowMs: t0).due == nil)
    }

    @Test func leaseTTLCoversTheTimeout() {
        let j = JobSpec(id: "j", kind: "noop", schedule: Schedule(.every(seconds: 10)), timeoutSecs: 600)
        #expect(TickPlanner.leaseTTLMs(job: j, factor: 2, nowMs: 0) == 1_200_000)
        #expect(TickPlanner.leaseTTLMs(job: job(), factor: 2, nowMs: 0) == 120_000)
    }
}
