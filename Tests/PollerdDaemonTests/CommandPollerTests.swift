import Foundation
import PollerdCore
import PollerdPollers
import PollerdTestKit
import Testing

@testable import PollerdDaemon

#if canImport(Glibc)
import Glibc
#endif

@Suite struct CommandPollerTests {
    let poller = CommandPoller()

    func ctx(_ argv: [String], extra: [String: JSONValue] = [:], cursor: Data? = nil) -> TickContext {
        var cfg: [String: JSONValue] = ["argv": .array(argv.map { .string($0) })]
        for (k, v) in extra { cfg[k] = v }
        return TickContext(
            jobID: "cmd", kind: "command", agent: "ops", config: .object(cfg), cursor: cursor, nowMs: t0,
            intervalHintSecs: 10, timeoutSecs: 5)
    }

    func run(_ c: TickContext) async -> Result<TickAck, PollerError> {
        do throws(PollerError) { return .success(try await poller.tick(c)) } catch { return .failure(error) }
    }

    /// `env` keys and `inherit_env` names follow the one environment-name rule (the README's
    /// example, `API_URL` and `API_TOKEN`, was refused when names starting with A–F were).
    @Test func environmentNamesFollowTheOneRule() throws {
        func check(_ env: [String: JSONValue] = [:], inherit: [String] = []) -> ConfigIssue? {
            let cfg: JSONValue = .object([
                "argv": .array([.string("/bin/true")]), "env": .object(env),
                "inherit_env": .array(inherit.map { .string($0) }),
            ])
            do throws(ConfigIssue) {
                try poller.validate(config: cfg)
                return nil
            } catch { return error }
        }
        #expect(
            check([
                "API_URL": .string("https://x"), "API_TOKEN": .string("t"), "DB_HOST": .string("h"), "_X": .string("1"),
            ]) == nil)
        #expect(check(inherit: ["AWS_REGION", "EDITOR", "FOO", "http_proxy"]) == nil)
        #expect(check(["1X": .string("v")])?.path == ["env", "1X"])
        #expect(check(["A-B": .string("v")])?.path == ["env", "A-B"])
        #expect(check(inherit: ["BAD NAME"])?.message.contains("'BAD NAME'") == true)
        #expect(check(inherit: ["ÉTÉ"]) != nil)
    }

    @Test func eachJSONLineIsAnItem() async throws {
        let r = await run(ctx(["/bin/sh", "-c", "echo '{\"id\":\"a\"}'; echo; echo '{\"id\":\"b\",\"n\":2}'"]))
        let ack = try r.get()
        #expect(ack.items == [.object(["id": .string("a")]), .object(["id": .string("b"), "n": .int(2)])])
        #expect(ack.itemsSeen == 2)
    }

    @Test func nonZeroExitIsTransientWithTheStderrTail() async {
        let r = await run(ctx(["/bin/sh", "-c", "echo 'upstream refused' >&2; exit 7"]))
        guard case .failure(let e) = r else {
            Issue.record("expected failure")
            return
        }
        #expect(e.errorClass == .transient && e.code == .exitStatus)
        #expect(e.message == "'/bin/sh' exited with status 7; stderr: upstream refused")
    }

    @Test func nonJSONOutputIsTransient() async {
        let r = await run(ctx(["/bin/sh", "-c", "echo '{\"ok\":1}'; echo 'not json'"]))
        guard case .failure(let e) = r else {
            Issue.record("expected failure")
            return
        }
        #expect(
            e.errorClass == .transient && e.code == .badOutput
                && e.message == "stdout line 2 is not a JSON object (nor a '#pollerd ' control line)")
    }

    @Test func missingProgramIsAConfigError() async {
        let r = await run(ctx(["/nonexistent/program"]))
        guard case .failure(let e) = r else {
            Issue.record("expected failure")
            return
        }
        #expect(e.errorClass == .config)
    }

    @Test func stderrFloodIsDrained() async throws {
        // 5 MB on stderr before the reply: a child that is not drained would block on a full pipe.
        let r = await run(ctx(["/bin/sh", "-c", "head -c 5000000 /dev/zero | tr '\\0' x >&2; echo '{\"ok\":true}'"]))
        #expect(try r.get().items == [.object(["ok": .bool(true)])])
    }

    @Test func oversizeOutputIsTransientAndBounded() async {
        let r = await run(
            ctx(["/bin/sh", "-c", "yes '{}' | head -c 10000000"], extra: ["max_output_bytes": .int(10_000)]))
        guard case .failure(let e) = r else {
            Issue.record("expected failure")
            return
        }
        #expect(e.code == .outputTooLarge)
    }

    @Test func environmentIsMinimal() async throws {
        setenv("POLLERD_TEST_SECRET_TOKEN", "hunter2", 1)
        setenv("POLLERD_TEST_ALLOWED", "yes", 1)
        let script = "printf '{\"env\":\"%s\"}\\n' \"$(env | cut -d= -f1 | sort | tr '\\n' ' ')\""
        let r = await run(
            ctx(
                ["/bin/sh", "-c", script],
                extra: [
                    "env": .object(["EXTRA": .string("1")]), "inherit_env": .array([.string("POLLERD_TEST_ALLOWED")]),
                ],
                cursor: Data("hello".utf8)))
        let names = Set(try r.get().items.first?["env"]?.stringValue?.split(separator: " ").map(String.init) ?? [])
        #expect(!names.contains("POLLERD_TEST_SECRET_TOKEN"))
        #expect(
            names.isSuperset(of: [
                "PATH", "EXTRA", "POLLERD_TEST_ALLOWED", "POLLERD_JOB_ID", "POLLERD_KIND", "POLLERD_AGENT",
                "POLLERD_NOW", "POLLERD_CURSOR",
            ]))
        let allowed: Set<String> = [
            "PATH", "HOME", "LANG", "TZ", "EXTRA", "POLLERD_TEST_ALLOWED", "POLLERD_JOB_ID", "POLLERD_KIND",
            "POLLERD_AGENT", "POLLERD_NOW", "POLLERD_CURSOR", "POLLERD_CURSOR_TEXT", "PWD", "SHLVL", "_",
        ]
        #expect(names.subtracting(allowed).isEmpty, "unexpected: \(names.subtracting(allowed))")
        let cursor = await run(
            ctx(["/bin/sh", "-c", "printf '{\"c\":\"%s\"}\\n' \"$POLLERD_CURSOR\""], cursor: Data("hello".utf8)))
        #expect(try cursor.get().items.first?["c"] == .string("aGVsbG8"))
    }

    @Test func cancellationKillsTheWholeProcessGroupIncludingGrandchildren() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-cmd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let pidFile = dir.appendingPathComponent("grandchild.pid").path
        // The child starts a grandchild that ignores SIGTERM, records its pid, then hangs.
        let script = "sh -c 'trap \"\" TERM; sleep 300' & echo $! > \(pidFile); wait"
        let c = ctx(["/bin/sh", "-c", script], extra: ["kill_grace_ms": .int(200)])
        let p = poller
        let task = Task { () -> PollerError? in
            do throws(PollerError) {
                _ = try await p.tick(c)
                return nil
            } catch { return error }
        }
        let pid = try await ProcessProbe.waitForPid(pidFile)
        #expect(ProcessProbe.isLive(pid))
        task.cancel()
        let err = await task.value
        #expect(err?.errorClass == .transient)
        #expect(await ProcessProbe.waitGone(pid), "grandchild \(pid) survived the tick")
    }
}
