public import Foundation
public import PollerdCore
import Yams

/// A loaded job file: the settings, the jobs that validated, and every problem found.
public struct JobFile: Sendable {
    /// The file's path as given.
    public var path: String
    public var settings: GlobalSettings
    /// Valid jobs, in file order. Invalid ones are left out and reported in `errors`.
    public var jobs: [JobSpec]
    /// Problems that leave a job out (with `jobID`) or make the whole file unusable (without).
    public var errors: [ConfigError]
    /// Things accepted but worth knowing (ignored nexo keys, past `at` instants).
    public var warnings: [ConfigError]
    /// True when a problem outside any job makes the file unusable.
    public var isFatal: Bool
    /// The kinds the jobs were validated against (built-ins and loaded plugins).
    public var registry = PollerRegistry()

    /// The PostgreSQL database the state is kept in, when `state_db` is a `postgres://` URL
    /// (validated on load); nil for a SQLite file.
    public var postgresURL: PostgresURL? {
        PostgresURL.isPostgres(settings.stateDB) ? try? PostgresURL(parsing: settings.stateDB) : nil
    }

    /// Whether there may be state to read: a SQLite file that exists, or any PostgreSQL database.
    public var stateMayExist: Bool {
        postgresURL != nil || FileManager.default.fileExists(atPath: stateDBPath)
    }

    /// The state database as it is shown (never with a password): the SQLite path, resolved
    /// against the job file's directory, or the PostgreSQL URL without its password.
    public var stateDBPath: String {
        if PostgresURL.isPostgres(settings.stateDB) {
            return (try? PostgresURL(parsing: settings.stateDB).redacted) ?? "postgres://(invalid URL)"
        }
        if settings.stateDB.hasPrefix("/") { return (settings.stateDB as NSString).standardizingPath }
        let dir = (path as NSString).deletingLastPathComponent
        let joined = ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent(settings.stateDB)
        return (joined as NSString).standardizingPath
    }

    /// Loads and validates a job file. Never throws: every problem is located in `errors`.
    public static func load(
        path: String, registry: PollerRegistry, environment: [String: String] = ProcessInfo.processInfo.environment,
        nowMs: Int64
    ) -> JobFile {
        switch SourceText.read(path: path, what: "job file", maxBytes: maxBytes) {
        case .failure(let e):
            return JobFile(path: path, settings: GlobalSettings(), jobs: [], errors: [e], warnings: [], isFatal: true)
        case .success(let text):
            return parse(text, path: path, registry: registry, environment: environment, nowMs: nowMs)
        }
    }

    /// The largest job file read (about 200,000 jobs of the usual size).
    public static let maxBytes = 32 << 20

    /// What the settings add to the kinds (plugins from `plugin_dirs`), with their problems.
    public typealias KindProvider =
        @Sendable (GlobalSettings, _ jobFileDirectory: String) -> (
            registry: PollerRegistry, errors: [ConfigError], warnings: [ConfigError]
        )

    /// Loads a job file whose kinds depend on its settings (plugin directories).
    public static func load(
        path: String, kinds: @escaping KindProvider,
        environment: [String: String] = ProcessInfo.processInfo.environment, nowMs: Int64
    ) -> JobFile {
        guard case .success(let text) = SourceText.read(path: path, what: "job file", maxBytes: maxBytes) else {
            return load(path: path, registry: PollerRegistry(), environment: environment, nowMs: nowMs)
        }
        return parse(text, path: path, registry: PollerRegistry(), kinds: kinds, environment: environment, nowMs: nowMs)
    }

    /// Validates job-file text.
    public static func parse(
        _ text: String, path: String, registry: PollerRegistry, kinds: KindProvider? = nil,
        environment: [String: String], nowMs: Int64
    ) -> JobFile {
        var v = JobFileValidator(file: path, registry: registry, environment: environment, nowMs: nowMs)
        v.kinds = kinds
        v.run(text)
        var f = JobFile(
            path: path, settings: v.settings, jobs: v.jobs, errors: v.errors, warnings: v.warnings, isFatal: v.fatal)
        f.registry = v.registry
        return f
    }
}
