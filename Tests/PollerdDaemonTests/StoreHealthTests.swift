import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PollerdAdmin
import PollerdConfig
import PollerdCore
import PollerdPollers
import PollerdSQLite
import PollerdTestKit
import Synchronization
import Testing

@testable import PollerdDaemon

#if canImport(Glibc)
import Glibc
#endif

/// A failing store is reported once per change, not per tick.
@Suite struct StoreHealthTests {
    @Test func itChangesStateOnTheFirstFailureAndTheFirstSuccessAfter() {
        var h = StoreHealth()
        #expect(h.record(nil) == nil)
        #expect(h.record("disk full") == .failing("disk full"))
        #expect(h.record("disk full") == nil) // still failing: nothing new to say
        #expect(h.record("I/O error") == nil)
        #expect(h.failure == "I/O error")
        #expect(h.record(nil) == .recovered)
        #expect(h.record(nil) == nil && h.failure == nil)
        // Commits fail while claims pass (a full disk): the claims do not say it recovered.
        #expect(h.record("disk full", call: .commit) == .failing("disk full"))
        #expect(h.record(nil, call: .claim) == nil && h.failure == "disk full")
        #expect(h.record("disk full", call: .claim) == nil)
        #expect(h.record(nil, call: .claim) == nil)
        #expect(h.record(nil, call: .commit) == .recovered)
        // Claims that failed alone recover with a claim.
        #expect(h.record("locked", call: .claim) == .failing("locked"))
        #expect(h.record(nil, call: .claim) == .recovered)
    }

    /// The state database on a full disk: the runner says the store is failing; once space
    /// returns, the next ticks commit and it says the store answers again.
    @Test(.enabled(if: SmallDisk.available, "needs root to mount a small tmpfs"), .timeLimit(.minutes(1)))
    func aRunnerOnAFullDiskReportsTheStoreFailingAndRecovers() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-full-\(UUID().uuidString)")
            .path
        #expect(SmallDisk.mount(root, bytes: 1 << 20))
        defer { SmallDisk.unmount(root) }
        let h = try await Harness(
            jobs: (0..<20).map { every("j\($0)", 10, config: .object(["advance_cursor": .bool(true)])) }, pollers: [],
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
        // Space returns: the failed ticks are retried within about a second and commit.
        try FileManager.default.removeItem(atPath: filler)
        h.clock.advance(toMs: t0 + 20_000 + TickPlanner.storeRetryMs)
        await h.log.wait { evs in
            evs.contains {
                if case .tick(let r) = $0 {
                    return r.disposition == .ran(committed: true) && r.dueMs > t0 + 20_000
                } else {
                    return false
                }
            }
        }
        #expect(h.runner.storeFailure == nil)
        h.runner.beginShutdown()
        try await task.value
    }

    struct DiskFull: Error, CustomStringConvertible { var description: String { "database or disk is full" } }

    static func ticks(_ evs: [RunnerEvent], status: String, after: Int64 = .min) -> Int {
        evs.filter {
            if case .tick(let r) = $0 { return r.status == status && r.startedAtMs >= after } else { return false }
        }.count
    }

    /// A store that fails every lease and commit: the jobs are tried again about every second,
    /// not backed off from, and not counted against their breakers; once it answers, work resumes
    /// within about a second.
    @Test(.timeLimit(.minutes(1)))
    func aFailingStoreIsRetriedEverySecondAndWorkResumesWithinASecond() async throws {
        let faulty = Mutex<FaultyStore?>(nil)
        let h = try await Harness(
            jobs: (0..<5).map { every("j\($0)", 10, config: .object(["advance_cursor": .bool(true)])) },
            settings: {
                var s = GlobalSettings()
                s.breakerThreshold = 2
                return s
            }(), pollers: [],
            wrap: { inner in
                let f = FaultyStore(inner)
                faulty.withLock { $0 = f }
                return f
            })
        let store = try #require(faulty.withLock { $0 })
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await h.log.waitForTicks(5)
        store.set(DiskFull())
        h.clock.advance(toMs: t0 + 20_000)
        await h.log.wait { Self.ticks($0, status: "store_error") >= 5 }
        #expect(h.runner.storeFailure?.contains("disk is full") == true)
        // Four more rounds, a second apart: each job is tried in every one, and
        // none of them counts against its breaker (threshold 2).
        for round in 1...4 {
            h.clock.advance(byMs: TickPlanner.storeRetryMs)
            await h.log.wait { Self.ticks($0, status: "store_error") >= 5 * (round + 1) }
        }
        for i in 0..<5 { #expect(h.runner.core.jobs["j\(i)"]?.consecutiveErrors == 0) }
        // Reads still pass (the rows say "ok"), so the job listing says the store is failing.
        let yaml =
            "pollers:\n  jobs:\n"
            + (0..<5).map { "    - { id: j\($0), kind: noop, schedule: { every_secs: 10 } }\n" }.joined()
        let file = JobFile.parse(
            yaml, path: "/etc/pollerd/pollers.yaml", registry: Builtins.registry(), environment: [:], nowMs: t0)
        let api = AdminAPI(
            store: h.store, clock: h.clock, live: LiveJobFile(file), runner: h.runner, reloader: nil, holder: "t",
            logger: Logger(label: "t"))
        let app = Application(
            router: AdminServer.router(registry: nil, auth: AdminAuth(tokens: [], openProbes: true)) {
                api.register(on: $0)
            })
        try await app.test(.router) { client in
            try await client.execute(uri: "/admin/jobs", method: .get) { r in
                let v = try JSONValue.parse(bytes: r.body.readableBytesView)
                #expect(
                    v["store"]?["ok"] == .bool(false)
                        && v["store"]?["error"]?.stringValue?.contains("disk is full") == true)
            }
            try await client.execute(uri: "/readyz", method: .get) { r in #expect(r.status == .serviceUnavailable) }
        }
        // The store answers again: every job commits within a second.
        store.set(nil)
        let back = h.clock.nowMs
        h.clock.advance(byMs: TickPlanner.storeRetryMs)
        await h.log.wait { evs in
            evs.filter {
                if case .tick(let r) = $0 {
                    return r.disposition == .ran(committed: true) && r.startedAtMs >= back
                } else {
                    return false
                }
            }.count >= 5
        }
        #expect(h.runner.storeFailure == nil)
        for i in 0..<5 { #expect(try await h.row("j\(i)")?.lastStatus == "ok") }
        h.runner.beginShutdown()
        try await task.value
    }

    /// Commits that fail leave their leases held (the release was in the failed transaction): the
    /// next claims of this daemon are not blocked by them, so work resumes within a second of
    /// the store answering, not when the leases expire (60 s here).
    @Test(.timeLimit(.minutes(1)))
    func failedCommitsDoNotLeaveTheJobsLeasedToThemselves() async throws {
        let faulty = Mutex<FaultyStore?>(nil)
        let h = try await Harness(
            jobs: (0..<5).map { every("j\($0)", 10, config: .object(["advance_cursor": .bool(true)])) }, pollers: [],
            wrap: { inner in
                let f = FaultyStore(inner)
                faulty.withLock { $0 = f }
                return f
            })
        let store = try #require(faulty.withLock { $0 })
        let task = await h.start()
        store.set(DiskFull(), commitsOnly: true)
        h.clock.advance(toMs: t0 + 10_000)
        await h.log.wait { Self.ticks($0, status: "store_error") >= 5 }
        #expect(
            try await h.store.lease(jobID: "j0").map { $0.untilMs > h.clock.nowMs } == true,
            "the failed commit left the lease held")
        store.set(nil)
        let back = h.clock.nowMs
        h.clock.advance(byMs: TickPlanner.storeRetryMs)
        await h.log.wait { evs in
            evs.filter {
                if case .tick(let r) = $0 {
                    return r.disposition == .ran(committed: true) && r.startedAtMs >= back
                } else {
                    return false
                }
            }.count >= 5
        }
        h.runner.beginShutdown()
        try await task.value
    }

    /// A store whose data is damaged is not retried: the runner stops and says how to get out.
    @Test(.timeLimit(.minutes(1)))
    func aDamagedStoreStopsTheRunnerWithTheWayOut() async throws {
        let faulty = Mutex<FaultyStore?>(nil)
        let h = try await Harness(
            jobs: (0..<5).map { every("j\($0)", 10) }, pollers: [],
            wrap: { inner in
                let f = FaultyStore(inner)
                faulty.withLock { $0 = f }
                return f
            })
        let store = try #require(faulty.withLock { $0 })
        let task = await h.start()
        store.set(SQLiteStateStore.Corrupt(path: "state.db", problems: ["database disk image is malformed"]))
        h.clock.advance(toMs: t0 + 10_000)
        do {
            try await task.value
            Issue.record("the runner ran on over a damaged store")
        } catch let e as Runner.StoreDamaged {
            #expect(e.description.contains("pollerd state recover") && e.description.contains("malformed"))
        }
        // It stopped at the first failed batch: no retries against the damaged file.
        let failuresAtStop = store.failures
        h.clock.advance(byMs: 60_000)
        #expect(store.failures == failuresAtStop && failuresAtStop <= 5)
    }
}
