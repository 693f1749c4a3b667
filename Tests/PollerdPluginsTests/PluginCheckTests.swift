import Foundation
import PollerdConfig
import PollerdCore
import PollerdDaemon
import PollerdPollers
import PollerdTestKit
import Testing

@testable import PollerdPlugins

/// `pollerd plugins check DIR`: what a plugin author reads about their plugin.
@Suite struct PluginCheckTests {
    /// A plugin directory with a manifest and an executable `plugin.sh`.
    func plugin(id: String, lifecycle: String, script: String, tickTimeoutSecs: Int = 5) throws -> PluginManifest {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-check-\(UUID().uuidString)")
            .appendingPathComponent(id)
        try PluginFixture.writeManifest(
            in: dir, id: id, kinds: ["\(id)_kind"], lifecycle: lifecycle, command: "./plugin.sh",
            poller: ["tick_timeout_secs = \(tickTimeoutSecs)"])
        let exe = dir.appendingPathComponent("plugin.sh")
        try ("#!/bin/sh\n" + script).write(to: exe, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: exe.path)
        let loaded = PluginManifestLoader.load(path: dir.appendingPathComponent("nexo-plugin.toml").path)
        return try #require(loaded.manifest, "\(loaded.errors)")
    }

    func check(_ m: PluginManifest) async -> [PluginCheck.Finding] {
        await PluginCheck.run(
            manifest: m, config: .object([:]), builtins: Builtins.registry(), clock: SystemWallClock(),
            logger: quietLogger)
    }

    @Test func aWorkingEphemeralPluginPassesBothTicks() async throws {
        // The cursor it returns is what it was given plus one "x".
        let m = try plugin(
            id: "good", lifecycle: "ephemeral",
            script: #"""
                read -r req
                echo "got a tick" >&2
                echo '{"result":{"next_cursor":"eA","items":[{"id":"a"}]}}'
                """#)
        let f = await check(m)
        #expect(f.allSatisfy { $0.ok }, "\(f)")
        #expect(f.map(\.step).contains("good_kind: tick with the returned cursor"))
        #expect(f.contains { $0.step == "stderr (last lines)" && $0.detail.contains("got a tick") })
    }

    /// Mistakes plugin authors make, each explained with what to do: logs on stdout (they go to
    /// stderr), a cursor that is not URL-safe base64 (`urlsafe_b64encode`).
    @Test(arguments: [
        (
            "chatty", #"echo "starting up"; echo '{"result":{}}'"#,
            ["plugin reply is not JSON: starting up", "logs go to stderr"]
        ),
        (
            "badcursor", #"echo '{"result":{"next_cursor":"not base64!"}}'"#,
            ["next_cursor is not URL-safe base64", "urlsafe_b64encode"]
        ),
    ])
    func anAuthorsMistakeIsExplainedWithWhatToDo(id: String, reply: String, says: [String]) async throws {
        let m = try plugin(id: id, lifecycle: "ephemeral", script: "read -r req\n" + reply)
        let bad = try #require(await check(m).first { !$0.ok })
        for phrase in says { #expect(bad.detail.contains(phrase), "\(bad.detail)") }
    }

    @Test func aLongLivedPluginThatNamesAnotherIdFailsItsHandshake() async throws {
        let m = try plugin(
            id: "impostor", lifecycle: "long_lived",
            script: #"""
                read -r req
                echo '{"jsonrpc":"2.0","id":1,"result":{"manifest":{"plugin":{"id":"someone"}}}}'
                exec sleep 120
                """#,
            // The handshake's verdict, not the tick's timeout, must end the check, however loaded
            // the machine (at 5 s a loaded run timed out first).
            tickTimeoutSecs: 120)
        let f = await check(m)
        let bad = try #require(f.first { !$0.ok })
        #expect(bad.detail.contains("answer initialize with result.manifest.plugin.id equal to the manifest's id"))
        #expect(
            f.contains { $0.detail.contains("initialize reply names plugin 'someone', expected 'impostor'") }, "\(f)")
    }
}
