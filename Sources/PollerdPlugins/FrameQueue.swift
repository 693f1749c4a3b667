import Synchronization

/// Frames waiting for a long-lived plugin's stdin. The writer takes everything queued at once,
/// so frames sent while a write is in progress go out together in the next one: one pipe write
/// (and one task hop) per batch instead of per frame.
final class FrameQueue: Sendable {
    private struct State {
        var buffer: [UInt8] = []
        var closed = false
        var waiter: CheckedContinuation<[UInt8]?, Never>?
    }
    private let state = Mutex(State())

    /// Queues a frame and its newline; false once the queue is closed.
    @discardableResult
    func push(_ frame: String) -> Bool {
        let (ok, wake): (Bool, (CheckedContinuation<[UInt8]?, Never>, [UInt8])?) = state.withLock { s in
            if s.closed { return (false, nil) }
            s.buffer.append(contentsOf: frame.utf8)
            s.buffer.append(0x0A)
            guard let w = s.waiter else { return (true, nil) }
            s.waiter = nil
            defer { s.buffer = [] }
            return (true, (w, s.buffer))
        }
        if let (w, bytes) = wake { w.resume(returning: bytes) }
        return ok
    }

    /// Everything queued, waiting until there is something; nil once closed and empty.
    func next() async -> [UInt8]? {
        await withCheckedContinuation { c in
            let now: [UInt8]?? = state.withLock { s in
                if !s.buffer.isEmpty { defer { s.buffer = [] }; return .some(s.buffer) }
                if s.closed { return .some(nil) }
                s.waiter = c
                return .none
            }
            if case .some(let v) = now { c.resume(returning: v) }
        }
    }

    /// Refuses further frames; a waiting writer gets nil once the queue is empty.
    func close() {
        let w: CheckedContinuation<[UInt8]?, Never>? = state.withLock { s in
            s.closed = true
            guard s.buffer.isEmpty else { return nil }
            defer { s.waiter = nil }
            return s.waiter
        }
        w?.resume(returning: nil)
    }
}
