import Logging
import NIOSSL
import PollerdCore
import PostgresNIO
import Synchronization

/// Hears the store's notifications (`LISTEN pollerd_outbox`, `LISTEN pollerd_control`) on a
/// connection of its own, outside the pool, and hands them to the handlers `onWake` registered.
/// A lost connection is made again with backoff (up to 5 s); after each connection every handler
/// hears every kind once, for what may have been missed meanwhile.
final class PostgresListener: Sendable {
    static let channels: [(String, StoreWake)] = [("pollerd_outbox", .outbox), ("pollerd_control", .controls)]

    private let url: PostgresURL
    private let logger: Logger
    private let handlers = Mutex<[@Sendable (StoreWake) -> Void]>([])

    init(url: PostgresURL, logger: Logger) {
        self.url = url
        self.logger = logger
    }

    func add(_ handler: @escaping @Sendable (StoreWake) -> Void) {
        handlers.withLock { $0.append(handler) }
    }

    func fire(_ wake: StoreWake) {
        for h in handlers.withLock({ $0 }) { h(wake) }
    }

    /// Listens until cancelled; `clock` paces the reconnections.
    func run(clock: any WallClock) async {
        var backoffMs: Int64 = 100
        var failing = false
        while !Task.isCancelled {
            do {
                let conn = try await PostgresConnection.connect(
                    configuration: try Self.configuration(url), id: Int.random(in: 0..<Int.max), logger: logger)
                if failing {
                    logger.notice("store notifications heard again", metadata: ["pollerd.store": "\(url.redacted)"])
                    failing = false
                }
                backoffMs = 100
                await withTaskGroup(of: Void.self) { group in
                    for (channel, wake) in Self.channels {
                        group.addTask {
                            try? await conn.listen(on: channel) { events in
                                // Subscribed: whatever came before is not known.
                                self.fire(wake)
                                for try await _ in events { self.fire(wake) }
                            }
                        }
                    }
                    // Both listens end with the connection (or with cancellation).
                    await group.waitForAll()
                }
                try? await conn.close()
            } catch {
                if !failing {
                    logger.warning(
                        "store notifications not heard: polling until the connection is back",
                        metadata: [
                            "pollerd.store": "\(url.redacted)",
                            "pollerd.error": "\(PostgresStoreError(error, url: url))",
                        ])
                    failing = true
                }
            }
            if Task.isCancelled { break }
            try? await clock.sleep(untilMs: clock.nowMs + backoffMs)
            backoffMs = min(backoffMs * 2, 5000)
        }
    }

    /// A single connection's configuration for `url` (the pool's, by PostgresConnection's types).
    static func configuration(_ url: PostgresURL) throws -> PostgresConnection.Configuration {
        if let dir = url.socketDirectory {
            return PostgresConnection.Configuration(
                unixSocketPath: dir + "/.s.PGSQL.\(url.port)", username: url.user, password: url.password,
                database: url.database)
        }
        let tls: PostgresConnection.Configuration.TLS =
            switch PostgresBackend.tlsPolicy(url) {
            case nil: .disable
            case (let t, required: false)?: .prefer(try NIOSSLContext(configuration: t))
            case (let t, required: true)?: .require(try NIOSSLContext(configuration: t))
            }
        var config = PostgresConnection.Configuration(
            host: url.host ?? "localhost", port: url.port, username: url.user, password: url.password,
            database: url.database, tls: tls)
        if url.sslMode == .verifyFull { config.options.tlsServerName = url.host }
        return config
    }
}
