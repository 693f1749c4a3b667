import Foundation
import PollerdConfig
import PollerdCore
import PollerdPollers
import PollerdTestKit
import Testing

@testable import PollerdPlugins

@Suite struct PluginSetTests {
    /// A plugin_dirs tree with one plugin per (id, kinds).
    func tree(_ plugins: [(String, [String])]) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-set-\(UUID().uuidString)")
        for (id, kinds) in plugins {
            try PluginFixture.writeManifest(in: root.appendingPathComponent(id), id: id, kinds: kinds)
        }
        return root.path
    }

    @Test func duplicateKindLeavesTheSecondPluginOutNamingBoth() throws {
        let root = try tree([("alpha", ["feed"]), ("beta", ["feed", "other"])])
        let set = PluginSet.load(
            directories: [root], relativeTo: "/", builtins: Builtins.registry(), processes: systemProcesses())
        #expect(set.pollers.map(\.kind) == ["feed"])
        #expect(
            set.errors.map(\.description).contains {
                $0.contains("plugin 'beta' left out: kind 'feed' is declared by both plugin 'alpha' and plugin 'beta'")
            })
    }

    @Test func builtinKindCollisionIsAnError() throws {
        let root = try tree([("sneaky", ["noop"])])
        let set = PluginSet.load(
            directories: [root], relativeTo: "/", builtins: Builtins.registry(), processes: systemProcesses())
        #expect(set.pollers.isEmpty)
        #expect(set.errors.first?.description.contains("declares kind 'noop', which is built into pollerd") == true)
    }

    @Test func jobsValidateAgainstPluginKinds() throws {
        let root = try tree([("alpha", ["feed"])])
        let yaml = """
            pollers:
              plugin_dirs: ["\(root)"]
              jobs:
                - { id: a, kind: feed, schedule: { every_secs: 5 } }
                - { id: b, kind: fead, schedule: { every_secs: 5 } }
            """
        let f = JobFile.parse(
            yaml, path: "/etc/p.yaml", registry: PollerRegistry(),
            kinds: PluginSet.kindProvider(builtins: Builtins.registry(), processes: systemProcesses()),
            environment: [:], nowMs: 0)
        #expect(f.jobs.map(\.id) == ["a"])
        #expect(
            f.errors.map(\.description) == [
                "/etc/p.yaml:5:22: job 'b': unknown kind 'fead' (did you mean 'feed'?); known kinds: command, feed, noop"
            ])
        #expect(f.registry.poller(for: "feed") is EphemeralPluginPoller)
    }

    @Test func reloadKeepsAnUnchangedPluginAndReplacesAChangedOne() async throws {
        let processes = systemProcesses()
        let spec = PluginProcessSpec(pluginID: "ll", command: "/bin/cat", workingDirectory: "/")
        let policy = SupervisorPolicy(respawn: false, maxAttempts: 1, backoffMs: 100)
        let a = processes.plugin(spec: spec, policy: policy, stderrTailLines: 8, maxConcurrentTicks: 1)
        let same = processes.plugin(spec: spec, policy: policy, stderrTailLines: 8, maxConcurrentTicks: 1)
        #expect(a === same)
        var changed = spec
        changed.args = ["-u"]
        let b = processes.plugin(spec: changed, policy: policy, stderrTailLines: 8, maxConcurrentTicks: 1)
        #expect(a !== b)
        await processes.retain(only: [b])
        #expect(a.phase == .stopped)
        #expect(b.phase == .idle)
        await processes.shutdownAll()
        #expect(b.phase == .stopped)
    }
}
