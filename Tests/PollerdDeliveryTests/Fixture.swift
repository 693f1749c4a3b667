import Foundation
import Logging
import PollerdCore
import PollerdDelivery
import PollerdSQLite
import PollerdTestKit
import Synchronization

@testable import PollerdDaemon

let t0 = RFC3339.parse("2026-01-01T00:00:00Z")!

/// A poller that returns whatever items the test sets next.
final class ItemSource: Poller, Sendable {
    let kind = "source"
    private let next = Mutex<[JSONValue]>([])
    func set(_ items: [JSONValue]) { next.withLock { $0 = items } }
    func validate(config: JSONValue) throws(ConfigIssue) {}
    func tick(_ ctx: TickContext) async throws(PollerError) -> TickAck {
        TickAck(nextCursor: Data("c".utf8), items: next.withLock { $0 })
    }
}

/// A store, a clock, an executor with one item source and a deliverer: the whole delivery path.
struct Fixture {
    let dir: URL
    let store: any PollerdStore
    let clock = ManualClock(nowMs: t0)
    let source = ItemSource()
    let executor: TickExecutor
    let deliverer: Deliverer
    var settings = GlobalSettings()

    init(
        tuning: DeliveryTuning = DeliveryTuning(),
        sinks: SinkRegistry = SinkRegistry(broker: LocalBroker(), client: testHTTPClient)
    ) async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-dl-\(UUID().uuidString)")
        store = try SQLiteBackend.open(path: dir.appendingPathComponent("state.db").path)
        try await store.prepare()
        var log = Logger(label: "test")
        log.logLevel = .critical
        executor = TickExecutor(
            store: store, registry: PollerRegistry([source]), clock: clock, holder: "test:1:a", logger: log)
        deliverer = Deliverer(
            store: store, clock: clock, holder: "test:1:a", sinks: sinks, bell: executor.outboxBell, logger: log)
        settings.delivery = tuning
    }

    func job(_ sinks: [SinkSpec], id: String = "j") -> JobSpec {
        JobSpec(id: id, kind: "source", schedule: Schedule(.every(seconds: 10)), deliver: sinks)
    }

    /// Registers the jobs and tells the deliverer their sinks.
    func register(_ jobs: [JobSpec]) async throws {
        _ = try await store.register(
            jobs.map { JobRegistration(jobID: $0.id, kind: $0.kind, agent: $0.agent, pausedOnBoot: false) },
            nowMs: clock.nowMs)
        deliverer.update(jobs: jobs, tuning: settings.delivery)
    }

    /// Runs one manual tick that finds `items`.
    @discardableResult
    func tick(_ job: JobSpec, items: [JSONValue]) async -> TickReport {
        source.set(items)
        return await executor.execute(
            DueTick(jobID: job.id, dueMs: clock.nowMs, spec: job, offsetMs: 0), settings: settings, manual: true)
    }

    func lane(_ job: String = "j", _ sink: String) async throws -> OutboxLaneStats? {
        try await store.outboxStats().first { $0.jobID == job && $0.sink == sink }
    }

    func backlog(_ job: String = "j") async throws -> Int64 {
        try await store.state(jobID: job)?.outboxBacklog ?? -1
    }
}

func numbered(_ range: Range<Int>) -> [JSONValue] {
    range.map { .object(["id": .string("n\($0)"), "n": .int(Int64($0))]) }
}

/// The envelopes a sink received, decoded.
func envelopes(_ bodies: [Data]) throws -> [JSONValue] {
    try bodies.map { try JSONValue.parse($0) }
}

/// The JSON lines of a file, decoded.
func jsonLines(_ path: String) throws -> [JSONValue] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return try text.split(separator: "\n").map { try JSONValue.parse(Data($0.utf8)) }
}

/// The tests' webhook client, shared by every fixture for the test process's life (a client
/// must be shut down before it is freed; this one never is).
let testHTTPClient = SinkRegistry.makeHTTPClient()
