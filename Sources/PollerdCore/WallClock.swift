import Foundation
import Synchronization

/// Wall-clock time in milliseconds since the Unix epoch, and sleeping until an instant.
/// The runner, the tick executor, the watchdog and the deliverer take one; tests move a manual clock
/// instead of sleeping.
public protocol WallClock: Sendable {
    /// Now, in ms since the epoch.
    var nowMs: Int64 { get }
    /// Sleeps until the instant; throws `CancellationError` when the task is cancelled.
    func sleep(untilMs: Int64) async throws
}
