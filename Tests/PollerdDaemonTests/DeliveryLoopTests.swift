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
        // One slot of four free: not worth a claim of its own until a wake.
        #expect(l.claimLimit(concurrency: 4) == 0)
        l.woke()
        #expect(l.claimLimit(concurrency: 4) == 1)
        #expect(l.armWait(nowMs: 10) == .until(1010)) // lanes in flight: they end the wait, not a due lane
        l.laneDone()
        l.laneDone()
        l.laneDone()
        #expect(l.inFlight == 0 && l.claimLimit(concurrency: 4) == 4)
        #expect(!l.shouldStop(nowMs: 10_000))
    }

    /// Finished lanes claim again in batches: once half the slots are free.
    @Test func finishedLanesClaimAgainOnceHalfTheSlotsAreFree() {
        var l = DeliveryLoop()
        #expect(l.claimLimit(concurrency: 8) == 8)
        l.claimed(8)
        for free in 1...3 {
            l.laneDone()
            #expect(l.claimLimit(concurrency: 8) == 0, "\(free) free")
        }
        l.laneDone()
        #expect(l.claimLimit(concurrency: 8) == 4)
        l.claimed(4)
        l.laneDone()
        #expect(l.claimLimit(concurrency: 8) == 0)
        _ = l.armWait(nowMs: 0)
        l.woke() // new items rang, or a second passed
        #expect(l.claimLimit(concurrency: 8) == 1)
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
