import Foundation
import GRDB
import GRDBSQLite

/// One of the store's two hottest statements (a tick's claim and its commit), bound and stepped
/// through SQLite's C API. GRDB prepares and owns the statement (its statement cache); this
/// binds each value directly instead of boxing it in `StatementArguments`, which cost about a
/// third of each statement's time at 50,000 ticks/s.
///
/// Used only inside a write transaction GRDB opened (`BEGIN IMMEDIATE`: the claim's read and its
/// write see the same row), for plain `SELECT`, `INSERT` and `UPDATE` statements: GRDB's transaction
/// bookkeeping does not depend on them. Every use ends with a reset, so GRDB finds
/// the statement as it left it.
struct HotStatement: ~Copyable {
    private let stmt: OpaquePointer
    private let db: Database
    private var index: Int32 = 0

    /// SQLite copies the bytes of a bound text or blob before the bind call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ statement: Statement, _ db: Database) {
        self.stmt = statement.sqliteStatement
        self.db = db
        sqlite3_reset(stmt)
    }

    mutating func bind(_ v: Int64) {
        index += 1
        sqlite3_bind_int64(stmt, index, v)
    }

    mutating func bind(_ v: Int64?) {
        guard let v else { return bindNull() }
        bind(v)
    }

    mutating func bind(_ v: Int) { bind(Int64(v)) }

    mutating func bind(_ v: Bool) { bind(v ? Int64(1) : 0) }

    mutating func bind(_ v: String) {
        index += 1
        var s = v
        s.withUTF8 { b in
            if let base = b.baseAddress, !b.isEmpty {
                _ = sqlite3_bind_text(
                    stmt, index, UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self), Int32(b.count),
                    Self.transient)
            } else {
                // A null pointer would bind NULL, not the empty text.
                _ = sqlite3_bind_text(stmt, index, "", 0, Self.transient)
            }
        }
    }

    mutating func bind(_ v: String?) {
        guard let v else { return bindNull() }
        bind(v)
    }

    mutating func bind(_ v: Data?) {
        guard let v else { return bindNull() }
        index += 1
        v.withUnsafeBytes { b in
            // A zero-length blob is a blob, not NULL.
            _ =
                b.isEmpty
                ? sqlite3_bind_zeroblob(stmt, index, 0)
                : sqlite3_bind_blob(stmt, index, b.baseAddress, Int32(b.count), Self.transient)
        }
    }

    mutating func bindNull() {
        index += 1
        sqlite3_bind_null(stmt, index)
    }

    /// Runs the statement. Returns true when it produced a row (read it with the column
    /// accessors before `finish()`), false when it is done.
    mutating func step() throws -> Bool {
        switch sqlite3_step(stmt) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code:
            let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
            let sql = String(cString: sqlite3_sql(stmt))
            finish()
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
        }
    }

    /// Steps a statement that returns no row; returns how many rows it changed.
    mutating func run() throws -> Int {
        while try step() {}
        let n = Int(sqlite3_changes(db.sqliteConnection))
        finish()
        return n
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }

    func optionalInt64(_ column: Int32) -> Int64? {
        sqlite3_column_type(stmt, column) == SQLITE_NULL ? nil : sqlite3_column_int64(stmt, column)
    }

    func data(_ column: Int32) -> Data? {
        guard sqlite3_column_type(stmt, column) != SQLITE_NULL else { return nil }
        let n = Int(sqlite3_column_bytes(stmt, column))
        guard n > 0, let p = sqlite3_column_blob(stmt, column) else { return Data() }
        return Data(bytes: p, count: n)
    }

    /// Resets the statement and drops its bindings (no copy of a bound value outlives the use).
    mutating func finish() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
        index = 0
    }

    deinit { sqlite3_reset(stmt) }
}

/// A hot statement on one job's state row, found by the rowid the tick's claim read
/// (`LeaseGrant.handle`) and the job's id, or by the id alone: when the tick has no rowid, or
/// the rowid no longer holds the job (a `VACUUM` may renumber rows). The commit and its history
/// row use it. Both forms are fetched once per batch.
struct StateRowStatement {
    private let byKey: Statement
    private let byRow: Statement

    /// - Parameter sql: the statement, given what goes right before its `job_id = ?`: empty, or
    ///   the rowid's condition.
    init(_ db: Database, sql: (_ rowCondition: String) -> String) throws {
        byKey = try db.cachedStatement(sql: sql(""))
        byRow = try db.cachedStatement(sql: sql("rowid = ? AND "))
    }

    /// Binds `values`, then the rowid (when there is one) and `key` (the job's id and what
    /// follows it), and runs the statement; by the id alone if by the rowid it changed nothing.
    /// Returns the rows changed.
    func run(
        row: Int64?, _ db: Database, values: (inout HotStatement) -> Void, key: (inout HotStatement) -> Void
    ) throws -> Int {
        if let row {
            var st = HotStatement(byRow, db)
            values(&st)
            st.bind(row)
            key(&st)
            let changed = try st.run()
            if changed > 0 { return changed }
        }
        var st = HotStatement(byKey, db)
        values(&st)
        key(&st)
        return try st.run()
    }
}
