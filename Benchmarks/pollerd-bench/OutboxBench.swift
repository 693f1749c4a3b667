import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import PollerdCore
import PollerdDaemon
import PollerdDelivery
import PollerdPollers
import PollerdSQLite

/// The outbox's cost, through the real executor, SQLite store, deliverer and file sink.
struct OutboxBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "drain: items/s from the outbox to a file sink; tick-cost: µs per tick with K items. One JSON line."
    )

    @Argument(help: "drain or tick-cost.") var mode: String
    @Option(help: "Jobs (one lane each).") var jobs: Int = 16
    @Option(help: "Ticks per job.") var ticks: Int = 100
    @Option(help: "Items per tick.") var items: Int = 100
    @Option(name: .customLong("batch-size"), help: "Items per sink batch.") var batchSize: Int = 256
    @Option(help: "Working directory (a fresh one under it is used).") var dir: String = NSTemporaryDirectory()
    @Option(name: .customLong("state-db"), help: "A postgres:// URL: the store on PostgreSQL instead of SQLite.")
    var stateDB: String?

    func run() async throws {
        let root = (dir as NSString).appendingPathComponent("pollerd-outbox-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: root) }
        var log = Logger(label: "bench")
        log.logLevel = .error
        let store = try benchStore(
            stateDB, sqlitePath: (root as NSString).appendingPathComponent("state.db"), synchronousFull: true,
            poolSize: 10, logger: log)
        let clock = SystemWallClock()
        // The store runs as in the daemon (its service: WAL checkpoints on a connection of their
        // own, not in the writer's commits), for the span of the measurement.
        try await store.withStore(clock: clock) { store in try await measure(store, root: root, clock: clock) }
    }

    func measure(_ store: any PollerdStore, root: String, clock: SystemWallClock) async throws {
        var log = Logger(label: "bench")
        log.logLevel = .error
        let executor = TickExecutor(
            store: store, registry: Builtins.registry(), clock: clock, holder: "bench:1:x", logger: log)
        let sinkPath = (root as NSString).appendingPathComponent("items.jsonl")
        var tuned = GlobalSettings()
        tuned.delivery.maxBacklog = 100_000_000
        tuned.delivery.batchSize = batchSize
        let settings = tuned
        let specs = (0..<jobs).map { i in
            JobSpec(
                id: "job\(i)", kind: "noop", schedule: Schedule(.every(seconds: 60)),
                config: .object(["advance_cursor": .bool(true), "items": .int(Int64(items))]),
                deliver: [SinkSpec(.file(path: sinkPath))])
        }
        _ = try await store.register(
            specs.map { JobRegistration(jobID: $0.id, kind: $0.kind, agent: $0.agent, pausedOnBoot: false) },
            nowMs: clock.nowMs)
        let http = SinkRegistry.makeHTTPClient()
        let deliverer = Deliverer(
            store: store, clock: clock, holder: "bench:1:x", sinks: SinkRegistry(broker: LocalBroker(), client: http),
            bell: executor.outboxBell, logger: log)
        deliverer.update(jobs: specs, tuning: settings.delivery)

        func tick(_ spec: JobSpec) async {
            let r = await executor.execute(
                DueTick(jobID: spec.id, dueMs: clock.nowMs, spec: spec, offsetMs: 0), settings: settings, manual: true)
            if r.disposition != .ran(committed: true) {
                FileHandle.standardError.write(Data("tick not committed: \(r.disposition)\n".utf8))
            }
        }

        switch mode {
        case "tick-cost":
            // Sequential ticks of one job: the latency a tick pays for its items.
            let spec = specs[0]
            for _ in 0..<20 { await tick(spec) }
            let start = ContinuousClock.now
            for _ in 0..<ticks { await tick(spec) }
            let us = (ContinuousClock.now - start) / .microseconds(1) / Double(ticks)
            print(
                "{\"mode\":\"tick-cost\",\"items\":\(items),\"ticks\":\(ticks),\"us_per_tick\":\(String(format: "%.1f", us))}"
            )
        case "drain":
            // Fill: every job ticks `ticks` times (concurrently across jobs), then drain.
            let fillStart = ContinuousClock.now
            await withTaskGroup(of: Void.self) { g in
                for spec in specs { g.addTask { for _ in 0..<ticks { await tick(spec) } } }
            }
            let fillSecs = (ContinuousClock.now - fillStart) / .seconds(1)
            let total = jobs * ticks * items
            // The deliverer's own loop, as the daemon runs it (claims, deliveries and settles
            // overlap), until no lane has items left.
            let start = ContinuousClock.now
            let delivering = Task { await deliverer.run() }
            deliverer.bell.ring()
            while try await store.nextLaneDueMs() != nil { try await Task.sleep(for: .milliseconds(1)) }
            let secs = (ContinuousClock.now - start) / .seconds(1)
            delivering.cancel()
            await delivering.value
            let delivered = Int(try await store.outboxStats().reduce(0) { $0 + $1.delivered })
            let sample =
                (try? String(contentsOfFile: sinkPath, encoding: .utf8))?.split(separator: "\n").first.map(String.init)
                ?? ""
            print(
                Support.jsonLine([
                    "mode": .string("drain"), "items": .int(Int64(total)), "delivered": .int(Int64(delivered)),
                    "per_sec": .double((Double(delivered) / secs).rounded()),
                    "fill_items_per_sec": .double((Double(total) / fillSecs).rounded()),
                    "sample_line": .string(sample),
                ]))
        default:
            try await http.shutdown()
            throw ValidationError("mode must be drain or tick-cost")
        }
        try await http.shutdown()
    }
}

enum Support {
    static func jsonLine(_ o: [String: JSONValue]) -> String { JSONValue.object(o).canonicalString }
}
