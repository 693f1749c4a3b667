import Foundation
import PollerdCore
import PollerdSQLite
import PollerdTestKit
import Testing

@testable import PollerdDaemon

@Suite struct LeaseRenewalTests {
    @Test(.timeLimit(.minutes(1))) func aLongTickRenewsItsLeasePastHalfTheTTL() async throws {
        let gate = Gate()
        // every 10 s, timeout 3600 s, lease_ttl_factor 1: TTL = 3600 s, renewed after 1800 s.
        // (With the default factor 2 the TTL is at least twice the timeout, so the timeout
        // always comes first and renewal is never needed.)
        var s = GlobalSettings()
        s.leaseTTLFactor = 1.0
        let h = try await Harness(
            jobs: [every("long", 10, kind: "scripted", timeout: 3600)], settings: s,
            pollers: [
                ScriptedPoller { _ throws(PollerError) in
                    _ = await gate.pass()
                    return TickAck()
                }
            ])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await gate.waitEntered(1)
        let first = try #require(try await h.store.lease(jobID: "long"))
        #expect(first.untilMs == t0 + 10_000 + 3_600_000)
        // The watchdog renews, then arms its next look one resolution later: wait for that sleep.
        let renewAt = t0 + 10_000 + 1_800_001
        h.clock.forgetArmedSleeps()
        h.clock.advance(toMs: renewAt)
        while await h.clock.nextSleepScheduled() != renewAt + TickWatchdog.resolutionMs {}
        let renewed = try #require(try await h.store.lease(jobID: "long"))
        #expect(renewed.untilMs == renewAt + 3_600_000)
        #expect(renewed.token == first.token)
        gate.open()
        await h.log.waitForTicks(1)
        #expect(h.log.ticks.first?.disposition == .ran(committed: true))
        h.runner.beginShutdown()
        try await task.value
    }

    @Test func aTickThatLosesItsLeaseIsCancelledAndCannotCommit() async throws {
        let gate = Gate()
        var s = GlobalSettings()
        s.leaseTTLFactor = 1.0
        let h = try await Harness(
            jobs: [every("lost", 10, kind: "scripted", timeout: 3600)], settings: s,
            pollers: [
                ScriptedPoller { _ throws(PollerError) in
                    _ = await gate.pass()
                    if Task.isCancelled { throw .transient(.cancelled, "cancelled") }
                    return TickAck(nextCursor: Data("stale".utf8))
                }
            ])
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await gate.waitEntered(1)
        // An operator resets the job: the token moves on, so the renewal is refused.
        #expect(try await h.store.reset(jobID: "lost", nowMs: t0 + 11_000))
        h.clock.advance(toMs: t0 + 10_000 + 1_800_001)
        await h.log.waitForTicks(1)
        let r = try #require(h.log.ticks.first)
        #expect(r.error?.code == .leaseLost)
        #expect(r.disposition == .ran(committed: false))
        #expect(try await h.row("lost")?.cursor == nil)
        h.runner.beginShutdown()
        try await task.value
    }
}
