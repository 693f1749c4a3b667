/// The deliverer loop's decisions as a state machine: how many lanes to claim, when to wait and
/// for how long, and when to stop. It holds no task and reads no clock (every instant is passed
/// in); `Deliverer` keeps it and performs what it says.
struct DeliveryLoop: Sendable, Equatable {
    /// Lanes being delivered now.
    private(set) var inFlight = 0
    /// A wait for the doorbell or a timer is armed.
    private(set) var waiting = false
    /// Set when shutdown began: lanes in flight may finish until then.
    private(set) var stopDeadlineMs: Int64?
    /// A wait ended (the doorbell rang, or its instant came) since the last claim.
    private(set) var wokeSinceClaim = true

    /// The longest wait while idle (a lane that another daemon filled is seen within it).
    static let idleWaitMs: Int64 = 1000
    /// How often a stopping loop looks whether its lanes are done.
    static let stoppingWaitMs: Int64 = 100

    /// How to wait.
    enum Wait: Sendable, Equatable {
        /// Until the instant (or a ring).
        case until(Int64)
        /// Until the earliest due lane, at most until the instant (or a ring): ask the store.
        case untilNextDueLane(atMost: Int64)
    }

    /// True when the loop should end now.
    func shouldStop(nowMs: Int64) -> Bool {
        guard let deadline = stopDeadlineMs else { return false }
        return inFlight == 0 || nowMs >= deadline
    }

    /// How many lanes to claim now (none while stopping). Claims come in batches: while lanes
    /// are in flight, a finished lane alone does not claim again until half the slots are free,
    /// since each claim is a store transaction (claiming for every finished lane cost a third of
    /// the drain rate). A wake (new items, or the wait's instant, at most `idleWaitMs` away)
    /// claims whatever is free.
    func claimLimit(concurrency: Int) -> Int {
        guard stopDeadlineMs == nil else { return 0 }
        let free = max(0, concurrency - inFlight)
        if inFlight > 0, !wokeSinceClaim, free * 2 < concurrency { return 0 }
        return free
    }

    /// Lanes were claimed and handed to deliveries.
    mutating func claimed(_ n: Int) {
        inFlight += n
        wokeSinceClaim = false
    }

    /// A lane's delivery ended.
    mutating func laneDone() { inFlight = max(0, inFlight - 1) }

    /// The wait to arm now, if none is armed.
    mutating func armWait(nowMs: Int64) -> Wait? {
        guard !waiting else { return nil }
        waiting = true
        if stopDeadlineMs != nil { return .until(nowMs + Self.stoppingWaitMs) }
        return inFlight == 0 ? .untilNextDueLane(atMost: nowMs + Self.idleWaitMs) : .until(nowMs + Self.idleWaitMs)
    }

    /// The armed wait ended (a ring or its instant).
    mutating func woke() {
        waiting = false
        wokeSinceClaim = true
    }

    /// Shutdown began at `nowMs`: no more claims; lanes in flight get `graceMs`.
    mutating func shutdown(nowMs: Int64, graceMs: Int64) {
        if stopDeadlineMs == nil { stopDeadlineMs = nowMs + graceMs }
    }
}
