public import Logging
public import PollerdCore
import Synchronization

/// The long-lived plugin processes of this daemon, by plugin id. Loading the plugins again (a
/// reload) reuses a plugin whose manifest did not change, so only changed plugins restart.
/// The daemon owns one and passes it to the plugin loader; `pollerd tick` and `plugins check`
/// own theirs.
public final class PluginProcesses: Sendable {
    private let plugins = Mutex<[String: LongLivedPlugin]>([:])
    /// The clock the plugins' supervisors run on (backoffs, handshake timeouts, shutdown grace).
    public let clock: any WallClock
    let logger: Logger

    public init(clock: any WallClock, logger: Logger) {
        self.clock = clock
        self.logger = logger
    }

    /// The plugin for this spec: the running one if nothing changed, else a new one.
    func plugin(
        spec: PluginProcessSpec, policy: SupervisorPolicy, stderrTailLines: Int, maxConcurrentTicks: Int
    ) -> LongLivedPlugin {
        plugins.withLock { all in
            if let p = all[spec.pluginID], p.spec == spec, p.policy == policy, p.status.tailLines == stderrTailLines,
                p.permits.permits == maxConcurrentTicks
            {
                return p
            }
            let p = LongLivedPlugin(
                spec: spec, policy: policy,
                status: PluginStatus.logging(tailLines: stderrTailLines, pluginID: spec.pluginID, logger: logger),
                permits: AsyncSemaphore(permits: maxConcurrentTicks), clock: clock, logger: logger)
            // The old instance (if any) is stopped by `retain(only:)` once the new set is in use.
            all[spec.pluginID + "#" + String(UInt(bitPattern: ObjectIdentifier(p).hashValue))] = all[spec.pluginID]
            all[spec.pluginID] = p
            return p
        }
    }

    /// Stops every plugin process not in `keep` (removed or changed plugins after a reload).
    public func retain(only keep: [LongLivedPlugin]) async {
        let ids = Set(keep.map { ObjectIdentifier($0) })
        let stop: [LongLivedPlugin] = plugins.withLock { all in
            let gone = all.filter { !ids.contains(ObjectIdentifier($0.value)) }
            for k in gone.keys { all[k] = nil }
            return Array(gone.values)
        }
        for p in stop { await p.shutdown() }
    }

    /// Stops the plugin processes the registry no longer uses (after a reload swapped it in).
    public func retain(usedBy registry: PollerRegistry) async {
        let used = registry.kinds.compactMap { (registry.poller(for: $0) as? LongLivedPluginPoller)?.plugin }
        await retain(only: used)
    }

    /// What the registry's plugins are doing, for the daemon to record in the store.
    public static func statusRecords(registry: PollerRegistry, nowMs: Int64) -> [PluginStatusRecord] {
        var out: [String: PluginStatusRecord] = [:]
        for kind in registry.kinds {
            switch registry.poller(for: kind) {
            case let p as LongLivedPluginPoller:
                let pl = p.plugin
                var phase = "idle"
                var pid: Int32?
                switch pl.phase {
                case .idle: phase = "idle"
                case .starting: phase = "starting"
                case .running(let x):
                    phase = "running"
                    pid = x
                case .backingOff: phase = "backing_off"
                case .failed(let why): phase = "failed: \(why)"
                case .stopped: phase = "stopped"
                }
                out[pl.spec.pluginID] = PluginStatusRecord(
                    pluginID: pl.spec.pluginID, lifecycle: "long_lived", phase: phase, pid: pid,
                    restarts: pl.restarts, ticks: pl.status.ticks, failures: pl.status.failures,
                    lastError: pl.status.lastError, stderrTail: pl.status.stderrTail, updatedAtMs: nowMs)
            case let p as EphemeralPluginPoller:
                out[p.spec.pluginID] = PluginStatusRecord(
                    pluginID: p.spec.pluginID, lifecycle: "ephemeral", phase: "ready", pid: nil, restarts: 0,
                    ticks: p.status.ticks, failures: p.status.failures, lastError: p.status.lastError,
                    stderrTail: p.status.stderrTail, updatedAtMs: nowMs)
            default: break
            }
        }
        return out.values.sorted { $0.pluginID < $1.pluginID }
    }

    /// Stops every plugin process (daemon exit).
    public func shutdownAll() async {
        await retain(only: [])
    }
}
