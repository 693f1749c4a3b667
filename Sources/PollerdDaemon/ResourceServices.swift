public import AsyncHTTPClient
import Hummingbird
public import Logging
public import PollerdAdmin
public import PollerdCore
public import PollerdDelivery
public import PollerdHTTP
import PollerdNATS
public import PollerdPlugins
public import Prometheus
public import ServiceLifecycle

// The services that own a resource's lifetime inside the daemon's group: each waits for the
// graceful shutdown, then closes what it owns. Their place in the group decides when.

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

/// Owns the HTTP kinds' fetcher: shut down after the runner has drained its ticks, it closes
/// every pooled connection.
public struct HTTPFetcherService: Service {
    let fetcher: HTTPFetcher

    public init(fetcher: HTTPFetcher) { self.fetcher = fetcher }

    public func run() async throws {
        try? await gracefulShutdown()
        await fetcher.shutdown()
    }
}

/// The admin server in the service group. On the default address (the job file named none) a
/// failure to start (the port is taken: a second daemon on this host) is logged and the daemon
/// runs on without the API; on an address the file names, it stops the daemon.
public struct AdminService: Service {
    let listen: ListenAddress
    let explicit: Bool
    let probeListen: ListenAddress?
    let auth: AdminAuth
    let api: AdminAPI
    let metrics: PrometheusCollectorRegistry
    let logger: Logger

    public init(
        listen: ListenAddress, explicit: Bool, probeListen: ListenAddress? = nil, auth: AdminAuth, api: AdminAPI,
        metrics: PrometheusCollectorRegistry, logger: Logger
    ) {
        self.listen = listen
        self.explicit = explicit
        self.probeListen = probeListen
        self.auth = auth
        self.api = api
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        do {
            let dashboard = try Dashboard(api: api)
            let app = try AdminServer.application(
                host: listen.host, port: listen.port, registry: metrics, auth: auth, logger: logger,
                sessions: AdminSessions(clock: api.clock),
                routes: {
                    api.register(on: $0)
                    dashboard.register(on: $0)
                })
            if auth.isOpen {
                logger.warning(
                    "the admin API has no token: anyone on this machine may use it (set admin.tokens or POLLERD_ADMIN_TOKEN)",
                    metadata: ["pollerd.admin_listen": "\(listen)"])
            } else if !AdminServer.isLoopback(listen.host) {
                logger.warning(
                    "the admin API and the dashboard listen beyond this machine, in plain HTTP: tokens and session cookies cross the network unencrypted; put a TLS proxy in front, or listen on 127.0.0.1",
                    metadata: ["pollerd.admin_listen": "\(listen)"])
            }
            if let probeListen {
                // The probes alone, on a listener with a backlog of its own.
                let probes = try AdminServer.application(
                    host: probeListen.host, port: probeListen.port, registry: metrics, auth: auth, logger: logger,
                    routes: { api.registerProbes(on: $0) })
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await app.run() }
                    group.addTask { try await probes.run() }
                    try await group.waitForAll()
                }
            } else {
                try await app.run()
            }
        } catch {
            if explicit || Task.isCancelled { throw error }
            logger.error(
                "the admin API did not start on the default address; the daemon runs without it (set admin.listen, or admin_listen: off)",
                metadata: ["pollerd.admin_listen": "\(listen)", "pollerd.error": "\(error)"])
            try? await gracefulShutdown()
        }
    }
}

/// Tells systemd (`STOPPING=1`) when a graceful shutdown begins.
public struct NotifyStoppingService: Service {
    let notifier: SystemdNotifier

    public init(notifier: SystemdNotifier) { self.notifier = notifier }

    public func run() async throws {
        try? await gracefulShutdown()
        notifier.notify("STOPPING=1")
    }
}

/// Owns the NATS broker's connection inside the service group: it connects and reconnects for
/// the daemon's life, and closes after the deliverer stopped (it comes before it in the group).
public struct NATSService: Service {
    let broker: NATSBroker

    public init(broker: NATSBroker) { self.broker = broker }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await broker.client.run()
        } onGracefulShutdown: {
            broker.client.close()
        }
    }
}
