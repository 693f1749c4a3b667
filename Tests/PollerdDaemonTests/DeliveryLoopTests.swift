import Testing

@testable import PollerdDaemon

/// The deliverer loop's decisions with no task, no store and no clock.
@Suite struct DeliveryLoopTests {
    @Test func itClaimsUpToTheConcurrencyAndWaitsForTheNextDueLaneWhenIdle() {
        var l = DeliveryLoop()
        #expect(l.claimLimit(concurrency: 4) == 4)
        #expect(l.armWait(nowMs: 0) == .untilNextDueLane(atMost: 1000))
        #expect(l.armWait(nowMs: 1) == nil) // one wait at a time
        l.claimed(3)
        #expect(l.claimLimit(concurrency: 4) == 1)
        l.woke()
        #expect(l.armWait(nowMs: 10) == .until(1010)) // lanes in flight: they end the wait, not a due lane
        l.laneDone()
        l.laneDone()
        l.laneDone()
        #expect(l.inFlight == 0 && l.claimLimit(concurrency: 4) == 4)
        #expect(!l.shouldStop(nowMs: 10_000))
    }

    @Test func shutdownStopsClaimingAndEndsWhenTheLanesAreDone() {
        var l = DeliveryLoop()
        l.claimed(2)
        _ = l.armWait(nowMs: 0)
        l.shutdown(nowMs: 100, graceMs: 5000)
        l.shutdown(nowMs: 200, graceMs: 5000) // a second signal does not extend the grace
        #expect(l.stopDeadlineMs == 5100)
        #expect(l.claimLimit(concurrency: 8) == 0)
        l.woke()
        #expect(l.armWait(nowMs: 300) == .until(400))
        l.laneDone()
        #expect(!l.shouldStop(nowMs: 300))
        l.laneDone()
        #expect(l.shouldStop(nowMs: 300))
    }

    @Test func aLaneThatDoesNotFinishIsLeftAtTheEndOfTheGrace() {
        var l = DeliveryLoop()
        l.claimed(1)
        l.shutdown(nowMs: 0, graceMs: 5000)
        #expect(!l.shouldStop(nowMs: 4999))
        #expect(l.shouldStop(nowMs: 5000))
    }

    @Test func withNoLaneInFlightShutdownEndsAtOnce() {
        var l = DeliveryLoop()
        l.shutdown(nowMs: 0, graceMs: 5000)
        #expect(l.shouldStop(nowMs: 0))
    }
}
