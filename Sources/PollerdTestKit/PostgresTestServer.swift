import Foundation
public import Logging
public import PollerdCore
import PollerdPostgres
public import PostgresNIO

/// The PostgreSQL server the tests run against: `POLLERD_TEST_POSTGRES`, a URL of a database on
/// it that the tests may create databases from (the test command starts a cluster on loopback
/// and sets it). Without it the PostgreSQL tests are left out, with the reason printed once;
/// under `CI=true` its absence fails the run (`PostgresAvailabilityTests`).
public enum PostgresTestServer {
    public static let url: PostgresURL? = {
        guard let text = ProcessInfo.processInfo.environment["POLLERD_TEST_POSTGRES"], !text.isEmpty else {
            print(
                "PostgreSQL tests skipped: POLLERD_TEST_POSTGRES is not set (scripts/test sets it when PostgreSQL is installed)"
            )
            return nil
        }
        do { return try PostgresURL(parsing: text) } catch {
            print("PostgreSQL tests skipped: POLLERD_TEST_POSTGRES is not a PostgreSQL URL: \(error)")
            return nil
        }
    }()

    public static let logger = Logger(label: "pollerd.test.postgres")

    public static func configuration(_ url: PostgresURL) -> PostgresConnection.Configuration {
        PostgresConnection.Configuration(
            host: url.host ?? "127.0.0.1", port: url.port, username: url.user, password: url.password,
            database: url.database, tls: .disable)
    }

    /// Runs `body` on a connection of its own to `url`'s database, closed after.
    public static func withConnection<T>(
        _ url: PostgresURL, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let conn = try await PostgresConnection.connect(
            configuration: configuration(url), id: Int.random(in: 0..<Int.max), logger: logger)
        do {
            let result = try await body(conn)
            try await conn.close()
            return result
        } catch {
            try? await conn.close()
            throw error
        }
    }

    /// A new, empty database on the server; returns its URL.
    public static func makeDatabase() async throws -> String {
        guard let url else { throw CancellationError() }
        let name = "pollerd_t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        _ = try await withConnection(url) { conn in
            try await conn.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        return url.with(database: name).unredacted
    }

    /// Drops a database `makeDatabase` made, closing its connections first.
    public static func dropDatabase(_ location: String) async throws {
        guard let url else { return }
        let name = try PostgresURL(parsing: location).database
        guard name.hasPrefix("pollerd_t_") else { return }
        _ = try await withConnection(url) { conn in
            try await conn.query(
                PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
        }
    }

    /// A store on a new database of the test server, run and prepared, for the span of `body`;
    /// the database is dropped after. Expiries follow the caller's clock unless `time` says.
    public static func withStore<T>(
        time: StoreTime = .caller, _ body: (String, any PollerdStore) async throws -> T
    ) async throws -> T {
        let location = try await makeDatabase()
        do {
            let store = try open(location, time: time)
            let result = try await store.withStore(clock: ManualClock(nowMs: 0)) { try await body(location, $0) }
            try await dropDatabase(location)
            return result
        } catch {
            try? await dropDatabase(location)
            throw error
        }
    }

    /// One daemon's view of a database `makeDatabase` made, unprepared.
    public static func open(_ location: String, time: StoreTime = .caller) throws -> any PollerdStore {
        PostgresBackend.open(
            url: try PostgresURL(parsing: location), tuning: PostgresSettings(poolSize: 8, statementTimeoutMs: 30_000),
            time: time, logger: logger)
    }
}
