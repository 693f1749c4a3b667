import PollerdPlugins
import Testing

/// The seed's router tests (`plugin_poller.rs`), restated, plus pollerd's built-in collision rule.
@Suite struct PluginRouterTests {
    func handle(_ id: String, _ kinds: [String], _ topic: String) -> PluginHandle {
        PluginHandle(pluginID: id, kinds: kinds, brokerTopicPrefix: topic)
    }

    @Test func registerAndLookupSingleKind() throws {
        let r = PluginRouter()
        try r.register(handle("gcal", ["google_calendar"], "plugin.poller.gcal"))
        #expect(r.handle(forKind: "google_calendar")?.pluginID == "gcal")
        #expect(r.handle(forKind: "unknown") == nil)
    }

    @Test func registerOnePluginWithMultipleKinds() throws {
        let r = PluginRouter()
        try r.register(handle("google", ["gmail", "google_calendar"], "plugin.google"))
        #expect(r.handle(forKind: "gmail") != nil && r.handle(forKind: "google_calendar") != nil)
        #expect(r.count == 1)
    }

    @Test func registerRejectsDuplicateKindAcrossPlugins() throws {
        let r = PluginRouter()
        try r.register(handle("gcal_a", ["google_calendar"], "plugin.a"))
        #expect(
            throws: PluginRouteError.duplicateKind(
                kind: "google_calendar", existingPlugin: "gcal_a", newPlugin: "gcal_b")
        ) {
            try r.register(handle("gcal_b", ["google_calendar"], "plugin.b"))
        }
        #expect(
            PluginRouteError.duplicateKind(kind: "k", existingPlugin: "a", newPlugin: "b").description
                == "kind 'k' is declared by both plugin 'a' and plugin 'b'")
    }

    @Test func registerSamePluginIDReplacesPrevious() throws {
        let r = PluginRouter()
        try r.register(handle("gcal", ["google_calendar"], "plugin.poller.v1"))
        try r.register(handle("gcal", ["google_calendar"], "plugin.poller.v2"))
        #expect(r.count == 1)
        #expect(r.handle(forKind: "google_calendar")?.brokerTopicPrefix == "plugin.poller.v2")
    }

    @Test func builtinKindsCannotBeShadowed() {
        let r = PluginRouter(builtinKinds: ["noop", "command"])
        #expect(throws: PluginRouteError.builtinKind(kind: "noop", plugin: "evil")) {
            try r.register(handle("evil", ["noop"], "plugin.evil"))
        }
        #expect(r.isEmpty)
    }
}
