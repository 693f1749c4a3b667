import PollerdCore
public import PollerdDaemon
import Synchronization

/// Collects runner events and lets a test await the one it needs, with no sleeping.
public final class EventLog: Sendable {
    private struct Waiter {
        var predicate: @Sendable ([RunnerEvent]) -> Bool
        var continuation: CheckedContinuation<Void, Never>
    }
    private struct State {
        var events: [RunnerEvent] = []
        var waiters: [Waiter] = []
    }
    private let state = Mutex(State())

    public init() {}

    /// Records an event (pass this as the runner's `onEvent`).
    @Sendable public func record(_ e: RunnerEvent) {
        let ready: [CheckedContinuation<Void, Never>] = state.withLock { s in
            s.events.append(e)
            let ev = s.events
            let hit = s.waiters.filter { $0.predicate(ev) }
            s.waiters.removeAll { $0.predicate(ev) }
            return hit.map(\.continuation)
        }
        for c in ready { c.resume() }
    }

    /// Every event so far.
    public var events: [RunnerEvent] { state.withLock { $0.events } }

    /// Tick reports so far.
    public var ticks: [TickReport] {
        events.compactMap { if case .tick(let r) = $0 { return r } else { return nil } }
    }

    /// Waits until the recorded events satisfy `predicate`.
    public func wait(until predicate: @escaping @Sendable ([RunnerEvent]) -> Bool) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                if predicate(s.events) { return true }
                s.waiters.append(Waiter(predicate: predicate, continuation: c))
                return false
            }
            if now { c.resume() }
        }
    }

    /// Waits until `n` tick reports were recorded.
    public func waitForTicks(_ n: Int) async {
        await wait { evs in evs.reduce(0) { if case .tick = $1 { return $0 + 1 } else { return $0 } } >= n }
    }
}
