import Foundation
import Synchronization

/// Wall-clock time in milliseconds since the Unix epoch, and sleeping until an instant.
/// Injected everywhere so tests move a manual clock instead of sleeping.
public protocol WallClock: Sendable {
    /// Now, in ms since the epoch.
    var nowMs: Int64 { get }
    /// Sleeps until the instant; throws `CancellationError` when the task is cancelled.
    func sleep(untilMs: Int64) async throws
}

/// The system's real-time clock.
public struct SystemWallClock: WallClock {
    public init() {}

    public var nowMs: Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    public func sleep(untilMs: Int64) async throws {
        // Re-read the wall clock at least once a second so that a clock step is noticed.
        while true {
            let delta = untilMs - nowMs
            if delta <= 0 { return }
            try await Task.sleep(for: .milliseconds(min(delta, 1000)))
        }
    }
}

/// A one-slot doorbell: `ring()` wakes a waiter, or the next one if nobody waits yet.
public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    public init() {}

    /// Wakes the waiter (or remembers the ring for the next wait).
    public func ring() {
        let w: CheckedContinuation<Void, Never>? = state.withLock { s in
            if let w = s.waiter { s.waiter = nil; return w }
            s.rung = true
            return nil
        }
        w?.resume()
    }

    /// Waits for a ring, or until the task is cancelled.
    public func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow: Bool = state.withLock { s in
                    if s.rung || Task.isCancelled { s.rung = false; return true }
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

    /// Waits for a ring or the instant on `clock`, whichever is first.
    public func wait(untilMs: Int64?, clock: any WallClock) async {
        if state.withLock({ s in defer { s.rung = false }; return s.rung }) { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait() }
            if let untilMs {
                group.addTask { try? await clock.sleep(untilMs: untilMs) }
            }
            await group.next()
            group.cancelAll()
        }
    }
}
