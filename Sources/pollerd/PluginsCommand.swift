import ArgumentParser
import Foundation
import Logging
import PollerdConfig
import PollerdCore
import PollerdDaemon
import PollerdPlugins
import PollerdPollers

struct PluginsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "Inspect the plugins found in the job file's plugin_dirs.",
        subcommands: [List.self, Check.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a plugin through the handshake and ticks with and without a cursor; report what is wrong.",
            discussion: "Exit codes: 0 every check passed, 1 a check failed, 3 the manifest is invalid."
        )
        @Argument(help: "The plugin's directory (holding nexo-plugin.toml or pollerd-plugin.toml).") var dir: String
        @Option(name: .long, help: "The job config to send, as JSON (default {}).") var configJSON: String = "{}"

        func run() async throws {
            _ = Support.bootstrapLogging(level: .error)
            guard
                let name = PluginManifestLoader.fileNames.first(where: {
                    FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent($0))
                })
            else {
                Support.printErr("error: \(dir) holds no \(PluginManifestLoader.fileNames.joined(separator: " or "))")
                throw Exit.config
            }
            let r = PluginManifestLoader.load(path: (dir as NSString).appendingPathComponent(name))
            for w in r.warnings { print("warning: \(w)") }
            guard let m = r.manifest else {
                for e in r.errors { print("✗ manifest: \(e)") }
                throw Exit.config
            }
            print("✓ manifest: \(m.id) \(m.version), kinds \(m.kinds.joined(separator: ", ")), \(m.lifecycle)")
            guard let config = try? JSONValue.parse(Data(configJSON.utf8)) else {
                throw ValidationError("--config-json is not JSON")
            }
            let findings = await PluginCheck.run(
                manifest: m, config: config, builtins: Daemon.builtins(fetcher: Support.fetcher),
                clock: SystemWallClock(), logger: Logger(label: "pollerd"))
            for f in findings { print("\(f.ok ? "✓" : "✗") \(f.step): \(f.detail)") }
            if findings.contains(where: { !$0.ok }) { throw Exit.transient }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each plugin: its kinds, lifecycle and state (loaded, or why it was left out).")
        @OptionGroup var options: ConfigOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            _ = Support.bootstrapLogging(level: options.logLevel, format: options.logFormat)
            let file = Support.load(options.path, printProblems: false)
            if file.isFatal {
                for e in file.errors { Support.printErr("error: \(e)") }
                throw Exit.config
            }
            let dir = (options.path as NSString).deletingLastPathComponent
            // Loading starts no process: long-lived plugins start on their first tick.
            let set = PluginSet.load(
                directories: file.settings.pluginDirs, relativeTo: dir.isEmpty ? "." : dir,
                builtins: Daemon.builtins(fetcher: Support.fetcher), processes: Support.processes())
            // What the running daemons last reported (pid, restarts, stderr tail), from the daemon
            // when it answers, else from the state database; the newest report per plugin.
            var reports: [JSONValue] = []
            if let client = DaemonClient.from(file), await client.isUp() {
                let answer = try await client.request("GET", "/admin/plugins")
                try JobsCommand.StateOptions.check(answer, client)
                if case .array(let a)? = answer.body["plugins"] { reports = a }
            } else if file.stateMayExist {
                let statuses = try? await Support.withStore(file) { store in
                    try await Operator(store: store, clock: SystemWallClock()).pluginStatuses()
                }
                reports = (statuses ?? []).map(OperatorJSON.plugin)
            }
            var live: [String: JSONValue] = [:]
            for r in reports {
                guard let id = r["plugin_id"]?.stringValue else { continue }
                if (r["reported_at"]?.stringValue ?? "") >= (live[id]?["reported_at"]?.stringValue ?? "") {
                    live[id] = r
                }
            }
            var rows: [JSONValue] = []
            for m in set.manifests {
                let state = set.leftOut[m.id].map { "unavailable: \($0)" } ?? "loaded"
                let d = live[m.id]
                rows.append(
                    .object([
                        "daemon": d ?? .null,
                        "id": .string(m.id), "version": .string(m.version), "name": .string(m.name),
                        "kinds": .array(m.kinds.map { .string($0) }), "lifecycle": .string(m.lifecycle),
                        "state": .string(state), "manifest": .string(m.path),
                        "command": m.command.map { .string($0) } ?? .null,
                        "max_concurrent_ticks": .int(Int64(m.maxConcurrentTicks)),
                        "tick_timeout_secs": .int(m.tickTimeoutSecs),
                    ]))
            }
            let problems = set.errors.filter { e in
                !set.manifests.contains { $0.path == e.file && set.leftOut[$0.id] != nil }
            }
            if json {
                print(
                    Support.json(
                        .object([
                            "plugins": .array(rows), "errors": .array(set.errors.map { .string($0.description) }),
                            "warnings": .array(set.warnings.map { .string($0.description) }),
                        ])))
            } else {
                if rows.isEmpty { print("no plugins in plugin_dirs \(file.settings.pluginDirs)") }
                for m in set.manifests {
                    let state = set.leftOut[m.id].map { "unavailable: \($0)" } ?? "loaded"
                    print(
                        "\(m.id) \(m.version)  kinds: \(m.kinds.joined(separator: ", "))  lifecycle: \(m.lifecycle)  max_concurrent_ticks: \(m.maxConcurrentTicks)  tick_timeout_secs: \(m.tickTimeoutSecs)"
                    )
                    print("    \(state); \(m.path)")
                    if let r = live[m.id] {
                        let pid = r["pid"]?.intValue.map { ", pid \($0)" } ?? ""
                        print(
                            "    daemon (as of \(r["reported_at"]?.stringValue ?? "?")): \(r["phase"]?.stringValue ?? "?")\(pid), restarts \(r["restarts"]?.intValue ?? 0), ticks \(r["ticks"]?.intValue ?? 0), failures \(r["failures"]?.intValue ?? 0)"
                        )
                        if let e = r["last_error"]?.stringValue { print("    last error: \(e)") }
                        if case .array(let tail)? = r["stderr_tail"] {
                            for l in tail.suffix(5) { print("    stderr| \(l.stringValue ?? "")") }
                        }
                    }
                }
                for e in problems { print("error: \(e)") }
                for w in set.warnings { print("warning: \(w)") }
            }
            if !set.errors.isEmpty { throw Exit.config }
        }
    }
}
