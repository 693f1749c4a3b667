import Foundation
import PollerdConfig
import Testing

@Suite struct PluginManifestTests {
    let minimal = """
        [plugin]
        id = "rss"
        version = "0.1.0"
        name = "RSS Poller"
        description = "RSS / Atom feed poller"

        [plugin.entrypoint]
        command = "nexo-poller-rss"

        [plugin.poller]
        kinds = ["rss"]
        broker_topic_prefix = "plugin.poller.rss"
        """

    func parse(_ t: String) -> (manifest: PluginManifest?, errors: [ConfigError], warnings: [ConfigError]) {
        PluginManifestLoader.parse(t, path: "/p/rss/nexo-plugin.toml")
    }

    @Test func minimalManifestTakesNexosDefaults() throws {
        let r = parse(minimal)
        let m = try #require(r.manifest, "\(r.errors)")
        #expect(
            m.id == "rss" && m.kinds == ["rss"] && m.lifecycle == "long_lived" && m.maxConcurrentTicks == 1
                && m.tickTimeoutSecs == 60)
        #expect(
            m.command == "nexo-poller-rss" && m.directory == "/p/rss" && m.stderrTailLines == 32 && m.maxAttempts == 3)
    }

    @Test func nexoTablesPollerdDoesNotUseWarn() throws {
        let r = parse(
            "manifest_version = 2\n" + minimal
                + "\n\n[plugin.requires]\nnexo_capabilities = [\"broker\"]\n\n[plugin.capabilities.broker]\nsubscribe = [\"x\"]\n"
        )
        #expect(r.errors.isEmpty && r.manifest != nil)
        #expect(r.warnings.count == 3)
    }

    @Test func relativeCommandResolvesAgainstTheManifest() throws {
        let m = try #require(
            parse(minimal.replacingOccurrences(of: "\"nexo-poller-rss\"", with: "\"./bin/plugin\"")).manifest)
        #expect(m.command == "/p/rss/bin/plugin")
    }

    @Test(arguments: [
        ("kinds = [\"rss\"]", "kinds = [\"Google\"]", "[plugin.poller] kinds: 'Google' must match"),
        ("kinds = [\"rss\"]", "kinds = [\"1leading_digit\"]", "must match ^[a-z][a-z0-9_]+$"),
        ("kinds = [\"rss\"]", "kinds = [\"hy-phen\"]", "must match"),
        ("kinds = [\"rss\"]", "kinds = []", "must list at least one kind"),
        ("kinds = [\"rss\"]", "kinds = [\"rss\", \"rss\"]", "'rss' is listed twice"),
        (
            "broker_topic_prefix = \"plugin.poller.rss\"", "broker_topic_prefix = \"plugin.poller.\"",
            "broker_topic_prefix"
        ),
        ("broker_topic_prefix = \"plugin.poller.rss\"", "broker_topic_prefix = \"a b\"", "broker_topic_prefix"),
        (
            "kinds = [\"rss\"]", "kinds = [\"rss\"]\nmax_concurrent_ticks = 0",
            "max_concurrent_ticks: must be between 1 and 64, not 0"
        ),
        ("kinds = [\"rss\"]", "kinds = [\"rss\"]\nmax_concurrent_ticks = 65", "must be between 1 and 64"),
        (
            "kinds = [\"rss\"]", "kinds = [\"rss\"]\ntick_timeout_secs = 3601",
            "tick_timeout_secs: must be between 1 and 3600"
        ),
        (
            "kinds = [\"rss\"]", "kinds = [\"rss\"]\nlifecycle = \"forever\"",
            "lifecycle: must be \"long_lived\" or \"ephemeral\""
        ),
        (
            "kinds = [\"rss\"]", "kinds = [\"rss\"]\nkinz = 1",
            "[plugin.poller] kinz: unknown key (did you mean 'kinds'?)"
        ),
        ("id = \"rss\"", "id = \"RSS\"", "[plugin] id: 'RSS' must match"),
        ("version = \"0.1.0\"", "version = \"one\"", "not a semantic version"),
        (
            "command = \"nexo-poller-rss\"", "command = \"x\"\nenv = { NEXO_TOKEN = \"s\" }",
            "keys starting with NEXO_ are reserved"
        ),
        ("command = \"nexo-poller-rss\"", "", "an ephemeral plugin needs a command"),
    ])
    func invalidManifestsNameFileLineAndKey(from: String, to: String, expected: String) {
        var text = minimal.replacingOccurrences(of: from, with: to)
        if expected.contains("ephemeral plugin needs") { text += "\nlifecycle = \"ephemeral\"" }
        let r = parse(text)
        #expect(r.manifest == nil)
        let all = r.errors.map(\.description).joined(separator: "\n")
        #expect(all.contains(expected), "\(all)")
        #expect(r.errors.allSatisfy { $0.description.hasPrefix("/p/rss/nexo-plugin.toml:") })
    }

    @Test func errorLinesPointAtTheKey() {
        let r = parse(minimal + "\nmax_concurrent_ticks = 99\n")
        #expect(
            r.errors.first?.description
                == "/p/rss/nexo-plugin.toml:13:1: [plugin.poller] max_concurrent_ticks: must be between 1 and 64, not 99"
        )
    }

    @Test func tomlSyntaxErrorsAreLocated() {
        let r = parse("[plugin]\nid = \"rss\n")
        #expect(r.errors.first?.description.hasPrefix("/p/rss/nexo-plugin.toml:2:") == true, "\(r.errors)")
    }
}
