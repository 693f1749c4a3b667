public import PollerdCore

/// The embedded SQLite backend behind the store contract: the one name the rest of pollerd uses
/// to open it. No code outside this target names the concrete store type.
public enum SQLiteBackend {
    /// Opens (creating if needed) the store at `path`.
    /// - Parameters:
    ///   - synchronousFull: `false` uses `synchronous=NORMAL` (safe against crashes, not power loss).
    ///   - time: `.store` decides every expiry by the store's own reading of this host's clock,
    ///     whatever the callers pass (`StoreTime`).
    public static func open(
        path: String, synchronousFull: Bool = true, time: StoreTime = .caller
    ) throws -> any PollerdStore {
        try SQLiteStateStore(path: path, synchronousFull: synchronousFull, time: time)
    }
}

extension SQLiteBackend {
    /// The error `open` or `prepare()` throws for a damaged file.
    public typealias Corrupt = SQLiteStateStore.Corrupt

    /// SQLite's full integrity check of the file: `["ok"]`, or the problems found.
    public static func check(path: String) throws -> [String] {
        try SQLiteStateStore.check(path: path)
    }

    /// Copies what can be read of a damaged file into a new one at `to`; returns, per table,
    /// the rows kept and lost (-1: the table could not be read at all).
    public static func recover(from damaged: String, to fresh: String) throws -> [(table: String, kept: Int, lost: Int)]
    {
        try SQLiteStateStore.recover(from: damaged, to: fresh)
    }
}
