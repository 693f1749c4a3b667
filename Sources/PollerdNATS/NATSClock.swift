/// The client's time: any `Clock` with `Duration`, read as a duration since the client began, so
/// that deadlines compare without knowing the clock's instant type. Tests inject a manual clock.
struct NATSClock: Sendable {
    let now: @Sendable () -> Duration
    let sleep: @Sendable (Duration) async throws -> Void

    init<C: Clock<Duration>>(_ clock: C) where C: Sendable {
        let start = clock.now
        now = { start.duration(to: clock.now) }
        sleep = { try await clock.sleep(for: $0) }
    }
}
