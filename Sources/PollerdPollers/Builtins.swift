public import PollerdCore

/// The kinds built into pollerd.
public enum Builtins {
    /// A registry with the built-in kinds of this target (`noop`, `command`) and `extra` (the
    /// HTTP kinds, which live in PollerdHTTP and need the daemon's fetcher).
    public static func registry(adding extra: [any Poller] = []) -> PollerRegistry {
        PollerRegistry([NoopPoller(), CommandPoller()] + extra)
    }
}
