import ArgumentParser
import Foundation
import Logging
import PollerdCore
import PollerdDaemon
import PollerdHTTP
import PollerdPlugins
import PollerdPollers
import PollerdPostgres
import PollerdSQLite
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

@main
struct PollerdBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pollerd-bench",
        abstract: "Benchmarks of pollerd's real components (build with -c release).",
        subcommands: [
            SchedulerBench.self, PluginBench.self, OutboxBench.self, WireBench.self, FeedParseBench.self,
            FeedServerCommand.self, DashboardBench.self, HealthBench.self, PGSetupBench.self, PGWakeBench.self,
            NATSBench.self,
        ]
    )
}

/// Collects lateness samples of ticks whose due time falls in the measurement window.
final class Samples: Sendable {
    private struct State {
        var lateness: [Int64] = []
        var ran = 0
        var skipped = 0
        var failed = 0
        /// The lateness of ticks that finished in the window, whatever their slot: how many a
        /// daemon that fell behind still runs, and how far behind it is.
        var finishedLateness: [Int64] = []
        /// By second of the window (of the slot): the ticks, those over 50 ms late, the most late.
        var timeline: [(ticks: Int, over50: Int, maxMs: Int64)] = []
    }
    private let state = Mutex(State())
    let windowStart: Int64
    let windowEnd: Int64

    init(windowStart: Int64, windowEnd: Int64, capacity: Int) {
        self.windowStart = windowStart
        self.windowEnd = windowEnd
        state.withLock { $0.lateness.reserveCapacity(capacity) }
    }

    func record(_ r: TickReport, dueMs due: Int64, nowMs: Int64) {
        if case .ran = r.disposition, nowMs >= windowStart, nowMs < windowEnd {
            state.withLock { $0.finishedLateness.append(r.latenessMs) }
        }
        guard due >= windowStart, due < windowEnd else { return }
        state.withLock { s in
            switch r.disposition {
            case .ran(let committed):
                s.ran += 1
                if !committed || r.status != "ok" { s.failed += 1 }
                s.lateness.append(r.latenessMs)
                let second = Int((due - windowStart) / 1000)
                while s.timeline.count <= second { s.timeline.append((0, 0, 0)) }
                s.timeline[second].ticks += 1
                if r.latenessMs > 50 { s.timeline[second].over50 += 1 }
                s.timeline[second].maxMs = max(s.timeline[second].maxMs, r.latenessMs)
            case .skipped, .cancelled:
                s.skipped += 1
            }
        }
    }

    var snapshot: (lateness: [Int64], ran: Int, skipped: Int, failed: Int, finishedLateness: [Int64]) {
        state.withLock { ($0.lateness, $0.ran, $0.skipped, $0.failed, $0.finishedLateness) }
    }

    var timeline: [(ticks: Int, over50: Int, maxMs: Int64)] { state.withLock { $0.timeline } }
}

struct SchedulerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "N noop jobs on the real scheduler and SQLite store; prints ticks/s, lateness, CPU and peak RSS."
    )

    @Option(help: "Number of jobs.") var jobs: Int = 1000
    @Option(name: .customLong("every-secs"), help: "Each job's period.") var everySecs: Int64 = 10
    @Option(help: "Measured seconds (after one warm-up period).") var seconds: Int64 = 30
    @Option(
        name: .customLong("warmup-secs"),
        help: "Seconds between boot and the window (default: one period and one more second).")
    var warmupSecs: Int64?
    @Option(name: .customLong("jitter-ms"), help: "Jitter bound (default: the period, spreading jobs evenly).")
    var jitterMs: Int64?
    @Option(name: .customLong("max-concurrent"), help: "max_concurrent_ticks.") var maxConcurrent: Int = 64
    @Option(help: "state_sync: full or normal.") var sync: String = "full"
    @Option(
        name: .customLong("state-db"),
        help: "A postgres:// URL: the store on PostgreSQL (its expiries on the database's clock) instead of SQLite.")
    var stateDB: String?
    @Option(name: .customLong("pool-size"), help: "PostgreSQL connections.") var poolSize: Int = 10
    @Option(help: "The lease holder id (several bench processes on one store: one each).") var holder: String =
        "bench"
    @Flag(help: "Print one JSON line instead of text.") var json = false
    @Flag(
        help:
            "Also print, to stderr, each second of the window: its slots' ticks, how many were over 50 ms late, and the most late."
    )
    var timeline = false
    @Option(
        name: .customLong("plugin-command"),
        help: "Tick a long-lived plugin (this command, answering as plugin 'cbench', kind 'cbench') instead of noop.")
    var pluginCommand: String?
    @Option(name: .customLong("plugin-slots"), help: "The plugin's max_concurrent_ticks.") var pluginSlots: Int = 16
    @Option(
        name: .customLong("feed-base"),
        help: "Tick rss jobs against BASE/feed/N (pollerd-bench feed-server) instead of noop.")
    var feedBase: String?
    @Option(name: .customLong("tick-history"), help: "tick_history (ticks kept per job; 0: none).") var tickHistory:
        Int = 100
    @Option(
        name: .customLong("per-host"),
        help: "The HTTP kinds' per-host limit on requests in flight (the daemon's default is 2).")
    var perHost: Int = 2

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-bench-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        let store = try benchStore(
            stateDB, sqlitePath: dir.appendingPathComponent("state.db").path, synchronousFull: sync == "full",
            poolSize: poolSize, logger: logger)
        var settings = GlobalSettings()
        settings.maxConcurrentTicks = maxConcurrent
        settings.tickHistory = tickHistory
        settings.defaultJitterMs = jitterMs ?? everySecs * 1000
        var registry = Builtins.registry()
        var plugin: LongLivedPlugin?
        if let pluginCommand {
            let spec = PluginProcessSpec(
                pluginID: "cbench", command: pluginCommand, args: [], workingDirectory: "/", tickTimeoutSecs: 60)
            let p = LongLivedPlugin(
                spec: spec, policy: SupervisorPolicy(respawn: false, maxAttempts: 1, backoffMs: 100),
                status: PluginStatus(tailLines: 4), permits: AsyncSemaphore(permits: pluginSlots),
                clock: SystemWallClock(),
                logger: {
                    var l = Logger(label: "bench")
                    l.logLevel = .error
                    return l
                }())
            plugin = p
            _ = registry.register(LongLivedPluginPoller(kind: "cbench", plugin: p))
        }
        let fetcher = HTTPFetcher(perHostLimit: perHost)
        for p in HTTPKinds.pollers(fetcher: fetcher) { registry.register(p) }
        let kind = feedBase != nil ? "rss" : pluginCommand == nil ? "noop" : "cbench"
        let specs = (0..<jobs).map { i in
            let config: JSONValue =
                if let feedBase {
                    .object(["feed_url": .string("\(feedBase)/feed/\(i)"), "allow_private_networks": .bool(true)])
                } else {
                    .object(["advance_cursor": .bool(true)])
                }
            return JobSpec(id: "job-\(i)", kind: kind, schedule: Schedule(.every(seconds: everySecs)), config: config)
        }
        let clock = SystemWallClock()
        let bootStart = clock.nowMs
        let started = Doorbell()
        let samples = Mutex<Samples?>(nil)
        let executor = TickExecutor(store: store, registry: registry, clock: clock, holder: holder, logger: logger)
        let runner = Runner(
            settings: settings, jobs: specs, executor: executor,
            onEvent: { e in
                switch e {
                case .tick(let r): samples.withLock { $0 }?.record(r, dueMs: r.dueMs, nowMs: clock.nowMs)
                case .started: started.ring()
                default: break
                }
            })
        // The runner in a service group of its own, started once the store is prepared and stopped
        // by a graceful shutdown, as in the daemon.
        let readiness = StoreReadiness()
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    StoreService(store: store, clock: clock, readiness: readiness),
                    AfterStoreReady(runner, readiness: readiness),
                ], logger: logger))
        let runTask = Task { try await group.run() }
        await started.wait()
        let bootMs = clock.nowMs - bootStart
        // Warm up (by default for one period) after boot, then measure slots due in the window.
        let windowStart = clock.nowMs + (warmupSecs.map { $0 * 1000 } ?? everySecs * 1000 + 1000)
        let windowEnd = windowStart + seconds * 1000
        samples.withLock {
            $0 = Samples(
                windowStart: windowStart, windowEnd: windowEnd,
                capacity: Int(Double(jobs) * Double(seconds) / Double(everySecs) * 1.1) + 16)
        }
        try await clock.sleep(untilMs: windowStart)
        let cpu0 = cpuSeconds()
        try await clock.sleep(untilMs: windowEnd)
        let cpu1 = cpuSeconds()
        // The WAL's file at the window's end: it must not grow with the run's length.
        let walMiB =
            ((try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("state.db-wal").path)[.size]
                as? Int) ?? 0) >> 20
        // Let ticks due just before the window's end report.
        try await clock.sleep(untilMs: windowEnd + 2000)
        await group.triggerGracefulShutdown()
        try await runTask.value
        await plugin?.shutdown()
        await fetcher.shutdown()
        try? FileManager.default.removeItem(at: dir)

        let s = samples.withLock { $0 }!.snapshot
        if timeline {
            let seconds = samples.withLock { $0 }!.timeline
            for (i, t) in seconds.enumerated() {
                FileHandle.standardError.write(
                    Data("second \(i): \(t.ticks) ticks, \(t.over50) over 50 ms, max \(t.maxMs) ms\n".utf8))
            }
        }
        let sorted = s.lateness.sorted()
        func pct(_ p: Double) -> Int64 {
            sorted.isEmpty ? -1 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        let rate = Double(s.ran) / Double(seconds)
        let finished = s.finishedLateness.sorted()
        let finishedP50 = finished.isEmpty ? -1 : finished[finished.count / 2]
        let expected = Double(jobs) / Double(everySecs)
        let line: [String: Any] = [
            "system": maxConcurrent == 64 ? "pollerd" : "pollerd cap=\(maxConcurrent)", "kind": kind, "jobs": jobs,
            "store": stateDB == nil ? "sqlite" : "postgres",
            "every_secs": everySecs, "seconds": seconds, "sync": sync,
            "ticks_per_sec": (rate * 10).rounded() / 10, "expected_per_sec": expected,
            "lateness_p50_ms": pct(0.5), "lateness_p99_ms": pct(0.99), "lateness_max_ms": sorted.last ?? -1,
            "cpu_seconds": ((cpu1 - cpu0) * 100).rounded() / 100,
            "cpu_cores": (((cpu1 - cpu0) / Double(seconds)) * 100).rounded() / 100,
            "peak_rss_mib": peakRSSMiB(), "skipped": s.skipped, "failed": s.failed, "boot_ms": bootMs,
            "wal_mib": walMiB,
            "finished_per_sec": (Double(s.finishedLateness.count) / Double(seconds) * 10).rounded() / 10,
            "finished_lateness_p50_ms": finishedP50,
        ]
        if json {
            let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(
                "pollerd scheduler: \(jobs) jobs every \(everySecs)s, \(seconds)s measured, "
                    + (stateDB == nil ? "SQLite state_sync=\(sync)" : "PostgreSQL"))
            print(
                "  ticks/s        \(String(format: "%.1f", rate)) of the window's slots (expected \(String(format: "%.1f", expected))); \(String(format: "%.1f", Double(finished.count) / Double(seconds))) finished in it, \(finishedP50) ms late (p50)"
            )
            print("  lateness       p50 \(pct(0.5)) ms, p99 \(pct(0.99)) ms, max \(sorted.last ?? -1) ms")
            print(
                "  cpu            \(String(format: "%.2f", cpu1 - cpu0)) s (\(String(format: "%.2f", (cpu1 - cpu0) / Double(seconds))) cores)"
            )
            print(
                "  peak rss       \(peakRSSMiB()) MiB; skipped \(s.skipped), failed \(s.failed); boot \(bootMs) ms; WAL \(walMiB) MiB"
            )
        }
    }

    func cpuSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(
            u.ru_stime.tv_usec) / 1e6
    }

    func peakRSSMiB() -> Int {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Int(u.ru_maxrss / 1024)
    }
}

/// The benchmarks' store: PostgreSQL for a `postgres://` URL (a fresh schema is the caller's
/// business: the store migrates it), else SQLite at `sqlitePath`.
func benchStore(
    _ stateDB: String?, sqlitePath: String, synchronousFull: Bool, poolSize: Int, logger: Logger
) throws -> any PollerdStore {
    if let stateDB, PostgresURL.isPostgres(stateDB) {
        return PostgresBackend.open(
            url: try PostgresURL(parsing: stateDB), tuning: PostgresSettings(poolSize: poolSize), time: .store,
            logger: logger)
    }
    return try SQLiteBackend.open(path: sqlitePath, synchronousFull: synchronousFull)
}
