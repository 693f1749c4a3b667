import Synchronization

/// Gathers requests from concurrent callers into batches for one store call each (lease claims,
/// tick commits), whatever the store. One call is in flight at a time; what arrives meanwhile
/// joins the next batch, so batches grow with the load and a store over the network pays one
/// round trip per batch, not one per tick. Each caller hands in a group of requests and gets
/// their answers back in order.
final class StoreBatcher<Request: Sendable, Answer: Sendable>: Sendable {
    private struct Pending: Sendable {
        var requests: [Request]
        var continuation: CheckedContinuation<Result<ArraySlice<Answer>, any Error>, Never>
    }
    private struct State: Sendable {
        var queue: [Pending] = []
        var queued = 0
        var flushing = false
    }

    /// The most requests in one store call (a caller's group is never split).
    let maxBatch: Int
    private let perform: @Sendable ([Request]) async throws -> [Answer]
    private let state = Mutex(State())

    /// - Parameter perform: the store call; it must answer every request, in order.
    init(maxBatch: Int, perform: @escaping @Sendable ([Request]) async throws -> [Answer]) {
        self.maxBatch = maxBatch
        self.perform = perform
    }

    /// Requests waiting for the next call (for tests).
    var queuedForTest: Int { state.withLock { $0.queued } }

    /// Submits a group of requests; returns their answers in order (a slice of the batch's
    /// answers, not a copy), or the store's error.
    func submit(_ requests: [Request]) async -> Result<ArraySlice<Answer>, any Error> {
        guard !requests.isEmpty else { return .success([]) }
        return await withCheckedContinuation { c in
            let flush = state.withLock { s in
                s.queue.append(Pending(requests: requests, continuation: c))
                s.queued += requests.count
                if s.flushing { return false }
                s.flushing = true
                return true
            }
            if flush {
                // Unstructured on purpose: the flush serves every caller that queues while it
                // runs, not only the one that started it, and ends when the queue is empty.
                Task { await self.flush() }
            }
        }
    }

    private func flush() async {
        while true {
            let (batch, n): ([Pending], Int) = state.withLock { s in
                if s.queue.isEmpty {
                    s.flushing = false
                    return ([], 0)
                }
                if s.queued <= maxBatch {
                    // The usual case, all of the queue: handed over whole, not copied caller by
                    // caller and shifted (at 50k ticks/s, copying and destroying the waiting
                    // callers' entries took 2.3 % of the daemon's CPU samples).
                    let all = s.queue
                    let n = s.queued
                    s.queue = []
                    s.queue.reserveCapacity(all.count)
                    s.queued = 0
                    return (all, n)
                }
                var n = 0
                var take = 0
                while take < s.queue.count, take == 0 || n + s.queue[take].requests.count <= maxBatch {
                    n += s.queue[take].requests.count
                    take += 1
                }
                defer {
                    s.queue.removeFirst(take)
                    s.queued -= n
                }
                return (Array(s.queue.prefix(take)), n)
            }
            if batch.isEmpty { return }
            var requests: [Request] = []
            requests.reserveCapacity(n)
            for p in batch { requests.append(contentsOf: p.requests) }
            let result: Result<[Answer], any Error>
            do { result = .success(try await perform(requests)) } catch { result = .failure(error) }
            var offset = 0
            for p in batch {
                let count = p.requests.count
                switch result {
                case .success(let answers) where answers.count >= offset + count:
                    p.continuation.resume(returning: .success(answers[offset..<offset + count]))
                case .success:
                    p.continuation.resume(returning: .failure(ShortAnswer()))
                case .failure(let error):
                    p.continuation.resume(returning: .failure(error))
                }
                offset += count
            }
        }
    }

    /// The store answered a batch with fewer answers than requests (a broken contract).
    struct ShortAnswer: Error, CustomStringConvertible {
        var description: String { "the store answered a batch with fewer answers than requests" }
    }
}
