import Dispatch
import Foundation
import Testing

@testable import PollerdDaemon

/// A reload reads the job file on a thread of its own, so a shutdown that begins meanwhile does
/// not wait for the read.
@Suite struct ReloadCancelTests {
    @Test func aReadInProgressDoesNotHoldUpCancellation() async throws {
        let release = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        let task = Task {
            await ReloadService.unlessCancelled { () -> Int in
                started.signal()
                release.wait() // a read that would not end on its own
                return 1
            }
        }
        await Task.detached { started.wait() }.value
        task.cancel()
        #expect(await task.value == nil)
        release.signal()
    }

    @Test func aReadThatEndsGivesItsResult() async {
        #expect(await ReloadService.unlessCancelled { 42 } == 42)
    }
}
