import PollerdCore
import Testing

@testable import PollerdDaemon

/// The watchdog's decisions, with no task and no clock: each look is at an instant the test picks.
@Suite struct TickWatchdogTests {
    let lease = LeaseGrant(jobID: "j", holder: "A", token: 1, untilMs: 0, cursor: nil, consecutiveErrors: 0)

    func entries(deadline: Int64 = 1_000_000, ttl: Int64 = 60_000, heldSince: Int64 = 0) -> [UInt64: TickWatchdog.Entry]
    {
        [
            1: TickWatchdog.Entry(
                deadlineMs: deadline, lease: lease, ttlMs: ttl, heldSinceMs: heldSince, onExpire: { _ in })
        ]
    }

    @Test func nothingIsDueBeforeHalfTheTTLAndTheNextLookIsBounded() {
        var e = entries()
        let l = TickWatchdog.look(&e, nowMs: 10_000)
        #expect(l.expired.isEmpty && l.renew.isEmpty)
        #expect(l.wakeMs == 10_000 + TickWatchdog.resolutionMs)
    }

    @Test func itRenewsAtHalfTheTTLOnceAndCountsTheLeaseFromTheRenewal() {
        var e = entries()
        let l = TickWatchdog.look(&e, nowMs: 30_000)
        #expect(l.renew.map(\.0) == [1])
        // A renewal in progress is not started twice.
        #expect(TickWatchdog.look(&e, nowMs: 30_050).renew.isEmpty)
        #expect(TickWatchdog.renewed(&e, id: 1, askedAtMs: 30_000, ok: true) == nil)
        #expect(e[1]?.heldSinceMs == 30_000 && e[1]?.renewing == false)
        #expect(TickWatchdog.look(&e, nowMs: 59_999).renew.isEmpty)
        #expect(TickWatchdog.look(&e, nowMs: 60_000).renew.map(\.0) == [1])
    }

    @Test func aRefusedRenewalLosesTheLeaseAtOnce() {
        var e = entries()
        _ = TickWatchdog.look(&e, nowMs: 30_000)
        let lost = TickWatchdog.renewed(&e, id: 1, askedAtMs: 30_000, ok: false)
        #expect(lost != nil)
        #expect(e.isEmpty)
    }

    /// The store cannot be reached: the daemon keeps trying, and at the end of the TTL (on its own
    /// clock) it gives the tick up by itself, before another daemon may take the job.
    @Test func aLeaseNotRenewedWithinItsTTLIsGivenUp() {
        var e = entries()
        _ = TickWatchdog.look(&e, nowMs: 30_000)
        #expect(TickWatchdog.renewed(&e, id: 1, askedAtMs: 30_000, ok: nil) == nil) // unreachable: try again
        #expect(TickWatchdog.look(&e, nowMs: 30_100).renew.map(\.0) == [1])
        _ = TickWatchdog.renewed(&e, id: 1, askedAtMs: 30_100, ok: nil)
        let l = TickWatchdog.look(&e, nowMs: 60_000)
        #expect(l.expired.map(\.1) == [.leaseLost])
        #expect(l.wakeMs == nil)
    }

    @Test func aTimeoutComesFirstWhenItIsEarlier() {
        var e = entries(deadline: 5_000)
        let l = TickWatchdog.look(&e, nowMs: 5_000)
        #expect(l.expired.map(\.1) == [.timedOut])
        #expect(e.isEmpty && l.wakeMs == nil)
    }

    /// A daemon stopped (SIGSTOP) past both its tick's timeout and its lease's TTL, then resumed:
    /// the tick is ended as a lost lease (its result cannot be committed), not as a timeout.
    @Test func aLeaseThatRanOutComesBeforeATimeoutThatAlsoPassed() {
        var e = entries(deadline: 10_000, ttl: 30_000)
        let l = TickWatchdog.look(&e, nowMs: 90_000)
        #expect(l.expired.map(\.1) == [.leaseLost])
        #expect(e.isEmpty && l.renew.isEmpty)
    }

    @Test func theNextLookIsAtTheEarliestDeadlineWithinTheResolution() {
        var e = entries(deadline: 10_030)
        #expect(TickWatchdog.look(&e, nowMs: 10_000).wakeMs == 10_030)
    }
}
