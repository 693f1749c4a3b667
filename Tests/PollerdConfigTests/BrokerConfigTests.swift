import PollerdConfig
import PollerdCore
import PollerdPollers
import Testing

/// `pollers.broker`: the NATS servers of the `nats` sinks, with `${ENV}` credentials, checked as
/// the file loads and never shown with a password.
@Suite struct BrokerConfigTests {
    let now = RFC3339.parse("2026-01-01T00:00:00Z")!

    func load(_ pollers: String, env: [String: String] = [:], sinks: String = "[]") -> JobFile {
        JobFile.parse(
            "pollers:\n" + pollers
                + "\n  jobs:\n    - { id: a, kind: noop, schedule: { every_secs: 5 }, deliver: \(sinks) }",
            path: "/etc/pollerd/pollers.yaml", registry: Builtins.registry(), environment: env, nowMs: now)
    }

    @Test func urlsCredentialsAndTuningFromTheEnvironment() {
        let f = load(
            """
              broker:
                url: nats://n1.internal:4222
                urls: [ "tls://n2.internal", "n3.internal:4333" ]
                user: pollerd
                password: ${NATS_PASSWORD}
                name: edge-1
                ack_window: 64
            """, env: ["NATS_PASSWORD": "hunter2"], sinks: "[{ nats: { subject: items.a } }]")
        #expect(f.errors.isEmpty, "\(f.errors)")
        #expect(f.warnings.isEmpty, "\(f.warnings)") // no in-process warning with a broker
        let b = f.settings.broker
        #expect(b?.urls == ["nats://n1.internal:4222", "tls://n2.internal", "n3.internal:4333"])
        #expect(b?.user == "pollerd" && b?.password == "hunter2" && b?.name == "edge-1" && b?.ackWindow == 64)
    }

    @Test func withoutABrokerANatsSinkWarnsOfTheInProcessBroker() {
        let f = load("  enabled: true", sinks: "[{ nats: { subject: items.a } }]")
        #expect(f.errors.isEmpty)
        #expect(f.warnings.contains { $0.message.contains("no pollers.broker is configured") })
    }

    @Test(arguments: [
        ("  broker: { user: x, password: y }", "broker needs 'url' or 'urls'"),
        ("  broker: { url: 'http://u:hunter2@h' }", "the scheme must be nats:// or tls://"),
        ("  broker: { url: 'nats://h:99999' }", "a bad port"),
        ("  broker: { url: 'nats://h', user: x }", "'user' and 'password' go together"),
        ("  broker: { url: 'nats://h', user: x, password: y, token: z }", "or 'token', not both"),
        ("  broker: { url: 'nats://h', ack_window: 0 }", "'ack_window' must be between 1 and 65536"),
        ("  broker: { url: 'nats://h', tls: { ca_file: /nonexistent/ca.pem } }", "cannot read /nonexistent/ca.pem"),
        ("  broker: { url: 'nats://h', tls: { cert_file: /etc/hostname } }", "'cert_file' and 'key_file' go together"),
        ("  broker: { url: 'nats://h', pasword: y }", "unknown key 'pasword'"),
    ])
    func badBrokersAreLocatedErrors(pollers: String, expected: String) {
        let f = load(pollers)
        let e = f.errors.map(\.description).joined(separator: "\n")
        #expect(e.contains("pollers.yaml:2:") && e.contains(expected), "\(e)")
        #expect(!e.contains("hunter2"))
    }
}
