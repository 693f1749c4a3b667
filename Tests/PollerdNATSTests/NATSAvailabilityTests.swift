import Foundation
import PollerdTestKit
import Testing

@Suite struct NATSAvailabilityTests {
    /// Under CI the NATS tests must run: a missing `nats-server` fails the run instead of
    /// passing with the NATS half left out.
    @Test func natsServerRunsUnderCI() {
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            #expect(NATSTestServer.binary != nil, "CI=true but nats-server is not installed")
        }
    }
}
