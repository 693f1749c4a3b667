public import PollerdCore
import PollerdPlugins
public import ServiceLifecycle

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
                if let last, Self.sameExceptTime(last, records) {
                } else {
                    try? await store.recordPluginStatuses(records, daemonID: daemonID)
                }
                last = records
                do { try await clock.sleep(untilMs: clock.nowMs + Self.periodMs) } catch { break }
            }
        }
        let stopped = PluginProcesses.statusRecords(registry: runner.executor.registry, nowMs: clock.nowMs).map {
            var r = $0
            r.phase = "stopped"
            r.pid = nil
            return r
        }
        try? await store.recordPluginStatuses(stopped, daemonID: daemonID)
    }

    static func sameExceptTime(_ a: [PluginStatusRecord], _ b: [PluginStatusRecord]) -> Bool {
        a.map {
            var r = $0
            r.updatedAtMs = 0
            return r
        }
            == b.map {
                var r = $0
                r.updatedAtMs = 0
                return r
            }
    }
}
