import Foundation
import GRDB
import PollerdCore
import PollerdSQLite
import Testing

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
        let path = StoreFactory.sqlite.newLocation()
        do {
            let store = try SQLiteBackend.open(path: path, synchronousFull: false)
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

        #expect(throws: SQLiteBackend.Corrupt.self) { _ = try SQLiteBackend.open(path: path) }
        do { _ = try SQLiteBackend.open(path: path) } catch let e as SQLiteBackend.Corrupt {
            #expect(e.description.contains("pollerd state recover") && e.description.contains(path))
        }
        let problems = try SQLiteBackend.check(path: path)
        #expect(problems != ["ok"] && !problems.isEmpty)

        let fresh = path + ".recovered"
        let report = try SQLiteBackend.recover(from: path, to: fresh)
        let poll = try #require(report.first { $0.table == "poll_state" })
        #expect(poll.kept > 0 && poll.kept + max(0, poll.lost) <= 3000, "\(report)")
        let recovered = try SQLiteBackend.open(path: fresh)
        #expect(try await recovered.allStates().count == poll.kept)
        #expect(try SQLiteBackend.check(path: fresh) == ["ok"])
    }

    /// A file whose schema page is damaged cannot be recovered table by table: `recover` says so,
    /// and what to do instead, and leaves no half-made file behind (each failed try left a
    /// `.recovered-*` trio before).
    @Test func aDamagedSchemaIsUnrecoverableAndLeavesNothingBehind() async throws {
        let path = StoreFactory.sqlite.newLocation()
        do {
            let store = try SQLiteBackend.open(path: path, synchronousFull: false)
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
        let path = StoreFactory.sqlite.newLocation()
        let store = try SQLiteStateStore(path: path, synchronousFull: false)
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
