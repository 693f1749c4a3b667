import PollerdCore
import Testing

/// Error codes are a closed set of stable snake_case names.
@Suite struct PollerErrorCodeTests {
    @Test func everyCodeIsUniqueSnakeCase() {
        let names = PollerError.Code.all.map(\.description)
        #expect(Set(names).count == names.count)
        #expect(names.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0 == "_" || ("a"..."z").contains($0) } })
        #expect(PollerError.transient(.timeout, "late").code.description == "timeout")
        #expect(PollerError.Code.exitStatus == .exitStatus && PollerError.Code.exitStatus != .timeout)
    }
}
