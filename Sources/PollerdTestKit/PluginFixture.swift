public import Foundation

/// Plugin directories for tests: a manifest (`nexo-plugin.toml`) in `dir`.
public enum PluginFixture {
    /// Writes a manifest for plugin `id` with these kinds; `poller` lines go into `[plugin.poller]`.
    public static func writeManifest(
        in dir: URL, id: String, kinds: [String], lifecycle: String = "ephemeral",
        command: String = "/bin/true", poller: [String] = []
    ) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let toml = """
            [plugin]
            id = "\(id)"
            version = "1.0.0"
            name = "\(id)"
            description = "test plugin"
            [plugin.entrypoint]
            command = "\(command)"
            [plugin.poller]
            kinds = [\(kinds.map { "\"\($0)\"" }.joined(separator: ", "))]
            lifecycle = "\(lifecycle)"
            """ + poller.map { "\n" + $0 }.joined()
        try toml.write(to: dir.appendingPathComponent("nexo-plugin.toml"), atomically: true, encoding: .utf8)
    }
}
