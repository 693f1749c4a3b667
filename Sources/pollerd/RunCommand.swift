import ArgumentParser
import Foundation
import Logging
import PollerdConfig
import PollerdAdmin
import PollerdCore
import PollerdDelivery
import PollerdPlugins
import PollerdPollers
import PollerdSQLite
import ServiceLifecycle
import UnixSignals

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: schedule every valid job until SIGTERM or SIGINT.",
        discussion: """
            Invalid jobs are reported and left out; the valid ones run. SIGHUP reloads the job file \
            (validated as a whole first; a file with any error is rejected and the running jobs stay). \
            With --watch, a change to the file reloads it too. On SIGTERM/SIGINT no new tick starts, \
            ticks in flight get shutdown_grace_secs, then are cancelled; the exit code is 0.
            """
    )

    @OptionGroup var options: ConfigOptions

    @Flag(name: .long, help: "Reload when the job file changes.")
    var watch = false

    func run() async throws {
        let logger = Support.bootstrapLogging(level: options.logLevel)
        let file = Support.load(options.path)
        if file.isFatal {
            Support.printErr("error: \(options.path) cannot be used; nothing runs")
            throw Exit.config
        }
        let store: SQLiteStateStore
        do { store = try Support.openStore(file) } catch {
            Support.printErr("error: cannot open the state database \(file.stateDBPath): \(error)")
            throw Exit.config
        }
        let clock = SystemWallClock()
        let holder = Support.holderID()
        let reclaimed = try await store.reclaimLeases(isAbandoned: Support.isAbandoned, nowMs: clock.nowMs)
        if reclaimed > 0 { logger.notice("freed leases of a crashed daemon on this host", metadata: ["pollerd.leases": "\(reclaimed)"]) }
        let freedLanes = try await store.reclaimLaneClaims(isAbandoned: Support.isAbandoned, nowMs: clock.nowMs)
        if freedLanes > 0 { logger.notice("freed outbox lanes claimed by a crashed daemon on this host", metadata: ["pollerd.lanes": "\(freedLanes)"]) }
        let executor = TickExecutor(store: store, registry: file.registry, clock: clock, holder: holder, logger: logger)
        let metrics = AdminServer.bootstrapMetrics()
        let runner = Runner(settings: file.settings, jobs: file.jobs, executor: executor, onEvent: RunnerMetrics.record)
        let sinks = SinkRegistry()
        let deliverer = Deliverer(store: store, clock: clock, holder: holder, sinks: sinks, bell: executor.outboxBell, logger: logger)
        deliverer.update(jobs: file.jobs, tuning: file.settings.delivery)
        logger.info("pollerd starting", metadata: ["pollerd.config": "\(options.path)", "pollerd.state_db": "\(file.stateDBPath)", "pollerd.holder": "\(holder)", "pollerd.invalid_jobs": "\(file.errors.count)"])
        let reloader = ReloadService(runner: runner, deliverer: deliverer, path: options.path, stateDB: file.stateDBPath, watch: watch, logger: logger)
        var admin: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let listen = file.settings.adminListen {
            admin.append(.init(service: AdminServer.application(host: listen.host, port: listen.port, registry: metrics, logger: logger), successTerminationBehavior: .ignore))
        }
        let group = ServiceGroup(configuration: .init(
            services: admin + [
                .init(service: DelivererService(deliverer: deliverer), successTerminationBehavior: .ignore),
                .init(service: RunnerService(runner: runner), successTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: reloader, successTerminationBehavior: .ignore),
                .init(service: PluginStatusService(runner: runner, store: store), successTerminationBehavior: .ignore),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
        } catch {
            // A service failed (the admin server could not bind, say): the others were cancelled.
            let hint = "\(error)".contains("bind") ? file.settings.adminListen.map { " (admin_listen: \($0))" } ?? "" : ""
            Support.printErr("error: pollerd stopped: \(error)\(hint)")
            await PluginProcesses.shared.shutdownAll()
            throw Exit.transient
        }
        await PluginProcesses.shared.shutdownAll()
        logger.info("pollerd stopped")
    }
}

/// The runner as a service: graceful shutdown stops new ticks and drains those in flight.
struct RunnerService: Service {
    let runner: Runner

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await runner.run()
        } onGracefulShutdown: {
            runner.beginShutdown()
        }
    }
}

/// The outbox deliverer as a service: on shutdown it stops claiming and lets lanes in flight finish.
struct DelivererService: Service {
    let deliverer: Deliverer

    func run() async throws {
        await withGracefulShutdownHandler {
            await deliverer.run()
        } onGracefulShutdown: {
            deliverer.beginShutdown()
        }
    }
}

/// Records the plugins' status in the state database every 2 s, for `pollerd plugins list`.
struct PluginStatusService: Service {
    let runner: Runner
    let store: SQLiteStateStore

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var last: [PluginStatusRecord] = []
            while !Task.isCancelled {
                let now = SystemWallClock().nowMs
                let records = PluginProcesses.statusRecords(registry: runner.executor.registry, nowMs: now)
                let changed = records.map { var r = $0; r.updatedAtMs = 0; return r } != last.map { var r = $0; r.updatedAtMs = 0; return r }
                if changed || last.isEmpty { try? await store.recordPluginStatuses(records) }
                last = records
                try? await Task.sleep(for: .seconds(2))
            }
        }
        try? await store.recordPluginStatuses(PluginProcesses.statusRecords(registry: runner.executor.registry, nowMs: SystemWallClock().nowMs).map {
            var r = $0; r.phase = "stopped"; r.pid = nil; return r
        })
    }
}

/// Reloads the job file on SIGHUP and, with --watch, when the file changes.
struct ReloadService: Service {
    let runner: Runner
    let deliverer: Deliverer
    let path: String
    let stateDB: String
    let watch: Bool
    let logger: Logger

    func run() async throws {
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
                            try? await Task.sleep(for: .seconds(1))
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

    private func reload(reason: String) async {
        let file = Support.load(path, printProblems: false)
        for w in file.warnings { logger.warning("job file warning", metadata: ["pollerd.problem": "\(w)"]) }
        guard file.errors.isEmpty else {
            for e in file.errors { logger.error("reload rejected", metadata: ["pollerd.problem": "\(e)"]) }
            logger.error("reload rejected: the running jobs are unchanged", metadata: ["pollerd.reason": "\(reason)", "pollerd.errors": "\(file.errors.count)"])
            return
        }
        if file.stateDBPath != stateDB {
            logger.warning("state_db changed; the new path takes effect at the next restart")
        }
        do {
            runner.executor.replaceRegistry(file.registry)
            let plan = try await runner.reload(jobs: file.jobs, settings: file.settings)
            deliverer.update(jobs: file.jobs, tuning: file.settings.delivery)
            // Plugins whose manifest changed or went away stop; unchanged ones keep running.
            await PluginProcesses.shared.retain(usedBy: file.registry)
            logger.info("reloaded", metadata: ["pollerd.reason": "\(reason)", "pollerd.add": "\(plan.add)", "pollerd.replace": "\(plan.replace)", "pollerd.remove": "\(plan.remove)"])
        } catch {
            logger.error("reload failed", metadata: ["pollerd.error": "\(error)"])
        }
    }
}
