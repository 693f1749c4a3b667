import Foundation
import PollerdCore
@testable import PollerdDaemon
import PollerdSQLite
import PollerdTestKit
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A failing store is reported once per change, not per tick.
@Suite struct StoreHealthTests {
    @Test func itChangesStateOnTheFirstFailureAndTheFirstSuccessAfter() {
        var h = StoreHealth()
        #expect(h.record(nil) == nil)
        #expect(h.record("disk full") == .failing("disk full"))
        #expect(h.record("disk full") == nil)          // still failing: nothing new to say
        #expect(h.record("I/O error") == nil)
        #expect(h.failure == "I/O error")
        #expect(h.record(nil) == .recovered)
        #expect(h.record(nil) == nil && h.failure == nil)
    }

    /// The state database on a full disk: the runner says the store is failing; once space
    /// returns, the next ticks commit and it says the store answers again.
    @Test(.enabled(if: SmallDisk.available, "needs root to mount a small tmpfs"), .timeLimit(.minutes(1)))
    func aRunnerOnAFullDiskReportsTheStoreFailingAndRecovers() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-full-\(UUID().uuidString)").path
        #expect(SmallDisk.mount(root, bytes: 1 << 20))
        defer { SmallDisk.unmount(root) }
        let h = try Harness(jobs: (0..<20).map { every("j\($0)", 10, config: .object(["advance_cursor": .bool(true)])) }, pollers: [],
                            path: (root as NSString).appendingPathComponent("state.db"))
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await h.log.waitForTicks(20)
        #expect(h.runner.storeFailure == nil)
        // Fill the disk.
        let filler = (root as NSString).appendingPathComponent("filler")
        let fd = open(filler, O_WRONLY | O_CREAT, 0o644)
        let block = [UInt8](repeating: 0x41, count: 4096)
        while write(fd, block, block.count) > 0 {}
        close(fd)
        h.clock.advance(toMs: t0 + 20_000)
        await h.log.waitForTicks(40)
        #expect(h.runner.storeFailure != nil)
        // Space returns: the next slots commit.
        try FileManager.default.removeItem(atPath: filler)
        h.clock.advance(toMs: t0 + 60_000)   // past the transient backoff (30 s ± 10 %)
        await h.log.wait { evs in evs.contains { if case .tick(let r) = $0 { return r.disposition == .ran(committed: true) && r.dueMs >= t0 + 30_000 } else { return false } } }
        #expect(h.runner.storeFailure == nil)
        h.runner.beginShutdown()
        try await task.value
    }
}
