import Dispatch
import Foundation
public import Logging
public import PollerdConfig
public import PollerdCore
public import PollerdPlugins
public import ServiceLifecycle
import Synchronization
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
    public init(
        runner: Runner, deliverer: Deliverer, processes: PluginProcesses, path: String, stateStore: String, watch: Bool,
        clock: any WallClock, load: @escaping @Sendable () -> JobFile,
        applied: @escaping @Sendable (JobFile) -> Void = { _ in }, logger: Logger
    ) {
        self.runner = runner
        self.deliverer = deliverer
        self.processes = processes
        self.path = path
        self.stateStore = stateStore
        self.watch = watch
        self.clock = clock
        self.load = load
        self.applied = applied
        self.logger = logger
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

    /// Runs `work` on a thread of its own; nil as soon as the calling task is cancelled (the
    /// work finishes on its thread, unobserved).
    static func unlessCancelled<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T? {
        let slot = ResumeOnce<T>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<T?, Never>) in
                slot.install(c)
                Thread { slot.resume(work()) }.start()
            }
        } onCancel: {
            slot.resume(nil)
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
        // Read on a thread of its own: a shutdown that begins meanwhile does not wait for it
        // (the parse itself is bounded by the job file's size and alias limits).
        guard let file = await Self.unlessCancelled(load) else {
            logger.notice(
                "reload abandoned: shutdown began while the job file was read",
                metadata: ["pollerd.reason": "\(reason)"])
            return nil
        }
        for w in file.warnings { logger.warning("job file warning", metadata: ["pollerd.problem": "\(w)"]) }
        guard file.errors.isEmpty else {
            for e in file.errors { logger.error("reload rejected", metadata: ["pollerd.problem": "\(e)"]) }
            logger.error(
                "reload rejected: the running jobs are unchanged",
                metadata: ["pollerd.reason": "\(reason)", "pollerd.errors": "\(file.errors.count)"])
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
            logger.info(
                "reloaded",
                metadata: [
                    "pollerd.reason": "\(reason)", "pollerd.add": "\(plan.add)", "pollerd.replace": "\(plan.replace)",
                    "pollerd.remove": "\(plan.remove)",
                ])
            return plan
        } catch {
            logger.error("reload failed", metadata: ["pollerd.error": "\(error)"])
            return nil
        }
    }
}

/// A continuation resumed once, by whichever comes first (a result, or a cancellation that may
/// arrive before the continuation is installed).
final class ResumeOnce<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T?, Never>?
        var early: T??
        var done = false
    }
    private let state = Mutex(State())

    func install(_ c: CheckedContinuation<T?, Never>) {
        let early: T?? = state.withLock { s in
            if let e = s.early {
                s.done = true
                return e
            }
            s.continuation = c
            return nil
        }
        if let early { c.resume(returning: early) }
    }

    func resume(_ value: T?) {
        let c: CheckedContinuation<T?, Never>? = state.withLock { s in
            guard !s.done else { return nil }
            guard let c = s.continuation else {
                if s.early == nil { s.early = .some(value) }
                return nil
            }
            s.done = true
            s.continuation = nil
            return c
        }
        c?.resume(returning: value)
    }
}
