public import AsyncHTTPClient
public import PollerdCore
public import PollerdHTTP
public import PollerdPlugins
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
