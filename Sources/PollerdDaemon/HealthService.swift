public import Logging
import Metrics
import PollerdConfig
public import PollerdCore
public import ServiceLifecycle

/// Job-health gauges, from the store every 15 s: jobs by state, stale jobs (`max_staleness_secs`)
/// and the age of the oldest last success, over the jobs this daemon announced (its job file's).
/// The store counts them in one aggregate read. Labels stay bounded: states, never job ids.
public struct HealthService: Service {
    let store: any PollerdStore
    /// This daemon's id in the store (its announced jobs are the ones counted).
    let daemonID: String
    let live: LiveJobFile
    let clock: any WallClock
    let everyMs: Int64
    let logger: Logger
    /// Jobs that never ticked ok count their staleness from here (the daemon's start).
    let startedAtMs: Int64

    public init(
        store: any PollerdStore, daemonID: String, live: LiveJobFile, clock: any WallClock, everyMs: Int64 = 15_000,
        logger: Logger = Logger(label: "pollerd.health")
    ) {
        self.store = store
        self.daemonID = daemonID
        self.live = live
        self.clock = clock
        self.everyMs = everyMs
        self.logger = logger
        self.startedAtMs = clock.nowMs
    }

    /// What the gauges say.
    public struct Snapshot: Sendable, Equatable {
        public var byState: [JobHealth: Int]
        public var stale: Int
        public var oldestSuccessAgeSecs: Double
    }

    /// The store's question for this daemon's jobs: its job file's staleness limits, by limit.
    public static func query(
        jobs: [JobSpec], daemonID: String, breakerThreshold: Int, startedAtMs: Int64, nowMs: Int64
    ) -> JobHealthQuery {
        var staleAfter: [Int64: [String]] = [:]
        for j in jobs { if let limit = j.maxStalenessSecs { staleAfter[limit, default: []].append(j.id) } }
        return JobHealthQuery(
            daemonID: daemonID, breakerThreshold: breakerThreshold, nowMs: nowMs, staleAfterSecs: staleAfter,
            registeredAtMs: startedAtMs)
    }

    /// The gauges' values from the store's counts.
    public static func snapshot(_ counts: JobHealthCounts, nowMs: Int64) -> Snapshot {
        Snapshot(
            byState: counts.byState, stale: counts.stale,
            oldestSuccessAgeSecs: Double(counts.oldestLastOkAtMs.map { max(0, nowMs - $0) } ?? 0) / 1000)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var warned: [String: [String: String]] = [:]
            var upkeepWarned: Set<String> = []
            while !Task.isCancelled {
                // The store's upkeep (PostgreSQL: the oldest transaction, which holds back vacuum;
                // the tables' sizes and dead rows), as gauges, and its warnings logged once each.
                if let upkeep = try? await store.maintenance() {
                    if let secs = upkeep.oldestTransactionSecs {
                        Gauge(label: "pollerd_store_oldest_transaction_seconds").record(secs)
                    }
                    for t in upkeep.tables {
                        Gauge(label: "pollerd_store_table_bytes", dimensions: [("table", t.name)]).record(t.bytes)
                        Gauge(label: "pollerd_store_table_dead_rows", dimensions: [("table", t.name)]).record(
                            t.deadRows)
                    }
                    Gauge(label: "pollerd_store_warnings").record(upkeep.warnings.count)
                    for w in upkeep.warnings where !upkeepWarned.contains(w) { logger.warning("\(w)") }
                    upkeepWarned = Set(upkeep.warnings)
                }
                if let divergent = try? await Operator(store: store, clock: clock).divergentDefinitions() {
                    Gauge(label: "pollerd_jobs_defined_differently").record(divergent.count)
                    for (job, defs) in divergent.sorted(by: { $0.key < $1.key }) where warned[job] != defs {
                        logger.warning(
                            "live daemons define this job differently: each tick runs under the definition of the daemon that claims it, and delivers to its sinks",
                            metadata: [
                                "pollerd.job.id": "\(job)",
                                "pollerd.daemons": "\(defs.keys.sorted().joined(separator: ","))",
                            ])
                    }
                    warned = divergent
                }
                let file = live.file
                let now = clock.nowMs
                let query = Self.query(
                    jobs: file.jobs, daemonID: daemonID, breakerThreshold: file.settings.breakerThreshold,
                    startedAtMs: startedAtMs, nowMs: now)
                // One aggregate read (the store counts), not every job's row every 15 s.
                if let counts = try? await store.jobHealth(query) {
                    let s = Self.snapshot(counts, nowMs: now)
                    for state in JobHealth.allCases {
                        Gauge(label: "pollerd_jobs_by_state", dimensions: [("state", state.rawValue)]).record(
                            s.byState[state] ?? 0)
                    }
                    Gauge(label: "pollerd_jobs_stale").record(s.stale)
                    Gauge(label: "pollerd_oldest_success_age_seconds").record(s.oldestSuccessAgeSecs)
                }
                do { try await clock.sleep(untilMs: clock.nowMs + everyMs) } catch { return }
            }
        }
    }
}
