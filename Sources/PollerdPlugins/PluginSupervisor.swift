/// The supervision rules of a long-lived plugin as a state machine: where the plugin is in its
/// life, and what to do on each event. It holds no process and reads no clock (every instant is
/// passed in); `LongLivedPlugin` keeps it under its lock and performs the actions it returns.
struct PluginSupervisor: Sendable, Equatable {
    /// Where a long-lived plugin is in its life.
    enum Phase: Sendable, Equatable {
        case idle, starting
        case running(pid: Int32)
        case backingOff(untilMs: Int64)
        case failed(String)
        case stopped
    }

    let policy: SupervisorPolicy
    private(set) var phase: Phase = .idle
    /// Failed starts in a row (reset by a process that lived long enough).
    private(set) var failedStarts = 0
    /// How many times the process was started again.
    private(set) var restarts = 0
    /// How the last process ended.
    private(set) var lastExit: String?

    init(policy: SupervisorPolicy) { self.policy = policy }

    /// What a tick that wants the plugin should do.
    enum Use: Sendable, Equatable {
        /// The process is running: send.
        case ready
        /// Nothing runs: start the supervisor, then wait for the handshake.
        case start
        /// A start is under way: wait for its handshake.
        case wait
        /// The plugin gave up (or was shut down): fail permanently with the reason.
        case fail(String)
        /// A restart is planned at the instant: fail transiently now.
        case restarting(untilMs: Int64)
    }

    /// A tick wants the plugin at `nowMs`. During a backoff it fails fast, unless the restart is
    /// due: then it waits for it like any tick during a start.
    mutating func use(nowMs: Int64) -> Use {
        switch phase {
        case .running: return .ready
        case .starting: return .wait
        case .failed(let why): return .fail(why)
        case .stopped: return .fail("plugin was shut down")
        case .backingOff(let until): return nowMs >= until ? .wait : .restarting(untilMs: until)
        case .idle:
            phase = .starting
            return .start
        }
    }

    /// The handshake succeeded: the process serves ticks.
    mutating func handshook(pid: Int32) {
        if case .starting = phase { phase = .running(pid: pid) }
    }

    /// What to do after a process ended.
    enum AfterExit: Sendable, Equatable {
        /// Start again at the instant (`attempt` counts failed starts in a row).
        case restart(atMs: Int64, attempt: Int)
        /// No more starts: the plugin's kinds fail with the reason.
        case giveUp(String)
        /// The plugin was shut down: nothing more to do.
        case stopped
    }

    /// A process ended (`how`), having lived `livedMs`, at `nowMs`.
    mutating func exited(_ how: String, livedMs: Int64, nowMs: Int64) -> AfterExit {
        lastExit = how
        if case .stopped = phase { return .stopped }
        // A process that lived long enough resets the attempt count.
        if livedMs > policy.backoffMs * Int64(policy.maxAttempts) * 2 { failedStarts = 0 }
        failedStarts += 1
        if !policy.respawn || failedStarts > policy.maxAttempts {
            let why =
                policy.respawn
                ? "gave up after \(policy.maxAttempts) restarts; last: \(how)" : "exited (respawn = false): \(how)"
            phase = .failed(why)
            return .giveUp(why)
        }
        let until = nowMs + policy.backoff(attempt: failedStarts)
        phase = .backingOff(untilMs: until)
        return .restart(atMs: until, attempt: failedStarts)
    }

    /// The backoff is over: true when the process should start again (false: shut down meanwhile).
    mutating func backoffElapsed() -> Bool {
        guard case .backingOff = phase else { return false }
        phase = .starting
        restarts += 1
        return true
    }

    /// Shutdown: returns whether a process was serving (it is then sent `shutdown`).
    mutating func shutdown() -> Bool {
        defer { phase = .stopped }
        if case .running = phase { return true }
        return false
    }
}
