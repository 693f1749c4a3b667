import ArgumentParser
import Foundation
import Logging
import PollerdConfig
import PollerdCore
import PollerdDaemon
import PollerdHTTP
import PollerdPlugins
import PollerdPostgres
import PollerdSQLite
import Synchronization

/// Process exit codes (documented in `pollerd --help` and the README).
enum Exit {
    static let ok = ExitCode(0)
    static let transient = ExitCode(1)
    static let permanent = ExitCode(2)
    static let config = ExitCode(3)

    /// The exit code of a manual tick's outcome.
    static func code(_ o: ManualTick.Outcome) -> ExitCode {
        switch o {
        case .ok: ok
        case .transient: transient
        case .permanent: permanent
        case .config: config
        }
    }
}

/// The executable's plumbing: logging, loading the job file, opening the store, printing.
enum Support {
    /// Logging is bootstrapped once per process; a second call keeps the first handler.
    private static let bootstrapped = Mutex(false)

    /// Text (the default) or JSON lines (`--log-format json`, or `POLLERD_LOG_FORMAT=json`).
    static func bootstrapLogging(level: Logger.Level, format: LogFormat? = nil) -> Logger {
        let first = bootstrapped.withLock { b in
            defer { b = true }
            return !b
        }
        let json =
            (format ?? LogFormat(rawValue: ProcessInfo.processInfo.environment["POLLERD_LOG_FORMAT"] ?? "") ?? .text)
            == .json
        if first {
            LoggingSystem.bootstrap { label in
                if json { return JSONLogHandler(label: label, level: level) }
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = level
                return h
            }
        }
        return Logger(label: "pollerd")
    }

    static var nowMs: Int64 { SystemWallClock().nowMs }

    /// Plugin processes supervised on the system clock, logging through the daemon's logger.
    static func processes() -> PluginProcesses {
        PluginProcesses(clock: SystemWallClock(), logger: Logger(label: "pollerd"))
    }

    /// The HTTP kinds' client for this process (the daemon shuts it down with its group).
    static let fetcher = HTTPFetcher()

    /// Loads the job file, with the plugins its `plugin_dirs` hold, and prints its problems.
    /// Loading starts no plugin process: long-lived plugins start on their first tick.
    static func load(
        _ path: String, processes: PluginProcesses = Support.processes(), printProblems: Bool = true
    ) -> JobFile {
        let file = Daemon.loadJobFile(path, processes: processes, fetcher: fetcher, nowMs: nowMs)
        fetcher.configure(file.settings.http)
        if printProblems {
            for e in file.errors { printErr("error: \(e)") }
            for w in file.warnings { printErr("warning: \(w)") }
        }
        return file
    }

    static func printErr(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    /// Opens the store the job file names (or `override`, from `--state`): a SQLite file, or a
    /// PostgreSQL database for a `postgres://` URL, whose expiries then follow the database's
    /// clock. Unprepared: the daemon prepares it in its store service.
    static func openStore(
        _ file: JobFile, override: String? = nil, logger: Logger = Logger(label: "pollerd.store")
    ) throws -> any PollerdStore {
        if let text = override ?? (file.postgresURL != nil ? file.settings.stateDB : nil), PostgresURL.isPostgres(text)
        {
            return PostgresBackend.open(
                url: try PostgresURL(parsing: text), tuning: file.settings.postgres, time: .store, logger: logger)
        }
        return try SQLiteBackend.open(
            path: override ?? file.stateDBPath, synchronousFull: file.settings.stateSynchronousFull)
    }

    /// A state database as messages show it: a path, or a URL without its password.
    static func shown(_ location: String) -> String {
        guard PostgresURL.isPostgres(location) else { return location }
        return (try? PostgresURL(parsing: location).redacted) ?? "postgres://(invalid URL)"
    }

    /// Runs `body` on the store the job file names, for the span of one command: the store runs
    /// and is prepared first, and stops after. A store that cannot be opened or prepared is an
    /// error that names it (exit 3).
    static func withStore<T>(
        _ file: JobFile, override: String? = nil, reportFailure: Bool = true,
        _ body: (any PollerdStore) async throws -> T
    ) async throws -> T {
        var prepared = false
        do {
            return try await openStore(file, override: override).withStore(clock: SystemWallClock()) { store in
                prepared = true
                return try await body(store)
            }
        } catch let e as SQLiteBackend.Corrupt where !prepared {
            printErr("error: \(e)")
            throw Exit.config
        } catch  where !prepared && !reportFailure {
            throw error
        } catch  where !prepared {
            printErr("error: cannot open the state database \(override.map(shown) ?? file.stateDBPath): \(error)")
            throw Exit.config
        }
    }

    static func json(_ v: JSONValue) -> String { v.canonicalString }

    /// Prints rows as aligned columns: each as wide as its longest cell, two spaces apart, so a
    /// long value never runs into the next column.
    static func printTable(_ rows: [[String]], indent: String = "") {
        guard let first = rows.first else { return }
        var widths = Array(repeating: 0, count: first.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        for r in rows {
            var line = indent
            for (i, c) in r.enumerated() {
                line += i == r.count - 1 ? c : c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0)
            }
            print(line)
        }
    }
}

extension Optional where Wrapped == Int64 {
    var json: JSONValue { map { .int($0) } ?? .null }
}

extension Optional where Wrapped == String {
    var json: JSONValue { map { .string($0) } ?? .null }
}
