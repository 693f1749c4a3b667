public import PollerdCore
public import PollerdPlugins
public import ServiceLifecycle
public import AsyncHTTPClient

/// Records this daemon's plugin status in the store every 2 s (when it changed), under the
/// daemon's id, for `pollerd plugins list` and the admin API in other processes. At shutdown it
/// records the plugins as stopped.
public struct PluginStatusService: Service {
    let runner: Runner
    let store: any PollerdStore
    let clock: any WallClock
    /// How often it looks.
    public static let periodMs: Int64 = 2000

    public init(runner: Runner, store: any PollerdStore, clock: any WallClock) {
        self.runner = runner
        self.store = store
        self.clock = clock
    }

    public func run() async throws {
        let daemonID = runner.daemonID
        await cancelWhenGracefulShutdown {
            var last: [PluginStatusRecord]?
            while !Task.isCancelled {
                let records = PluginProcesses.statusRecords(registry: runner.executor.registry, nowMs: clock.nowMs)
                if let last, Self.sameExceptTime(last, records) {} else {
                    try? await store.recordPluginStatuses(records, daemonID: daemonID)
                }
                last = records
                do { try await clock.sleep(untilMs: clock.nowMs + Self.periodMs) } catch { break }
            }
        }
        let stopped = PluginProcesses.statusRecords(registry: runner.executor.registry, nowMs: clock.nowMs).map {
            var r = $0; r.phase = "stopped"; r.pid = nil; return r
        }
        try? await store.recordPluginStatuses(stopped, daemonID: daemonID)
    }

    static func sameExceptTime(_ a: [PluginStatusRecord], _ b: [PluginStatusRecord]) -> Bool {
        a.map { var r = $0; r.updatedAtMs = 0; return r } == b.map { var r = $0; r.updatedAtMs = 0; return r }
    }
}

/// Owns the daemon's plugin processes inside the service group: placed first in the group, it
/// is shut down last, after the runner has drained its ticks, and stops every plugin process.
public struct PluginProcessesService: Service {
    let processes: PluginProcesses

    public init(processes: PluginProcesses) { self.processes = processes }

    public func run() async throws {
        // Wait for graceful shutdown (or cancellation), then stop every plugin.
        try? await gracefulShutdown()
        await processes.shutdownAll()
    }
}

/// Owns the webhook sinks' HTTP client inside the service group: shut down after the deliverer
/// (it comes before it in the group), it shuts the client down.
public struct HTTPClientService: Service {
    let client: HTTPClient

    public init(client: HTTPClient) { self.client = client }

    public func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}

/// The store's own background work as a service: first in the group, so it stops last.
public struct StoreService: Service {
    let store: any PollerdStore
    let clock: any WallClock

    public init(store: any PollerdStore, clock: any WallClock) {
        self.store = store
        self.clock = clock
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { try await store.run(clock: clock) }
    }
}
