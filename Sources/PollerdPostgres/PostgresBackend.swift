public import Logging
import NIOSSL
public import PollerdCore
import PostgresNIO

/// The PostgreSQL backend behind the store contract: the one name the rest of pollerd uses to
/// open it. No code outside this target names the concrete store type.
public enum PostgresBackend {
    /// How the daemon's connections to PostgreSQL are set up (`pollers.postgres` in the job file).
    public struct Tuning: Sendable, Equatable {
        /// The most connections the daemon opens.
        public var poolSize: Int
        /// The server aborts a statement that runs longer (0: no bound).
        public var statementTimeoutMs: Int
        public init(poolSize: Int = 10, statementTimeoutMs: Int = 30_000) {
            self.poolSize = poolSize
            self.statementTimeoutMs = statementTimeoutMs
        }
    }

    /// Opens the store at `url` (no I/O: connections are made once `run(clock:)` runs). Expiries
    /// follow the database's clock unless `time` is `.caller` (the contract tests drive time).
    public static func open(
        url: PostgresURL, tuning: Tuning = Tuning(), time: StoreTime = .store, logger: Logger
    ) -> any PollerdStore {
        PostgresStateStore(url: url, tuning: tuning, time: time, logger: logger)
    }

    /// The client configuration for `url`.
    static func configuration(_ url: PostgresURL, tuning: Tuning) -> PostgresClient.Configuration {
        var config: PostgresClient.Configuration
        if let dir = url.socketDirectory {
            config = .init(
                unixSocketPath: dir + "/.s.PGSQL.\(url.port)", username: url.user, password: url.password,
                database: url.database)
        } else {
            let tls: PostgresClient.Configuration.TLS
            switch url.sslMode {
            case .disable:
                tls = .disable
            case .prefer, .require:
                // libpq's prefer and require encrypt without checking the server's certificate.
                var t = TLSConfiguration.makeClientConfiguration()
                t.certificateVerification = .none
                tls = url.sslMode == .prefer ? .prefer(t) : .require(t)
            case .verifyFull:
                tls = .require(TLSConfiguration.makeClientConfiguration())
            }
            config = .init(
                host: url.host ?? "localhost", port: url.port, username: url.user, password: url.password,
                database: url.database, tls: tls)
            if url.sslMode == .verifyFull { config.options.tlsServerName = url.host }
        }
        config.options.maximumConnections = max(1, tuning.poolSize)
        config.options.minimumConnections = 0
        if let secs = url.connectTimeoutSecs { config.options.connectTimeout = .seconds(secs) }
        var params: [(String, String)] = [("application_name", url.applicationName ?? "pollerd")]
        if tuning.statementTimeoutMs > 0 { params.append(("statement_timeout", "\(tuning.statementTimeoutMs)")) }
        config.options.additionalStartupParameters = params
        return config
    }
}
