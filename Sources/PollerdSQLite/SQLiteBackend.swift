public import PollerdCore

/// The embedded SQLite backend behind the store contract: the one name the rest of pollerd uses
/// to open it. No code outside this target names the concrete store type.
public enum SQLiteBackend {
    /// Opens (creating if needed) the store at `path`.
    /// - Parameters:
    ///   - synchronousFull: `false` uses `synchronous=NORMAL` (safe against crashes, not power loss).
    ///   - storeClock: when set, lease expiry follows this clock instead of the callers' (`StoreTime.store`).
    public static func open(path: String, synchronousFull: Bool = true, storeClock: (any WallClock)? = nil) throws -> any PollerdStore {
        try SQLiteStateStore(path: path, synchronousFull: synchronousFull, storeClock: storeClock)
    }
}
