import Testing

@testable import PollerdPlugins

/// The supervision rules with no process and no clock.
@Suite struct PluginSupervisorTests {
    func supervisor(respawn: Bool = true, attempts: Int = 3, backoffMs: Int64 = 100) -> PluginSupervisor {
        PluginSupervisor(policy: SupervisorPolicy(respawn: respawn, maxAttempts: attempts, backoffMs: backoffMs))
    }

    @Test func theFirstUseStartsAndLaterOnesWaitForTheHandshake() {
        var s = supervisor()
        #expect(s.use(nowMs: 0) == .start)
        #expect(s.use(nowMs: 0) == .wait)
        s.handshook(pid: 42)
        #expect(s.phase == .running(pid: 42))
        #expect(s.use(nowMs: 0) == .ready)
    }

    @Test func aCrashBacksOffDoublingThenGivesUp() {
        var s = supervisor(attempts: 2)
        _ = s.use(nowMs: 0)
        s.handshook(pid: 1)
        #expect(s.exited("crashed", livedMs: 10, nowMs: 1000) == .restart(atMs: 1100, attempt: 1))
        #expect(s.use(nowMs: 1099) == .restarting(untilMs: 1100))
        #expect(s.use(nowMs: 1100) == .wait) // the restart is due: wait for it
        let elapsed = s.backoffElapsed()
        #expect(elapsed && s.phase == .starting && s.restarts == 1)
        #expect(s.exited("crashed", livedMs: 10, nowMs: 2000) == .restart(atMs: 2200, attempt: 2))
        #expect(s.backoffElapsed() == true)
        guard case .giveUp(let why) = s.exited("exit 7", livedMs: 10, nowMs: 3000) else {
            Issue.record("did not give up")
            return
        }
        #expect(why == "gave up after 2 restarts; last: exit 7")
        #expect(s.use(nowMs: 0) == .fail(why))
        #expect(s.lastExit == "exit 7")
    }

    @Test func aProcessThatLivedLongEnoughResetsTheAttempts() {
        var s = supervisor(attempts: 2, backoffMs: 100)
        _ = s.use(nowMs: 0)
        #expect(s.exited("a", livedMs: 1, nowMs: 0) == .restart(atMs: 100, attempt: 1))
        _ = s.backoffElapsed()
        #expect(s.exited("b", livedMs: 1, nowMs: 0) == .restart(atMs: 200, attempt: 2))
        _ = s.backoffElapsed()
        // Lived more than backoff × attempts × 2 = 400 ms: counts as a first failure again.
        #expect(s.exited("c", livedMs: 401, nowMs: 0) == .restart(atMs: 100, attempt: 1))
    }

    @Test func withoutRespawnTheFirstExitIsFinal() {
        var s = supervisor(respawn: false)
        _ = s.use(nowMs: 0)
        #expect(s.exited("exit 1", livedMs: 5, nowMs: 0) == .giveUp("exited (respawn = false): exit 1"))
    }

    @Test func shutdownStopsEverythingIncludingAPlannedRestart() {
        var s = supervisor()
        _ = s.use(nowMs: 0)
        s.handshook(pid: 9)
        let wasServing = s.shutdown() // it was serving: send `shutdown`
        #expect(wasServing)
        #expect(s.exited("ended", livedMs: 5, nowMs: 0) == .stopped)
        #expect(s.use(nowMs: 0) == .fail("plugin was shut down"))
        var t = supervisor()
        _ = t.use(nowMs: 0)
        _ = t.exited("crash", livedMs: 1, nowMs: 0)
        let served = t.shutdown()
        let restarted = t.backoffElapsed() // the backoff ends after the shutdown: no restart
        #expect(!served && !restarted)
    }

    @Test func theBackoffIsCappedAtAMinute() {
        let p = SupervisorPolicy(respawn: true, maxAttempts: 30, backoffMs: 1000)
        #expect(
            p.backoff(attempt: 1) == 1000 && p.backoff(attempt: 2) == 2000 && p.backoff(attempt: 7) == 60_000
                && p.backoff(attempt: 30) == 60_000)
    }
}
