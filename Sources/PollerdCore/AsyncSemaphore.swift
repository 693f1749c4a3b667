import Synchronization

/// A counting semaphore for tasks: waiting suspends, cancellation gives up the wait.
public final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters: [(id: UInt64, c: CheckedContinuation<Bool, Never>)] = []
        var nextID: UInt64 = 0
        var inUse = 0
    }
    private let state: Mutex<State>
    /// The number of permits.
    public let permits: Int

    public init(permits: Int) {
        self.permits = max(1, permits)
        state = Mutex(State(available: max(1, permits)))
    }

    /// Permits in use now.
    public var inUse: Int { state.withLock { $0.inUse } }

    /// Takes a permit; false if the task was cancelled while waiting.
    public func acquire() async -> Bool {
        if Task.isCancelled { return false }
        // A free permit is taken without suspending (no continuation, no cancellation handler).
        let id: UInt64? = state.withLock { s in
            if s.available > 0 && s.waiters.isEmpty {
                s.available -= 1
                s.inUse += 1
                return nil
            }
            s.nextID += 1
            return s.nextID
        }
        guard let id else { return true }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                enum Now { case got, cancelled, wait }
                let now: Now = state.withLock { s in
                    if Task.isCancelled { return .cancelled }
                    if s.available > 0 {
                        s.available -= 1
                        s.inUse += 1
                        return .got
                    }
                    s.waiters.append((id, c))
                    return .wait
                }
                switch now {
                case .got: c.resume(returning: true)
                case .cancelled: c.resume(returning: false)
                case .wait: break
                }
            }
        } onCancel: {
            let c: CheckedContinuation<Bool, Never>? = state.withLock { s in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).c
            }
            c?.resume(returning: false)
        }
    }

    /// Gives a permit back (to the longest waiter, if any).
    public func release() {
        let next: CheckedContinuation<Bool, Never>? = state.withLock { s in
            if s.waiters.isEmpty {
                s.available += 1
                s.inUse -= 1
                return nil
            }
            return s.waiters.removeFirst().c
        }
        next?.resume(returning: true)
    }
}
