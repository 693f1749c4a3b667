import Foundation
import Logging
import PollerdCore
import PollerdSQLite
import PollerdTestKit
import Testing

@testable import PollerdDaemon

/// The operator facade against a real store and runner.
@Suite struct OperatorTests {
    func facade(_ h: Harness, settings: GlobalSettings = GlobalSettings()) -> Operator {
        Operator(store: h.store, clock: h.clock, settings: settings)
    }

    @Test(.timeLimit(.minutes(1))) func explainFollowsAJobThroughItsStates() async throws {
        let gate = Gate()
        let h = try await Harness(
            jobs: [every("j", 10, kind: "scripted")],
            pollers: [
                ScriptedPoller { _ throws(PollerError) in
                    _ = await gate.pass()
                    return TickAck()
                }
            ], holder: "host:1:a")
        let op = facade(h)
        let task = await h.start()
        #expect(try await op.explain("j").next == .nextRun(atMs: t0 + 10_000))
        #expect(try await op.explain("j").owners == ["host:1:a"])
        // A tick in flight: the lease names its holder.
        h.clock.advance(toMs: t0 + 10_000)
        await gate.waitEntered(1)
        guard case .leaseHeld(let holder, _) = try await op.explain("j").next else {
            Issue.record("a tick in flight did not show as a held lease")
            return
        }
        #expect(holder == "host:1:a")
        gate.open()
        await h.log.waitForTicks(1)
        #expect(try await op.explain("j").next == .nextRun(atMs: t0 + 20_000))
        // Paused by an operator, with a note: the runner picks it up and explain says when and why.
        h.clock.advance(toMs: t0 + 12_000)
        try await op.pause("j", note: "vendor maintenance")
        await h.runner.pollControls()
        #expect(h.runner.core.jobs["j"]?.paused == true)
        let paused = try await op.job("j")
        #expect(paused.explanation.next == .paused(sinceMs: t0 + 12_000, cause: .operator, note: "vendor maintenance"))
        #expect(paused.row.pausedReason == "vendor maintenance")
        try await op.resume("j")
        await h.runner.pollControls()
        #expect(h.runner.core.jobs["j"]?.paused == false)
        h.runner.beginShutdown()
        try await task.value
        // The daemon stopped: no running daemon has the job any more.
        #expect(try await op.explain("j").next == .notInAnyJobFile)
    }

    @Test func controlsAndQueriesOnAnUnknownJobSaySo() async throws {
        let h = try await Harness(jobs: [], pollers: [])
        let op = facade(h)
        await #expect(throws: Operator.UnknownJob.self) { try await op.explain("nope") }
        await #expect(throws: Operator.UnknownJob.self) { try await op.pause("nope", note: nil) }
        await #expect(throws: Operator.UnknownJob.self) { try await op.resume("nope") }
        await #expect(throws: Operator.UnknownJob.self) { try await op.reset("nope") }
    }

    @Test func aManualTickThatIsCancelledCountsAsTransientNotConfig() async throws {
        let gate = Gate() // never opened: the tick waits until it is cancelled
        let h = try await Harness(
            jobs: [],
            pollers: [
                ScriptedPoller { _ throws(PollerError) in
                    _ = await gate.pass()
                    return TickAck()
                }
            ])
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let job = every("m", 10, kind: "scripted")
        let op = facade(h)
        let registry = h.runner.executor.registry
        let tick = Task { try await op.tick(job, registry: registry, holder: "cli-x", dryRun: false, logger: logger) }
        // Wait for the tick to run (it holds its lease), then cancel it (SIGINT in the CLI).
        await gate.waitEntered(1)
        tick.cancel()
        let result = try await tick.value
        #expect(result.report.disposition == .cancelled)
        #expect(result.status == "cancelled" && result.outcome == .transient)
    }

    @Test func aSkippedManualTickSaysWhyAndHowItCounts() {
        #expect(ManualTick.skipReason(.paused(reason: "x"), jobID: "j").1 == .permanent)
        #expect(ManualTick.skipReason(.done, jobID: "j").1 == .permanent)
        #expect(ManualTick.skipReason(.held(by: "h", untilMs: 0), jobID: "j").1 == .transient)
        #expect(
            ManualTick.skipReason(.backlogged(pending: 3, limit: 3), jobID: "j").2?.contains("backpressure") == true)
    }

    /// Two daemons with different job files on one store: the one that boots last does not
    /// deactivate the other's jobs; a job leaves the active set only when no live daemon has it.
    @Test func twoDaemonsWithDifferentJobFilesDoNotDeactivateEachOther() async throws {
        let path = tempDBPath()
        let clock = ManualClock(nowMs: t0)
        let h1 = try await Harness(
            jobs: [every("a", 10), every("shared", 10)], pollers: [], path: path, clock: clock, holder: "host:1:one")
        let h2 = try await Harness(
            jobs: [every("b", 10), every("shared", 10)], pollers: [], path: path, clock: clock, holder: "host:2:two")
        let t1 = await h1.start()
        let t2 = await h2.start()
        let op = facade(h1)
        #expect(Set(try await op.jobs().map(\.jobID)) == ["a", "b", "shared"])
        #expect(try await op.explain("shared").owners == ["host:1:one", "host:2:two"])
        #expect(try await op.daemons().map(\.daemonID) == ["host:1:one", "host:2:two"])
        h2.runner.beginShutdown()
        try await t2.value
        #expect(Set(try await op.jobs().map(\.jobID)) == ["a", "shared"])
        #expect(try await op.explain("b").next == .notInAnyJobFile)
        #expect(try await op.jobs(includeInactive: true).count == 3)
        h1.runner.beginShutdown()
        try await t1.value
        #expect(try await op.jobs().isEmpty)
    }

    /// A job two live daemons define differently is flagged by explain (and by the check
    /// `validate` runs); a daemon whose process is gone is no owner and no definition.
    @Test func aJobDefinedDifferentlyByTwoDaemonsIsFlagged() async throws {
        let path = tempDBPath()
        let clock = ManualClock(nowMs: t0)
        let h1 = try await Harness(
            jobs: [every("shared", 10)], pollers: [], path: path, clock: clock, holder: "host:1:one")
        let h2 = try await Harness(
            jobs: [every("shared", 20)], pollers: [], path: path, clock: clock, holder: "host:2:two")
        let t1 = await h1.start()
        let t2 = await h2.start()
        let e = try await facade(h1).explain("shared")
        #expect(Set(e.divergentDefinitions.keys) == ["host:1:one", "host:2:two"])
        #expect(e.text.contains("define it differently"), "\(e.text)")
        #expect(try await facade(h1).definitionWarnings([every("shared", 10)]).count == 1)
        #expect(try await facade(h1).definitionWarnings([every("other", 10)]).isEmpty)
        // Once the second daemon is known to be gone (SIGKILLed on this host), explain names
        // neither it as an owner nor its definition, before its heartbeat lapses.
        let gone = Operator(store: h1.store, clock: clock, isGone: { $0 == "host:2:two" })
        let after = try await gone.explain("shared")
        #expect(after.owners == ["host:1:one"] && after.divergentDefinitions.isEmpty)
        #expect(try await facade(h1).divergentDefinitions().keys.sorted() == ["shared"])
        #expect(try await gone.divergentDefinitions().isEmpty)
        h1.runner.beginShutdown()
        h2.runner.beginShutdown()
        try await t1.value
        try await t2.value
    }
}
