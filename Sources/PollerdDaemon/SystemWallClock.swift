import Foundation
public import PollerdCore

/// The system's real-time clock.
public struct SystemWallClock: WallClock {
    public init() {}

    public var nowMs: Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    public func sleep(untilMs: Int64) async throws {
        // Re-read the wall clock at least once a second so that a clock step is noticed.
        while true {
            let delta = untilMs - nowMs
            if delta <= 0 { return }
            try await Task.sleep(for: .milliseconds(min(delta, 1000)))
        }
    }
}
