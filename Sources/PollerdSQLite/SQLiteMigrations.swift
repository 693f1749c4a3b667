import Foundation
import GRDB

/// The SQLite store's schema, as a list of migrations, and how a store file is brought up to it.
///
/// Every migration a file lacks runs in one `BEGIN IMMEDIATE` transaction, which also reads the
/// list of those already applied: two daemons that open a new file at once take turns (the second
/// waits on SQLite's write lock, then finds every migration applied), so the schema is made once.
/// GRDB's `DatabaseMigrator` reads that list before it takes the lock, and the second daemon then
/// failed with "table poll_state already exists". The list is kept in GRDB's own table,
/// `grdb_migrations`, so files written by earlier versions read as they are.
enum SQLiteMigrations {
    typealias Migration = (id: String, apply: @Sendable (Database) throws -> Void)

    /// A file written by a newer pollerd: its schema has migrations this build does not know.
    struct Newer: Error, CustomStringConvertible {
        let path: String
        let unknown: [String]
        var description: String {
            "the state database \(path) was written by a newer pollerd (its schema has \(unknown.joined(separator: ", ")), "
                + "which this build does not know). Nothing was changed. Run the newer pollerd, or restore a backup "
                + "taken before the upgrade"
        }
    }

    /// Applies the migrations the file lacks, up to `target` (nil: all), in one transaction;
    /// returns the ids it applied (none when another process got there first).
    @discardableResult
    static func apply(_ db: Database, path: String, upTo target: String? = nil) throws -> [String] {
        var applied: [String] = []
        try db.inTransaction(.immediate) {
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
            let done = Set(try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"))
            let known = Set(all.map(\.id))
            let unknown = done.subtracting(known).sorted()
            if !unknown.isEmpty { throw Newer(path: path, unknown: unknown) }
            for m in all where !done.contains(m.id) {
                try m.apply(db)
                try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES (?)", arguments: [m.id])
                applied.append(m.id)
                if m.id == target { break }
            }
            return .commit
        }
        return applied
    }

    /// Every migration, oldest first. A migration is never edited once released: a change to the
    /// schema is a new entry at the end.
    static let all: [Migration] = [
        (
            "001_state",
            { db in
                try db.execute(
                    sql: """
                        CREATE TABLE poll_state (
                          job_id TEXT PRIMARY KEY NOT NULL,
                          kind TEXT NOT NULL,
                          agent TEXT NOT NULL,
                          cursor BLOB,
                          last_run_at INTEGER,
                          next_run_at INTEGER,
                          last_status TEXT,
                          last_error TEXT,
                          last_duration_ms INTEGER,
                          consecutive_errors INTEGER NOT NULL DEFAULT 0,
                          ticks_total INTEGER NOT NULL DEFAULT 0,
                          items_seen_total INTEGER NOT NULL DEFAULT 0,
                          items_dispatched_total INTEGER NOT NULL DEFAULT 0,
                          paused INTEGER NOT NULL DEFAULT 0,
                          paused_reason TEXT,
                          done INTEGER NOT NULL DEFAULT 0,
                          schedule_fp TEXT,
                          definition_fp TEXT,
                          last_failure_alert_at INTEGER,
                          created_at INTEGER NOT NULL,
                          updated_at INTEGER NOT NULL,
                          -- The lease lives on the job's row: taking it and committing under it are one
                          -- statement each. lease_token is the fencing token; it only ever increases.
                          lease_holder TEXT,
                          lease_token INTEGER NOT NULL DEFAULT 0,
                          lease_until INTEGER NOT NULL DEFAULT 0
                        );
                        CREATE TABLE control_log (
                          seq INTEGER PRIMARY KEY AUTOINCREMENT,
                          job_id TEXT NOT NULL,
                          action TEXT NOT NULL,
                          at INTEGER NOT NULL
                        );
                        """)
            }
        ),
        (
            "002_plugin_status",
            { db in
                try db.execute(
                    sql: """
                        CREATE TABLE plugin_status (
                          plugin_id TEXT PRIMARY KEY NOT NULL,
                          lifecycle TEXT NOT NULL,
                          phase TEXT NOT NULL,
                          pid INTEGER,
                          restarts INTEGER NOT NULL,
                          ticks INTEGER NOT NULL,
                          failures INTEGER NOT NULL,
                          last_error TEXT,
                          stderr_tail TEXT NOT NULL,
                          updated_at INTEGER NOT NULL
                        );
                        """)
            }
        ),
        (
            "003_outbox",
            { db in
                try db.execute(sql: OutboxSQL.migration)
            }
        ),
        (
            "004_fleet",
            { db in
                try db.execute(
                    sql: """
                        CREATE TABLE daemons (
                          daemon_id TEXT PRIMARY KEY NOT NULL,
                          job_file TEXT NOT NULL,
                          started_at INTEGER NOT NULL,
                          alive_until INTEGER NOT NULL
                        );
                        CREATE TABLE daemon_jobs (
                          daemon_id TEXT NOT NULL,
                          job_id TEXT NOT NULL,
                          PRIMARY KEY (daemon_id, job_id)
                        ) WITHOUT ROWID;
                        CREATE INDEX daemon_jobs_by_job ON daemon_jobs (job_id);
                        ALTER TABLE poll_state ADD COLUMN paused_at INTEGER;
                        UPDATE poll_state SET paused_at = updated_at WHERE paused = 1;
                        DROP TABLE plugin_status;
                        CREATE TABLE plugin_status (
                          daemon_id TEXT NOT NULL,
                          plugin_id TEXT NOT NULL,
                          lifecycle TEXT NOT NULL,
                          phase TEXT NOT NULL,
                          pid INTEGER,
                          restarts INTEGER NOT NULL,
                          ticks INTEGER NOT NULL,
                          failures INTEGER NOT NULL,
                          last_error TEXT,
                          stderr_tail TEXT NOT NULL,
                          updated_at INTEGER NOT NULL,
                          PRIMARY KEY (daemon_id, plugin_id)
                        );
                        """)
            }
        ),
        (
            "005_alerts",
            { db in
                try db.execute(sql: "ALTER TABLE poll_state ADD COLUMN last_alert_at INTEGER")
            }
        ),
        (
            "006_history",
            { db in
                try db.execute(
                    sql: """
                        CREATE TABLE tick_log (
                          job_id TEXT NOT NULL,
                          seq INTEGER NOT NULL,
                          slot_at INTEGER,
                          started_at INTEGER NOT NULL,
                          duration_ms INTEGER NOT NULL,
                          status TEXT NOT NULL,
                          error TEXT,
                          items_found INTEGER NOT NULL,
                          items_new INTEGER NOT NULL,
                          duplicates INTEGER NOT NULL,
                          cursor BLOB,
                          cursor_changed INTEGER NOT NULL,
                          holder TEXT NOT NULL
                        );
                        CREATE UNIQUE INDEX tick_log_job ON tick_log (job_id, seq);
                        CREATE TABLE audit_log (
                          seq INTEGER PRIMARY KEY AUTOINCREMENT,
                          at INTEGER NOT NULL,
                          actor TEXT NOT NULL,
                          action TEXT NOT NULL,
                          job_id TEXT,
                          detail TEXT
                        );
                        CREATE INDEX audit_log_job ON audit_log (job_id, seq);
                        """)
            }
        ),
        (
            "007_last_ok",
            { db in
                try db.execute(sql: "ALTER TABLE poll_state ADD COLUMN last_ok_at INTEGER")
                try db.execute(sql: "UPDATE poll_state SET last_ok_at = last_run_at WHERE last_status = 'ok'")
            }
        ),
        ("008_history_log", { db in try SQLiteStateStore.migrateToHistoryLog(db) }),
        (
            "009_served_sinks",
            { db in
                // The sink definition a lane's items were queued under (NULL: before this), and each
                // daemon's definition of its jobs (to warn about a job two daemons define differently).
                try db.execute(
                    sql: """
                        ALTER TABLE outbox_lane ADD COLUMN sink_fp TEXT;
                        ALTER TABLE daemon_jobs ADD COLUMN definition_fp TEXT;
                        """)
            }
        ),
        (
            "010_backlog_apart",
            { db in
                // The backlog leaves the job's state row for a table of its own: a settle then never
                // writes the row that claims and commits take (on PostgreSQL, it would lock it).
                try db.execute(sql: OutboxSQL.backlogTable)
                try db.execute(
                    sql: """
                        INSERT INTO outbox_backlog (job_id, items)
                          SELECT job_id, outbox_backlog FROM poll_state WHERE outbox_backlog > 0;
                        ALTER TABLE poll_state DROP COLUMN outbox_backlog;
                        """)
            }
        ),
    ]
}
