import Foundation
import PollerdSQLite
import Testing

/// `state_sync` is what the writer connection really runs with: GRDB turns WAL on after the
/// connection is prepared and sets `synchronous = NORMAL` itself, which once made the default
/// `full` a silent `normal`.
@Suite struct SQLiteSyncTests {
    @Test(arguments: [(true, 2), (false, 1)])
    func theWriterRunsWithTheConfiguredSync(full: Bool, pragma: Int) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pollerd-sync-\(UUID().uuidString)/state.db"
        ).path
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let store = try SQLiteStateStore(path: path, synchronousFull: full)
        #expect(try store.writerSynchronous() == pragma)
    }
}
