import Foundation
import PollerdCore
import PollerdTestKit
import Testing

@testable import PollerdPlugins

#if canImport(Glibc)
import Glibc
#endif

/// Fixture plugins are small shell scripts written to a temporary directory.
struct Fixture {
    let dir: URL
    let poller: EphemeralPluginPoller
    let permits: AsyncSemaphore
    let status = PluginStatus(tailLines: 8)

    init(
        _ script: String, maxConcurrent: Int = 1, maxReply: Int = 4 << 20, env: [String: String] = [:],
        inherit: [String] = []
    ) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-plugin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("plugin.sh")
        try ("#!/bin/sh\n" + script + "\n").write(to: path, atomically: true, encoding: .utf8)
        chmod(path.path, 0o755)
        permits = AsyncSemaphore(permits: maxConcurrent)
        let spec = PluginProcessSpec(
            pluginID: "fx", command: path.path, env: env, inheritEnv: inherit, workingDirectory: dir.path,
            tickTimeoutSecs: 30, maxReplyBytes: maxReply, killGraceMs: 200)
        poller = EphemeralPluginPoller(kind: "fixture", spec: spec, permits: permits, status: status)
    }

    func ctx(cursor: Data? = nil, job: String = "job-1") -> TickContext {
        TickContext(
            jobID: job, kind: "fixture", agent: "ana", config: .object(["feed": .string("x")]), cursor: cursor,
            nowMs: RFC3339.parse("2026-05-17T10:00:00Z")!, intervalHintSecs: 300, timeoutSecs: 30)
    }

    func tick(cursor: Data? = nil, job: String = "job-1") async -> Result<TickAck, PollerError> {
        do throws(PollerError) { return .success(try await poller.tick(ctx(cursor: cursor, job: job))) } catch {
            return .failure(error)
        }
    }
}

func failure(_ r: Result<TickAck, PollerError>) -> PollerError? {
    if case .failure(let e) = r { return e }
    return nil
}

@Suite struct EphemeralPluginTests {
    @Test func cursorRoundTripsOverTwoTicks() async throws {
        // Replies with the request's cursor + "x", and echoes the request line to stderr.
        let fx = try Fixture(
            #"""
            read -r req
            echo "$req" >&2
            c=$(printf '%s' "$req" | sed -n 's/.*"cursor":"\([^"]*\)".*/\1/p')
            raw=$(printf '%s' "$c" | tr '_-' '/+' | base64 -d 2>/dev/null || true)
            next=$(printf '%sx' "$raw" | base64 | tr '+/' '-_' | tr -d '=\n')
            printf '{"result":{"next_cursor":"%s","metrics":{"items_seen":3,"items_dispatched":1}}}\n' "$next"
            """#)
        let first = try await fx.tick().get()
        #expect(first.nextCursor == Data("x".utf8) && first.itemsSeen == 3 && first.itemsDispatched == 1)
        let second = try await fx.tick(cursor: first.nextCursor).get()
        #expect(second.nextCursor == Data("xx".utf8))
        // The request the plugin saw, byte for byte.
        #expect(
            fx.status.stderrTail.last
                == #"{"method":"poll_tick","params":{"agent_id":"ana","config":{"feed":"x"},"cursor":"eA","interval_hint_secs":300,"job_id":"job-1","kind":"fixture","now":"2026-05-17T10:00:00+00:00"}}"#
        )
    }

    @Test func paddedCursorIsAccepted() async throws {
        let fx = try Fixture(#"read -r req; echo '{"result":{"next_cursor":"d29ybGQ="}}'"#)
        #expect(try await fx.tick().get().nextCursor == Data("world".utf8))
    }

    @Test(arguments: [(-32002, ErrorClass.permanent), (-32602, .config), (-32001, .transient), (-1, .transient)])
    func errorCodes(code: Int, expected: ErrorClass) async throws {
        let fx = try Fixture("read -r req; echo '{\"error\":{\"code\":\(code),\"message\":\"boom\"}}'")
        let e = try #require(failure(await fx.tick()))
        #expect(e.errorClass == expected)
        #expect(e.message.contains("boom"))
    }

    @Test func crashWithoutReplyIsTransientWithStderrTail() async throws {
        let fx = try Fixture("read -r req; echo 'panic: nil map' >&2; exit 3")
        let e = try #require(failure(await fx.tick()))
        #expect(e.errorClass == .transient && e.code == .noReply)
        #expect(e.message == "plugin 'fx' exited with status 3 without a reply; stderr: panic: nil map")
    }

    @Test func exitWithoutReadingStdinDoesNotHurtTheDaemon() async throws {
        let fx = try Fixture("exit 0")
        #expect(failure(await fx.tick())?.code == .noReply)
    }

    @Test func garbageAndEmptyLinesAreTransient() async throws {
        let garbage = try Fixture("read -r req; echo 'Traceback (most recent call last):'")
        #expect(failure(await garbage.tick())?.code == .badReply)
        let empty = try Fixture("read -r req; echo ''")
        #expect(failure(await empty.tick())?.code == .emptyReply)
    }

    @Test func oversizeReplyIsTransientAndBounded() async throws {
        let fx = try Fixture("read -r req; head -c 5000000 /dev/zero | tr '\\0' a; echo", maxReply: 64 * 1024)
        let e = try #require(failure(await fx.tick()))
        #expect(e.code == .replyTooLarge)
    }

    @Test func stderrFloodBeforeTheReplyStillWorks() async throws {
        let fx = try Fixture(
            "read -r req; i=0; while [ $i -lt 20 ]; do head -c 250000 /dev/zero | tr '\\0' e >&2; echo >&2; i=$((i+1)); done; echo 'last words' >&2; echo '{\"result\":{}}'"
        )
        _ = try await fx.tick().get()
        #expect(fx.status.stderrTail.last == "last words")
        #expect(fx.status.stderrTail.count <= 8)
    }

    @Test func thePluginGetsAMinimalEnvironment() async throws {
        setenv("POLLERD_TEST_DB_PASSWORD", "hunter2", 1)
        setenv("POLLERD_TEST_SHARED", "ok", 1)
        let fx = try Fixture(
            #"""
            read -r req
            printf '{"result":{"items":[{"env":"%s"}]}}\n' "$(env | cut -d= -f1 | sort | tr '\n' ' ')"
            """#, env: ["FEED_TOKEN_FILE": "/run/secrets/feed"], inherit: ["POLLERD_TEST_SHARED"])
        let names = Set(
            try await fx.tick().get().items.first?["env"]?.stringValue?.split(separator: " ").map(String.init) ?? [])
        #expect(!names.contains("POLLERD_TEST_DB_PASSWORD"))
        #expect(
            names.isSuperset(of: [
                "PATH", "NEXO_POLLER_EPHEMERAL", "NEXO_POLLER_PLUGIN_ID", "FEED_TOKEN_FILE", "POLLERD_TEST_SHARED",
            ]))
        let allowed: Set<String> = [
            "PATH", "HOME", "LANG", "TZ", "NEXO_POLLER_EPHEMERAL", "NEXO_POLLER_PLUGIN_ID", "FEED_TOKEN_FILE",
            "POLLERD_TEST_SHARED", "PWD", "SHLVL", "_",
        ]
        #expect(names.subtracting(allowed).isEmpty, "leaked: \(names.subtracting(allowed))")
    }

    @Test func thePluginInheritsNoDescriptorOfTheDaemonAndDefaultSignals() async throws {
        // A descriptor opened without close-on-exec, as a careless library would, on a file
        // whose name the plugin can look for among its own descriptors' targets.
        let canary = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pollerd-leak-canary-\(UUID().uuidString)"
        ).path
        let leaky = open(canary, O_RDWR | O_CREAT, 0o600)
        #expect(leaky > 2)
        defer {
            close(leaky)
            unlink(canary)
        }
        let fx = try Fixture(
            #"""
            read -r req
            targets=$(for f in /proc/$$/fd/*; do readlink "$f"; done | tr '\n' ' ')
            sigign=$(grep SigIgn /proc/$$/status | cut -f2)
            printf '{"result":{"items":[{"targets":"%s","sigign":"%s","dir":"%s"}]}}\n' "$targets" "$sigign" "$(pwd)"
            """#)
        let item = try await fx.tick().get().items.first
        let targets = item?["targets"]?.stringValue ?? ""
        #expect(!targets.isEmpty)
        #expect(!targets.contains("pollerd-leak-canary"), "inherited: \(targets)")
        // Signals 1–31 (SIGPIPE among them) at their defaults; 32 and 33 are glibc's own.
        let ignored = UInt64(item?["sigign"]?.stringValue ?? "", radix: 16)
        #expect(ignored.map { $0 & 0x7FFF_FFFF } == 0, "ignored signal mask: \(item?["sigign"]?.stringValue ?? "?")")
        #expect(item?["dir"]?.stringValue == fx.dir.path)
    }

    @Test func aHangIsKilledWithItsWholeGroupIncludingAGrandchild() async throws {
        let fx = try Fixture("read -r req; sh -c 'trap \"\" TERM; sleep 300' & echo $! > grandchild.pid; wait")
        let pidFile = fx.dir.appendingPathComponent("grandchild.pid").path
        let p = fx.poller
        let c = fx.ctx()
        let task = Task { () -> PollerError? in
            do throws(PollerError) {
                _ = try await p.tick(c)
                return nil
            } catch { return error }
        }
        let pid = try await ProcessProbe.waitForPid(pidFile)
        #expect(ProcessProbe.isLive(pid))
        task.cancel() // what the runner's watchdog does at the tick's timeout
        #expect(await task.value?.errorClass == .transient)
        #expect(await ProcessProbe.waitGone(pid), "grandchild \(pid) survived")
    }

    @Test(.timeLimit(.minutes(1))) func maxConcurrentTicksIsEnforcedPerPlugin() async throws {
        // Each tick says it started on a FIFO the test reads, then waits until the test creates
        // `go`; with a cap of 2, only 2 run at once. The wait is bounded (30 s) so that a killed
        // test run leaves no process looping forever.
        let fx = try Fixture(
            "read -r req; echo started > started.fifo; touch started.$$; i=0; while [ ! -f go ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; echo '{\"result\":{}}'",
            maxConcurrent: 2)
        let fifo = fx.dir.appendingPathComponent("started.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // Opened for reading and writing, so neither side's open blocks.
        let fd = open(fifo, O_RDWR)
        #expect(fd >= 0)
        defer { close(fd) }
        let p = fx.poller
        let started = fx.dir
        async let all: [Bool] = withTaskGroup(of: Bool.self, returning: [Bool].self) { g in
            for i in 0..<6 { g.addTask { (try? await p.tick(fx.ctx(job: "j\(i)"))) != nil } }
            return await g.reduce(into: []) { $0.append($1) }
        }
        func startedCount() -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: started.path)) ?? []).filter {
                $0.hasPrefix("started.") && $0 != "started.fifo"
            }.count
        }
        // Two "started" lines arrive: two plugins run (each writes its line before its marker file).
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            BlockingWorkers.shared.run {
                var lines = 0
                var buf = [UInt8](repeating: 0, count: 64)
                while lines < 2 {
                    let n = read(fd, &buf, buf.count)
                    if n <= 0 { break }
                    lines += buf[0..<n].filter { $0 == UInt8(ascii: "\n") }.count
                }
                c.resume()
            }
        }
        #expect(fx.permits.inUse == 2)
        _ = FileManager.default.createFile(atPath: started.appendingPathComponent("go").path, contents: nil)
        #expect(await all.allSatisfy { $0 })
        #expect(startedCount() == 6)
    }
}
