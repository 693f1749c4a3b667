import Foundation
import PollerdCore
import PollerdTestKit
import Testing

@testable import PollerdPlugins

#if canImport(Glibc)
import Glibc
#endif

/// The long-lived lifecycle against a real child: the Python example plugin on the SDK.
@Suite struct LongLivedPluginTests {
    static let pluginDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/plugins/counter-py").path

    /// The plugin's supervisor runs on a manual clock: a test moves it past a backoff.
    func plugin(
        id: String = "counter_py", respawn: Bool = true, attempts: Int = 3, maxConcurrent: Int = 4,
        clock: ManualClock = ManualClock(nowMs: 0)
    ) -> LongLivedPlugin {
        let spec = PluginProcessSpec(
            pluginID: id, command: "python3", args: ["-I", "counter.py"], workingDirectory: Self.pluginDir,
            tickTimeoutSecs: 10, killGraceMs: 200)
        var policy = SupervisorPolicy(respawn: respawn, maxAttempts: attempts, backoffMs: 100)
        policy.shutdownGraceMs = 2000
        return LongLivedPlugin(
            spec: spec, policy: policy, status: PluginStatus(tailLines: 16),
            permits: AsyncSemaphore(permits: maxConcurrent),
            clock: clock, logger: quietLogger)
    }

    func ctx(_ mode: String = "ok", cursor: Data? = nil, job: String = "j") -> TickContext {
        TickContext(
            jobID: job, kind: "py_counter", agent: "ana", config: .object(["mode": .string(mode)]), cursor: cursor,
            nowMs: RFC3339.parse("2026-05-17T10:00:00Z")!, intervalHintSecs: 60, timeoutSecs: 10)
    }

    func run(_ p: LongLivedPlugin, _ c: TickContext) async -> Result<TickAck, PollerError> {
        do throws(PollerError) { return .success(try await p.tick(kind: "py_counter", c)) } catch {
            return .failure(error)
        }
    }

    func pid(_ p: LongLivedPlugin) -> Int32? {
        if case .running(let pid) = p.phase { return pid }
        return nil
    }

    @Test func handshakeThenTicksOverOneProcessWithCursorRoundTrip() async throws {
        let p = plugin()
        let a = try await run(p, ctx()).get()
        #expect(a.nextCursor == Data("1".utf8) && a.items == [.object(["id": .string("j-1"), "n": .int(1)])])
        let first = try #require(pid(p))
        let b = try await run(p, ctx(cursor: a.nextCursor)).get()
        #expect(b.nextCursor == Data("2".utf8))
        #expect(pid(p) == first) // the same process served both
        #expect(p.status.stderrTail.contains("tick 2 for j"))
        await p.shutdown()
        #expect(kill(first, 0) != 0)
    }

    @Test(arguments: [("transient", ErrorClass.transient), ("permanent", .permanent), ("config", .config)])
    func errorsClassify(mode: String, expected: ErrorClass) async throws {
        let p = plugin()
        guard case .failure(let e) = await run(p, ctx(mode)) else {
            Issue.record("expected failure")
            return
        }
        #expect(e.errorClass == expected)
        await p.shutdown()
    }

    @Test func nonJSONStdoutLinesAreIgnored() async throws {
        let p = plugin()
        #expect(try await run(p, ctx("junk")).get().nextCursor == Data("1".utf8))
        #expect(p.status.stderrTail.contains { $0.contains("ignored stdout line: this is not JSON") })
        await p.shutdown()
    }

    @Test func concurrentTicksAreCorrelatedById() async throws {
        let p = plugin(maxConcurrent: 4)
        let results = await withTaskGroup(
            of: (String, Result<TickAck, PollerError>).self, returning: [String: Result<TickAck, PollerError>].self
        ) { g in
            for i in 0..<12 {
                let job = "job\(i)"
                g.addTask { (job, await self.run(p, self.ctx(job: job))) }
            }
            return await g.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        for (job, r) in results {
            #expect((try? r.get())?.items.first?["id"] == .string("\(job)-1"), "\(job): \(r)")
        }
        await p.shutdown()
    }

    /// Ticks started with the plugin's executor (as the runner starts them) resume on its reader
    /// thread. With 8 slots, the 7th and 8th waiting frames are held back for batching, and held
    /// longer while the (slow) plugin has more than 6 requests to answer; the reader writes them
    /// in the end: if it did not, those ticks would wait for ever (the time limit).
    @Test(.timeLimit(.minutes(1))) func ticksOnThePluginsExecutorResumeOnItsReaderThread() async throws {
        let p = plugin(maxConcurrent: 8)
        _ = try await run(p, ctx()).get()
        let results = await withTaskGroup(of: (String, Bool, Result<TickAck, PollerError>).self) { g in
            for i in 0..<40 {
                let job = "job\(i)"
                g.addTask(executorPreference: p.executor) {
                    let r = await self.run(p, self.ctx(job: job))
                    return (job, p.executor.isCurrent, r)
                }
            }
            return await g.reduce(into: [(String, Bool, Result<TickAck, PollerError>)]()) { $0.append($1) }
        }
        #expect(results.count == 40)
        for (job, onReader, r) in results {
            #expect(onReader, "\(job) resumed off the reader thread")
            #expect((try? r.get())?.items.first?["id"] == .string("\(job)-1"), "\(job): \(r)")
        }
        // Off the executor, the same plugin serves as before.
        #expect(try await run(p, ctx(job: "pool")).get().items.first?["id"] == .string("pool-1"))
        await p.shutdown()
    }

    /// A crash fails the ticks waiting on the plugin's executor (they resume elsewhere once its
    /// reader is gone), and after the restart ticks run on the new reader.
    /// Waits until the supervisor arms its restart backoff (`backoffMs` from now on the
    /// plugin's clock), then moves the clock past it.
    func passTheBackoff(_ clock: ManualClock, ms: Int64) async {
        let at = clock.nowMs + ms
        while await clock.nextSleepScheduled() != at {}
        clock.advance(toMs: at)
    }

    @Test(.timeLimit(.minutes(1))) func aCrashFailsTicksWaitingOnThePluginsExecutor() async throws {
        let clock = ManualClock(nowMs: 0)
        let p = plugin(clock: clock)
        _ = try await run(p, ctx()).get()
        clock.forgetArmedSleeps()
        let crashed = await Task(executorPreference: p.executor) { await self.run(p, self.ctx("crash")) }.value
        guard case .failure(let e) = crashed else {
            Issue.record("expected failure")
            return
        }
        #expect(e.code == .pluginCrashed, "\(e)")
        await passTheBackoff(clock, ms: 100)
        // The tick waits for the restart's handshake, then runs on the new reader.
        let after = await Task(executorPreference: p.executor) { () -> (Bool, TickAck)? in
            guard case .success(let a) = await self.run(p, self.ctx()) else { return nil }
            return (p.executor.isCurrent, a)
        }.value
        #expect(after?.0 == true && after?.1.nextCursor == Data("1".utf8))
        #expect(p.restarts == 1)
        await p.shutdown()
    }

    @Test(.timeLimit(.minutes(1))) func aCrashFailsTheTickInFlightAndTheSupervisorRestarts() async throws {
        let clock = ManualClock(nowMs: 0)
        let p = plugin(clock: clock)
        _ = try await run(p, ctx()).get()
        let before = try #require(pid(p))
        clock.forgetArmedSleeps()
        guard case .failure(let e) = await run(p, ctx("crash")) else {
            Issue.record("expected failure")
            return
        }
        #expect(e.errorClass == .transient && e.code == .pluginCrashed)
        await passTheBackoff(clock, ms: 100)
        let after = try await run(p, ctx()).get()
        #expect(after.nextCursor == Data("1".utf8))
        #expect(p.restarts == 1)
        #expect(pid(p) != nil && pid(p) != before)
        await p.shutdown()
    }

    @Test func aHandshakeForAnotherPluginIsRefused() async throws {
        let p = plugin(id: "someone_else", respawn: false)
        guard case .failure(let e) = await run(p, ctx()) else {
            Issue.record("expected failure")
            return
        }
        #expect(e.errorClass == .permanent)
        #expect(e.message.contains("failed"))
        #expect(
            p.status.stderrTail.contains {
                $0.contains("initialize reply names plugin 'counter_py', expected 'someone_else'")
            })
        guard case .failed = p.phase else {
            Issue.record("phase \(p.phase)")
            return
        }
    }

    @Test(.timeLimit(.minutes(1))) func givesUpAfterMaxAttempts() async throws {
        let spec = PluginProcessSpec(
            pluginID: "dies", command: "/bin/sh", args: ["-c", "echo starting >&2; exit 7"], workingDirectory: "/",
            tickTimeoutSecs: 10)
        var policy = SupervisorPolicy(respawn: true, maxAttempts: 2, backoffMs: 100)
        policy.handshakeTimeoutMs = 1000
        let clock = ManualClock(nowMs: 0)
        let p = LongLivedPlugin(
            spec: spec, policy: policy, status: PluginStatus(tailLines: 4), permits: AsyncSemaphore(permits: 1),
            clock: clock, logger: quietLogger)
        guard case .failure(let first) = await run(p, ctx()) else {
            Issue.record("expected failure")
            return
        }
        #expect(first.errorClass == .transient)
        // Two restarts, after 100 ms and 200 ms of backoff; the second start's failure gives up.
        await passTheBackoff(clock, ms: 100)
        _ = await run(p, ctx())
        await passTheBackoff(clock, ms: 200)
        guard case .failure(let last) = await run(p, ctx()) else {
            Issue.record("expected failure")
            return
        }
        #expect(last.errorClass == .permanent)
        #expect(last.message.contains("gave up after 2 restarts"), "\(last)")
        #expect(p.restarts == 2)
    }

    /// A long-lived plugin in shell: it answers its first tick with `firstReply` (a printf format
    /// taking the request's id) and every later one with an empty result.
    func shellPlugin(id: String, firstReply: String, maxReplyBytes: Int = 4 << 20) -> LongLivedPlugin {
        let script = """
            read -r init
            echo '{"jsonrpc":"2.0","id":1,"result":{"manifest":{"plugin":{"id":"\(id)"}}}}'
            n=0
            while read -r req; do
              id=$(echo "$req" | sed 's/^{"id":\\([0-9]*\\).*/\\1/')
              n=$((n+1))
              if [ $n -eq 1 ]; then \(firstReply)
              else printf '{"jsonrpc":"2.0","id":%s,"result":{}}\\n' "$id"; fi
            done
            """
        let spec = PluginProcessSpec(
            pluginID: id, command: "/bin/sh", args: ["-c", script], workingDirectory: "/",
            tickTimeoutSecs: 10, maxReplyBytes: maxReplyBytes, killGraceMs: 200)
        return LongLivedPlugin(
            spec: spec, policy: SupervisorPolicy(respawn: false, maxAttempts: 1, backoffMs: 100),
            status: PluginStatus(tailLines: 8), permits: AsyncSemaphore(permits: 1), clock: ManualClock(nowMs: 0),
            logger: quietLogger)
    }

    @Test func anOversizeReplyFailsItsTickAtOnceAndThePluginServesOn() async throws {
        // The first reply is a 5000-byte line, over the 1000-byte bound.
        let p = shellPlugin(
            id: "big",
            firstReply:
                #"printf '{"jsonrpc":"2.0","id":%s,"result":{"items":[{"x":"%s"}]}}\n' "$id" "$(head -c 5000 /dev/zero | tr '\0' a)""#,
            maxReplyBytes: 1000)
        guard case .failure(let e) = await run(p, ctx()) else {
            Issue.record("expected failure")
            return
        }
        #expect(e.code == .replyTooLarge && e.errorClass == .transient, "\(e)")
        #expect(p.status.stderrTail.contains("[pollerd] stdout line over 1000 bytes dropped"))
        let second = await run(p, ctx())
        #expect((try? second.get()) != nil, "\(second)")
        await p.shutdown()
    }

    /// A frame built by filling a dict with the result first (as the Python SDK did) has its id
    /// after a value that may be huge: an oversize reply is still pinned to its tick. Nothing
    /// else ends this tick (the plugin has no timeout of its own): the time limit makes a
    /// regression a failure rather than a hang.
    @Test(.timeLimit(.minutes(1))) func anOversizeReplyWithItsIdAfterTheResultFailsItsTickAtOnce() async throws {
        let p = shellPlugin(
            id: "biglast",
            firstReply:
                #"printf '{"result":{"items":[{"x":"%s"}]},"id":%s,"jsonrpc":"2.0"}\n' "$(head -c 200000 /dev/zero | tr '\0' a)" "$id""#,
            maxReplyBytes: 1000)
        guard case .failure(let e) = await run(p, ctx()) else {
            Issue.record("expected failure")
            return
        }
        #expect(e.code == .replyTooLarge, "\(e)")
        #expect((try? await run(p, ctx()).get()) != nil)
        await p.shutdown()
    }

    @Test func aBrokenReplyThatNamesItsIdFailsThatTickAtOnce() async throws {
        // The first reply names the tick's id, then is not JSON.
        let p = shellPlugin(id: "broken", firstReply: #"printf '{"jsonrpc":"2.0","id":%s,"result":{oops\n' "$id""#)
        guard case .failure(let e) = await run(p, ctx()) else {
            Issue.record("expected failure")
            return
        }
        #expect(e.code == .badReply && e.message.contains("plugin reply is not JSON"), "\(e)")
        let second = await run(p, ctx())
        #expect((try? second.get()) != nil, "\(second)")
        await p.shutdown()
    }
}
