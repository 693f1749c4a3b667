import PollerdConfig
import PollerdCore
import PollerdPollers
import Testing

@Suite struct DeliverConfigTests {
    let now = RFC3339.parse("2026-01-01T00:00:00Z")!

    func load(_ yaml: String, path: String = "/etc/pollerd/pollers.yaml", env: [String: String] = [:]) -> JobFile {
        JobFile.parse(yaml, path: path, registry: Builtins.registry(), environment: env, nowMs: now)
    }

    func onlyError(_ yaml: String) -> String {
        let f = load(yaml)
        return f.errors.count == 1 ? f.errors[0].description : "errors: \(f.errors)"
    }

    @Test func jobsTakeTheDefaultSinksUnlessTheyNameTheirOwn() {
        let f = load(
            """
            pollers:
              deliver:
                - file: { path: out/items.jsonl }
              delivery: { max_attempts: 4, max_backlog: 50, dedup_window: 0, concurrency: 2, batch_size: 10, retry_base_ms: 200, retry_max_secs: 60 }
              jobs:
                - id: a
                  kind: noop
                  schedule: { every_secs: 10 }
                - id: b
                  kind: noop
                  schedule: { every_secs: 10 }
                  deliver:
                    - webhook: { url: "https://hooks.example.com/in?token=${TOKEN}", headers: { X-Team: ops }, secret: "${SECRET}", timeout_secs: 3 }
                    - nats: { subject: pollerd.items.b }
                      name: bus
                    - stdout: {}
                - id: c
                  kind: noop
                  schedule: { every_secs: 10 }
                  deliver: []
            """, env: ["TOKEN": "t0k", "SECRET": "s3"])
        #expect(f.errors.isEmpty, "\(f.errors)")
        let a = f.jobs[0]
        let b = f.jobs[1]
        let c = f.jobs[2]
        #expect(
            a.deliver == [SinkSpec(name: "file:out/items.jsonl", target: .file(path: "/etc/pollerd/out/items.jsonl"))])
        #expect(b.deliver.map(\.name) == ["webhook:https://hooks.example.com/in", "bus", "stdout"])
        #expect(
            b.deliver[0].target
                == .webhook(
                    WebhookTarget(
                        url: "https://hooks.example.com/in?token=t0k", headers: ["X-Team": "ops"], secret: "s3",
                        timeoutSecs: 3)))
        #expect(b.deliver[1].target == .nats(subject: "pollerd.items.b"))
        #expect(c.deliver.isEmpty)
        var d = DeliveryTuning()
        d.maxAttempts = 4
        d.maxBacklog = 50
        d.dedupWindow = 0
        d.concurrency = 2
        d.batchSize = 10
        d.retryBaseMs = 200
        d.retryMaxMs = 60_000
        #expect(f.settings.delivery == d)
    }

    @Test func aSinksDefaultNameHidesCredentialsInItsURL() {
        #expect(
            SinkSpec.defaultName(.webhook(WebhookTarget(url: "https://user:pw@h.example/p?q=1#f")))
                == "webhook:https://h.example/p")
    }

    @Test func changingTheSinksChangesTheJobsFingerprint() {
        let base = JobSpec(id: "j", kind: "noop", schedule: Schedule(.every(seconds: 10)))
        var other = base
        other.deliver = [SinkSpec(.stdout)]
        #expect(base.fingerprint != other.fingerprint)
        var secret = other
        secret.deliver = [SinkSpec(.webhook(WebhookTarget(url: "http://h/x", secret: "a")))]
        var secret2 = secret
        secret2.deliver = [SinkSpec(.webhook(WebhookTarget(url: "http://h/x", secret: "b")))]
        #expect(secret.fingerprint != secret2.fingerprint && !secret.fingerprint.contains("a)"))
    }

    @Test(arguments: [
        (
            "deliver: { file: { path: x } }",
            "5:16: job 'j': deliver must be a list of sinks, such as [{ file: { path: out.jsonl } }]"
        ),
        ("deliver: [{ ftp: { path: x } }]", "5:19: job 'j': unknown key 'ftp' in a sink"),
        (
            "deliver: [{ file: { path: x }, stdout: {} }]",
            "5:17: job 'j': a sink takes only one of file, webhook, nats or stdout"
        ),
        ("deliver: [{ name: n }]", "5:17: job 'j': a sink needs one of file, webhook, nats or stdout"),
        ("deliver: [{ file: {} }]", "5:25: job 'j': file needs 'path'"),
        ("deliver: [{ file: { pth: x } }]", "5:27: job 'j': unknown key 'pth' in file (did you mean 'path'?)"),
        (
            "deliver: [{ webhook: { url: ftp://x/y } }]",
            "5:35: job 'j': webhook url must be an http:// or https:// URL with a host, not 'ftp://x/y'"
        ),
        (
            "deliver: [{ webhook: { url: 'http://h/x', timeout_secs: 0 } }]",
            "5:63: job 'j': 'timeout_secs' must be between 1 and 300, not 0"
        ),
        (
            "deliver: [{ webhook: { url: 'http://h/x', headers: { Content-Length: '1' } } }]",
            "5:60: job 'j': header 'Content-Length' is set by pollerd and cannot be configured"
        ),
        (
            "deliver: [{ webhook: { url: 'http://h/x', secret: '' } }]",
            "5:57: job 'j': secret must not be empty (leave it out to send no signature)"
        ),
        (
            "deliver: [{ nats: { subject: 'a.*' } }]",
            "5:36: job 'j': invalid subject 'a.*': wildcards cannot be published to"
        ),
        (
            "deliver: [{ nats: { subject: 'a..b' } }]",
            "5:36: job 'j': invalid subject 'a..b': empty token (leading, trailing or double '.')"
        ),
        (
            "deliver: [{ stdout: {} }, { stdout: {} }]",
            "5:33: job 'j': two sinks named 'stdout' (the first at line 5); give one a distinct 'name'"
        ),
    ])
    func badSinksAreLocated(line: String, expected: String) {
        let msg = onlyError(
            """
            pollers:
              jobs:
                - id: j
                  kind: noop
                  \(line)
                  schedule: { every_secs: 10 }
            """)
        #expect(msg == "/etc/pollerd/pollers.yaml:\(expected)")
    }

    @Test func badDeliverySettingsAreFatal() {
        let f = load(
            """
            pollers:
              delivery: { max_attempts: 0 }
              jobs: []
            """)
        #expect(f.isFatal)
        #expect(
            f.errors.map(\.description) == [
                "/etc/pollerd/pollers.yaml:2:29: 'max_attempts' must be between 1 and 1000, not 0"
            ])
        let g = load(
            """
            pollers:
              admin_listen: "9464"
            """)
        #expect(
            g.errors.map(\.description) == [
                "/etc/pollerd/pollers.yaml:2:17: admin_listen must be HOST:PORT, such as 127.0.0.1:9091, or off"
            ])
    }
}
