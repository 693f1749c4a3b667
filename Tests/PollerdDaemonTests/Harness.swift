import Foundation
import Logging
import PollerdCore
import PollerdPollers
import PollerdSQLite
import PollerdTestKit
import Synchronization

@testable import PollerdDaemon

let t0 = RFC3339.parse("2026-01-01T00:00:00Z")!

func tempDBPath() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-rt-\(UUID().uuidString)/state.db").path
}

/// A poller whose ticks a test scripts.
struct ScriptedPoller: Poller {
    let kind: String
    let concurrencyLimit: ConcurrencyLimit?
    let body: @Sendable (TickContext) async throws(PollerError) -> TickAck
    init(
        kind: String = "scripted", limit: ConcurrencyLimit? = nil,
        body: @escaping @Sendable (TickContext) async throws(PollerError) -> TickAck
    ) {
        self.kind = kind
        self.concurrencyLimit = limit
        self.body = body
    }
    func validate(config: JSONValue) throws(ConfigIssue) {}
    func tick(_ ctx: TickContext) async throws(PollerError) -> TickAck { try await body(ctx) }
}

/// Holds ticks until the test opens it; counts how many wait at once. Honours cancellation.
final class Gate: Sendable {
    private struct State {
        var open = false
        var waiting: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var next: UInt64 = 0
        var entered = 0
        var concurrent = 0
        var maxConcurrent = 0
    }
    private let state = Mutex(State())
    let entered = EventLog()

    /// Waits until opened (or cancelled). Returns false when cancelled.
    func pass() async -> Bool {
        let id = state.withLock { s -> UInt64 in
            s.next += 1
            s.concurrent += 1
            s.maxConcurrent = max(s.maxConcurrent, s.concurrent)
            return s.next
        }
        entered.record(.started(jobs: 0))
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let go = state.withLock { s -> Bool in
                    if s.open || Task.isCancelled { return true }
                    s.waiting[id] = c
                    return false
                }
                if go { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiting.removeValue(forKey: id) }?.resume()
        }
        state.withLock { $0.concurrent -= 1 }
        return !Task.isCancelled
    }

    func open() {
        let all = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiting = [:] }
            return Array(s.waiting.values)
        }
        for c in all { c.resume() }
    }

    var maxConcurrent: Int { state.withLock { $0.maxConcurrent } }

    /// Waits until `n` ticks have entered the gate.
    func waitEntered(_ n: Int) async {
        await entered.wait { $0.count >= n }
    }
}

struct Harness {
    let clock: ManualClock
    let store: any PollerdStore
    let log = EventLog()
    let runner: Runner

    /// - wrap: what the runner sees of the store (a `FaultyStore`, say); the test's `store` stays the real one.
    init(
        jobs: [JobSpec], settings: GlobalSettings = GlobalSettings(), pollers: [any Poller],
        path: String = tempDBPath(), clock: ManualClock? = nil, holder: String = "test-holder",
        logger custom: Logger? = nil, wrap: (any StateStore) -> any StateStore = { $0 }
    ) async throws {
        let clock = clock ?? ManualClock(nowMs: t0)
        self.clock = clock
        store = try SQLiteBackend.open(path: path, synchronousFull: false)
        try await store.prepare()
        var registry = Builtins.registry()
        for p in pollers { registry.register(p) }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let executor = TickExecutor(
            store: wrap(store), registry: registry, clock: clock, holder: holder, logger: custom ?? logger)
        let log = self.log
        runner = Runner(
            settings: settings, jobs: jobs, executor: executor, controlPollMs: 3_600_000, onEvent: { log.record($0) })
    }

    /// Starts the runner and waits until it has loaded every job.
    func start() async -> Task<Void, any Error> {
        let r = runner
        let task = Task { try await r.run() }
        await log.wait { evs in evs.contains { if case .started = $0 { return true } else { return false } } }
        return task
    }

    func row(_ id: String) async throws -> JobStateRow? { try await store.state(jobID: id) }
}

func every(
    _ id: String, _ secs: Int64, kind: String = "noop", config: JSONValue = .object([:]), timeout: Int64 = 60,
    pausedOnBoot: Bool = false, catchUp: CatchUp = .once
) -> JobSpec {
    JobSpec(
        id: id, kind: kind, schedule: Schedule(.every(seconds: secs), jitterMs: 0), config: config,
        pausedOnBoot: pausedOnBoot, timeoutSecs: timeout, catchUp: catchUp)
}
