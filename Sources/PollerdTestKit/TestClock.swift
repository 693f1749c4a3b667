/// A `Clock` with `Duration` over a `ManualClock`: it moves only when a test moves it, and
/// sleepers wake when `advance(by:)` passes their deadline (to the millisecond, rounded up).
public final class TestClock: Clock, Sendable {
    public struct Instant: InstantProtocol {
        public var offset: Duration
        public func advanced(by d: Duration) -> Instant { Instant(offset: offset + d) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }

    private let manual = ManualClock(nowMs: 0)

    public init() {}

    public var now: Instant { Instant(offset: .milliseconds(manual.nowMs)) }
    public var minimumResolution: Duration { .milliseconds(1) }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let (seconds, attoseconds) = deadline.offset.components
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        try await manual.sleep(untilMs: ms)
    }

    /// Moves the clock on and wakes whoever's deadline it passed.
    public func advance(by d: Duration) {
        let (seconds, attoseconds) = d.components
        manual.advance(byMs: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
