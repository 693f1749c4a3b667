import Foundation
import PollerdCore
import PollerdSQLite
import PollerdTestKit
import Synchronization
import Testing

@testable import PollerdDaemon

@Suite struct RunnerTests {
    @Test func ticksAtDueTimesAndCommitsCursorAndState() async throws {
        let h = try await Harness(
            jobs: [every("hb", 10, config: .object(["advance_cursor": .bool(true)]))], pollers: [])
        let task = await h.start()
        #expect(try await h.row("hb")?.nextRunAtMs == t0 + 10_000)
        h.clock.advance(toMs: t0 + 10_000)
        await h.log.waitForTicks(1)
        h.clock.advance(toMs: t0 + 20_000)
        await h.log.waitForTicks(2)
        let row = try #require(try await h.row("hb"))
        #expect(row.ticksTotal == 2 && row.lastStatus == "ok" && row.consecutiveErrors == 0)
        #expect(row.cursor == Data([0, 0, 0, 0, 0, 0, 0, 2]))
        #expect(row.nextRunAtMs == t0 + 30_000)
        #expect(h.log.ticks.map(\.latenessMs) == [0, 0])
        h.runner.beginShutdown()
        try await task.value
    }

    /// Boot announces the whole job set, then loads the jobs in chunks in the order they fall
    /// due, and each chunk ticks once its plans are recorded, while later chunks still load. A
    /// reload waits for the whole set.
    @Test func aChunkTicksWhileLaterChunksLoadAndAReloadWaitsForTheWholeSet() async throws {
        // One full chunk of jobs at offset 0 (all paused but one), then one more job whose
        // offset puts it in the next chunk.
        let late = JobSpec(id: "late", kind: "noop", schedule: Schedule(.every(seconds: 10), jitterMs: 5_000))
        #expect(late.schedule.jitterOffsetMs(jobID: "late", defaultJitterMs: 0, nowMs: t0) > 0)
        let jobs = (0..<Runner.bootChunk).map { i in every("p\(i)", 10, pausedOnBoot: i != 0) } + [late]
        let gate = Gate()
        let faulty = Mutex<FaultyStore?>(nil)
        let h = try await Harness(
            jobs: jobs, pollers: [],
            wrap: { inner in
                let f = FaultyStore(inner)
                faulty.withLock { $0 = f }
                return f
            })
        faulty.withLock { $0 }!.holdRegister(call: 2, until: gate)
        let r = h.runner
        let task = Task { try await r.run() }
        await gate.waitEntered(1) // the second chunk waits
        h.clock.advance(toMs: t0 + 10_000)
        await h.log.waitForTicks(1)
        #expect(h.log.ticks.map(\.jobID) == ["p0"])
        #expect(!h.log.events.contains { if case .started = $0 { return true } else { return false } })
        #expect(try await h.row("late") == nil)
        // The whole set was announced before anything ticked: the job not loaded yet is this
        // daemon's already (no other daemon's announce takes it out of the active set).
        #expect(try await h.store.jobOwners(jobID: "late", nowMs: h.clock.nowMs) == [r.daemonID])
        let reload = Task { try await r.reload(jobs: jobs, settings: GlobalSettings()) }
        gate.open()
        let plan = try await reload.value
        #expect(plan.add.isEmpty && plan.remove.isEmpty && plan.keep.count == jobs.count)
        // The late job was planned when its chunk loaded (t0 + 10 s): its first slot after it.
        let offset = late.schedule.jitterOffsetMs(jobID: "late", defaultJitterMs: 0, nowMs: t0)
        #expect(try await h.row("late")?.nextRunAtMs == t0 + 10_000 + offset)
        h.clock.advance(toMs: t0 + 10_000 + offset)
        await h.log.waitForTicks(2)
        #expect(h.log.ticks.map(\.jobID) == ["p0", "late"])
        r.beginShutdown()
        try await task.value
    }

    @Test func transientFailuresBackOffAndOpenTheBreaker() async throws {
        var s = GlobalSettings()
        s.breakerThreshold = 2
        let h = try await Harness(
            jobs: [every("f", 10, kind: "scripted")], settings: s,
            pollers: [ScriptedPoller { _ throws(PollerError) in throw .transient(.pluginError, "503 from upstream") }])
        let task = await h.start()
        var due = t0 + 10_000
        for n in 1...3 {
            h.clock.advance(toMs: due)
            await h.log.waitForTicks(n)
            let row = try #require(try await h.row("f"))
            #expect(row.lastStatus == "transient" && row.consecutiveErrors == n && row.lastError == "503 from upstream")
            let expected = n < 2 ? TickPlanner.backoffMs(jobID: "f", failures: n) : TickPlanner.backoffCapMs
            #expect(row.nextRunAtMs == due + expected, "failure \(n)")
            #expect(h.runner.core.jobs["f"]?.nextDueMs == due + expected)
            due += expected
        }
        #expect(h.runner.core.breakerState("f") == .open)
        #expect(!(try await h.row("f")!.paused))
        h.runner.beginShutdown()
        try await task.value
    }

    /// A restart keeps a backoff's and an open breaker's plan, as it keeps a regular slot: the
    /// job does not run again before it. (Stopping took the job out of the active set, which once
    /// forgot its planned run, and the restarted daemon ran it at its next regular slot.)
    @Test func aRestartKeepsAnOpenBreakersPlan() async throws {
        let path = tempDBPath()
        let clock = ManualClock(nowMs: t0)
        var s = GlobalSettings()
        s.breakerThreshold = 2
        let failing = ScriptedPoller { _ throws(PollerError) in throw .transient(.pluginError, "503 from upstream") }
        let job = every("f", 10, kind: "scripted")
        let h1 = try await Harness(jobs: [job], settings: s, pollers: [failing], path: path, clock: clock)
        let t1 = await h1.start()
        var due = t0 + 10_000
        for n in 1...2 {
            clock.advance(toMs: due)
            await h1.log.waitForTicks(n)
            due = try #require(try await h1.row("f")?.nextRunAtMs)
        }
        #expect(h1.runner.core.breakerState("f") == .open)
        h1.runner.beginShutdown()
        try await t1.value
        #expect(try await h1.row("f")?.nextRunAtMs == due, "the plan outlives the daemon")
        let h2 = try await Harness(jobs: [job], settings: s, pollers: [failing], path: path, clock: clock)
        let t2 = await h2.start()
        #expect(h2.runner.core.jobs["f"]?.nextDueMs == due)
        #expect(h2.runner.core.breakerState("f") == .open)
        h2.runner.beginShutdown()
        try await t2.value
    }

    @Test func permanentErrorPausesUntilResumed() async throws {
        let failing = Mutex(true)
        let h = try await Harness(
            jobs: [every("p", 10, kind: "scripted")],
            pollers: [
                ScriptedPoller { _ throws(PollerError) in
                    if failing.withLock({ $0 }) { throw .permanent(.pluginError, "401: token revoked") }
                    return TickAck()
                }
            ])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await h.log.waitForTicks(1)
        var row = try #require(try await h.row("p"))
        #expect(
            row.paused && row.lastStatus == "permanent" && row.pausedReason == "permanent error: 401: token revoked")
        #expect(h.runner.core.jobs["p"]?.nextDueMs == nil)
        // The operator fixes it and resumes; the daemon picks the control up.
        failing.withLock { $0 = false }
        #expect(try await h.store.setPaused(jobID: "p", paused: false, reason: nil, nowMs: t0 + 15_000))
        h.clock.advance(toMs: t0 + 15_000)
        await h.runner.pollControls()
        #expect(h.runner.core.jobs["p"]?.nextDueMs == t0 + 20_000)
        h.clock.advance(toMs: t0 + 20_000)
        await h.log.waitForTicks(2)
        row = try #require(try await h.row("p"))
        #expect(!row.paused && row.lastStatus == "ok" && row.consecutiveErrors == 0)
        h.runner.beginShutdown()
        try await task.value
    }

    @Test func timeoutCancelsTheTickAndCountsAsTransient() async throws {
        let gate = Gate()
        let h = try await Harness(
            jobs: [every("slow", 60, kind: "scripted", timeout: 5)],
            pollers: [
                ScriptedPoller { _ throws(PollerError) in
                    _ = await gate.pass()
                    if Task.isCancelled { throw .transient(.cancelled, "cancelled") }
                    return TickAck()
                }
            ])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 60_000)
        await gate.waitEntered(1)
        h.clock.advance(toMs: t0 + 65_000)
        await h.log.waitForTicks(1)
        let r = try #require(h.log.ticks.first)
        #expect(r.status == "transient" && r.error?.code == .timeout && r.error?.message == "tick timed out after 5s")
        #expect(try await h.row("slow")?.consecutiveErrors == 1)
        h.runner.beginShutdown()
        try await task.value
    }

    @Test func nextIntervalHintIsHonouredOnce() async throws {
        let h = try await Harness(
            jobs: [every("hint", 60, kind: "scripted")],
            pollers: [
                ScriptedPoller { ctx throws(PollerError) in
                    TickAck(nextIntervalSecs: ctx.nowMs == t0 + 60_000 ? 7 : nil)
                }
            ])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 60_000)
        await h.log.waitForTicks(1)
        #expect(try await h.row("hint")?.nextRunAtMs == t0 + 67_000)
        h.clock.advance(toMs: t0 + 67_000)
        await h.log.waitForTicks(2)
        #expect(try await h.row("hint")?.nextRunAtMs == t0 + 120_000)
        h.runner.beginShutdown()
        try await task.value
    }

    @Test func gracefulShutdownLetsTicksInFlightFinish() async throws {
        let gate = Gate()
        let h = try await Harness(
            jobs: [every("g", 10, kind: "scripted")],
            pollers: [
                ScriptedPoller { _ throws(PollerError) in
                    _ = await gate.pass()
                    return TickAck(nextCursor: Data("done".utf8))
                }
            ])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await gate.waitEntered(1)
        h.runner.beginShutdown()
        gate.open()
        try await task.value
        let row = try #require(try await h.row("g"))
        #expect(row.ticksTotal == 1 && row.cursor == Data("done".utf8))
        #expect(h.log.events.contains { if case .stopped(cancelled: 0) = $0 { return true } else { return false } })
        #expect(try await h.store.lease(jobID: "g")?.untilMs == 0)
    }

    /// Another service failing cancels the runner's task instead of shutting it down gracefully:
    /// the loop must end (it once spun, since every wait returns at once once cancelled).
    @Test func aCancelledRunnerStopsAndCancelsItsTicks() async throws {
        let gate = Gate()
        let h = try await Harness(
            jobs: [every("c", 10, kind: "scripted", timeout: 3600), every("idle", 3600)],
            pollers: [
                ScriptedPoller { _ throws(PollerError) in
                    _ = await gate.pass()
                    throw .transient(.cancelled, "cancelled")
                }
            ])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await gate.waitEntered(1)
        task.cancel()
        try await task.value
        #expect(h.log.events.contains { if case .stopped(cancelled: 1) = $0 { return true } else { return false } })
        #expect(try await h.store.lease(jobID: "c")?.untilMs == 0)
    }

    @Test func shutdownCancelsTicksAfterTheGracePeriodAndReleasesLeases() async throws {
        let gate = Gate()
        var s = GlobalSettings()
        s.shutdownGraceSecs = 5
        let h = try await Harness(
            jobs: [every("stuck", 10, kind: "scripted", timeout: 3600)], settings: s,
            pollers: [
                ScriptedPoller { _ throws(PollerError) in
                    _ = await gate.pass()
                    throw .transient(.cancelled, "cancelled")
                }
            ])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await gate.waitEntered(1)
        h.runner.beginShutdown()
        h.clock.advance(toMs: t0 + 16_000)
        try await task.value
        #expect(h.log.events.contains { if case .stopped(cancelled: 1) = $0 { return true } else { return false } })
        let row = try #require(try await h.row("stuck"))
        #expect(row.ticksTotal == 0 && row.consecutiveErrors == 0) // nothing committed for a cut-off tick
        #expect(try await h.store.lease(jobID: "stuck")?.untilMs == 0) // lease handed back
    }

    @Test func concurrencyCapIsEnforced() async throws {
        let gate = Gate()
        var s = GlobalSettings()
        s.maxConcurrentTicks = 3
        let jobs = (0..<10).map { every("c\($0)", 10, kind: "scripted") }
        let h = try await Harness(
            jobs: jobs, settings: s,
            pollers: [
                ScriptedPoller { _ throws(PollerError) in
                    _ = await gate.pass()
                    return TickAck()
                }
            ])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await gate.waitEntered(3)
        #expect(h.runner.core.inFlightCount == 3)
        gate.open()
        await h.log.waitForTicks(10)
        #expect(gate.maxConcurrent == 3)
        h.runner.beginShutdown()
        try await task.value
    }

    @Test func reloadAppliesThePlanAndKeepsClocks() async throws {
        let h = try await Harness(jobs: [every("keep", 60), every("change", 60), every("drop", 60)], pollers: [])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 30_000)
        var changed = every("change", 60)
        changed.config = .object(["items": .int(1)])
        let plan = try await h.runner.reload(
            jobs: [every("keep", 60), changed, every("new", 3600)], settings: GlobalSettings())
        #expect(plan == ReloadPlan(add: ["new"], replace: ["change"], remove: ["drop"], keep: ["keep"]))
        #expect(h.runner.core.jobs["keep"]?.nextDueMs == t0 + 60_000)
        #expect(h.runner.core.jobs["change"]?.nextDueMs == t0 + 60_000) // config change: same clock
        #expect(h.runner.core.jobs["new"]?.nextDueMs == t0 + 3_600_000)
        #expect(h.runner.core.jobs["drop"] == nil)
        #expect(try await h.row("drop")?.definitionFingerprint == nil) // inactive, state kept
        h.clock.advance(toMs: t0 + 60_000)
        await h.log.waitForTicks(2)
        #expect(Set(h.log.ticks.map(\.jobID)) == ["keep", "change"])
        #expect(h.log.ticks.first { $0.jobID == "change" }?.ack?.items.count == 1)
        h.runner.beginShutdown()
        try await task.value
    }

    @Test func pausedOnBootHoldsOnlyUntilTheOperatorResumes() async throws {
        let path = tempDBPath()
        let job = every("pb", 10, pausedOnBoot: true)
        let h1 = try await Harness(jobs: [job], pollers: [], path: path)
        let t1 = await h1.start()
        #expect(h1.runner.core.jobs["pb"]?.paused == true)
        #expect(try await h1.store.setPaused(jobID: "pb", paused: false, reason: nil, nowMs: t0))
        h1.runner.beginShutdown()
        try await t1.value
        // Restart: the resume survives.
        let h2 = try await Harness(jobs: [job], pollers: [], path: path)
        let t2 = await h2.start()
        #expect(h2.runner.core.jobs["pb"]?.paused == false)
        #expect(h2.runner.core.jobs["pb"]?.nextDueMs == t0 + 10_000)
        h2.runner.beginShutdown()
        try await t2.value
    }

    @Test func restartCatchesUpOnceAndDoesNotReshuffle() async throws {
        let path = tempDBPath()
        let clock = ManualClock(nowMs: t0)
        let job = JobSpec(id: "cu", kind: "noop", schedule: Schedule(.every(seconds: 60), jitterMs: 20_000))
        let h1 = try await Harness(jobs: [job], pollers: [], path: path, clock: clock)
        let t1 = await h1.start()
        let planned = try #require(h1.runner.core.jobs["cu"]?.nextDueMs)
        h1.runner.beginShutdown()
        try await t1.value
        // Quick restart: the same slot, not a new random one.
        let h2 = try await Harness(jobs: [job], pollers: [], path: path, clock: clock)
        let t2 = await h2.start()
        #expect(h2.runner.core.jobs["cu"]?.nextDueMs == planned)
        h2.runner.beginShutdown()
        try await t2.value
        // Down for an hour: one catch-up run at start + offset, not sixty.
        clock.advance(toMs: t0 + 3_600_000)
        let h3 = try await Harness(jobs: [job], pollers: [], path: path, clock: clock)
        let t3 = await h3.start()
        let offset = job.schedule.jitterOffsetMs(jobID: "cu", defaultJitterMs: 5000, nowMs: 0)
        #expect(h3.runner.core.jobs["cu"]?.nextDueMs == t0 + 3_600_000 + offset)
        clock.advance(toMs: t0 + 3_600_000 + offset)
        await h3.log.waitForTicks(1)
        #expect(h3.runner.core.jobs["cu"]?.nextDueMs == job.schedule.nextFire(afterMs: clock.nowMs, offsetMs: offset))
        h3.runner.beginShutdown()
        try await t3.value
        #expect(try await h3.row("cu")?.ticksTotal == 1)
    }

    @Test func twoRunnersOnOneFileRunEachSlotOnce() async throws {
        let path = tempDBPath()
        let clock = ManualClock(nowMs: t0)
        let job = every("shared", 10, config: .object(["advance_cursor": .bool(true)]))
        let a = try await Harness(jobs: [job], pollers: [], path: path, clock: clock, holder: "A")
        let b = try await Harness(jobs: [job], pollers: [], path: path, clock: clock, holder: "B")
        let ta = await a.start()
        let tb = await b.start()
        for n in 1...20 {
            clock.advance(toMs: t0 + Int64(n) * 10_000)
            await a.log.waitForTicks(n)
            await b.log.waitForTicks(n)
        }
        let committed = (a.log.ticks + b.log.ticks).filter { $0.disposition == .ran(committed: true) }
        #expect(committed.count == 20)
        let row = try #require(try await a.row("shared"))
        #expect(row.ticksTotal == 20)
        #expect(row.cursor == Data([0, 0, 0, 0, 0, 0, 0, 20])) // never double-counted, never backwards
        a.runner.beginShutdown()
        b.runner.beginShutdown()
        try await ta.value
        try await tb.value
    }

    /// 50 jobs of a slow plugin kind (2 ticks at a time, each blocked) and a canary `noop` job,
    /// with 8 global slots: the canary ticks on schedule while the slow ticks wait without
    /// holding slots. (The original starved every other job.)
    @Test(.timeLimit(.minutes(1))) func aSlowKindDoesNotStarveTheOthers() async throws {
        let gate = Gate()
        var settings = GlobalSettings()
        settings.maxConcurrentTicks = 8
        settings.defaultJitterMs = 0
        let slow = (0..<50).map { every("slow\($0)", 10, kind: "slow") }
        let h = try await Harness(
            jobs: slow + [every("canary", 10)], settings: settings,
            pollers: [
                ScriptedPoller(kind: "slow", limit: ConcurrencyLimit(group: "plugin:slow", limit: 2)) {
                    _ throws(PollerError) in
                    _ = await gate.pass()
                    return TickAck()
                }
            ])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await gate.waitEntered(2)
        await h.log.wait {
            $0.contains { if case .tick(let r) = $0 { return r.jobID == "canary" } else { return false } }
        }
        // Two slow ticks run, the rest wait parked; the canary's next slot comes and it ticks again.
        #expect(gate.maxConcurrent == 2)
        #expect(h.runner.core.parkedCount == 48)
        h.clock.advance(toMs: t0 + 20_000)
        await h.log.wait {
            $0.filter { if case .tick(let r) = $0 { return r.jobID == "canary" } else { return false } }.count >= 2
        }
        gate.open()
        await h.log.waitForTicks(52)
        #expect(gate.maxConcurrent == 2)
        h.runner.beginShutdown()
        try await task.value
    }
}
