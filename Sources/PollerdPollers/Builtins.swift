public import PollerdCore

/// The kinds built into pollerd.
public enum Builtins {
    /// A registry with every built-in kind.
    public static func registry() -> PollerRegistry {
        PollerRegistry([NoopPoller(), CommandPoller()])
    }
}
