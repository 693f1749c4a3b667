import Foundation
import PollerdCore
import TOMLKit

/// A validated plugin manifest (`nexo-plugin.toml` or `pollerd-plugin.toml`, nexo's schema).
public struct PluginManifest: Sendable, Equatable {
    /// The manifest file.
    public var path: String
    /// Its directory: relative paths in the manifest resolve against it.
    public var directory: String
    public var id: String
    public var version: String
    public var name: String
    public var description: String
    /// `[plugin.entrypoint]`: the command (resolved against `directory` when it has a `/`), args, env.
    public var command: String?
    public var args: [String]
    public var env: [String: String]
    /// pollerd's addition: names copied from the daemon's environment.
    public var inheritEnv: [String]
    public var kinds: [String]
    public var brokerTopicPrefix: String
    public var lifecycle: String
    public var maxConcurrentTicks: Int
    public var tickTimeoutSecs: Int64
    /// pollerd's addition: the longest reply line accepted (default 4 MiB).
    public var maxReplyBytes: Int
    public var respawn: Bool
    public var maxAttempts: Int
    public var backoffMs: Int64
    public var stderrTailLines: Int
}

/// Loads and validates plugin manifests, with errors that name the file, line and key.
public enum PluginManifestLoader {
    /// The file names a plugin directory may hold.
    public static let fileNames = ["nexo-plugin.toml", "pollerd-plugin.toml"]

    /// What loading the plugin directories found.
    public struct Discovery: Sendable {
        public var manifests: [PluginManifest] = []
        public var errors: [ConfigError] = []
        public var warnings: [ConfigError] = []
    }

    /// Every plugin under the directories: each subdirectory holding a manifest.
    public static func discover(directories: [String], relativeTo base: String) -> Discovery {
        var d = Discovery()
        for dir in directories {
            let root =
                dir.hasPrefix("/")
                ? dir : ((base as NSString).appendingPathComponent(dir) as NSString).standardizingPath
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: root) else {
                d.errors.append(ConfigError(file: root, line: 0, column: 0, message: "plugin directory cannot be read"))
                continue
            }
            for entry in entries.sorted() {
                let sub = (root as NSString).appendingPathComponent(entry)
                for name in fileNames {
                    let path = (sub as NSString).appendingPathComponent(name)
                    guard FileManager.default.fileExists(atPath: path) else { continue }
                    let r = load(path: path)
                    d.errors += r.errors
                    d.warnings += r.warnings
                    if let m = r.manifest {
                        // Two plugins with one id: the second is left out, located, naming the first.
                        if let first = d.manifests.first(where: { $0.id == m.id }) {
                            let v = ManifestValidator(
                                text: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "", path: path)
                            d.errors.append(
                                ConfigError(
                                    file: path, line: v.line(of: "id", in: "plugin"), column: 1,
                                    message:
                                        "[plugin] id: '\(m.id)' is already the id of the plugin in \(first.path); this one is left out"
                                ))
                        } else {
                            d.manifests.append(m)
                        }
                    }
                    break
                }
            }
        }
        return d
    }

    /// The largest manifest read (a manifest is a few hundred bytes; this bounds what a hostile
    /// one can make the daemon keep).
    public static let maxManifestBytes = 256 << 10

    /// Loads one manifest file (its directory is made absolute: plugins run from there), and
    /// checks that its command can be started.
    public static func load(
        path rawPath: String
    ) -> (manifest: PluginManifest?, errors: [ConfigError], warnings: [ConfigError]) {
        let path =
            rawPath.hasPrefix("/")
            ? rawPath
            : ((FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(rawPath) as NSString)
                .standardizingPath
        let text: String
        switch SourceText.read(path: path, what: "manifest", maxBytes: maxManifestBytes) {
        case .failure(let e): return (nil, [e], [])
        case .success(let t): text = t
        }
        var r = parse(text, path: path)
        if let m = r.manifest, let command = m.command,
            let problem = commandProblem(command, environment: ProcessInfo.processInfo.environment)
        {
            let v = ManifestValidator(text: text, path: path)
            r.errors.append(
                ConfigError(
                    file: path, line: v.line(of: "command", in: "plugin.entrypoint"), column: 1,
                    message: "[plugin.entrypoint] command: \(problem); plugin '\(m.id)' is left out"))
            r.manifest = nil
        }
        return r
    }

    /// Why `command` cannot be started, or nil: a path must name an executable regular file; a
    /// bare name must be found as one on `PATH`.
    static func commandProblem(_ command: String, environment: [String: String]) -> String? {
        func check(_ path: String) -> String? {
            var st = stat()
            guard stat(path, &st) == 0 else { return "'\(path)' does not exist" }
            guard (st.st_mode & S_IFMT) == S_IFREG else { return "'\(path)' is not a regular file" }
            guard access(path, X_OK) == 0 else {
                return "'\(path)' is not executable (mode \(String(st.st_mode & 0o777, radix: 8)))"
            }
            return nil
        }
        if command.contains("/") { return check(command) }
        let dirs = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
        for dir in dirs where check((dir as NSString).appendingPathComponent(command)) == nil { return nil }
        return "'\(command)' is not found as an executable on PATH (\(dirs.joined(separator: ":")))"
    }

    /// Validates manifest text.
    public static func parse(
        _ text: String, path: String
    ) -> (manifest: PluginManifest?, errors: [ConfigError], warnings: [ConfigError]) {
        var v = ManifestValidator(text: text, path: path)
        let m = v.run()
        return (v.errors.isEmpty ? m : nil, v.errors, v.warnings)
    }
}

/// Walks a manifest's tables. TOMLKit gives no positions for values, so keys are located by
/// scanning the source for the key inside its table.
struct ManifestValidator {
    let text: String
    let path: String
    var errors: [ConfigError] = []
    var warnings: [ConfigError] = []
    let lines: [Substring]

    init(text: String, path: String) {
        self.text = text
        self.path = path
        self.lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The 1-based line of `key` inside `[table]`, or of the table header when key is nil.
    func line(of key: String?, in table: String) -> Int {
        var current = ""
        for (i, raw) in lines.enumerated() {
            let l = raw.trimmingCharacters(in: .whitespaces)
            if l.hasPrefix("[") && !l.hasPrefix("[[") {
                current = String(l.dropFirst().prefix { $0 != "]" }).trimmingCharacters(in: .whitespaces)
                if key == nil && current == table { return i + 1 }
                continue
            }
            guard let key, current == table else { continue }
            let bare = l.split(separator: "=", maxSplits: 1).first.map {
                $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            }
            if bare == key { return i + 1 }
        }
        return 0
    }

    mutating func fail(_ table: String, _ key: String?, _ message: String) {
        let place = key.map { "[\(table)] \($0)" } ?? "[\(table)]"
        errors.append(
            ConfigError(file: path, line: line(of: key, in: table), column: 1, message: "\(place): \(message)"))
    }

    mutating func warn(_ table: String, _ key: String?, _ message: String) {
        let place = key.map { "[\(table)] \($0)" } ?? "[\(table)]"
        warnings.append(
            ConfigError(file: path, line: line(of: key, in: table), column: 1, message: "\(place): \(message)"))
    }

    static func matches(_ s: String, first: (Character) -> Bool, rest: (Character) -> Bool, min: Int, max: Int) -> Bool
    {
        guard s.count >= min, s.count <= max, let f = s.first, first(f) else { return false }
        return s.dropFirst().allSatisfy(rest)
    }
    static func isLower(_ c: Character) -> Bool { c >= "a" && c <= "z" }
    static func isIdent(_ c: Character) -> Bool { isLower(c) || (c >= "0" && c <= "9") || c == "_" }

    mutating func run() -> PluginManifest? {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            errors.append(
                ConfigError(
                    file: path, line: e.source.begin.line, column: e.source.begin.column,
                    message: "TOML syntax error: \(e.description)"))
            return nil
        } catch {
            errors.append(ConfigError(file: path, line: 0, column: 0, message: "TOML error: \(error)"))
            return nil
        }
        for key in root.keys where key != "plugin" {
            if key == "manifest_version" {
                warn("", key, "known to nexo, not used by pollerd")
            } else {
                fail("", key, "unknown key")
            }
        }
        guard let plugin = root["plugin"]?.table else {
            fail("plugin", nil, "missing the [plugin] table")
            return nil
        }
        let known: Set<String> = ["id", "version", "name", "description", "entrypoint", "poller", "supervisor"]
        let nexoOnly: Set<String> = [
            "requires", "capabilities", "min_nexo_version", "enabled_by_default", "tools", "channels",
        ]
        for key in plugin.keys where !known.contains(key) {
            if nexoOnly.contains(key) {
                warn("plugin", key, "known to nexo, not used by pollerd")
            } else {
                fail(
                    "plugin", key,
                    "unknown key" + (Suggest.closest(to: key, in: known).map { " (did you mean '\($0)'?)" } ?? ""))
            }
        }
        let id = str(plugin, "plugin", "id", required: true) ?? ""
        if !id.isEmpty && !Self.matches(id, first: Self.isLower, rest: Self.isIdent, min: 1, max: 32) {
            fail("plugin", "id", "'\(id)' must match ^[a-z][a-z0-9_]{0,31}$")
        }
        let version = str(plugin, "plugin", "version", required: true) ?? ""
        let parts = version.split(separator: "-", maxSplits: 1).first.map { $0.split(separator: ".") } ?? []
        if !version.isEmpty && (parts.count != 3 || !parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) })) {
            fail("plugin", "version", "'\(version)' is not a semantic version (MAJOR.MINOR.PATCH)")
        }
        let name = str(plugin, "plugin", "name", required: true) ?? ""
        var desc = str(plugin, "plugin", "description", required: true) ?? ""
        if desc.utf8.count > 4096 {
            fail("plugin", "description", "is \(desc.utf8.count) bytes; at most 4096")
            desc = ""
        }

        var command: String?
        var args: [String] = []
        var env: [String: String] = [:]
        var inherit: [String] = []
        if let ep = table(plugin, "plugin", "entrypoint") {
            let t = "plugin.entrypoint"
            checkKeys(ep, t, ["command", "args", "env", "inherit_env"])
            command = str(ep, t, "command", required: false)
            if command?.isEmpty == true { command = nil }
            args = strList(ep, t, "args") ?? []
            if args.count > 256 {
                fail(t, "args", "has \(args.count) entries; at most 256")
                args = []
            }
            inherit = strList(ep, t, "inherit_env") ?? []
            if let e = table(ep, t, "env") {
                for k in e.keys {
                    guard let v = e[k]?.string else {
                        fail(t, "env", "'\(k)' must be a string")
                        continue
                    }
                    if k.hasPrefix("NEXO_") { fail(t, "env", "'\(k)': keys starting with NEXO_ are reserved") }
                    env[k] = v
                }
            }
        }
        guard let poller = table(plugin, "plugin", "poller") else {
            fail("plugin", nil, "missing the [plugin.poller] table: this plugin declares no poller kinds")
            return nil
        }
        let pt = "plugin.poller"
        checkKeys(
            poller, pt,
            [
                "kinds", "broker_topic_prefix", "lifecycle", "max_concurrent_ticks", "tick_timeout_secs",
                "max_reply_bytes",
            ])
        let kinds = strList(poller, pt, "kinds") ?? []
        if kinds.isEmpty { fail(pt, "kinds", "must list at least one kind") }
        var seenKinds = Set<String>()
        for k in kinds {
            if !Self.matches(k, first: Self.isLower, rest: Self.isIdent, min: 2, max: 64) {
                fail(pt, "kinds", "'\(k)' must match ^[a-z][a-z0-9_]+$")
            }
            if !seenKinds.insert(k).inserted { fail(pt, "kinds", "'\(k)' is listed twice") }
        }
        let prefix = str(poller, pt, "broker_topic_prefix", required: false) ?? "plugin.poller.\(id)"
        if prefix.isEmpty || prefix.hasSuffix(".") || prefix.contains(" ") || prefix.hasPrefix(".") {
            fail(pt, "broker_topic_prefix", "'\(prefix)' must be non-empty, without spaces or a leading/trailing '.'")
        }
        let lifecycle = str(poller, pt, "lifecycle", required: false) ?? "long_lived"
        if lifecycle != "long_lived" && lifecycle != "ephemeral" {
            fail(pt, "lifecycle", "must be \"long_lived\" or \"ephemeral\", not \"\(lifecycle)\"")
        }
        let maxConc = int(poller, pt, "max_concurrent_ticks", 1...64) ?? 1
        let timeout = int(poller, pt, "tick_timeout_secs", 1...3600) ?? 60
        let maxReply = int(poller, pt, "max_reply_bytes", 1024...(256 << 20)) ?? (4 << 20)
        if lifecycle == "ephemeral" && command == nil {
            fail("plugin.entrypoint", "command", "an ephemeral plugin needs a command to spawn")
        }
        var respawn = false
        var attempts = 3
        var backoff = 1000
        var tail = 32
        if let sup = table(plugin, "plugin", "supervisor") {
            let st = "plugin.supervisor"
            checkKeys(sup, st, ["respawn", "max_attempts", "backoff_ms", "stderr_tail_lines"])
            if let v = sup["respawn"] {
                if let b = v.bool { respawn = b } else { fail(st, "respawn", "must be true or false") }
            }
            attempts = int(sup, st, "max_attempts", 1...100) ?? 3
            backoff = int(sup, st, "backoff_ms", 100...300_000) ?? 1000
            tail = int(sup, st, "stderr_tail_lines", 1...512) ?? 32
        }
        let dir = (path as NSString).deletingLastPathComponent
        if let c = command, c.contains("/"), !c.hasPrefix("/") {
            command = ((dir as NSString).appendingPathComponent(c) as NSString).standardizingPath
        }
        return PluginManifest(
            path: path, directory: dir, id: id, version: version, name: name, description: desc, command: command,
            args: args, env: env, inheritEnv: inherit, kinds: kinds, brokerTopicPrefix: prefix, lifecycle: lifecycle,
            maxConcurrentTicks: maxConc, tickTimeoutSecs: Int64(timeout), maxReplyBytes: maxReply,
            respawn: respawn, maxAttempts: attempts, backoffMs: Int64(backoff), stderrTailLines: tail)
    }

    mutating func checkKeys(_ t: TOMLTable, _ name: String, _ allowed: Set<String>) {
        for k in t.keys where !allowed.contains(k) {
            fail(
                name, k, "unknown key" + (Suggest.closest(to: k, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""))
        }
    }

    mutating func table(_ t: TOMLTable, _ name: String, _ key: String) -> TOMLTable? {
        guard let v = t[key] else { return nil }
        guard let tt = v.table else {
            fail(name, key, "must be a table")
            return nil
        }
        return tt
    }

    mutating func str(_ t: TOMLTable, _ name: String, _ key: String, required: Bool) -> String? {
        guard let v = t[key] else {
            if required { fail(name, nil, "missing '\(key)'") }
            return nil
        }
        guard let s = v.string else {
            fail(name, key, "must be a string")
            return nil
        }
        if required && s.trimmingCharacters(in: .whitespaces).isEmpty { fail(name, key, "must not be empty") }
        return s
    }

    mutating func strList(_ t: TOMLTable, _ name: String, _ key: String) -> [String]? {
        guard let v = t[key] else { return nil }
        guard let a = v.array else {
            fail(name, key, "must be an array of strings")
            return nil
        }
        var out: [String] = []
        for e in a {
            guard let s = e.string else {
                fail(name, key, "must contain only strings")
                return nil
            }
            out.append(s)
        }
        return out
    }

    mutating func int(_ t: TOMLTable, _ name: String, _ key: String, _ range: ClosedRange<Int>) -> Int? {
        guard let v = t[key] else { return nil }
        guard let i = v.int else {
            fail(name, key, "must be an integer")
            return nil
        }
        guard range.contains(i) else {
            fail(name, key, "must be between \(range.lowerBound) and \(range.upperBound), not \(i)")
            return nil
        }
        return i
    }
}
