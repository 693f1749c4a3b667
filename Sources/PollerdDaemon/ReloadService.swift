import Dispatch
import Foundation
public import Logging
public import PollerdConfig
public import PollerdCore
public import PollerdPlugins
public import ServiceLifecycle
import UnixSignals

/// Reloads the job file on SIGHUP and, with `watch`, when the file changes: validated as a whole
/// first (a file with any error is rejected and the running jobs stay), then applied to the
/// runner, the deliverer and the plugin processes.
public struct ReloadService: Service {
    let runner: Runner
    let deliverer: Deliverer
    let processes: PluginProcesses
    let path: String
    let stateStore: String
    let watch: Bool
    let clock: any WallClock
    /// Reads and validates the job file again (the admin API's dry run uses it too).
    public let load: @Sendable () -> JobFile
    /// Hands an accepted file to what lives outside the runner (the HTTP kinds' `pollers.http`,
    /// the admin API's view of the job file).
    let applied: @Sendable (JobFile) -> Void
    let logger: Logger

    /// - Parameters:
    ///   - stateStore: where the running store is (a change only takes effect at restart).
    ///   - load: reads and validates the job file again.
    public init(runner: Runner, deliverer: Deliverer, processes: PluginProcesses, path: String, stateStore: String, watch: Bool,
                clock: any WallClock, load: @escaping @Sendable () -> JobFile,
                applied: @escaping @Sendable (JobFile) -> Void = { _ in }, logger: Logger) {
        self.runner = runner; self.deliverer = deliverer; self.processes = processes; self.path = path
        self.stateStore = stateStore; self.watch = watch; self.clock = clock; self.load = load
        self.applied = applied; self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sighup) {
                        await reload(reason: "SIGHUP")
                    }
                }
                if watch {
                    group.addTask {
                        var last = fingerprint()
                        while !Task.isCancelled {
                            do { try await clock.sleep(untilMs: clock.nowMs + 1000) } catch { return }
                            let now = fingerprint()
                            if now != last {
                                last = now
                                await reload(reason: "file change")
                            }
                        }
                    }
                }
            }
        }
    }

    private func fingerprint() -> Data? {
        FileManager.default.contents(atPath: path)
    }

    /// Reads the job file and applies it; returns the plan, or nil when it was rejected.
    @discardableResult
    public func reload(reason: String) async -> ReloadPlan? {
        // systemd (Type=notify, ExecReload): a reload is under way, then ready again.
        let notifier = SystemdNotifier()
        // DispatchTime is CLOCK_MONOTONIC on Linux, the clock systemd wants here.
        notifier.notify("RELOADING=1\nMONOTONIC_USEC=\(DispatchTime.now().uptimeNanoseconds / 1000)")
        defer { notifier.notify("READY=1") }
        let file = load()
        for w in file.warnings { logger.warning("job file warning", metadata: ["pollerd.problem": "\(w)"]) }
        guard file.errors.isEmpty else {
            for e in file.errors { logger.error("reload rejected", metadata: ["pollerd.problem": "\(e)"]) }
            logger.error("reload rejected: the running jobs are unchanged", metadata: ["pollerd.reason": "\(reason)", "pollerd.errors": "\(file.errors.count)"])
            return nil
        }
        if file.stateDBPath != stateStore {
            logger.warning("state_db changed; the new path takes effect at the next restart")
        }
        do {
            runner.executor.replaceRegistry(file.registry)
            applied(file)
            let plan = try await runner.reload(jobs: file.jobs, settings: file.settings)
            deliverer.update(jobs: file.jobs, tuning: file.settings.delivery)
            // Plugins whose manifest changed or went away stop; unchanged ones keep running.
            await processes.retain(usedBy: file.registry)
            logger.info("reloaded", metadata: ["pollerd.reason": "\(reason)", "pollerd.add": "\(plan.add)", "pollerd.replace": "\(plan.replace)", "pollerd.remove": "\(plan.remove)"])
            return plan
        } catch {
            logger.error("reload failed", metadata: ["pollerd.error": "\(error)"])
            return nil
        }
    }
}
