import ArgumentParser
import Foundation
import Logging
import PollerdCore
import PollerdDaemon
import PollerdPostgres

/// Prepares a PostgreSQL database for the bare libpq baseline (`Benchmarks/pg-bench/baseline.c`):
/// the schema, N registered noop jobs, and the claim and commit statements pollerd runs, written
/// to DIR/claim.sql and DIR/commit.sql.
struct PGSetupBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pg-setup",
        abstract: "Migrate a PostgreSQL database, register N noop jobs, and write pollerd's claim and commit SQL.")

    @Option(name: .customLong("state-db"), help: "The postgres:// URL.") var stateDB: String
    @Option(help: "Jobs to register (job-0 … job-N-1).") var jobs: Int = 10_000
    @Option(help: "Where to write claim.sql and commit.sql.") var out: String

    func run() async throws {
        var log = Logger(label: "bench")
        log.logLevel = .error
        let store = PostgresBackend.open(url: try PostgresURL(parsing: stateDB), time: .store, logger: log)
        try await store.withStore(clock: SystemWallClock()) { store in
            var registered = 0
            while registered < jobs {
                let n = min(10_000, jobs - registered)
                _ = try await store.register(
                    (registered..<(registered + n)).map {
                        JobRegistration(jobID: "job-\($0)", kind: "noop", agent: "default", pausedOnBoot: false)
                    }, nowMs: 0)
                registered += n
            }
        }
        let sql = PostgresBackend.claimAndCommitSQL
        try sql.claim.write(
            toFile: (out as NSString).appendingPathComponent("claim.sql"), atomically: true, encoding: .utf8)
        try sql.commit.write(
            toFile: (out as NSString).appendingPathComponent("commit.sql"), atomically: true, encoding: .utf8)
        print(
            "{\"jobs\":\(jobs),\"claim_sql_bytes\":\(sql.claim.utf8.count),\"commit_sql_bytes\":\(sql.commit.utf8.count)}"
        )
    }
}

/// NOTIFY's wake-up latency: one daemon's view commits a tick with an item, another view's
/// `onWake` handler hears of it; the time from the commit's call to the handler, over many
/// rounds, on one host (so on one clock).
struct PGWakeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pg-wake", abstract: "NOTIFY's wake-up latency between two views of one PostgreSQL store.")

    @Option(name: .customLong("state-db"), help: "The postgres:// URL of an empty database.") var stateDB: String
    @Option(help: "Rounds.") var rounds: Int = 500

    func run() async throws {
        var log = Logger(label: "bench")
        log.logLevel = .error
        let url = try PostgresURL(parsing: stateDB)
        let a = PostgresBackend.open(url: url, time: .store, logger: log)
        let b = PostgresBackend.open(url: url, time: .store, logger: log)
        let clock = SystemWallClock()
        let heard = AsyncStream<ContinuousClock.Instant>.makeStream()
        b.onWake { wake in if wake == .outbox { heard.continuation.yield(.now) } }
        var latencies: [Double] = []
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await a.run(clock: clock) }
            group.addTask { try await b.run(clock: clock) }
            try await a.prepare()
            try await b.prepare()
            _ = try await a.register(
                [JobRegistration(jobID: "j", kind: "noop", agent: "default", pausedOnBoot: false)], nowMs: clock.nowMs)
            var wakes = heard.stream.makeAsyncIterator()
            // The listener's first wake (on connecting), then quiet.
            _ = await wakes.next()
            try await Task.sleep(for: .milliseconds(200))
            for round in 0..<rounds {
                guard
                    case .granted(let lease) = try await a.acquireLease(
                        jobID: "j", holder: "bench:1:a", ttlMs: 60_000, nowMs: clock.nowMs, slotMs: nil)
                else { throw ValidationError("no lease") }
                var c = TickCommit(
                    lease: lease, startedAtMs: clock.nowMs, durationMs: 0, status: "ok", error: nil, newCursor: nil,
                    itemsSeen: 1, itemsDispatched: 0, consecutiveErrors: 0, nextRunAtMs: nil, pause: false,
                    pausedReason: nil, done: false, scheduleFingerprint: "s")
                c.outbox = OutboxBatch(
                    sinks: ["s"], entries: [OutboxEntry(key: "k\(round)", envelope: "{}")], dedupWindow: 0,
                    foundAtMs: clock.nowMs)
                // From the commit's call: the other view hears once the statement commits, which may
                // be before the reply reaches this one.
                let sent = ContinuousClock.now
                _ = try await a.commit([c], nowMs: clock.nowMs)
                guard let at = await wakes.next() else { break }
                latencies.append((at - sent) / .microseconds(1))
            }
            group.cancelAll()
        }
        latencies.sort()
        func pct(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        print(
            "{\"bench\":\"pg-wake\",\"rounds\":\(latencies.count),\"p50_us\":\(Int(pct(0.5))),\"p99_us\":\(Int(pct(0.99))),\"max_us\":\(Int(latencies.last ?? -1))}"
        )
    }
}
