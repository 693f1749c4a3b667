public import Logging
import Metrics
import PollerdConfig
public import PollerdCore
import PollerdPollers
public import ServiceLifecycle

/// Contains what plugins and commands start: the daemon becomes a child subreaper, so a process
/// that escapes its plugin's process group (a double fork, `setsid()`) is handed to the daemon
/// when its parent exits, and every second this service kills and reaps such escapees, and
/// kills the whole tree of a plugin or command with more than `max_plugin_processes` processes
/// below it (a fork bomb). Each is logged with its pid and name, and counted in
/// `pollerd_processes_killed_total{reason="escaped"|"over_cap"}`.
public struct ProcessSweepService: Service {
    let clock: any WallClock
    let live: LiveJobFile
    let logger: Logger
    let everyMs: Int64

    public init(clock: any WallClock, live: LiveJobFile, logger: Logger, everyMs: Int64 = 1000) {
        self.clock = clock
        self.live = live
        self.logger = logger
        self.everyMs = everyMs
    }

    public func run() async throws {
        if !ProcessTree.becomeSubreaper() {
            logger.warning("cannot become a child subreaper: processes that leave a plugin's process group outlive it")
        }
        let settings = live.file.settings
        ProcessTree.useNice(settings.pluginNice)
        switch PluginCgroups.setUp(
            maxProcesses: settings.maxPluginProcesses > 0 ? settings.maxPluginProcesses : nil,
            memoryMaxBytes: settings.pluginMemoryMaxMB.map { Int64($0) << 20 })
        {
        case .success(let c):
            let stale = PluginCgroups.sweepStale(base: c.base) { pid, start in
                guard let p = ProcessTree.read(pid), p.state != "Z" else { return false }
                return start == nil || p.startTicks == start
            }
            if !stale.killed.isEmpty || stale.removed > 0 {
                logger.notice(
                    "killed what daemons that are gone left running in their plugin cgroups, and removed the cgroups",
                    metadata: [
                        "pollerd.cgroups.killed": "\(stale.killed.joined(separator: ","))",
                        "pollerd.cgroups.removed": "\(stale.killed.count + stale.removed)",
                    ])
            }
            ProcessTree.use(c)
            logger.info(
                "plugins and commands run in cgroups of their own",
                metadata: [
                    "pollerd.cgroup": "\(c.base)",
                    "pollerd.cgroup.controllers":
                        "\(c.controllers.isEmpty ? "none (kill only)" : c.controllers.sorted().joined(separator: ","))",
                ])
        case .failure(let why):
            logger.notice("plugins and commands run without cgroups: \(why); the process sweep alone contains them")
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                sweepOnce()
                do { try await clock.sleep(untilMs: clock.nowMs + everyMs) } catch { return }
            }
        }
        // Last words: what escaped and is still here goes with the daemon.
        sweepOnce(minAgeMs: 0)
        ProcessTree.use(nil)
    }

    func sweepOnce(minAgeMs: Int64 = 1000) {
        let cap = live.file.settings.maxPluginProcesses
        let result = ProcessTree.sweep(minAgeMs: minAgeMs, cap: cap > 0 ? cap : nil)
        for e in result.escapees {
            logger.warning(
                "killed a process that left its plugin's or command's process group",
                metadata: ["pollerd.pid": "\(e.pid)", "pollerd.process": "\(e.comm)"])
        }
        if !result.escapees.isEmpty {
            Counter(label: "pollerd_processes_killed_total", dimensions: [("reason", "escaped")]).increment(
                by: result.escapees.count)
        }
        for o in result.overCap {
            logger.error(
                "killed a plugin or command with more processes than max_plugin_processes, and all below it",
                metadata: [
                    "pollerd.pid": "\(o.pid)", "pollerd.process": "\(o.label)", "pollerd.processes": "\(o.processes)",
                    "pollerd.max_plugin_processes": "\(cap)",
                ])
        }
        if !result.overCap.isEmpty {
            Counter(label: "pollerd_processes_killed_total", dimensions: [("reason", "over_cap")]).increment(
                by: result.overCap.count)
        }
    }
}
