import Foundation
import PollerdConfig
import PollerdCore
@testable import PollerdPlugins
import PollerdPollers
import PollerdTestKit
import Testing

/// `pollerd plugins check DIR`: what a plugin author reads about their plugin.
@Suite struct PluginCheckTests {
    /// A plugin directory with a manifest and an executable `plugin.sh`.
    func plugin(id: String, lifecycle: String, script: String) throws -> PluginManifest {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-check-\(UUID().uuidString)").appendingPathComponent(id)
        try PluginFixture.writeManifest(in: dir, id: id, kinds: ["\(id)_kind"], lifecycle: lifecycle, command: "./plugin.sh",
                                        poller: ["tick_timeout_secs = 5"])
        let exe = dir.appendingPathComponent("plugin.sh")
        try ("#!/bin/sh\n" + script).write(to: exe, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: exe.path)
        let loaded = PluginManifestLoader.load(path: dir.appendingPathComponent("nexo-plugin.toml").path)
        return try #require(loaded.manifest, "\(loaded.errors)")
    }

    func check(_ m: PluginManifest) async -> [PluginCheck.Finding] {
        await PluginCheck.run(manifest: m, config: .object([:]), builtins: Builtins.registry())
    }

    @Test func aWorkingEphemeralPluginPassesBothTicks() async throws {
        // The cursor it returns is what it was given plus one "x".
        let m = try plugin(id: "good", lifecycle: "ephemeral", script: #"""
            read -r req
            echo "got a tick" >&2
            echo '{"result":{"next_cursor":"eA","items":[{"id":"a"}]}}'
            """#)
        let f = await check(m)
        #expect(f.allSatisfy { $0.ok }, "\(f)")
        #expect(f.map(\.step).contains("good_kind: tick with the returned cursor"))
        #expect(f.contains { $0.step == "stderr (last lines)" && $0.detail.contains("got a tick") })
    }

    @Test func logsOnStdoutAreCalledOutWithWhatToDo() async throws {
        let m = try plugin(id: "chatty", lifecycle: "ephemeral", script: #"""
            read -r req
            echo "starting up"
            echo '{"result":{}}'
            """#)
        let bad = try #require(await check(m).first { !$0.ok })
        #expect(bad.detail.contains("plugin reply is not JSON: starting up"))
        #expect(bad.detail.contains("logs go to stderr"))
    }

    @Test func aPaddedOrInvalidCursorIsExplained() async throws {
        let m = try plugin(id: "badcursor", lifecycle: "ephemeral", script: #"""
            read -r req
            echo '{"result":{"next_cursor":"not base64!"}}'
            """#)
        let bad = try #require(await check(m).first { !$0.ok })
        #expect(bad.detail.contains("next_cursor is not URL-safe base64"))
        #expect(bad.detail.contains("urlsafe_b64encode"))
    }

    @Test func aLongLivedPluginThatNamesAnotherIdFailsItsHandshake() async throws {
        let m = try plugin(id: "impostor", lifecycle: "long_lived", script: #"""
            read -r req
            echo '{"jsonrpc":"2.0","id":1,"result":{"manifest":{"plugin":{"id":"someone"}}}}'
            exec sleep 5
            """#)
        let f = await check(m)
        let bad = try #require(f.first { !$0.ok })
        #expect(bad.detail.contains("answer initialize with result.manifest.plugin.id equal to the manifest's id"))
        #expect(f.contains { $0.detail.contains("initialize reply names plugin 'someone', expected 'impostor'") }, "\(f)")
    }
}
