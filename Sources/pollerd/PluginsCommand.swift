import ArgumentParser
import Foundation
import PollerdConfig
import PollerdCore
import PollerdPlugins
import PollerdPollers

struct PluginsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "Inspect the plugins found in the job file's plugin_dirs.",
        subcommands: [List.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each plugin: its kinds, lifecycle and state (loaded, or why it was left out).")
        @OptionGroup var options: ConfigOptions
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            _ = Support.bootstrapLogging(level: options.logLevel)
            let file = Support.load(options.path, printProblems: false)
            if file.isFatal {
                for e in file.errors { Support.printErr("error: \(e)") }
                throw Exit.config
            }
            let dir = (options.path as NSString).deletingLastPathComponent
            let set = PluginSet.load(directories: file.settings.pluginDirs, relativeTo: dir.isEmpty ? "." : dir, builtins: Builtins.registry())
            var rows: [JSONValue] = []
            for m in set.manifests {
                let state = set.leftOut[m.id].map { "unavailable: \($0)" } ?? "loaded"
                rows.append(.object([
                    "id": .string(m.id), "version": .string(m.version), "name": .string(m.name),
                    "kinds": .array(m.kinds.map { .string($0) }), "lifecycle": .string(m.lifecycle),
                    "state": .string(state), "manifest": .string(m.path), "command": m.command.map { .string($0) } ?? .null,
                    "max_concurrent_ticks": .int(Int64(m.maxConcurrentTicks)), "tick_timeout_secs": .int(m.tickTimeoutSecs),
                ]))
            }
            let problems = set.errors.filter { e in !set.manifests.contains { $0.path == e.file && set.leftOut[$0.id] != nil } }
            if json {
                print(Support.json(.object(["plugins": .array(rows), "errors": .array(set.errors.map { .string($0.description) }),
                                            "warnings": .array(set.warnings.map { .string($0.description) })])))
            } else {
                if rows.isEmpty { print("no plugins in plugin_dirs \(file.settings.pluginDirs)") }
                for m in set.manifests {
                    let state = set.leftOut[m.id].map { "unavailable: \($0)" } ?? "loaded"
                    print("\(m.id) \(m.version)  kinds: \(m.kinds.joined(separator: ", "))  lifecycle: \(m.lifecycle)  max_concurrent_ticks: \(m.maxConcurrentTicks)  tick_timeout_secs: \(m.tickTimeoutSecs)")
                    print("    \(state); \(m.path)")
                }
                for e in problems { print("error: \(e)") }
                for w in set.warnings { print("warning: \(w)") }
            }
            if !set.errors.isEmpty { throw Exit.config }
        }
    }
}
