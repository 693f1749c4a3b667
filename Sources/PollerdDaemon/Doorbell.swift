public import PollerdCore
import Synchronization

/// A one-slot doorbell: `ring()` wakes a waiter, or the next one if nobody waits yet.
public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
        var sleeper: Task<Void, Never>?
    }
    private let state = Mutex(State())

    public init() {}

    /// Wakes the waiter (or remembers the ring for the next wait).
    public func ring() {
        let (w, sleeper): (CheckedContinuation<Void, Never>?, Task<Void, Never>?) = state.withLock { s in
            if let w = s.waiter {
                s.waiter = nil
                return (w, nil)
            }
            if let t = s.sleeper {
                s.sleeper = nil
                return (nil, t)
            }
            s.rung = true
            return (nil, nil)
        }
        w?.resume()
        sleeper?.cancel()
    }

    /// Waits for a ring, or until the task is cancelled.
    public func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow: Bool = state.withLock { s in
                    if s.rung || Task.isCancelled {
                        s.rung = false
                        return true
                    }
                    s.waiter = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            let w: CheckedContinuation<Void, Never>? = state.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }
            w?.resume()
        }
    }

    /// Waits for a ring or the instant on `clock`, whichever is first (nil: only a ring).
    public func wait(untilMs: Int64?, clock: any WallClock) async {
        guard let untilMs else {
            await wait()
            return
        }
        // One sleeping task that a ring cancels: cheaper than racing two tasks in a group.
        let sleeper = Task<Void, Never> { _ = try? await clock.sleep(untilMs: untilMs) }
        let rungAlready: Bool = state.withLock { s in
            if s.rung {
                s.rung = false
                return true
            }
            s.sleeper = sleeper
            return false
        }
        if rungAlready { sleeper.cancel() }
        await withTaskCancellationHandler {
            await sleeper.value
        } onCancel: {
            sleeper.cancel()
        }
        state.withLock { s in s.sleeper = nil }
    }
}
