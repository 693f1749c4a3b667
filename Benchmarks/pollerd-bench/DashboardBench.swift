import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PollerdAdmin
import PollerdConfig
import PollerdCore
import PollerdDaemon
import PollerdPollers
import PollerdSQLite
import Synchronization

/// What the dashboard costs a large fleet, over a real socket: the job table (`GET /`, 100 rows
/// with their sparklines) and a job's page, each beside the admin API's JSON listing of every job
/// (`GET /admin/jobs`, the same store reads without the rendering) in the same run.
struct DashboardBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract:
            "ms per request for GET /, GET /jobs/ID and GET /admin/jobs over N jobs with tick history. One JSON line."
    )

    @Option(help: "Jobs in the store and the job file.") var jobs: Int = 10_000
    @Option(help: "Ticks kept per job (the sparklines read 30).") var ticks: Int = 30
    @Option(help: "Requests per route (after 3 warm-up ones).") var requests: Int = 30
    @Option(help: "Working directory (a fresh one under it is used).") var dir: String = NSTemporaryDirectory()

    func run() async throws {
        let root = (dir as NSString).appendingPathComponent("pollerd-dashboard-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let yaml =
            "pollers:\n  jobs:\n"
            + (0..<jobs).map {
                "    - { id: job\($0), kind: noop, schedule: { every_secs: 60 }, config: { advance_cursor: true } }\n"
            }.joined()
        let file = JobFile.parse(
            yaml, path: (root as NSString).appendingPathComponent("pollers.yaml"), registry: Builtins.registry(),
            environment: [:], nowMs: 0)
        let store = try SQLiteBackend.open(
            path: (root as NSString).appendingPathComponent("state.db"), synchronousFull: false)
        try await store.prepare()
        let clock = SystemWallClock()
        var log = Logger(label: "bench")
        log.logLevel = .error
        _ = try await store.register(
            file.jobs.map { JobRegistration(jobID: $0.id, kind: $0.kind, agent: $0.agent, pausedOnBoot: false) },
            nowMs: clock.nowMs)
        // History: `ticks` manual ticks of every job, through the real executor and store.
        let executor = TickExecutor(
            store: store, registry: Builtins.registry(), clock: clock, holder: "bench:1:x", logger: log)
        var settings = GlobalSettings()
        settings.tickHistory = max(ticks, 1)
        let fill = settings
        let fillStart = ContinuousClock.now
        await withTaskGroup(of: Void.self) { g in
            for lane in 0..<8 {
                g.addTask {
                    for spec in file.jobs.enumerated().filter({ $0.offset % 8 == lane }).map(\.element) {
                        for _ in 0..<ticks {
                            _ = await executor.execute(
                                DueTick(jobID: spec.id, dueMs: clock.nowMs, spec: spec, offsetMs: 0), settings: fill,
                                manual: true)
                        }
                    }
                }
            }
        }
        let fillSecs = (ContinuousClock.now - fillStart) / .seconds(1)

        let api = AdminAPI(
            store: store, clock: clock, live: LiveJobFile(file), runner: nil, reloader: nil, holder: "bench",
            logger: log)
        let dashboard = try Dashboard(api: api)
        let port = Mutex(0)
        var quiet = log
        quiet.logLevel = .critical // the server's cancellation at the end is not news
        let app = try AdminServer.application(
            host: "127.0.0.1", port: 0, registry: nil, auth: AdminAuth(tokens: [], openProbes: true), logger: quiet,
            sessions: AdminSessions(clock: clock),
            routes: {
                api.register(on: $0)
                dashboard.register(on: $0)
            },
            onServerRunning: { ch in port.withLock { $0 = ch.localAddress?.port ?? 0 } })
        let server = Task { try await app.runService() }
        while port.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let base = "http://127.0.0.1:\(port.withLock { $0 })"

        func time(_ path: String) async throws -> (ms: Double, bytes: Int) {
            var bytes = 0
            for _ in 0..<3 { bytes = try await get(base + path) }
            let start = ContinuousClock.now
            for _ in 0..<requests { bytes = try await get(base + path) }
            return ((ContinuousClock.now - start) / .milliseconds(1) / Double(requests), bytes)
        }
        // Interleaved rounds, so both sides see the same machine.
        var table: [Double] = []
        var page: [Double] = []
        var json: [Double] = []
        var sizes = (0, 0, 0)
        for _ in 0..<3 {
            let j = try await time("/admin/jobs")
            json.append(j.ms)
            sizes.2 = j.bytes
            let t = try await time("/")
            table.append(t.ms)
            sizes.0 = t.bytes
            let p = try await time("/jobs/job\(jobs / 2)")
            page.append(p.ms)
            sizes.1 = p.bytes
        }
        server.cancel()
        func median(_ a: [Double]) -> Double { a.sorted()[a.count / 2] }
        print(
            Support.jsonLine([
                "jobs": .int(Int64(jobs)), "ticks_per_job": .int(Int64(ticks)), "fill_secs": .double(fillSecs),
                "table_ms": .double(median(table)), "job_page_ms": .double(median(page)),
                "api_jobs_ms": .double(median(json)),
                "table_over_api": .double(median(table) / median(json)),
                "job_page_over_api": .double(median(page) / median(json)),
                "table_bytes": .int(Int64(sizes.0)), "job_page_bytes": .int(Int64(sizes.1)),
                "api_jobs_bytes": .int(Int64(sizes.2)),
            ]))
    }

    func get(_ url: String) async throws -> Int {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(60))
        guard response.status.code == 200 else { throw ValidationError("\(url) answered \(response.status)") }
        return try await response.body.collect(upTo: 256 << 20).readableBytes
    }
}
