import Foundation
import PollerdConfig
import PollerdCore
import PollerdPollers
import Testing

@Suite struct JobFileTests {
    let now = RFC3339.parse("2026-01-01T00:00:00Z")!

    func load(_ yaml: String, env: [String: String] = [:]) -> JobFile {
        JobFile.parse(yaml, path: "pollers.yaml", registry: Builtins.registry(), environment: env, nowMs: now)
    }

    /// The only error's text, or a marker when there is not exactly one.
    func onlyError(_ yaml: String, env: [String: String] = [:]) -> String {
        let f = load(yaml, env: env)
        return f.errors.count == 1 ? f.errors[0].description : "errors: \(f.errors)"
    }

    @Test func nexoShapeLoadsWithDefaults() {
        let f = load(
            """
            schema_version: 11
            pollers:
              jobs:
                - id: ana_hn
                  kind: noop
                  agent: ana
                  schedule: { every_secs: 300, stagger_jitter_ms: 2000 }
                  failure_to: { channel: telegram, to: "1194292426" }
                  paused_on_boot: false
                - id: kate_daily
                  kind: noop
                  agent: kate
                  schedule: { cron: "0 0 8 * * *", tz: America/Bogota }
                - id: once
                  kind: noop
                  schedule: { at: "2026-12-31T23:59:00-05:00" }
            """)
        #expect(f.errors.isEmpty, "\(f.errors)")
        #expect(f.jobs.map(\.id) == ["ana_hn", "kate_daily", "once"])
        #expect(f.settings == GlobalSettings())
        #expect(
            f.settings.stateDB == "./data/pollerd.db" && f.settings.defaultJitterMs == 5000
                && f.settings.breakerThreshold == 5)
        #expect(f.jobs[0].schedule == Schedule(.every(seconds: 300), jitterMs: 2000))
        #expect(f.jobs[0].failureTo == FailureTarget(channel: "telegram", to: "1194292426"))
        #expect(f.jobs[1].agent == "kate")
        #expect(f.jobs[2].schedule.spec == .at(RFC3339.parse("2027-01-01T04:59:00Z")!))
        #expect(f.jobs[0].timeoutSecs == 60 && f.jobs[0].catchUp == .once)
    }

    @Test func globalKnobsAndPollerdKeys() {
        let f = load(
            """
            pollers:
              enabled: false
              state_db: /var/lib/pollerd/state.db
              default_jitter_ms: 100
              lease_ttl_factor: 3
              failure_alert_cooldown_secs: 60
              breaker_threshold: 2
              plugin_dirs: [plugins]
              max_concurrent_ticks: 8
              shutdown_grace_secs: 5
              state_sync: normal
            """)
        #expect(f.errors.isEmpty)
        #expect(
            !f.settings.enabled && f.settings.stateDB == "/var/lib/pollerd/state.db"
                && f.settings.defaultJitterMs == 100)
        #expect(
            f.settings.leaseTTLFactor == 3 && f.settings.breakerThreshold == 2 && f.settings.maxConcurrentTicks == 8)
        #expect(
            f.settings.pluginDirs == ["plugins"] && !f.settings.stateSynchronousFull
                && f.settings.shutdownGraceSecs == 5)
    }

    @Test func stateDBResolvesAgainstTheJobFilesDirectory() {
        let f = JobFile.parse(
            "pollers: {}", path: "/etc/pollerd/pollers.yaml", registry: Builtins.registry(), environment: [:],
            nowMs: now)
        #expect(f.stateDBPath == "/etc/pollerd/data/pollerd.db")
    }

    @Test func envInterpolation() {
        let f = load(
            """
            pollers:
              jobs:
                - id: ${JOB_ID:-fallback}
                  kind: command
                  schedule: { every_secs: "${PERIOD}" }
                  config: { argv: ["/bin/echo", "${GREETING}", "$${LITERAL}"] }
                - id: typed
                  kind: noop
                  schedule:
                    every_secs: ${PERIOD}
            """, env: ["PERIOD": "30", "GREETING": "hi"])
        #expect(f.errors.isEmpty, "\(f.errors)")
        #expect(f.jobs[0].id == "fallback")
        #expect(f.jobs[0].config["argv"] == .array([.string("/bin/echo"), .string("hi"), .string("${LITERAL}")]))
        #expect(f.jobs[1].schedule.spec == .every(seconds: 30))
    }

    @Test func missingVariableIsLocated() {
        #expect(
            onlyError(
                """
                pollers:
                  jobs:
                    - id: a
                      kind: command
                      schedule: { every_secs: 5 }
                      config: { argv: ["${NOPE}"] }
                """)
                == "pollers.yaml:6:24: job 'a': environment variable 'NOPE' is not set and has no default (write ${NOPE:-default})"
        )
    }

    @Test func unknownKeysSuggestTheClosest() {
        #expect(
            onlyError(
                """
                pollers:
                  jobs:
                    - id: a
                      kind: noop
                      shedule: { every_secs: 5 }
                """) == "pollers.yaml:5:7: job 'a': unknown key 'shedule' in a job (did you mean 'schedule'?)")
        #expect(
            onlyError(
                """
                pollers:
                  breaker_treshold: 3
                """)
                == "pollers.yaml:2:3: unknown key 'breaker_treshold' in 'pollers' (did you mean 'breaker_threshold'?)")
        #expect(
            onlyError(
                """
                pollers:
                  jobs:
                    - id: a
                      kind: noop
                      schedule: { every_sec: 5 }
                """) == "pollers.yaml:5:19: job 'a': unknown key 'every_sec' in schedule (did you mean 'every_secs'?)")
    }

    @Test func unknownKindSuggests() {
        #expect(
            onlyError(
                """
                pollers:
                  jobs:
                    - id: a
                      kind: nop
                      schedule: { every_secs: 5 }
                """)
                == "pollers.yaml:4:13: job 'a': unknown kind 'nop' (did you mean 'noop'?); known kinds: command, noop")
    }

    @Test func duplicateIdsRunNeitherCopy() {
        let f = load(
            """
            pollers:
              jobs:
                - { id: a, kind: noop, schedule: { every_secs: 5 } }
                - { id: b, kind: noop, schedule: { every_secs: 5 } }
                - { id: a, kind: noop, schedule: { every_secs: 9 } }
            """)
        #expect(f.jobs.map(\.id) == ["b"])
        #expect(
            f.errors.map(\.description) == [
                "pollers.yaml:5:7: job 'a': duplicate job id (first defined at line 3); neither copy runs"
            ])
        #expect(!f.isFatal)
    }

    @Test func oneBadJobIsLeftOutAndTheRestLoad() {
        let f = load(
            """
            pollers:
              jobs:
                - { id: good, kind: noop, schedule: { every_secs: 5 } }
                - { id: bad, kind: noop, schedule: { every_secs: 0 } }
                - { id: also_good, kind: noop, schedule: { every_secs: 5 } }
            """)
        #expect(f.jobs.map(\.id) == ["good", "also_good"])
        #expect(
            f.errors.map(\.description) == [
                "pollers.yaml:4:54: job 'bad': 'every_secs' must be between 1 and 315360000, not 0"
            ])
        #expect(!f.isFatal)
    }

    @Test(arguments: [
        (
            "- { id: 'bad id!', kind: noop, schedule: { every_secs: 5 } }",
            "3:13: job 'bad id!': invalid id: use 1 to 64 letters, digits, '_', '.' or '-'"
        ),
        ("- { id: \(String(repeating: "x", count: 65)), kind: noop, schedule: { every_secs: 5 } }", "invalid id"),
        ("- { kind: noop, schedule: { every_secs: 5 } }", "3:7: job is missing 'id'"),
        ("- { id: a, schedule: { every_secs: 5 } }", "job 'a': missing 'kind'"),
        ("- { id: a, kind: noop }", "job 'a': missing 'schedule'"),
        ("- { id: a, kind: noop, schedule: {} }", "job 'a': schedule needs one of every_secs, cron or at"),
        (
            "- { id: a, kind: noop, schedule: { every_secs: 5, cron: '* * * * *' } }",
            "schedule takes only one of every_secs, cron or at"
        ),
        ("- { id: a, kind: noop, schedule: { every_secs: 5, tz: UTC } }", "'tz' only goes with 'cron'"),
        ("- { id: a, kind: noop, schedule: { every_secs: five } }", "'every_secs' must be a whole number, not 'five'"),
        (
            "- { id: a, kind: noop, schedule: { cron: '61 * * * *' } }",
            "invalid cron expression \"61 * * * *\": minute field: value 61 out of range 0-59"
        ),
        ("- { id: a, kind: noop, schedule: { cron: '0 0 30 2 *' } }", "never fires"),
        ("- { id: a, kind: noop, schedule: { cron: '@daily', tz: Mars/Base } }", "unknown time zone 'Mars/Base'"),
        ("- { id: a, kind: noop, schedule: { at: tomorrow } }", "'at' must be an RFC 3339 timestamp"),
        (
            "- { id: a, kind: noop, schedule: { every_secs: 5, stagger_jitter_ms: -1 } }",
            "'stagger_jitter_ms' must be between 0"
        ),
        (
            "- { id: a, kind: noop, schedule: { every_secs: 5 }, timeout_secs: 0 }",
            "'timeout_secs' must be between 1 and 86400"
        ),
        (
            "- { id: a, kind: noop, schedule: { every_secs: 5 }, catch_up: always }",
            "catch_up must be 'skip' or 'once', not 'always'"
        ),
        (
            "- { id: a, kind: noop, schedule: { every_secs: 5 }, paused_on_boot: maybe }",
            "'paused_on_boot' must be true or false"
        ),
        (
            "- { id: a, kind: noop, schedule: { every_secs: 5 }, failure_to: { channel: telegram } }",
            "failure_to needs 'to'"
        ),
        ("- { id: a, kind: noop, schedule: { every_secs: 5 }, config: [1, 2] }", "config must be a mapping"),
        (
            "- { id: a, kind: noop, schedule: { every_secs: 5 }, config: { itemz: 3 } }",
            "config.itemz: unknown key (did you mean 'items'?)"
        ),
        ("- { id: a, kind: command, schedule: { every_secs: 5 }, config: {} }", "config.argv: is required"),
        (
            "- { id: a, kind: command, schedule: { every_secs: 5 }, config: { argv: [] } }",
            "config.argv: must name a program"
        ),
        (
            "- { id: a, kind: command, schedule: { every_secs: 5 }, config: { argv: [x], env: { 'A B': c } } }",
            "config.env.A B: is not a valid environment variable name"
        ),
        ("- { id: a, kind: noop, schedule: { every_secs: 5 }, agent: '' }", "agent must not be empty"),

        ("- just a string", "a job must be a mapping"),
    ])
    func jobErrors(jobYAML: String, expected: String) {
        let f = load("pollers:\n  jobs:\n    " + jobYAML + "\n")
        #expect(f.jobs.isEmpty)
        #expect(f.errors.count == 1)
        let text = f.errors.first?.description ?? ""
        #expect(text.hasPrefix("pollers.yaml:"), "\(text)")
        #expect(text.contains(expected), "\(text)")
    }

    @Test func configErrorPointsAtTheKey() {
        let e = onlyError(
            """
            pollers:
              jobs:
                - id: a
                  kind: noop
                  schedule: { every_secs: 5 }
                  config:
                    items: lots
            """)
        #expect(e == "pollers.yaml:7:16: job 'a': config.items: must be an integer")
    }

    @Test(arguments: [
        ("", "the job file is empty"),
        ("jobs: []", "unknown key 'jobs' in top level"),
        ("pollers: [1]", "'pollers' must be a mapping"),
        ("pollers:\n  jobs: {}", "jobs must be a list"),
        ("pollers:\n  default_jitter_ms: -5", "'default_jitter_ms' must be between 0"),
        ("pollers:\n  lease_ttl_factor: 0.5", "lease_ttl_factor must be between 1.0 and 100.0"),
        ("pollers:\n  state_sync: sometimes", "state_sync must be 'full' or 'normal'"),
        ("pollers:\n  jobs: [\n", "YAML syntax error"),
        ("pollers:\n  a: &x 1\n  b: *x", "unknown key 'a'"),
        ("other: 1", "unknown key 'other' in top level"),
        ("{}", "missing the top-level 'pollers:' key"),
    ])
    func fileErrorsAreFatal(yaml: String, expected: String) {
        let f = load(yaml)
        #expect(f.isFatal)
        #expect(f.errors.first.map { $0.description.contains(expected) } == true, "\(f.errors)")
        #expect(f.errors.first?.description.hasPrefix("pollers.yaml:") == true)
    }

    @Test func duplicateKeysMakeTheFileUnusable() {
        let f = load("pollers:\n  jobs:\n    - { id: a, kind: noop, schedule: { every_secs: 5 }, kind: noop }\n")
        #expect(f.isFatal)
        #expect(f.errors.first?.description.hasPrefix("pollers.yaml:3:") == true, "\(f.errors)")
        #expect(f.errors.first?.description.contains("duplicate key 'kind'") == true)
    }

    @Test func pastAtIsAWarning() {
        let f = load("pollers:\n  jobs:\n    - { id: a, kind: noop, schedule: { at: '2020-01-01T00:00:00Z' } }\n")
        #expect(f.errors.isEmpty && f.jobs.count == 1)
        #expect(f.warnings.first?.description.contains("is in the past") == true)
    }

    @Test func missingFileIsFatal() {
        let f = JobFile.load(
            path: "/nonexistent/pollers.yaml", registry: Builtins.registry(), environment: [:], nowMs: now)
        #expect(
            f.isFatal
                && f.errors.first?.description
                    == "/nonexistent/pollers.yaml: cannot read the job file: No such file or directory (ENOENT)"
        )
    }

    /// Why a job file cannot be read is said, with the errno's name: not found, a directory, not
    /// permitted (as root nothing is refused, so that case is checked where the test is not root).
    @Test func anUnreadableFileSaysWhy() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pollerd-unreadable-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let asDir = JobFile.load(path: dir.path, registry: Builtins.registry(), environment: [:], nowMs: now)
        #expect(asDir.errors.first?.description == "\(dir.path): cannot read the job file: Is a directory (EISDIR)")
        let file = dir.appendingPathComponent("p.yaml")
        try Data("pollers: {}\n".utf8).write(to: file)
        let below = JobFile.load(
            path: file.path + "/x.yaml", registry: Builtins.registry(), environment: [:], nowMs: now)
        #expect(below.errors.first?.description.hasSuffix("Not a directory (ENOTDIR)") == true)
        guard geteuid() != 0 else { return }
        chmod(file.path, 0)
        let denied = JobFile.load(path: file.path, registry: Builtins.registry(), environment: [:], nowMs: now)
        #expect(denied.errors.first?.description.hasSuffix("Permission denied (EACCES)") == true)
    }

    @Test func interpolationRules() throws {
        #expect(try EnvInterpolation.expand("a${X}b${Y:-d}c$$", environment: ["X": "1"]) == "a1bdc$")
        #expect(try EnvInterpolation.expand("no vars", environment: [:]) == "no vars")
        #expect(throws: EnvInterpolation.Failure.self) { try EnvInterpolation.expand("${X", environment: [:]) }
        #expect(throws: EnvInterpolation.Failure.self) { try EnvInterpolation.expand("${A-B}", environment: [:]) }
    }

    /// "Billion laughs": 10 levels of 10 aliases in under 1 KB stand for 10^10 nodes. The file
    /// is refused, located, before anything walks the tree (the original grew past 4.6 GB).
    @Test func aYAMLAliasBombIsRefusedBeforeTheTreeIsWalked() {
        var lines = [
            "pollers:", "  jobs:", "    - id: j", "      kind: noop", "      schedule: { every_secs: 10 }",
            "      config:",
            "        a0: &a0 [x, x, x, x, x, x, x, x, x, x]",
        ]
        for i in 1..<10 {
            lines.append("        a\(i): &a\(i) [\(Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", "))]")
        }
        let text = lines.joined(separator: "\n") + "\n"
        #expect(text.utf8.count < 1024)
        let f = JobFile.parse(text, path: "/etc/bomb.yaml", registry: Builtins.registry(), environment: [:], nowMs: 0)
        #expect(f.isFatal && f.jobs.isEmpty)
        let e = f.errors.first
        #expect(
            e?.message.contains("YAML aliases expand the job file past 100000 nodes") == true,
            "\(String(describing: e))")
        #expect((e?.line ?? 0) > 0)
    }

    /// Aliases within reason are fine.
    @Test func ordinaryAliasesStillWork() {
        let text =
            "pollers:\n  jobs:\n    - id: a\n      kind: noop\n      schedule: &s { every_secs: 10 }\n    - id: b\n      kind: noop\n      schedule: *s\n"
        let f = JobFile.parse(text, path: "/etc/p.yaml", registry: Builtins.registry(), environment: [:], nowMs: 0)
        #expect(f.errors.isEmpty && f.jobs.map(\.id) == ["a", "b"])
    }
}

@Suite struct PerJobDedupWindowTests {
    @Test func aJobCanSetItsOwnDedupWindow() {
        let yaml = """
            pollers:
              jobs:
                - { id: a, kind: noop, schedule: { every_secs: 5 }, dedup_window: 50000 }
                - { id: b, kind: noop, schedule: { every_secs: 5 } }
                - { id: c, kind: noop, schedule: { every_secs: 5 }, dedup_window: -1 }
            """
        let f = JobFile.parse(yaml, path: "/etc/p.yaml", registry: Builtins.registry(), environment: [:], nowMs: 0)
        #expect(f.jobs.first { $0.id == "a" }?.dedupWindow == 50_000)
        #expect(f.jobs.first { $0.id == "b" }?.dedupWindow == nil)
        #expect(f.errors.contains { $0.jobID == "c" && "\($0)".contains("dedup_window") })
    }
}

@Suite struct HTTPSettingsTests {
    @Test func theHTTPBlockIsRead() {
        let yaml = """
            pollers:
              http:
                per_host_limit: 4
                user_agent: "ExampleBot/1.0 (+https://example.com/bot)"
                allow_addresses: ["10.1.0.0/16", "127.0.0.1/32:8080", "[::1]/128:9000"]
              jobs: []
            """
        let f = JobFile.parse(yaml, path: "/etc/p.yaml", registry: Builtins.registry(), environment: [:], nowMs: 0)
        #expect(f.errors.isEmpty, "\(f.errors)")
        #expect(f.settings.http.perHostLimit == 4)
        #expect(f.settings.http.userAgent == "ExampleBot/1.0 (+https://example.com/bot)")
        #expect(
            f.settings.http.allowAddresses.map(\.description) == ["10.1.0.0/16", "127.0.0.1/32:8080", "[::1]/128:9000"])
    }

    @Test(arguments: [
        ("per_host_limit: 0", "per_host_limit"), ("allow_addresses: [\"10.0.0.0/99\"]", "10.0.0.0/99"),
        ("allow_addresses: 10.0.0.0/8", "must be a list"), ("proxy: x", "unknown key 'proxy'"),
    ])
    func badHTTPSettingsAreNamed(_ line: String, _ words: String) {
        let yaml = "pollers:\n  http:\n    \(line)\n  jobs: []\n"
        let f = JobFile.parse(yaml, path: "/etc/p.yaml", registry: Builtins.registry(), environment: [:], nowMs: 0)
        #expect(f.errors.contains { "\($0)".contains(words) && "\($0)".contains("/etc/p.yaml:3") }, "\(f.errors)")
    }
}

@Suite struct AdminSettingsTests {
    func parse(_ yaml: String) -> JobFile {
        JobFile.parse(
            yaml, path: "/etc/p.yaml", registry: Builtins.registry(), environment: ["TOK": "abcdefghijklmnopqrstu"],
            nowMs: 0)
    }

    @Test func theAdminBlockIsRead() {
        let f = parse(
            """
            pollers:
              admin:
                listen: 0.0.0.0:9091
                open_probes: false
                tokens:
                  - { token: "${TOK}", role: admin }
                  - { token: "read-only-token-0123", role: read }
              jobs: []
            """)
        #expect(f.errors.isEmpty, "\(f.errors)")
        #expect(f.settings.adminListen?.description == "0.0.0.0:9091" && f.settings.admin.listenExplicit)
        #expect(f.settings.admin.openProbes == false)
        #expect(
            f.settings.admin.tokens == [
                AdminTokenSpec(token: "abcdefghijklmnopqrstu", role: "admin"),
                AdminTokenSpec(token: "read-only-token-0123", role: "read"),
            ])
    }

    @Test func theDefaultIsLoopbackAndOffTurnsItOff() {
        let d = parse("pollers:\n  jobs: []\n")
        #expect(d.settings.adminListen?.description == "127.0.0.1:9091" && !d.settings.admin.listenExplicit)
        #expect(parse("pollers:\n  admin_listen: \"off\"\n  jobs: []\n").settings.adminListen == nil)
    }

    @Test(arguments: [
        ("tokens: [{ token: short, role: admin }]", "at least 16"),
        ("tokens: [{ token: abcdefghijklmnopqrstuvwxyz, role: root }]", "'read' or 'admin'"),
        ("listen: nowhere", "HOST:PORT"), ("tokenz: []", "unknown key 'tokenz'"),
    ])
    func badAdminSettingsAreNamed(_ line: String, _ words: String) {
        let f = parse("pollers:\n  admin:\n    \(line)\n  jobs: []\n")
        #expect(f.errors.contains { "\($0)".contains(words) && "\($0)".contains("/etc/p.yaml:3") }, "\(f.errors)")
    }
}

@Suite struct FailureToTests {
    @Test func failureToNamesAnAlertSink() {
        let yaml = """
            pollers:
              alert_sinks:
                - { name: ops, webhook: { url: "https://hooks.example.com/alerts" } }
              jobs:
                - { id: a, kind: noop, schedule: { every_secs: 5 }, failure_to: { channel: ops, to: "#oncall" } }
                - { id: b, kind: noop, schedule: { every_secs: 5 }, failure_to: { channel: telegram, to: "1194292426" } }
            """
        let f = JobFile.parse(yaml, path: "/etc/p.yaml", registry: Builtins.registry(), environment: [:], nowMs: 0)
        #expect(f.errors.isEmpty, "\(f.errors)")
        #expect(f.jobs.first { $0.id == "a" }?.alertSinks.map(\.name) == ["ops"])
        #expect(f.jobs.first { $0.id == "b" }?.alertSinks.isEmpty == true)
        #expect(
            f.warnings.contains {
                $0.jobID == "b" && $0.message.contains("names no sink in pollers.alert_sinks (known: ops)")
            }, "\(f.warnings)")
    }
}

@Suite struct EveryErrorOfAJobTests {
    @Test func validateReportsEveryErrorInAJobNotOnlyTheFirst() {
        let yaml = """
            pollers:
              jobs:
                - id: messy
                  kind: noop
                  schedule: { every_secs: 0 }
                  timeout_secs: -1
                  catch_up: sometimes
                  config: { fail: maybe }
                  max_staleness_secs: 0
                - { id: fine, kind: noop, schedule: { every_secs: 5 } }
            """
        let f = JobFile.parse(yaml, path: "/etc/p.yaml", registry: Builtins.registry(), environment: [:], nowMs: 0)
        let mine = f.errors.filter { $0.jobID == "messy" }.map(\.message)
        #expect(mine.count == 5, "\(mine)")
        #expect(
            mine.contains { $0.contains("every_secs") } && mine.contains { $0.contains("timeout_secs") }
                && mine.contains { $0.contains("catch_up") })
        #expect(mine.contains { $0.contains("config.fail") } && mine.contains { $0.contains("max_staleness_secs") })
        #expect(f.jobs.map(\.id) == ["fine"])
    }
}
