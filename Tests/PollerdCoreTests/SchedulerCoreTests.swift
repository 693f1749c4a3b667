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
        do {
            let d = core.nextDueMs()
            #expect(d == t0 + 5000)
        }
        do {
            let d = core.takeDue(nowMs: t0 + 4999)
            #expect(d.isEmpty)
        }
        let due = core.takeDue(nowMs: t0 + 30_000)
        #expect(due.map(\.jobID) == ["b", "a"]) // earliest first, cap of 2
        do {
            let b = core.hasBacklog(nowMs: t0 + 30_000)
            #expect(b)
        }
        let p = TickPlanner.plan(
            job: spec("b", every: 5), outcome: .ok(TickAck()), previousErrors: 0, breakerThreshold: 5, offsetMs: 0,
            nowMs: t0 + 30_000)
        _ = core.finish("b", plan: p)
        do {
            let d = core.takeDue(nowMs: t0 + 30_000).map(\.jobID)
            #expect(d == ["c"])
        }
    }

    @Test func aJobIsNeverTwiceInFlight() {
        var core = SchedulerCore(settings: GlobalSettings())
        core.load(spec("a", every: 1), row: nil, nowMs: t0)
        do {
            let d = core.takeDue(nowMs: t0 + 1000)
            #expect(d.count == 1)
        }
        // Much later, still in flight: not handed out again.
        do {
            let d = core.takeDue(nowMs: t0 + 60_000)
            #expect(d.isEmpty)
        }
        #expect(core.inFlightCount == 1)
    }

    @Test func permanentFailurePausesUntilResume() {
        var core = SchedulerCore(settings: GlobalSettings())
        core.load(spec("a"), row: nil, nowMs: t0)
        _ = core.takeDue(nowMs: t0 + 10_000)
        let p = TickPlanner.plan(
            job: spec("a"), outcome: .failed(.permanent(.pluginError, "gone")), previousErrors: 0, breakerThreshold: 5,
            offsetMs: 0, nowMs: t0 + 10_000)
        _ = core.finish("a", plan: p)
        #expect(core.jobs["a"]!.paused)
        do {
            let d = core.nextDueMs()
            #expect(d == nil)
        }
        let resumed = JobStateRow(jobID: "a", kind: "noop", agent: "default")
        _ = core.control(.resume, jobID: "a", row: resumed, nowMs: t0 + 15_000)
        do {
            let d = core.nextDueMs()
            #expect(d == t0 + 20_000)
        }
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
            let p = TickPlanner.plan(
                job: spec("a"), outcome: .failed(.transient(.pluginError, "y")), previousErrors: errs,
                breakerThreshold: 2, offsetMs: 0, nowMs: now)
            errs = p.consecutiveErrors
            _ = core.finish("a", plan: p)
            now = core.nextDueMs()!
        }
        #expect(core.breakerState("a") == .open)
        _ = core.takeDue(nowMs: now)
        #expect(core.breakerState("a") == .halfOpen)
        _ = core.finish(
            "a",
            plan: TickPlanner.plan(
                job: spec("a"), outcome: .ok(TickAck()), previousErrors: errs, breakerThreshold: 2, offsetMs: 0,
                nowMs: now))
        #expect(core.breakerState("a") == .closed)
    }

    @Test func updateKeepsTheClockUnlessTheScheduleChanged() {
        var core = SchedulerCore(settings: GlobalSettings())
        core.load(spec("a", every: 60), row: nil, nowMs: t0)
        do {
            let d = core.nextDueMs()
            #expect(d == t0 + 60_000)
        }
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
        #expect(core.jobs["a"] != nil) // still finishing
        _ = core.finish(
            "a",
            plan: TickPlanner.plan(
                job: spec("a"), outcome: .ok(TickAck()), previousErrors: 0, breakerThreshold: 5, offsetMs: 0,
                nowMs: t0 + 10_000))
        #expect(core.jobs["a"] == nil)
        #expect(core.inFlightCount == 0)
        do {
            let d = core.nextDueMs()
            #expect(d == nil)
        }
    }

    @Test func storePlanWinsWhenNotDue() {
        var core = SchedulerCore(settings: GlobalSettings())
        core.load(spec("a"), row: nil, nowMs: t0)
        _ = core.takeDue(nowMs: t0 + 10_000)
        _ = core.skipped("a", because: .notDue(untilMs: t0 + 40_000), nowMs: t0 + 10_000)
        do {
            let d = core.nextDueMs()
            #expect(d == t0 + 40_000)
        }
    }

    /// A claim that met a locked row decided nothing: the job is asked for again within a
    /// second, and nothing is written back (the stored plan stays the store's).
    @Test func aBusyRowIsAskedForAgainWithinASecond() {
        var core = SchedulerCore(settings: GlobalSettings())
        core.load(spec("a"), row: nil, nowMs: t0)
        let due = core.takeDue(nowMs: t0 + 10_000)
        #expect(due.map(\.jobID) == ["a"])
        #expect(core.skipped("a", because: .busy, nowMs: t0 + 10_000) == nil)
        #expect(core.nextDueMs() == t0 + 10_000 + LeaseAcquisition.busyRetryMs)
        #expect(core.inFlightCount == 0)
        #expect(core.takeDue(nowMs: t0 + 10_000 + LeaseAcquisition.busyRetryMs).map(\.jobID) == ["a"])
    }

    @Test func holdsAHundredThousandJobs() {
        var core = SchedulerCore(settings: GlobalSettings())
        for i in 0..<100_000 {
            core.load(
                JobSpec(id: "j\(i)", kind: "noop", schedule: Schedule(.every(seconds: 10), jitterMs: 10_000)), row: nil,
                nowMs: t0)
        }
        #expect(core.jobs.count == 100_000)
        let first = core.nextDueMs()!
        #expect(first >= t0 && first < t0 + 10_000)
    }

    @Test func reloadPlanClassifiesJobs() {
        let plan = ReloadPlan.between(
            current: ["a": "1", "b": "2", "d": "4"], next: [("a", "1"), ("b", "9"), ("c", "3")])
        #expect(plan == ReloadPlan(add: ["c"], replace: ["b"], remove: ["d"], keep: ["a"]))
    }

    /// A kind whose group is full does not hold global slots: its due jobs are parked, the
    /// other kinds run, and the parked ones go one by one as the group's ticks end.
    /// A group whose own limit reaches the daemon's cap still leaves an eighth of the slots to
    /// the other kinds.
    @Test func aGroupNeverTakesEverySlot() {
        var settings = GlobalSettings()
        settings.maxConcurrentTicks = 16
        settings.defaultJitterMs = 0
        var core = SchedulerCore(settings: settings)
        core.setLimits(["busy": ConcurrencyLimit(group: "plugin:busy", limit: 64)])
        for i in 0..<100 {
            core.load(
                JobSpec(id: "b\(i)", kind: "busy", schedule: Schedule(.every(seconds: 10), jitterMs: 0)), row: nil,
                nowMs: t0)
        }
        let first = core.takeDue(nowMs: t0 + 10_000)
        #expect(first.count == 14 && first.allSatisfy { $0.spec.kind == "busy" })
        core.load(spec("canary"), row: nil, nowMs: t0 + 10_000)
        let canary = core.takeDue(nowMs: t0 + 20_000)
        #expect(canary.map(\.jobID) == ["canary"])
        #expect(SchedulerCore.groupCeiling(cap: 1) == 1 && SchedulerCore.groupCeiling(cap: 8) == 7)
        #expect(SchedulerCore.groupCeiling(cap: 64) == 56)
    }

    @Test func aFullGroupParksItsJobsWithoutTakingGlobalSlots() {
        var settings = GlobalSettings()
        settings.maxConcurrentTicks = 8
        settings.defaultJitterMs = 0
        var core = SchedulerCore(settings: settings)
        core.setLimits(["slow": ConcurrencyLimit(group: "plugin:slow", limit: 2)])
        for i in 0..<200 {
            core.load(
                JobSpec(id: "s\(i)", kind: "slow", schedule: Schedule(.every(seconds: 10), jitterMs: 0)), row: nil,
                nowMs: t0)
        }
        core.load(spec("canary"), row: nil, nowMs: t0)
        let due = core.takeDue(nowMs: t0 + 10_000)
        #expect(due.filter { $0.spec.kind == "slow" }.count == 2)
        #expect(due.contains { $0.jobID == "canary" })
        #expect(core.inFlightCount == 3 && core.parkedCount == 198)
        // A slow tick ends: exactly one parked job of its group may go, the oldest first.
        let first = due.first { $0.spec.kind == "slow" }!
        _ = core.finish(
            first.jobID,
            plan: TickPlanner.plan(
                job: first.spec, outcome: .ok(TickAck()), previousErrors: 0, breakerThreshold: 5, offsetMs: 0,
                nowMs: t0 + 10_001))
        let next = core.takeDue(nowMs: t0 + 10_001)
        #expect(next.count == 1 && next[0].spec.kind == "slow")
        #expect(core.inFlightByGroup["plugin:slow"] == 2 && core.parkedCount == 197)
        // The canary keeps its schedule while the slow kind is saturated.
        _ = core.finish(
            "canary",
            plan: TickPlanner.plan(
                job: spec("canary"), outcome: .ok(TickAck()), previousErrors: 0, breakerThreshold: 5, offsetMs: 0,
                nowMs: t0 + 10_002))
        #expect(core.takeDue(nowMs: t0 + 20_000).contains { $0.jobID == "canary" })
    }

    /// A group's bound raised by a reload lets parked jobs go at once.
    @Test func raisingAGroupsBoundReleasesParkedJobs() {
        var settings = GlobalSettings()
        settings.defaultJitterMs = 0
        var core = SchedulerCore(settings: settings)
        core.setLimits(["slow": ConcurrencyLimit(group: "g", limit: 1)])
        for i in 0..<5 {
            core.load(
                JobSpec(id: "s\(i)", kind: "slow", schedule: Schedule(.every(seconds: 10), jitterMs: 0)), row: nil,
                nowMs: t0)
        }
        #expect(core.takeDue(nowMs: t0 + 10_000).count == 1 && core.parkedCount == 4)
        core.setLimits(["slow": ConcurrencyLimit(group: "g", limit: 3)])
        #expect(core.takeDue(nowMs: t0 + 10_000).count == 2 && core.parkedCount == 2)
    }

    @Test func aHeldJobIsPlannedButNotTakenUntilReleased() {
        var core = SchedulerCore(settings: GlobalSettings())
        let r = core.load(spec("a", every: 10), row: nil, nowMs: t0, held: true)
        #expect(r.nextRunAtMs == t0 + 10_000) // the plan boot records first
        do {
            let d = core.takeDue(nowMs: t0 + 60_000)
            #expect(d.isEmpty)
        }
        do {
            let d = core.nextDueMs()
            #expect(d == nil)
        }
        core.release(["a"])
        do {
            let d = core.takeDue(nowMs: t0 + 10_000).map(\.dueMs)
            #expect(d == [t0 + 10_000])
        }
        // Released again while in flight: still handed out once.
        core.release(["a"])
        do {
            let d = core.takeDue(nowMs: t0 + 60_000)
            #expect(d.isEmpty)
        }
    }

    @Test func aHeldPausedJobStaysUnscheduledOnRelease() {
        var core = SchedulerCore(settings: GlobalSettings())
        let row = JobStateRow(jobID: "a", kind: "noop", agent: "default", paused: true, pausedReason: "operator")
        let r = core.load(spec("a"), row: row, nowMs: t0, held: true)
        #expect(r.nextRunAtMs == nil)
        core.release(["a", "not-loaded"])
        do {
            let d = core.takeDue(nowMs: t0 + 60_000)
            #expect(d.isEmpty)
        }
    }

    /// A tick's end wakes a loop with jobs due once an eighth of the slots (at most 128) are
    /// free, or when the loop would otherwise sleep longer than the poll; a job due later wakes
    /// it when it is due before the loop's wake-up.
    @Test func aTicksEndWakesTheLoopOnlyWhenItChangesWhatTheLoopCanDo() {
        var s = GlobalSettings()
        s.maxConcurrentTicks = 16 // refill at 2 free slots
        var core = SchedulerCore(settings: s)
        #expect(core.refillSlots == 2)
        for i in 0..<20 { core.load(spec("j\(i)", every: 10), row: nil, nowMs: t0) }
        let now = t0 + 10_000
        do {
            let d = core.takeDue(nowMs: now)
            #expect(d.count == 16)
        }
        do {
            let b = core.hasBacklog(nowMs: now)
            #expect(b)
        }
        let plan = TickPlanner.plan(
            job: spec("j0"), outcome: .ok(TickAck()), previousErrors: 0, breakerThreshold: 5, offsetMs: 0, nowMs: now)
        _ = core.finish("j0", plan: plan) // 1 slot free
        do {
            let w = core.shouldWakeLoop(sleepingUntil: now + 5, nowMs: now, pollMs: 5)
            #expect(!w)
        }
        // A loop asleep for longer than the poll (or until rung) is woken for one slot.
        do {
            let w = core.shouldWakeLoop(sleepingUntil: nil, nowMs: now, pollMs: 5)
            #expect(w)
        }
        _ = core.finish("j1", plan: plan) // 2 slots free
        do {
            let w = core.shouldWakeLoop(sleepingUntil: now + 5, nowMs: now, pollMs: 5)
            #expect(w)
        }
        // Nothing due now: only a run due before the loop's wake-up wakes it.
        for i in 2..<16 { _ = core.finish("j\(i)", plan: plan) }
        do {
            let d = core.takeDue(nowMs: now).map(\.jobID)
            #expect(d.count == 4)
        }
        for i in 16..<20 { _ = core.finish("j\(i)", plan: plan) }
        #expect(core.inFlightCount == 0)
        do {
            let w = core.shouldWakeLoop(sleepingUntil: now + 10_000, nowMs: now, pollMs: 5)
            #expect(!w)
        }
        do {
            let w = core.shouldWakeLoop(sleepingUntil: now + 10_001, nowMs: now, pollMs: 5)
            #expect(w)
        }
        do {
            var big = GlobalSettings()
            big.maxConcurrentTicks = 4096
            #expect(SchedulerCore(settings: big).refillSlots == 128)
            var one = GlobalSettings()
            one.maxConcurrentTicks = 1
            #expect(SchedulerCore(settings: one).refillSlots == 1)
        }
    }
}
