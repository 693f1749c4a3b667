import ArgumentParser
import Foundation
import PollerdCore
import PollerdDaemon
import PollerdSQLite

/// What the health gauges cost the store every 15 s at a large fleet: the aggregate `jobHealth`
/// query, beside reading every job's row as `HealthService` did before (`allStates`), in one run.
struct HealthBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "ms per health read over N jobs: jobHealth (aggregate) beside allStates (every row). One JSON line."
    )

    @Option(help: "Jobs in the store, announced by one daemon.") var jobs: Int = 100_000
    @Option(help: "Reads of each kind (after one warm-up each), alternating.") var reads: Int = 10
    @Option(help: "Working directory (a fresh one under it is used).") var dir: String = NSTemporaryDirectory()

    func run() async throws {
        let root = (dir as NSString).appendingPathComponent("pollerd-health-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try SQLiteBackend.open(
            path: (root as NSString).appendingPathComponent("state.db"), synchronousFull: false)
        let clock = SystemWallClock()
        try await store.withStore(clock: clock) { store in
            let ids = (0..<jobs).map { "job\($0)" }
            for chunk in stride(from: 0, to: ids.count, by: 10_000) {
                let part = ids[chunk..<min(chunk + 10_000, ids.count)]
                _ = try await store.register(
                    part.map { JobRegistration(jobID: $0, kind: "noop", agent: "default", pausedOnBoot: false) },
                    nowMs: clock.nowMs)
            }
            _ = try await store.announce(
                DaemonAnnouncement(
                    daemonID: "bench", jobFile: "pollers.yaml",
                    jobs: Dictionary(uniqueKeysWithValues: ids.map { ($0, "fp") }), ttlMs: 3_600_000),
                nowMs: clock.nowMs)
            // Every 10th job has a staleness limit, as a file that sets some would.
            let query = JobHealthQuery(
                daemonID: "bench", breakerThreshold: 5, nowMs: clock.nowMs,
                staleAfterSecs: [3600: ids.enumerated().filter { $0.offset % 10 == 0 }.map(\.element)],
                registeredAtMs: clock.nowMs)
            _ = try await store.jobHealth(query)
            _ = try await store.allStates()
            var aggregate: [Double] = []
            var everyRow: [Double] = []
            for _ in 0..<reads {
                var t = ContinuousClock.now
                let counts = try await store.jobHealth(query)
                aggregate.append((ContinuousClock.now - t) / .microseconds(1) / 1000)
                t = ContinuousClock.now
                let rows = try await store.allStates()
                everyRow.append((ContinuousClock.now - t) / .microseconds(1) / 1000)
                precondition(rows.count == jobs && counts.byState[.neverRan] == jobs)
            }
            func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
            print(
                JSONValue.object([
                    "jobs": .int(Int64(jobs)), "job_health_ms": .double((median(aggregate) * 10).rounded() / 10),
                    "all_states_ms": .double((median(everyRow) * 10).rounded() / 10),
                    "ratio": .double((median(aggregate) / median(everyRow) * 1000).rounded() / 1000),
                ]).canonicalString)
        }
    }
}
