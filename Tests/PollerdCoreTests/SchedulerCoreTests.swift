import PollerdCore
import PollerdTestKit
import Testing

@Suite struct SchedulerCoreTests {
    let t0 = ms("2026-01-01T00:00:00Z")

    func spec(_ id: String, every: Int64 = 10) -> JobSpec {
        JobSpec(id: id, kind: "noop", schedule: Schedule(.every(seconds: every), jitterMs: 0))
    }

    @Test func handsOutDueJobsInOrderUpToTheCap() {
        var s = GlobalSettings()
        s.maxConcurrentTicks = 2
        var core = SchedulerCore(settings: s)
        core.load(spec("a", every: 10), row: nil, nowMs: t0)
        core.load(spec("b", every: 5), row: nil, nowMs: t0)
        core.load(spec("c", every: 20), row: nil, nowMs: t0)
        do { let d = core.nextDueMs(); #expect(d == t0 + 5000) }
        do { let d = core.takeDue(nowMs: t0 + 4999); #expect(d.isEmpty) }
        let due = core.takeDue(nowMs: t0 + 30_000)
        #expect(due.map(\.jobID) == ["b", "a"])          // earliest first, cap of 2
        do { let b = core.hasBacklog(nowMs: t0 + 30_000); #expect(b) }
        let p = TickPlanner.plan(job: spec("b", every: 5), outcome: .ok(TickAck()), previousErrors: 0, breakerThreshold: 5, offsetMs: 0, nowMs: t0 + 30_000)
        _ = core.finish("b", plan: p)
        do { let d = core.takeDue(nowMs: t0 + 30_000).map(\.jobID); #expect(d == ["c"]) }
    }

    @Test func aJobIsNeverTwiceInFlight() {
        var core = SchedulerCore(settings: GlobalSettings())
        core.load(spec("a", every: 1), row: nil, nowMs: t0)
        do { let d = core.takeDue(nowMs: t0 + 1000); #expect(d.count == 1) }
        // Much later, still in flight: not handed out again.
        do { let d = core.takeDue(nowMs: t0 + 60_000); #expect(d.isEmpty) }
        #expect(core.inFlightCount == 1)
    }

    @Test func permanentFailurePausesUntilResume() {
        var core = SchedulerCore(settings: GlobalSettings())
        core.load(spec("a"), row: nil, nowMs: t0)
        _ = core.takeDue(nowMs: t0 + 10_000)
        let p = TickPlanner.plan(job: spec("a"), outcome: .failed(.permanent(.pluginError, "gone")), previousErrors: 0, breakerThreshold: 5, offsetMs: 0, nowMs: t0 + 10_000)
        _ = core.finish("a", plan: p)
        #expect(core.jobs["a"]!.paused)
        do { let d = core.nextDueMs(); #expect(d == nil) }
        let resumed = JobStateRow(jobID: "a", kind: "noop", agent: "default")
        _ = core.control(.resume, jobID: "a", row: resumed, nowMs: t0 + 15_000)
        do { let d = core.nextDueMs(); #expect(d == t0 + 20_000) }
    }

    @Test func breakerStateFollowsConsecutiveFailures() {
        var s = GlobalSettings()
        s.breakerThreshold = 2
        var core = SchedulerCore(settings: s)
        core.load(spec("a"), row: nil, nowMs: t0)
        var now = t0 + 10_000
        var errs = 0
        for _ in 0..<2 {
            _ = core.takeDue(nowMs: now)
            let p = TickPlanner.plan(job: spec("a"), outcome: .failed(.transient(.pluginError, "y")), previousErrors: errs, breakerThreshold: 2, offsetMs: 0, nowMs: now)
            errs = p.consecutiveErrors
            _ = core.finish("a", plan: p)
            now = core.nextDueMs()!
        }
        #expect(core.breakerState("a") == .open)
        _ = core.takeDue(nowMs: now)
        #expect(core.breakerState("a") == .halfOpen)
        _ = core.finish("a", plan: TickPlanner.plan(job: spec("a"), outcome: .ok(TickAck()), previousErrors: errs, breakerThreshold: 2, offsetMs: 0, nowMs: now))
        #expect(core.breakerState("a") == .closed)
    }

    @Test func updateKeepsTheClockUnlessTheScheduleChanged() {
        var core = SchedulerCore(settings: GlobalSettings())
        core.load(spec("a", every: 60), row: nil, nowMs: t0)
        do { let d = core.nextDueMs(); #expect(d == t0 + 60_000) }
        var changedConfig = spec("a", every: 60)
        changedConfig.config = .object(["x": .int(1)])
        core.update(changedConfig, nowMs: t0 + 30_000)
        #expect(core.jobs["a"]!.nextDueMs == t0 + 60_000)
        core.update(spec("a", every: 3600), nowMs: t0 + 30_000)
        #expect(core.jobs["a"]!.nextDueMs == t0 + 3_600_000)
    }

    @Test func removedJobInFlightIsNotRescheduled() {
        var core = SchedulerCore(settings: GlobalSettings())
        core.load(spec("a"), row: nil, nowMs: t0)
        _ = core.takeDue(nowMs: t0 + 10_000)
        core.remove("a")
        #expect(core.jobs["a"] != nil)   // still finishing
        _ = core.finish("a", plan: TickPlanner.plan(job: spec("a"), outcome: .ok(TickAck()), previousErrors: 0, breakerThreshold: 5, offsetMs: 0, nowMs: t0 + 10_000))
        #expect(core.jobs["a"] == nil)
        #expect(core.inFlightCount == 0)
        do { let d = core.nextDueMs(); #expect(d == nil) }
    }

    @Test func storePlanWinsWhenNotDue() {
        var core = SchedulerCore(settings: GlobalSettings())
        core.load(spec("a"), row: nil, nowMs: t0)
        _ = core.takeDue(nowMs: t0 + 10_000)
        _ = core.skipped("a", because: .notDue(untilMs: t0 + 40_000), nowMs: t0 + 10_000)
        do { let d = core.nextDueMs(); #expect(d == t0 + 40_000) }
    }

    @Test func holdsAHundredThousandJobs() {
        var core = SchedulerCore(settings: GlobalSettings())
        for i in 0..<100_000 {
            core.load(JobSpec(id: "j\(i)", kind: "noop", schedule: Schedule(.every(seconds: 10), jitterMs: 10_000)), row: nil, nowMs: t0)
        }
        #expect(core.jobs.count == 100_000)
        let first = core.nextDueMs()!
        #expect(first >= t0 && first < t0 + 10_000)
    }

    @Test func reloadPlanClassifiesJobs() {
        let plan = ReloadPlan.between(current: ["a": "1", "b": "2", "d": "4"], next: [("a", "1"), ("b", "9"), ("c", "3")])
        #expect(plan == ReloadPlan(add: ["c"], replace: ["b"], remove: ["d"], keep: ["a"]))
    }
}
