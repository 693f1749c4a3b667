import Foundation
import Logging
import PollerdCore
import PollerdPostgres
import PostgresNIO
import Testing

/// The PostgreSQL server the tests run against: `POLLERD_TEST_POSTGRES`, a URL of a database on
/// it that the tests may create databases from (the test command starts a cluster on loopback
/// and sets it). Without it the PostgreSQL tests are left out, with the reason printed once;
/// under `CI=true` its absence fails the run (`PostgresAvailabilityTests`).
enum PostgresTestServer {
    static let url: PostgresURL? = {
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

    static let logger = Logger(label: "pollerd.test.postgres")

    static func configuration(_ url: PostgresURL) -> PostgresConnection.Configuration {
        PostgresConnection.Configuration(
            host: url.host ?? "127.0.0.1", port: url.port, username: url.user, password: url.password,
            database: url.database, tls: .disable)
    }

    /// Runs `body` on a connection of its own to `url`'s database, closed after.
    static func withConnection<T>(
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
    static func makeDatabase() async throws -> String {
        guard let url else { throw CancellationError() }
        let name = "pollerd_t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        _ = try await withConnection(url) { conn in
            try await conn.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        return url.with(database: name).unredacted
    }

    /// Drops a database `makeDatabase` made, closing its connections first.
    static func dropDatabase(_ location: String) async throws {
        guard let url else { return }
        let name = try PostgresURL(parsing: location).database
        guard name.hasPrefix("pollerd_t_") else { return }
        _ = try await withConnection(url) { conn in
            try await conn.query(
                PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
        }
    }
}

@Suite struct PostgresAvailabilityTests {
    /// Under CI the PostgreSQL half of the suite must run: a missing server fails the run
    /// instead of passing with half the tests.
    @Test func postgresRunsUnderCI() {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            #expect(PostgresTestServer.url != nil, "CI=true but POLLERD_TEST_POSTGRES is not set")
        }
    }
}
