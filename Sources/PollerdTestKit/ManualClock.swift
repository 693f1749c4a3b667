public import PollerdCore
import Synchronization

/// A wall clock that only moves when a test moves it. Sleepers wake when `advance` passes them.
public final class ManualClock: WallClock {
    private struct Sleeper {
        var id: UInt64
        var until: Int64
        var continuation: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var now: Int64
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
        /// Sleeps armed since the last `nextSleepScheduled()` took one, oldest first.
        var armed: [Int64] = []
        var armWaiters: [CheckedContinuation<Int64, Never>] = []
    }
    private let state: Mutex<State>

    public init(nowMs: Int64) {
        state = Mutex(State(now: nowMs))
    }

    public var nowMs: Int64 { state.withLock { $0.now } }

    public func sleep(untilMs: Int64) async throws {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                // Checked under the lock: a cancellation that ran before this registration
                // would otherwise leave the sleeper waiting for a time that never comes.
                enum Now { case wait, wake, cancel }
                let now: Now = state.withLock { s in
                    if Task.isCancelled { return .cancel }
                    if untilMs <= s.now { return .wake }
                    s.sleepers.append(Sleeper(id: id, until: untilMs, continuation: c))
                    return .wait
                }
                switch now {
                case .wake: c.resume()
                case .cancel: c.resume(throwing: CancellationError())
                case .wait:
                    let waiter: CheckedContinuation<Int64, Never>? = state.withLock { s in
                        if s.armWaiters.isEmpty {
                            s.armed.append(untilMs)
                            return nil
                        }
                        return s.armWaiters.removeFirst()
                    }
                    waiter?.resume(returning: untilMs)
                }
            }
        } onCancel: {
            let c: CheckedContinuation<Void, any Error>? = state.withLock { s in
                guard let i = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: i).continuation
            }
            c?.resume(throwing: CancellationError())
        }
    }

    /// Waits until a task arms a sleep on this clock that does not end at once, and returns the
    /// instant it sleeps until (like postgres-nio's `MockClock.nextTimerScheduled()`). Each armed
    /// sleep is handed out once, in order; one armed before the call counts.
    public func nextSleepScheduled() async -> Int64 {
        await withCheckedContinuation { (c: CheckedContinuation<Int64, Never>) in
            let ready: Int64? = state.withLock { s in
                if s.armed.isEmpty {
                    s.armWaiters.append(c)
                    return nil
                }
                return s.armed.removeFirst()
            }
            if let ready { c.resume(returning: ready) }
        }
    }

    /// Forgets the sleeps armed so far, so the next `nextSleepScheduled()` waits for a new one.
    public func forgetArmedSleeps() {
        state.withLock { $0.armed.removeAll() }
    }

    /// Sets the time and wakes every sleeper whose instant has come.
    public func advance(toMs t: Int64) {
        let woken: [CheckedContinuation<Void, any Error>] = state.withLock { s in
            s.now = max(s.now, t)
            let due = s.sleepers.filter { $0.until <= s.now }
            s.sleepers.removeAll { $0.until <= s.now }
            return due.map(\.continuation)
        }
        for c in woken { c.resume() }
    }

    /// Moves time forward by `ms`.
    public func advance(byMs ms: Int64) { advance(toMs: nowMs + ms) }
}
