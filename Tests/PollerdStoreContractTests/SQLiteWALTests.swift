import Foundation
import GRDB
import PollerdCore
import Testing

@testable import PollerdSQLite

/// The writer's rewind of the WAL (`restartWAL`, which `run()` does once the WAL is large). A
/// PASSIVE checkpoint alone leaves the frames committed while it copies, and SQLite rewinds the
/// WAL only once every frame is copied, so under constant load the WAL grew without end (60 MB
/// a second at 100k jobs every 2 s). That growth needs a writer that never pauses, which a test
/// cannot make deterministic: `pollerd-bench scheduler` reports the WAL's size (`wal_mib`).
/// This pins what the rewind does: it rewinds, and it gives up after a short wait for a reader.
@Suite struct SQLiteWALTests {
    func frames(_ path: String) throws -> Int {
        // A PASSIVE checkpoint reports how many frames the WAL holds.
        try DatabaseQueue(path: path).writeWithoutTransaction { db in try db.checkpoint(.passive).walFrameCount }
    }

    func write(_ store: SQLiteStateStore, _ n: Int, from: Int) async throws {
        for i in from..<(from + n) {
            _ = try await store.register(
                [JobRegistration(jobID: "job-\(i)", kind: "noop", agent: "a", pausedOnBoot: false)], nowMs: Int64(i))
        }
    }

    @Test func theWriterRewindsTheWALAndDoesNotWaitLongForAReader() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-wal-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("state.db").path
        let store = try SQLiteStateStore(path: path, synchronousFull: false)
        try await store.prepare()
        try await store.write { db in try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
        try await write(store, 50, from: 0)

        // A reader on an old snapshot keeps a checkpoint from copying what came after it, as a
        // writer that never pauses does.
        var config = Configuration()
        config.allowsUnsafeTransactions = true
        let reader = try DatabaseQueue(path: path, configuration: config)
        try await reader.writeWithoutTransaction { db in
            try db.execute(sql: "BEGIN DEFERRED")
            _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM poll_state")
        }
        try await write(store, 200, from: 50)
        let before = try frames(path)
        #expect(before > 200)

        // While the reader stays, the rewind gives up after its short wait instead of holding
        // the writer for the 10 s busy timeout; the next try succeeds.
        await #expect(throws: DatabaseError.self) { try await store.restartWAL() }
        try await reader.writeWithoutTransaction { db in try db.execute(sql: "COMMIT") }
        try await store.restartWAL()

        // Rewound: the next commit writes at the start of the WAL, not after its old frames.
        try await write(store, 1, from: 250)
        #expect(try frames(path) < 20)
        #expect(try await store.allStates().count == 251)
    }
}
