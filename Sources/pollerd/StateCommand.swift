import ArgumentParser
import Foundation
import PollerdConfig
import PollerdSQLite

struct StateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Check the state database, or recover what can be read of a damaged one.",
        subcommands: [Check.self, Recover.self]
    )

    struct Location: ParsableArguments {
        @OptionGroup var options: ConfigOptions
        @Option(name: .long, help: "The state database (default: state_db from the job file).") var state: String?

        var path: String {
            state ?? Support.load(options.path, printProblems: false).stateDBPath
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run SQLite's full integrity check; exit 1 if the file is damaged.")
        @OptionGroup var location: Location

        func run() async throws {
            let path = location.path
            let problems = try SQLiteBackend.check(path: path)
            if problems == ["ok"] {
                print("\(path): ok")
                return
            }
            for p in problems { print("\(path): \(p)") }
            throw Exit.transient
        }
    }

    struct Recover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy every readable row of a damaged state database into a new file, and put it in place.",
            discussion: "Stop the daemon first. The damaged file is kept beside it as FILE.damaged-TIMESTAMP."
        )
        @OptionGroup var location: Location

        func run() async throws {
            let path = location.path
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
