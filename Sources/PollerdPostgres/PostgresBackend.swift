public import Logging
import NIOSSL
public import PollerdCore
import PostgresNIO

/// The PostgreSQL backend behind the store contract: the one name the rest of pollerd uses to
/// open it. No code outside this target names the concrete store type.
public enum PostgresBackend {
    /// How long a session of the store may sit idle inside a transaction before the server ends
    /// it (and frees its locks).
    static let idleInTransactionMs = 5000

    /// Opens the store at `url` (no I/O: connections are made once `run(clock:)` runs). Expiries
    /// follow the database's clock unless `time` is `.caller` (the contract tests drive time).
    public static func open(
        url: PostgresURL, tuning: PostgresSettings = PostgresSettings(), time: StoreTime = .store, logger: Logger
    ) -> any PollerdStore {
        PostgresStateStore(url: url, tuning: tuning, time: time, logger: logger)
    }

    /// The TLS `url`'s `sslmode` asks for: nil for `disable`; otherwise the configuration and
    /// whether a server without TLS is refused. libpq's `prefer` and `require` encrypt without
    /// checking the server's certificate; `verify-full` checks it against the system's roots and
    /// the host's name.
    static func tlsPolicy(_ url: PostgresURL) -> (TLSConfiguration, required: Bool)? {
        switch url.sslMode {
        case .disable:
            return nil
        case .prefer, .require:
            var t = TLSConfiguration.makeClientConfiguration()
            t.certificateVerification = .none
            return (t, url.sslMode == .require)
        case .verifyFull:
            return (TLSConfiguration.makeClientConfiguration(), true)
        }
    }

    /// The client configuration for `url`.
    static func configuration(_ url: PostgresURL, tuning: PostgresSettings) -> PostgresClient.Configuration {
        var config: PostgresClient.Configuration
        if let dir = url.socketDirectory {
            config = .init(
                unixSocketPath: dir + "/.s.PGSQL.\(url.port)", username: url.user, password: url.password,
                database: url.database)
        } else {
            let tls: PostgresClient.Configuration.TLS =
                switch tlsPolicy(url) {
                case nil: .disable
                case (let t, required: false)?: .prefer(t)
                case (let t, required: true)?: .require(t)
                }
            config = .init(
                host: url.host ?? "localhost", port: url.port, username: url.user, password: url.password,
                database: url.database, tls: tls)
            if url.sslMode == .verifyFull { config.options.tlsServerName = url.host }
        }
        config.options.maximumConnections = max(1, tuning.poolSize)
        config.options.minimumConnections = 0
        if let secs = url.connectTimeoutSecs { config.options.connectTimeout = .seconds(secs) }
        // A daemon stopped (SIGSTOP, a frozen VM) or cut off mid-transaction would hold its row
        // locks for as long as its connection lives, and every other daemon's commit would wait on
        // them: the server ends such a session once it sits idle in a transaction this long. The
        // store's transactions never pause between statements.
        var params: [(String, String)] = [
            ("application_name", url.applicationName ?? "pollerd"),
            ("idle_in_transaction_session_timeout", "\(PostgresBackend.idleInTransactionMs)"),
        ]
        if tuning.statementTimeoutMs > 0 { params.append(("statement_timeout", "\(tuning.statementTimeoutMs)")) }
        config.options.additionalStartupParameters = params
        return config
    }
}

extension PostgresBackend {
    /// `pollerd state check` on PostgreSQL: connects, and checks that the schema is the one this
    /// pollerd writes (every migration applied, none it does not know) and that each table
    /// answers a count. Returns `["ok"]`, or the problems found. Changes nothing.
    public static func check(
        url: PostgresURL, tuning: PostgresSettings, clock: any WallClock, logger: Logger
    ) async throws -> [String] {
        let store = PostgresStateStore(url: url, tuning: tuning, time: .store, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run(clock: clock) }
            defer { group.cancelAll() }
            return try await store.check()
        }
    }
}

extension PostgresBackend {
    /// The claim and the commit statements, with their numbered parameters (documented at
    /// `PostgresStateStore.claimSQL` and `commitSQL`): what the benchmark's bare libpq baseline
    /// runs, so that both sides run the same SQL.
    public static var claimAndCommitSQL: (claim: String, commit: String) {
        (PostgresStateStore.claimSQL, PostgresStateStore.commitSQL)
    }
}
