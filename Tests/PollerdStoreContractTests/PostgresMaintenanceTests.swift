import Foundation
import PollerdCore
import PollerdTestKit
import PostgresNIO
import Testing

/// What the dashboard's banner and `/metrics` show of PostgreSQL's upkeep.
@Suite(.enabled(if: PostgresTestServer.url != nil, "needs POLLERD_TEST_POSTGRES"))
struct PostgresMaintenanceTests {
    @Test func theReportHasEveryTableAndTheOldestTransaction() async throws {
        try await PostgresTestServer.withStore { location, store in
            let quiet = try await store.maintenance()
            #expect(Set(quiet.tables.map(\.name)).isSuperset(of: ["poll_state", "outbox_lane", "tick_log"]))
            #expect(quiet.warnings.isEmpty)
            // A transaction left open with a snapshot (as a forgotten psql session would be).
            let url = try PostgresURL(parsing: location)
            let conn = try await PostgresConnection.connect(
                configuration: PostgresTestServer.configuration(url), id: 7, logger: PostgresTestServer.logger)
            try await conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ", logger: PostgresTestServer.logger)
            try await conn.query("SELECT count(*) FROM poll_state", logger: PostgresTestServer.logger)
            let held = try await store.maintenance()
            #expect(held.oldestTransactionSecs != nil)
            try await conn.query("ROLLBACK", logger: PostgresTestServer.logger)
            try await conn.close()
        }
    }
}
