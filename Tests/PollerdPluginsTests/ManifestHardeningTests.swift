import Foundation
import PollerdConfig
import PollerdCore
import PollerdPlugins
import PollerdPollers
import PollerdTestKit
import Testing

/// Hostile or broken manifests are refused at load, with a located reason.
@Suite struct ManifestHardeningTests {
    func root() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-manifest-\(UUID().uuidString)")
    }

    /// Two plugins with one id: the second is left out, the error names its file, line and the first.
    @Test func aDuplicatePluginIDIsALocatedError() throws {
        let r = root()
        try PluginFixture.writeManifest(in: r.appendingPathComponent("a"), id: "twin", kinds: ["one"])
        try PluginFixture.writeManifest(in: r.appendingPathComponent("b"), id: "twin", kinds: ["two"])
        let d = PluginManifestLoader.discover(directories: [r.path], relativeTo: "/")
        #expect(d.manifests.map(\.kinds) == [["one"]])
        let e = try #require(d.errors.first)
        #expect(e.file.hasSuffix("b/nexo-plugin.toml") && e.line == 2)
        #expect(
            e.message.contains("'twin' is already the id of the plugin in") && e.message.contains("a/nexo-plugin.toml"))
    }

    @Test(arguments: [
        ("/nonexistent/plugin", "'/nonexistent/plugin' does not exist"),
        ("NOT-EXECUTABLE", "is not executable (mode 644)"),
        ("no-such-command-anywhere", "is not found as an executable on PATH"),
        ("DIRECTORY", "is not a regular file"),
    ])
    func aCommandThatCannotStartIsFoundAtLoad(command: String, says: String) throws {
        let r = root()
        let dir = r.appendingPathComponent("p")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var cmd = command
        if command == "NOT-EXECUTABLE" {
            cmd = dir.appendingPathComponent("plugin.sh").path
            try "#!/bin/sh\n".write(toFile: cmd, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: cmd)
        } else if command == "DIRECTORY" {
            cmd = dir.path
        }
        try PluginFixture.writeManifest(in: dir, id: "broken", kinds: ["broken_kind"], command: cmd)
        let loaded = PluginManifestLoader.load(path: dir.appendingPathComponent("nexo-plugin.toml").path)
        #expect(loaded.manifest == nil)
        let e = try #require(loaded.errors.first)
        #expect(e.line == 7, "\(e)") // the command line of [plugin.entrypoint]
        #expect(e.message.contains("[plugin.entrypoint] command:") && e.message.contains(says), "\(e.message)")
        // `validate` sees it too: the job file's plugin kind is unavailable, with the reason.
        let yaml =
            "pollers:\n  plugin_dirs: [\(r.path)]\n  jobs:\n    - { id: j, kind: broken_kind, schedule: { every_secs: 60 } }\n"
        let f = JobFile.parse(
            yaml, path: "/etc/p.yaml", registry: PollerRegistry(),
            kinds: PluginSet.kindProvider(builtins: Builtins.registry(), processes: systemProcesses()),
            environment: [:], nowMs: 0)
        #expect(f.errors.contains { $0.message.contains(says) })
        #expect(f.jobs.isEmpty)
    }

    @Test func oversizeManifestsAndArraysAreRefused() throws {
        let r = root()
        let dir = r.appendingPathComponent("big")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("nexo-plugin.toml").path
        try String(repeating: "# padding\n", count: 30_000).write(toFile: path, atomically: true, encoding: .utf8)
        let big = PluginManifestLoader.load(path: path)
        #expect(big.manifest == nil && big.errors.first?.message.contains("over the 262144-byte limit") == true)
        let manyArgs =
            "[plugin]\nid = \"a\"\nversion = \"1.0.0\"\nname = \"a\"\ndescription = \"\(String(repeating: "x", count: 5000))\"\n[plugin.entrypoint]\ncommand = \"/bin/true\"\nargs = [\(Array(repeating: "\"x\"", count: 300).joined(separator: ","))]\n[plugin.poller]\nkinds = [\"ak\"]\n"
        let parsed = PluginManifestLoader.parse(manyArgs, path: "/p/nexo-plugin.toml")
        #expect(parsed.manifest == nil)
        #expect(
            parsed.errors.contains { $0.message.contains("[plugin.entrypoint] args: has 300 entries; at most 256") })
        #expect(parsed.errors.contains { $0.message.contains("[plugin] description: is 5000 bytes; at most 4096") })
    }
}
