public import PollerdConfig
public import PollerdCore
import PollerdPollers

/// The plugins a daemon loaded: the router, one poller per plugin kind, their status.
public struct PluginSet: Sendable {
    public var router: PluginRouter
    public var manifests: [PluginManifest] = []
    public var pollers: [any Poller] = []
    /// The long-lived plugins (their processes start on first use).
    public var longLived: [LongLivedPlugin] = []
    public var statuses: [String: PluginStatus] = [:]
    /// Plugins left out, with why (id → reason).
    public var leftOut: [String: String] = [:]
    public var errors: [ConfigError] = []
    public var warnings: [ConfigError] = []

    /// Discovers the plugins under `directories` and builds their pollers on top of `builtins`.
    /// Long-lived plugins come from `processes`, which keeps an unchanged plugin running.
    public static func load(
        directories: [String], relativeTo base: String, builtins: PollerRegistry, processes: PluginProcesses
    ) -> PluginSet {
        let d = PluginManifestLoader.discover(directories: directories, relativeTo: base)
        var set = PluginSet(router: PluginRouter(builtinKinds: Set(builtins.kinds)))
        set.errors = d.errors
        set.warnings = d.warnings
        for m in d.manifests {
            let handle = PluginHandle(
                pluginID: m.id, kinds: m.kinds, brokerTopicPrefix: m.brokerTopicPrefix,
                lifecycle: PluginLifecycle(rawValue: m.lifecycle) ?? .longLived,
                maxConcurrentTicks: m.maxConcurrentTicks, tickTimeoutSecs: m.tickTimeoutSecs,
                entrypointCommand: m.command)
            do {
                try set.router.register(handle)
            } catch {
                set.errors.append(
                    ConfigError(file: m.path, line: 0, column: 0, message: "plugin '\(m.id)' left out: \(error)"))
                set.leftOut[m.id] = error.description
                continue
            }
            set.manifests.append(m)
            guard let command = m.command else {
                let why =
                    "no [plugin.entrypoint] command: pollerd runs plugins as processes (NATS-only plugins come with the scale-out work)"
                set.errors.append(
                    ConfigError(
                        file: m.path, line: 0, column: 0, message: "plugin '\(m.id)': \(why); its kinds are unavailable"
                    ))
                set.leftOut[m.id] = why
                continue
            }
            let spec = PluginProcessSpec(
                pluginID: m.id, command: command, args: m.args, env: m.env, inheritEnv: m.inheritEnv,
                workingDirectory: m.directory, tickTimeoutSecs: m.tickTimeoutSecs, maxReplyBytes: m.maxReplyBytes)
            if handle.lifecycle == .longLived {
                let policy = SupervisorPolicy(respawn: m.respawn, maxAttempts: m.maxAttempts, backoffMs: m.backoffMs)
                let plugin = processes.plugin(
                    spec: spec, policy: policy, stderrTailLines: m.stderrTailLines,
                    maxConcurrentTicks: m.maxConcurrentTicks)
                set.longLived.append(plugin)
                set.statuses[m.id] = plugin.status
                for k in m.kinds { set.pollers.append(LongLivedPluginPoller(kind: k, plugin: plugin)) }
                continue
            }
            let status = PluginStatus.logging(tailLines: m.stderrTailLines, pluginID: m.id, logger: processes.logger)
            set.statuses[m.id] = status
            let permits = AsyncSemaphore(permits: m.maxConcurrentTicks)
            for k in m.kinds {
                set.pollers.append(EphemeralPluginPoller(kind: k, spec: spec, permits: permits, status: status))
            }
        }
        return set
    }

    /// The built-ins plus every loaded plugin kind.
    public func registry(builtins: PollerRegistry) -> PollerRegistry {
        var r = builtins
        for p in pollers { r.register(p) }
        return r
    }

    /// A `JobFile.KindProvider` that loads plugins from the settings' `plugin_dirs` into `processes`.
    public static func kindProvider(builtins: PollerRegistry, processes: PluginProcesses) -> JobFile.KindProvider {
        { settings, dir in
            let set = PluginSet.load(
                directories: settings.pluginDirs, relativeTo: dir, builtins: builtins, processes: processes)
            return (set.registry(builtins: builtins), set.errors, set.warnings)
        }
    }
}
