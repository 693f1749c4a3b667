public import Logging
import Metrics
public import PollerdCore
public import PollerdDelivery
public import ServiceLifecycle
import Synchronization

/// Drains the outbox: claims due lanes (one job's queue for one sink), hands their items to the
/// sink in order, and records the acks, retries and dead letters. An item leaves the outbox only
/// after its sink acknowledged it; a lane whose head fails waits (backing off) so order holds.
/// A `Service`: on graceful shutdown it stops claiming, and lanes in flight get a short grace.
public final class Deliverer: Service, Sendable {
    public let store: any OutboxStore
    public let clock: any WallClock
    public let holder: String
    public let sinks: SinkRegistry
    /// Rung when a commit queued items.
    public let bell: Doorbell
    private let logger: Logger

    /// How long a claim on a lane lasts: a deliverer that crashed on another host holds its
    /// lanes this long (one on this host is detected at the next start). A lane's turn is bounded
    /// well below it (a webhook batch yields after 30 s).
    public static let claimMs: Int64 = 120_000
    /// How long a lane whose sink is not configured waits before it is looked at again.
    public static let parkMs: Int64 = 30_000
    /// How long in-flight lanes get to finish once shutdown begins.
    public static let shutdownGraceMs: Int64 = 5000

    private struct Routing {
        var sinks: [String: [String: SinkSpec]] = [:]
        var tuning = DeliveryTuning()
        /// Bumped by every `update`; the store is told the lanes served when it moves.
        var version = 0
    }
    /// The routing version the store was last told of (`serveSinks`).
    private let served = Mutex(-1)
    private let routing = Mutex(Routing())
    private let hostProcesses: @Sendable () -> HostProcesses?
    private let stopping = Mutex(false)
    /// Settlements the store could not write (a full disk, say). Each is written again at every
    /// turn of the loop, at least once a second, until the store takes it: the lane's claim is
    /// released as soon as writes work again, not when the claim runs out, and the items its sink
    /// acked are not delivered again.
    private let unsettled = Mutex<[LaneSettle]>([])
    /// Gathers the settles of lanes that finish together into one store call.
    private let settles: StoreBatcher<LaneSettle, Bool>

    /// - Parameter hostProcesses: the processes alive on this host, read at start: the lane claims
    ///   of crashed daemons here are freed (nil: none are).
    public init(
        store: any OutboxStore, clock: any WallClock, holder: String, sinks: SinkRegistry, bell: Doorbell = Doorbell(),
        hostProcesses: @escaping @Sendable () -> HostProcesses? = { nil }, logger: Logger
    ) {
        self.store = store
        self.settles = StoreBatcher(maxBatch: 1024) { [store, holder, clock] batch in
            try await store.settle(batch, holder: holder, nowMs: clock.nowMs)
        }
        self.hostProcesses = hostProcesses
        self.clock = clock
        self.holder = holder
        self.sinks = sinks
        self.bell = bell
        self.logger = logger
    }

    /// Sets the jobs' sinks and the tuning (at boot and on reload).
    public func update(jobs: [JobSpec], tuning: DeliveryTuning) {
        var r = Routing()
        r.tuning = tuning
        r.version = routing.withLock { $0.version } + 1
        for j in jobs where !j.deliver.isEmpty || !j.alertSinks.isEmpty {
            r.sinks[j.id] = Dictionary(
                (j.deliver + j.alertSinks).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        }
        routing.withLock { $0 = r }
        bell.ring()
    }

    /// What one lane's turn came to.
    public struct LaneReport: Sendable, Equatable {
        public var lane: OutboxLane
        public var delivered: Int
        public var retried: Bool
        public var deadLettered: Bool
        public var parked: Bool
    }

    /// Claims every due lane (up to the concurrency) and delivers one batch of each, concurrently.
    /// For tests and benchmarks; the daemon runs `run()`.
    public func pass() async throws -> [LaneReport] {
        await settleAgain()
        try await tellServedSinks()
        let tuning = routing.withLock { $0.tuning }
        let lanes = try await store.claimLanes(
            holder: holder, nowMs: clock.nowMs, claimMs: Self.claimMs, limit: tuning.concurrency,
            batchSize: tuning.batchSize)
        return await withTaskGroup(of: LaneReport?.self) { group in
            for lane in lanes { group.addTask { await self.deliver(lane) } }
            var out: [LaneReport] = []
            for await r in group { if let r { out.append(r) } }
            return out.sorted { ($0.lane.jobID, $0.lane.sink) < ($1.lane.jobID, $1.lane.sink) }
        }
    }

    /// Delivers until graceful shutdown (then lanes in flight get `shutdownGraceMs`) or cancellation.
    public func run() async {
        await withGracefulShutdownHandler {
            await deliverLoop()
        } onGracefulShutdown: {
            self.beginShutdown()
        }
    }

    private func deliverLoop() async {
        do {
            var freed = 0
            if let host = hostProcesses() { freed = try await store.reclaimLaneClaims(on: host, nowMs: clock.nowMs) }
            if freed > 0 {
                logger.notice(
                    "freed outbox lanes claimed by a crashed daemon on this host",
                    metadata: ["pollerd.lanes": "\(freed)"])
            }
        } catch {
            logger.error("could not free the outbox lanes of crashed daemons", metadata: ["pollerd.error": "\(error)"])
        }
        enum Event: Sendable {
            case lane(LaneReport?)
            case woke
        }
        var lastGauge: Int64 = 0
        var loop = DeliveryLoop()
        await withTaskGroup(of: Event.self) { group in
            while !Task.isCancelled {
                let now = clock.nowMs
                if stopping.withLock({ $0 }) { loop.shutdown(nowMs: now, graceMs: Self.shutdownGraceMs) }
                if loop.shouldStop(nowMs: now) { break }
                await settleAgain()
                if now - lastGauge >= 5000 {
                    lastGauge = now
                    await refreshGauges(nowMs: now)
                }
                let tuning = routing.withLock { $0.tuning }
                let limit = loop.claimLimit(concurrency: tuning.concurrency)
                if limit > 0 {
                    do {
                        try await tellServedSinks()
                        let lanes = try await store.claimLanes(
                            holder: holder, nowMs: now, claimMs: Self.claimMs, limit: limit, batchSize: tuning.batchSize
                        )
                        storeWorked()
                        loop.claimed(lanes.count)
                        for lane in lanes { group.addTask { .lane(await self.deliver(lane)) } }
                    } catch is CancellationError {
                        break
                    } catch {
                        storeFailed("outbox claim failed", error)
                    }
                }
                if let wait = loop.armWait(nowMs: now) {
                    var until: Int64
                    switch wait {
                    case .until(let t): until = t
                    case .untilNextDueLane(let atMost):
                        until = atMost
                        if let due = try? await store.nextLaneDueMs() { until = max(now, min(atMost, due)) }
                    }
                    let wakeAt = until
                    group.addTask {
                        await self.bell.wait(untilMs: wakeAt, clock: self.clock)
                        return .woke
                    }
                }
                switch await group.next() {
                case .lane?: loop.laneDone()
                case .woke?: loop.woke()
                case nil: break
                }
            }
            group.cancelAll()
        }
        await settleAgain()
    }

    /// Tells the store which lanes this deliverer serves, when its job file changed since: it
    /// claims only those (a lane of another daemon's job file is left to that daemon).
    private func tellServedSinks() async throws {
        let told = served.withLock { $0 }
        guard let (version, routes) = routing.withLock({ r in r.version == told ? nil : (r.version, r.sinks) }) else {
            return
        }
        let sinks = routes.flatMap { job, byName in
            byName.values.map { ServedSink(jobID: job, sink: $0.name, fingerprint: $0.fingerprint) }
        }
        try await store.serveSinks(holder: holder, sinks)
        served.withLock { $0 = version }
    }

    /// Writes the settlements the store refused earlier; those it refuses again wait for the next turn.
    private func settleAgain() async {
        let pending = unsettled.withLock { list in
            defer { list = [] }
            return list
        }
        guard !pending.isEmpty else { return }
        switch await settles.submit(pending) {
        case .success:
            logger.notice(
                "outbox settlements written after the store refused them; their lanes are released",
                metadata: ["pollerd.lanes": "\(pending.count)"])
        case .failure:
            unsettled.withLock { $0 = pending + $0 }
        }
    }

    /// Settles a lane; a settlement the store refuses is kept and written again later
    /// (`settleAgain`). Nil when it was refused, else whether the claim still held.
    private func settle(_ lane: OutboxLane, _ settlement: LaneSettlement, log: Logger) async -> Bool? {
        let entry = LaneSettle(lane, settlement)
        switch await settles.submit([entry]) {
        case .success(let answers):
            storeWorked()
            return answers.first ?? false
        case .failure(let error):
            storeFailed(
                "outbox settle failed; it is written again once the store takes writes", error,
                metadata: ["pollerd.job.id": "\(lane.jobID)", "pollerd.sink": "\(lane.sink)"])
            unsettled.withLock { $0.append(entry) }
            return nil
        }
    }

    /// Whether the deliverer's store calls are failing: the first failure is logged at error, the
    /// next ones at debug until a call works again, which is logged once (a database that goes
    /// away fails every claim and settle; the log says so once, not once per lane and turn).
    private let failing = Mutex(false)

    private func storeFailed(_ message: Logger.Message, _ error: any Error, metadata: Logger.Metadata = [:]) {
        let first = failing.withLock { f in
            defer { f = true }
            return !f
        }
        var m = metadata
        m["pollerd.error"] = "\(error)"
        if first {
            logger.error("\(message) (said once while the store's calls fail)", metadata: m)
        } else {
            logger.debug(message, metadata: m)
        }
    }

    private func storeWorked() {
        let was = failing.withLock { f in
            defer { f = false }
            return f
        }
        if was { logger.notice("the outbox's store calls work again") }
    }

    /// Stops claiming lanes; those in flight get a short grace to finish.
    func beginShutdown() {
        stopping.withLock { $0 = true }
        bell.ring()
    }

    /// One batch of one lane: the items its claim came with.
    func deliver(_ claimed: ClaimedLane) async -> LaneReport? {
        let lane = claimed.lane
        let items = claimed.items
        let (spec, tuning) = routing.withLock { ($0.sinks[lane.jobID]?[lane.sink], $0.tuning) }
        var log = logger
        log[metadataKey: "pollerd.job.id"] = "\(lane.jobID)"
        log[metadataKey: "pollerd.sink"] = "\(lane.sink)"
        var report = LaneReport(lane: lane, delivered: 0, retried: false, deadLettered: false, parked: false)
        guard let spec else {
            let reason = "sink '\(lane.sink)' is not configured for job '\(lane.jobID)'; its items wait until it is"
            log.warning(
                "outbox lane parked: sink not configured", metadata: ["pollerd.outbox.pending": "\(items.count)"])
            report.parked = true
            _ = await settle(
                lane, LaneSettlement(acked: [], failure: .park(untilMs: clock.nowMs + Self.parkMs, reason: reason)),
                log: log)
            return report
        }
        let type = spec.target.type
        var settlement = LaneSettlement(acked: [], failure: nil)
        if !items.isEmpty {
            let result = await sinks.sink(for: spec).deliver(items, jobID: lane.jobID)
            let n = max(0, min(result.acked, items.count))
            settlement.acked = items.prefix(n).map(\.seq)
            report.delivered = n
            let now = clock.nowMs
            if let f = result.failure, n < items.count {
                let attempts = (n > 0 ? 0 : lane.attempts) + 1
                if Task.isCancelled {
                    settlement.failure = .park(untilMs: now, reason: "delivery interrupted by shutdown: \(f.message)")
                } else if !f.retryable || (attempts >= tuning.maxAttempts && !f.receiverFault) {
                    let why = f.retryable ? "\(f.message) (gave up after \(attempts) attempts)" : f.message
                    settlement.failure = .deadLetter(error: why)
                    report.deadLettered = true
                    log.warning(
                        "item dead-lettered",
                        metadata: ["pollerd.item.key": "\(items[n].key)", "pollerd.error": "\(why)"])
                } else {
                    let delay =
                        f.retryAfterMs ?? tuning.retryDelayMs(afterAttempts: attempts, unit: Double.random(in: 0..<1))
                    settlement.failure = .retry(atMs: now + delay, error: f.message)
                    report.retried = true
                    log.info(
                        "delivery failed; will retry",
                        metadata: [
                            "pollerd.attempts": "\(attempts)", "pollerd.retry_in_ms": "\(delay)",
                            "pollerd.error": "\(f.message)",
                        ])
                }
            }
        }
        switch await settle(lane, settlement, log: log) {
        case false?:
            log.warning("outbox lane claim lost before settling; its items will be delivered again")
            return report
        case nil: return report
        case true?: break
        }
        if report.delivered > 0 {
            Counter(label: "pollerd_delivery_items_total", dimensions: [("sink_type", type), ("outcome", "delivered")])
                .increment(by: report.delivered)
        }
        if report.retried {
            Counter(label: "pollerd_delivery_items_total", dimensions: [("sink_type", type), ("outcome", "retried")])
                .increment()
        }
        if report.deadLettered {
            Counter(
                label: "pollerd_delivery_items_total", dimensions: [("sink_type", type), ("outcome", "dead_lettered")]
            ).increment()
        }
        return report
    }

    /// Updates the outbox depth and oldest-item age gauges.
    func refreshGauges(nowMs: Int64) async {
        guard let stats = try? await store.outboxStats() else { return }
        var depth: [String: Int64] = [:]
        var oldest: [String: Int64] = [:]
        let specs = routing.withLock { $0.sinks }
        for s in stats where s.pending > 0 {
            let type = specs[s.jobID]?[s.sink]?.target.type ?? "unconfigured"
            depth[type, default: 0] += s.pending
            if let f = s.oldestFoundAtMs { oldest[type] = min(oldest[type] ?? f, f) }
        }
        for type in ["file", "webhook", "nats", "stdout", "unconfigured"] {
            Gauge(label: "pollerd_outbox_depth", dimensions: [("sink_type", type)]).record(depth[type] ?? 0)
            let age = oldest[type].map { Double(max(0, nowMs - $0)) / 1000 } ?? 0
            Gauge(label: "pollerd_outbox_oldest_age_seconds", dimensions: [("sink_type", type)]).record(age)
        }
    }
}
