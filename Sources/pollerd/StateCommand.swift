import ArgumentParser
import Foundation
import Logging
import PollerdConfig
import PollerdCore
import PollerdDaemon
import PollerdPostgres
import PollerdSQLite

struct StateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Check or migrate the state database, or recover what can be read of a damaged SQLite file.",
        subcommands: [Check.self, Migrate.self, Recover.self]
    )

    struct Location: ParsableArguments {
        @OptionGroup var options: ConfigOptions
        @Option(name: .long, help: "The state database: a path or a postgres:// URL (default: state_db).")
        var state: String?

        var file: JobFile { Support.load(options.path, printProblems: false) }

        /// The SQLite path, or the PostgreSQL URL (with its password, to connect; never printed).
        var location: String {
            if let state { return state }
            let file = self.file
            return file.postgresURL != nil ? file.settings.stateDB : file.stateDBPath
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Run SQLite's full integrity check, or check a PostgreSQL database's schema; exit 1 if damaged.")
        @OptionGroup var location: Location

        func run() async throws {
            let path = location.location
            if PostgresURL.isPostgres(path) {
                let url: PostgresURL
                do { url = try PostgresURL(parsing: path) } catch {
                    Support.printErr("error: \(error)")
                    throw Exit.config
                }
                let problems: [String]
                do {
                    problems = try await PostgresBackend.check(
                        url: url, tuning: location.file.settings.postgres, clock: SystemWallClock(),
                        logger: Logger(label: "pollerd.store"))
                } catch {
                    Support.printErr("error: cannot check \(url.redacted): \(error)")
                    throw Exit.transient
                }
                for p in problems { print("\(url.redacted): \(p)") }
                if problems != ["ok"] { throw Exit.transient }
                return
            }
            let problems = try SQLiteBackend.check(path: path)
            if problems == ["ok"] {
                print("\(path): ok")
                return
            }
            for p in problems { print("\(path): \(p)") }
            throw Exit.transient
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring the state database's schema up to date (the daemon also does it as it starts).",
            discussion:
                "Safe with daemons running: several that migrate at once do it once, under a lock. A database written by a newer pollerd is refused unchanged."
        )
        @OptionGroup var location: Location

        func run() async throws {
            let file = location.file
            let target = location.location
            try await Support.withStore(file, override: target) { _ in }
            print("\(Support.shown(target)): schema up to date")
        }
    }

    struct Recover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy every readable row of a damaged state database into a new file, and put it in place.",
            discussion: "Stop the daemon first. The damaged file is kept beside it as FILE.damaged-TIMESTAMP."
        )
        @OptionGroup var location: Location

        func run() async throws {
            let path = location.location
            if PostgresURL.isPostgres(path) {
                Support.printErr(
                    "error: `state recover` copies what can be read of a damaged SQLite file; it does not apply to "
                        + "PostgreSQL (\(Support.shown(path))). Restore the database from its own backups (pg_dump, "
                        + "or point-in-time recovery from WAL archives), then run `pollerd state check`.")
                throw Exit.config
            }
            let stamp = Int(Date().timeIntervalSince1970)
            let fresh = path + ".recovered-\(stamp)"
            let report = try SQLiteBackend.recover(from: path, to: fresh)
            for r in report {
                print(
                    "\(r.table): \(r.kept) row(s) kept"
                        + (r.lost < 0 ? ", unreadable" : r.lost > 0 ? ", \(r.lost) lost" : ""))
            }
            let fm = FileManager.default
            let kept = path + ".damaged-\(stamp)"
            try fm.moveItem(atPath: path, toPath: kept)
            for suffix in ["-wal", "-shm"] where fm.fileExists(atPath: path + suffix) {
                try fm.moveItem(atPath: path + suffix, toPath: kept + suffix)
            }
            try fm.moveItem(atPath: fresh, toPath: path)
            for suffix in ["-wal", "-shm"] where fm.fileExists(atPath: fresh + suffix) {
                try? fm.removeItem(atPath: fresh + suffix)
            }
            print("recovered into \(path); the damaged file is \(kept)")
        }
    }
}
