public import Logging
import Metrics
import PollerdConfig
public import PollerdCore
public import ServiceLifecycle

/// Job-health gauges, from the store every 15 s: jobs by state, stale jobs (`max_staleness_secs`)
/// and the age of the oldest last success, over the jobs of this daemon's job file. Labels stay
/// bounded: states, never job ids.
public struct HealthService: Service {
    let store: any PollerdStore
    let live: LiveJobFile
    let clock: any WallClock
    let everyMs: Int64
    let logger: Logger
    /// Jobs that never ticked ok count their staleness from here (the daemon's start).
    let startedAtMs: Int64

    public init(
        store: any PollerdStore, live: LiveJobFile, clock: any WallClock, everyMs: Int64 = 15_000,
        logger: Logger = Logger(label: "pollerd.health")
    ) {
        self.store = store
        self.live = live
        self.clock = clock
        self.everyMs = everyMs
        self.logger = logger
        self.startedAtMs = clock.nowMs
    }

    /// What the gauges say, computed (pure, for tests).
    public struct Snapshot: Sendable, Equatable {
        public var byState: [JobHealth: Int]
        public var stale: Int
        public var oldestSuccessAgeSecs: Double
    }

    public static func snapshot(
        rows: [JobStateRow], jobs: [JobSpec], breakerThreshold: Int, startedAtMs: Int64, nowMs: Int64
    ) -> Snapshot {
        var byState: [JobHealth: Int] = [:]
        var stale = 0
        var oldest: Int64 = 0
        let specs = Dictionary(jobs.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for r in rows {
            guard let spec = specs[r.jobID] else { continue }
            byState[JobHealth.of(r, breakerThreshold: breakerThreshold), default: 0] += 1
            if JobHealth.isStale(r, maxStalenessSecs: spec.maxStalenessSecs, registeredAtMs: startedAtMs, nowMs: nowMs)
            {
                stale += 1
            }
            if let ok = r.lastOkAtMs, !r.paused, !r.done { oldest = max(oldest, nowMs - ok) }
        }
        return Snapshot(byState: byState, stale: stale, oldestSuccessAgeSecs: Double(oldest) / 1000)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var warned: [String: [String: String]] = [:]
            while !Task.isCancelled {
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
                if let rows = try? await store.allStates() {
                    let file = live.file
                    let s = Self.snapshot(
                        rows: rows, jobs: file.jobs, breakerThreshold: file.settings.breakerThreshold,
                        startedAtMs: startedAtMs, nowMs: clock.nowMs)
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
