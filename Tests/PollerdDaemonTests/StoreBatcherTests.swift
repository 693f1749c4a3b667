import PollerdTestKit
import Synchronization
import Testing

@testable import PollerdDaemon

/// Requests from concurrent callers are gathered into batches, each caller gets its own answers.
@Suite struct StoreBatcherTests {
    struct Boom: Error {}

    @Test(.timeLimit(.minutes(1))) func callersGetTheirOwnAnswersInOrderAndBatchesRespectTheBound() async throws {
        let calls = Mutex<[[Int]]>([])
        let gate = Gate()
        let b = StoreBatcher<Int, Int>(maxBatch: 5) { reqs in
            calls.withLock { $0.append(reqs) }
            _ = await gate.pass() // the first call waits: the others queue up meanwhile
            return reqs.map { $0 * 10 }
        }
        async let first = b.submit([1])
        await gate.waitEntered(1)
        async let a = b.submit([2, 3])
        async let c = b.submit([4, 5, 6])
        async let d = b.submit([7])
        // Let the three later groups queue behind the first call before it returns.
        while calls.withLock({ $0.count }) == 1, b.queuedForTest < 6 { await Task.yield() }
        gate.open()
        #expect(try await first.get() == [10])
        #expect(try await a.get() == [20, 30])
        #expect(try await c.get() == [40, 50, 60])
        #expect(try await d.get() == [70])
        let batches = calls.withLock { $0 }
        #expect(batches.first == [1])
        #expect(batches.allSatisfy { $0.count <= 5 })
        #expect(batches.flatMap { $0 }.sorted() == [1, 2, 3, 4, 5, 6, 7])
        #expect(batches.count <= 3) // the later groups were batched, not sent one by one
    }

    @Test func aStoreErrorReachesEveryCallerOfTheBatch() async {
        let b = StoreBatcher<Int, Int>(maxBatch: 10) { _ in throw Boom() }
        guard case .failure(let e) = await b.submit([1, 2]) else {
            Issue.record("expected failure")
            return
        }
        #expect(e is Boom)
        #expect((try? await b.submit([]).get()) == [])
    }

    @Test func aShortAnswerFailsTheCallersItDoesNotCover() async {
        let b = StoreBatcher<Int, Int>(maxBatch: 10) { reqs in Array(reqs.dropLast()) }
        guard case .failure(let e) = await b.submit([1, 2]) else {
            Issue.record("expected failure")
            return
        }
        #expect(e is StoreBatcher<Int, Int>.ShortAnswer)
    }
}
