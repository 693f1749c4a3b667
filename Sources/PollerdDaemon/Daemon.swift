import Foundation
public import Logging
import PollerdAdmin
public import PollerdConfig
public import PollerdCore
public import PollerdDelivery
public import PollerdHTTP
public import PollerdPlugins
import PollerdPollers
public import ServiceLifecycle
import UnixSignals

/// The daemon: one `ServiceGroup` holding every long-running piece (the plugin processes, the
/// webhook client, the admin server, the deliverer, the runner, the reloader and the plugin
/// status reporter), with
/// SIGTERM/SIGINT graceful shutdown. The group shuts services down in reverse order, so the
/// runner drains its ticks before the deliverer stops, and plugin processes stop last.
public struct Daemon: Sendable {
    /// Where the job file is (reloads read it again).
    public let configPath: String
    /// The store, opened by the caller: the daemon names no backend.
    public let store: any PollerdStore
    /// A description of where the store is, for logs and the reload warning.
    public let storeLocation: String
    public let clock: any WallClock
    public let processes: PluginProcesses
    /// The HTTP client of the built-in HTTP kinds (`rss`, `http_json`), with its SSRF guard.
    public let fetcher: HTTPFetcher
    /// The in-process broker the `nats` sinks publish on (until the NATS client exists).
    public let broker = LocalBroker()
    public let holder: String
    public let watch: Bool
    public let logger: Logger

    public init(
        configPath: String, store: any PollerdStore, storeLocation: String, clock: any WallClock = SystemWallClock(),
        processes: PluginProcesses, fetcher: HTTPFetcher = HTTPFetcher(), holder: String = HolderIdentity.make(),
        watch: Bool = false, logger: Logger
    ) {
        self.configPath = configPath
        self.store = store
        self.storeLocation = storeLocation
        self.clock = clock
        self.processes = processes
        self.fetcher = fetcher
        self.holder = holder
        self.watch = watch
        self.logger = logger
    }

    /// Loads a job file with the built-in kinds (the HTTP ones on `fetcher`) and the plugins of
    /// its `plugin_dirs`, whose long-lived processes come from `processes`.
    public static func loadJobFile(
        _ path: String, processes: PluginProcesses, fetcher: HTTPFetcher, nowMs: Int64
    ) -> JobFile {
        JobFile.load(
            path: path, kinds: PluginSet.kindProvider(builtins: builtins(fetcher: fetcher), processes: processes),
            nowMs: nowMs)
    }

    /// Every built-in kind: `noop`, `command`, and `rss`, `http_json`, `webhook_poll` on `fetcher`.
    public static func builtins(fetcher: HTTPFetcher) -> PollerRegistry {
        Builtins.registry(adding: HTTPKinds.pollers(fetcher: fetcher))
    }

    /// The service group for a validated job file. Throws when the broker's settings cannot
    /// make a client (a TLS file that cannot be read).
    public func serviceGroup(file: JobFile) throws -> ServiceGroup {
        fetcher.configure(file.settings.http)
        let executor = TickExecutor(store: store, registry: file.registry, clock: clock, holder: holder, logger: logger)
        let notifier = SystemdNotifier()
        let runner = Runner(
            settings: file.settings, jobs: file.jobs, executor: executor, jobFile: configPath,
            hostProcesses: HolderIdentity.localProcesses,
            onEvent: { event in
                RunnerMetrics.record(event)
                // systemd (Type=notify): ready once the jobs are registered and planned.
                if case .started = event { notifier.notify("READY=1") }
            })
        let httpClient = SinkRegistry.makeHTTPClient()
        // The NATS broker, when configured: a daemon that cannot reach it still starts, and its
        // `nats` sinks hold their items in the outbox until it answers.
        var logNATS = logger
        logNATS[metadataKey: "pollerd.component"] = "nats"
        let nats = try file.settings.broker.map { try NATSBroker(settings: $0, logger: logNATS) }
        nats?.update(tuning: file.settings.delivery)
        let sinks = SinkRegistry(broker: broker, nats: nats, client: httpClient, logger: logger)
        let deliverer = Deliverer(
            store: store, clock: clock, holder: holder, sinks: sinks, bell: executor.outboxBell,
            hostProcesses: HolderIdentity.localProcesses, logger: logger)
        deliverer.update(jobs: file.jobs, tuning: file.settings.delivery)
        // Other daemons' new items and operators' controls, as the store hears of them (polling
        // stays the fallback).
        store.onWake { [bell = deliverer.bell, controls = runner.controlBell] wake in
            switch wake {
            case .outbox: bell.ring()
            case .controls: controls.ring()
            }
        }
        let processes = self.processes
        let fetcher = self.fetcher
        let live = LiveJobFile(file)
        let path = configPath
        let clock = self.clock
        let reloader = ReloadService(
            runner: runner, deliverer: deliverer, processes: processes, path: path, stateStore: file.stateDBPath,
            watch: watch, clock: clock,
            load: { Daemon.loadJobFile(path, processes: processes, fetcher: fetcher, nowMs: clock.nowMs) },
            applied: { file in
                fetcher.configure(file.settings.http)
                live.replace(file)
                nats?.update(tuning: file.settings.delivery)
            },
            logger: logger)
        // Every service that reads or writes the store starts once the store is prepared.
        let readiness = StoreReadiness()
        func afterReady(_ service: some Service) -> some Service { AfterStoreReady(service, readiness: readiness) }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(
                service: StoreService(store: store, clock: clock, readiness: readiness),
                successTerminationBehavior: .ignore),
            // Stopped after the plugin processes: its last sweep takes what they left behind.
            .init(
                service: ProcessSweepService(clock: clock, live: live, logger: logger),
                successTerminationBehavior: .ignore),
            .init(service: PluginProcessesService(processes: processes), successTerminationBehavior: .ignore),
            .init(service: HTTPClientService(client: httpClient), successTerminationBehavior: .ignore),
        ]
        // Stopped after the deliverer (the group stops services in reverse order).
        if let nats { services.append(.init(service: NATSService(broker: nats), successTerminationBehavior: .ignore)) }
        services += [
            .init(service: HTTPFetcherService(fetcher: fetcher), successTerminationBehavior: .ignore)
        ]
        if let listen = file.settings.adminListen {
            let api = AdminAPI(
                store: store, clock: clock, live: live, runner: runner, reloader: reloader, holder: holder,
                broker: nats, logger: logger)
            services.append(
                .init(
                    service: afterReady(
                        AdminService(
                            listen: listen, explicit: file.settings.admin.listenExplicit,
                            probeListen: file.settings.admin.probeListen,
                            auth: AdminAuth.from(file.settings.admin, environment: ProcessInfo.processInfo.environment),
                            api: api, metrics: AdminServer.bootstrapMetrics(), logger: logger)),
                    successTerminationBehavior: .ignore))
        }
        services += [
            .init(service: afterReady(deliverer), successTerminationBehavior: .ignore),
            .init(service: afterReady(runner), successTerminationBehavior: .gracefullyShutdownGroup),
            .init(service: afterReady(reloader), successTerminationBehavior: .ignore),
            .init(
                service: afterReady(PluginStatusService(runner: runner, store: store, clock: clock)),
                successTerminationBehavior: .ignore),
            .init(
                service: afterReady(
                    HealthService(store: store, daemonID: holder, live: live, clock: clock, logger: logger)),
                successTerminationBehavior: .ignore),
            // Last in the group, so the first to hear of a shutdown: tells systemd it began.
            .init(service: NotifyStoppingService(notifier: notifier), successTerminationBehavior: .ignore),
        ]
        // ServiceLifecycle's own chatter (services starting, stopping) shows at trace only.
        var lifecycleLogger = logger
        lifecycleLogger.logLevel = logger.logLevel == .trace ? .trace : max(logger.logLevel, .notice)
        return ServiceGroup(
            configuration: .init(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: lifecycleLogger))
    }

    /// Runs the daemon until SIGTERM or SIGINT (or a service fails).
    public func run(file: JobFile) async throws {
        logger.info(
            "pollerd starting",
            metadata: [
                "pollerd.config": "\(configPath)", "pollerd.store": "\(storeLocation)",
                "pollerd.holder": "\(holder)", "pollerd.invalid_jobs": "\(Set(file.errors.compactMap(\.jobID)).count)",
            ])
        try await serviceGroup(file: file).run()
        logger.info("pollerd stopped")
    }
}
