import Foundation
import PollerdTestKit
import Synchronization
import Testing

@testable import PollerdPlugins

#if canImport(Glibc)
import Glibc
#endif

/// The long-lived plugins' pipes, against real children.
@Suite struct PluginChannelTests {
    func spawn(_ script: String, maxQueuedBytes: Int = 256 * 1024) throws -> PluginChannel {
        let child = try DirectSpawn.spawn(
            executable: "/bin/sh", args: ["-c", script], env: ["PATH": "/usr/bin:/bin"], workingDirectory: "/"
        ).get()
        return PluginChannel(child, maxQueuedBytes: maxQueuedBytes)
    }

    /// What `serve` handed out.
    final class Collected: Sendable {
        let lines = Mutex<[String]>([])
        let stderr = Mutex<[UInt8]>([])
        let oversize = Mutex(0)
        let oversizeIDs = Mutex<[Int64?]>([])
        var lineList: [String] { lines.withLock { $0 } }
        var stderrText: String { String(decoding: stderr.withLock { $0 }, as: UTF8.self) }
    }

    /// Runs `serve` on a thread, collecting what it hands out; resumes with how the child ended.
    func serve(_ ch: PluginChannel, limit: Int = 1 << 20, into got: Collected) async -> String {
        await withCheckedContinuation { c in
            BlockingWorkers.shared.run {
                let how = ch.serve(
                    limit: limit, grace: .milliseconds(500),
                    onLine: { l in got.lines.withLock { $0.append(String(decoding: l, as: UTF8.self)) } },
                    onOversize: { id in
                        got.oversize.withLock { $0 += 1 }
                        got.oversizeIDs.withLock { $0.append(id) }
                    },
                    onStderr: { b in got.stderr.withLock { $0 += b } })
                c.resume(returning: how)
            }
        }
    }

    /// A `ReaderExecutor` runs the jobs of the tasks that prefer it on the thread serving the
    /// channel: tasks started from elsewhere (the eventfd wakes the reader), re-enqueued by the
    /// reader itself, and resumed from another thread. Once the reader has detached, they run on
    /// the global executor.
    @Test(.timeLimit(.minutes(1))) func aReaderExecutorRunsItsTasksOnTheServingThread() async throws {
        let ch = try spawn("cat >/dev/null")
        let ex = ReaderExecutor()
        #expect(await Task(executorPreference: ex) { ex.isCurrent }.value == false) // not attached yet
        let served = Task {
            await withCheckedContinuation { (c: CheckedContinuation<String, Never>) in
                BlockingWorkers.shared.run {
                    c.resume(
                        returning: ch.serve(
                            limit: 1 << 20, grace: .milliseconds(500), executor: ex,
                            onLine: { _ in }, onOversize: { _ in }, onStderr: { _ in }))
                }
            }
        }
        while await Task(executorPreference: ex, operation: { ex.isCurrent }).value == false { await Task.yield() }
        let seen = await withTaskGroup(of: [Bool].self) { g in
            for _ in 0..<50 {
                g.addTask(executorPreference: ex) {
                    var seen = [ex.isCurrent]
                    await Task.yield()
                    seen.append(ex.isCurrent)
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        BlockingWorkers.shared.run { c.resume() }
                    }
                    seen.append(ex.isCurrent)
                    return seen
                }
            }
            return await g.reduce(into: [Bool]()) { $0 += $1 }
        }
        #expect(seen.count == 150 && seen.allSatisfy { $0 })
        ch.closeInput()
        #expect(await served.value == "exited with status 0")
        #expect(await Task(executorPreference: ex) { ex.isCurrent }.value == false)
    }

    @Test func framesGoInOrderAndLinesComeBackWhole() async throws {
        let ch = try spawn("cat", maxQueuedBytes: 4 << 20)
        let got = Collected()
        async let how = serve(ch, into: got)
        // Enough to fill the pipe many times over: the rest waits on a worker, in order.
        let big = String(repeating: "x", count: 10_000)
        var refused = 0
        for i in 0..<100 where !ch.send(Array("\(i) \(big)".utf8)) { refused += 1 }
        #expect(refused == 0)
        ch.closeInput()
        #expect(await how == "exited with status 0")
        let lines = got.lineList
        #expect(lines.count == 100)
        #expect(lines.enumerated().allSatisfy { $0.element == "\($0.offset) \(big)" })
        #expect(ch.reaped)
        let late = ch.send(Array("late".utf8))
        #expect(!late)
    }

    /// A frame goes out at once while the plugin has slots to spare, and waits for the batch
    /// once three quarters of them wait for replies; a tick alone is never held back.
    @Test func framesAreBatchedOnlyOnceThePluginIsMostlyBusy() {
        #expect(LongLivedPlugin.writeAtOnce(waiting: 1, slots: 1))
        #expect(LongLivedPlugin.writeAtOnce(waiting: 1, slots: 64))
        #expect(!LongLivedPlugin.writeAtOnce(waiting: 2, slots: 2))
        #expect(
            LongLivedPlugin.writeAtOnce(waiting: 12, slots: 16) && !LongLivedPlugin.writeAtOnce(waiting: 13, slots: 16))
        #expect(
            LongLivedPlugin.writeAtOnce(waiting: 48, slots: 64) && !LongLivedPlugin.writeAtOnce(waiting: 49, slots: 64))
    }

    @Test func framesLeftToAFlushTaskStillGoOutBeforeStdinCloses() async throws {
        let ch = try spawn("cat")
        let got = Collected()
        async let how = serve(ch, into: got)
        // Not alone in flight: the write is left to a flush task, and input is closed before it runs.
        let sent = ch.send(Array("one".utf8), now: false) && ch.send(Array("two".utf8), now: false)
        #expect(sent)
        ch.closeInput()
        #expect(await how == "exited with status 0")
        #expect(got.lineList == ["one", "two"])
    }

    @Test func aLineOverTheLimitIsDroppedAndTheNextOneStillArrives() async throws {
        let ch = try spawn("head -c 5000 /dev/zero | tr '\\0' 'a'; echo; echo ok; printf 'oops' >&2")
        let got = Collected()
        let how = await serve(ch, limit: 1000, into: got)
        #expect(how == "exited with status 0")
        #expect(got.lineList == ["ok"])
        #expect(got.oversize.withLock { $0 } == 1 && got.oversizeIDs.withLock { $0 } == [nil])
        #expect(got.stderrText == "oops")
    }

    /// A dropped line is reported once, with its top-level id wherever it stands: at the start,
    /// in the middle, at the end of lines that arrive in one read or in many.
    @Test func aDroppedLineIsReportedOnceWithItsID() async throws {
        let big = "$(head -c 300000 /dev/zero | tr '\\0' a)"
        let small = "$(head -c 1500 /dev/zero | tr '\\0' b)"
        let script = """
            printf '%s\\n' '{"id":5,"result":"'"\(big)"'"}'
            printf '%s\\n' '{"result":"'"\(big)"'","id":6,"jsonrpc":"2.0"}'
            printf '%s\\n' '{"result":{"id":1,"x":"'"\(small)"'"},"id":7}'
            printf '%s\\n' '{"result":"'"\(small)"'"}'
            echo ok
            """
        let got = Collected()
        #expect(await serve(try spawn(script), limit: 1000, into: got) == "exited with status 0")
        #expect(got.lineList == ["ok"])
        #expect(got.oversizeIDs.withLock { $0 } == [5, 6, 7, nil])
    }

    @Test func aPluginThatStopsReadingItsStdinIsKilledOnceTheQueueIsFull() async throws {
        // Reads nothing; once the pipe is full, frames queue up to the bound.
        let ch = try spawn("exec sleep 30")
        let got = Collected()
        async let how = serve(ch, into: got)
        let frame = [UInt8](repeating: UInt8(ascii: "f"), count: 1024)
        var sent = 0
        while sent < 10_000, ch.send(frame) { sent += 1 }
        #expect(ch.killedAsHung)
        #expect(await how == "was killed by signal 9")
        // What fitted: the pipe's buffer plus the bound, not more.
        #expect(sent * 1025 > 256 * 1024 && sent * 1025 < 256 * 1024 + 2 * 1024 * 1024)
    }

    @Test func closingStdoutEndsTheGroupIncludingAGrandchild() async throws {
        // The child closes its stdout but lingers, with a grandchild in its group.
        // (Bounded sleeps: a failing run leaves nothing behind for long.)
        let ch = try spawn("sleep 30 >/dev/null & echo $! >&2; exec 1>&-; sleep 30")
        let got = Collected()
        let how = await serve(ch, into: got)
        #expect(how == "was killed by signal 9")
        let grandchild = try #require(Int32(got.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(await ProcessProbe.waitGone(grandchild), "grandchild \(grandchild) survived")
    }

    @Test func aProcessThatEscapedTheGroupHoldingStdoutDoesNotKeepThePluginAlive() async throws {
        // The plugin exits; a process it started in a session of its own keeps stdout open.
        let ch = try spawn("setsid sleep 30 & echo $! >&2; exit 3")
        let got = Collected()
        let how = await serve(ch, into: got)
        #expect(how == "exited with status 3")
        if let escaped = Int32(got.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(escaped, SIGKILL)
        }
    }
}
