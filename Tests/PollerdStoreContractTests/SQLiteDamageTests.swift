import Foundation
import GRDB
import PollerdCore
import Testing

@testable import PollerdSQLite

#if canImport(Glibc)
import Glibc
#endif

/// A state database damaged in its middle is refused at start with the way out, and
/// `recover` copies what can still be read into a new file.
@Suite struct SQLiteDamageTests {
    /// Folds the WAL into the file, then overwrites `count` bytes at `offset` with garbage.
    static func damage(_ path: String, at offset: Int, count: Int) async throws {
        let q = try DatabaseQueue(path: path)
        try await q.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        try q.close()
        let fd = open(path, O_WRONLY)
        defer { close(fd) }
        let garbage = [UInt8](repeating: 0xA5, count: count)
        #expect(pwrite(fd, garbage, garbage.count, off_t(offset)) == count)
    }

    @Test func aDatabaseDamagedInItsMiddleIsRefusedAndCanBeRecovered() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pollerd-damage-\(UUID().uuidString)/state.db"
        ).path
        do {
            let store = try SQLiteBackend.open(path: path, synchronousFull: false)
            try await store.prepare()
            let regs = (0..<3000).map {
                JobRegistration(
                    jobID: "job-\($0)-" + String(repeating: "x", count: 40), kind: "noop", agent: "d",
                    pausedOnBoot: false)
            }
            _ = try await store.register(regs, nowMs: 0)
        }
        // Fold the WAL into the file, then overwrite a page in its middle with garbage.
        let q = try DatabaseQueue(path: path)
        try await q.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        try q.close()
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(size > 100 << 10)
        let fd = open(path, O_WRONLY)
        let garbage = [UInt8](repeating: 0xA5, count: 1024)
        #expect(pwrite(fd, garbage, garbage.count, off_t((size / 2) / 1024 * 1024)) == 1024)
        close(fd)

        // Opening finds nothing wrong (it reads no page); preparing the store does.
        do {
            let damaged = try SQLiteBackend.open(path: path)
            try await damaged.prepare()
            Issue.record("a damaged file was prepared")
        } catch let e as SQLiteBackend.Corrupt {
            #expect(e.description.contains("pollerd state recover") && e.description.contains(path))
        }
        let problems = try SQLiteBackend.check(path: path)
        #expect(problems != ["ok"] && !problems.isEmpty)

        let fresh = path + ".recovered"
        let report = try SQLiteBackend.recover(from: path, to: fresh)
        let poll = try #require(report.first { $0.table == "poll_state" })
        #expect(poll.kept > 0 && poll.kept + max(0, poll.lost) <= 3000, "\(report)")
        let recovered = try SQLiteBackend.open(path: fresh)
        try await recovered.prepare()
        #expect(try await recovered.allStates().count == poll.kept)
        #expect(try SQLiteBackend.check(path: fresh) == ["ok"])
    }

    /// A file whose schema page is damaged cannot be recovered table by table: `recover` says so,
    /// and what to do instead, and leaves no half-made file behind (each failed try left a
    /// `.recovered-*` trio before).
    @Test func aDamagedSchemaIsUnrecoverableAndLeavesNothingBehind() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pollerd-damage-\(UUID().uuidString)/state.db"
        ).path
        do {
            let store = try SQLiteBackend.open(path: path, synchronousFull: false)
            try await store.prepare()
            _ = try await store.register(
                [JobRegistration(jobID: "a", kind: "noop", agent: "d", pausedOnBoot: false)], nowMs: 0)
        }
        // Page 1 past the 100-byte file header: the root of the schema table.
        try await Self.damage(path, at: 100, count: 900)
        let fresh = path + ".recovered-1"
        do {
            _ = try SQLiteBackend.recover(from: path, to: fresh)
            Issue.record("a file with a damaged schema was recovered")
        } catch let e as SQLiteStateStore.Unrecoverable {
            #expect(e.description.contains("schema") && e.description.contains("backup"), "\(e)")
        }
        for suffix in ["", "-wal", "-shm"] {
            #expect(!FileManager.default.fileExists(atPath: fresh + suffix), "\(fresh + suffix) left behind")
        }
    }

    /// Damage that appears while the store is open is told apart from trouble that passes
    /// (a full disk, a busy lock): the daemon stops on the first and retries the second.
    @Test func damageFoundAtRunTimeIsToldApartFromAFullDisk() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pollerd-damage-\(UUID().uuidString)/state.db"
        ).path
        let store = try SQLiteStateStore(path: path, synchronousFull: false)
        try await store.prepare()
        let regs = (0..<3000).map {
            JobRegistration(
                jobID: "job-\($0)-" + String(repeating: "x", count: 40), kind: "noop", agent: "d", pausedOnBoot: false)
        }
        _ = try await store.register(regs, nowMs: 0)
        // The file's header is overwritten while the store is open: its next reader cannot read it.
        try await Self.damage(path, at: 0, count: 100)
        do {
            _ = try await store.allStates()
            Issue.record("a read of a damaged file succeeded")
        } catch {
            #expect(store.isDamage(error), "\(error)")
        }
        #expect(!store.isDamage(DatabaseError(resultCode: .SQLITE_FULL)))
        #expect(!store.isDamage(DatabaseError(resultCode: .SQLITE_BUSY)))
        #expect(!store.isDamage(CancellationError()))
        #expect(store.isDamage(DatabaseError(resultCode: .SQLITE_CORRUPT)))
    }
}

/// What preparing a SQLite file does to its schema.
@Suite struct SQLiteMigrationTests {
    func newPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-mig-\(UUID().uuidString)/state.db").path
    }

    /// Every migration is recorded once, in GRDB's table, so files written before read as they are.
    @Test func aNewFileGetsEveryMigrationOnce() async throws {
        let path = newPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        for _ in 0..<2 { try await SQLiteBackend.open(path: path, synchronousFull: false).prepare() }
        let ids = try await DatabaseQueue(path: path).read { db in
            try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier")
        }
        #expect(ids == SQLiteMigrations.all.map(\.id))
    }

    /// A file written before the backlog had a table of its own keeps each job's backlog, and
    /// its ticks stay bounded by it.
    @Test func theBacklogMovesOutOfTheStateRowIntact() async throws {
        let path = newPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: path)
        try await old.writeWithoutTransaction { db in
            _ = try SQLiteMigrations.apply(db, path: path, upTo: "009_served_sinks")
            try db.execute(
                sql: """
                    INSERT INTO poll_state (job_id, kind, agent, created_at, updated_at, outbox_backlog)
                    VALUES ('full', 'noop', 'a', 0, 0, 7), ('empty', 'noop', 'a', 0, 0, 0)
                    """)
        }
        try old.close()
        let store = try SQLiteBackend.open(path: path, synchronousFull: false)
        try await store.prepare()
        #expect(try await store.state(jobID: "full")?.outboxBacklog == 7)
        #expect(try await store.state(jobID: "empty")?.outboxBacklog == 0)
        #expect(
            try await store.acquireLease(jobID: "full", holder: "A", ttlMs: 1000, nowMs: 1, slotMs: nil, maxBacklog: 7)
                == .backlogged(pending: 7, limit: 7))
        let columns = try await DatabaseQueue(path: path).read { db in try db.columns(in: "poll_state").map(\.name) }
        #expect(!columns.contains("outbox_backlog"))
    }

    /// A file a newer pollerd migrated is refused, unchanged, with the way out.
    @Test func aFileWrittenByANewerVersionIsRefusedUnchanged() async throws {
        let path = newPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try await SQLiteBackend.open(path: path, synchronousFull: false).prepare()
        let q = try DatabaseQueue(path: path)
        try await q.write { db in try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('999_from_the_future')") }
        let before = try await q.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master ORDER BY name")
        }
        do {
            try await SQLiteBackend.open(path: path, synchronousFull: false).prepare()
            Issue.record("a newer file was prepared")
        } catch {
            #expect("\(error)".contains("newer pollerd") && "\(error)".contains("999_from_the_future"), "\(error)")
        }
        #expect(
            try await q.read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master ORDER BY name") }
                == before)
    }
}
