import Foundation
import PollerdTestKit
import Testing

@Suite struct PostgresAvailabilityTests {
    /// Under CI the PostgreSQL half of the suite must run: a missing server fails the run
    /// instead of passing with half the tests.
    @Test func postgresRunsUnderCI() {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            #expect(PostgresTestServer.url != nil, "CI=true but POLLERD_TEST_POSTGRES is not set")
        }
    }
}
