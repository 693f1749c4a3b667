import Foundation
import PollerdCore
import PollerdTestKit
import Testing

@testable import PollerdPlugins

/// Ticks started where the runner starts them (`Task(executorPreference: poller.preferredExecutor)`)
/// run on a `BlockingWorkers` thread and do their exchange there, in place. The hang, the
/// cancellation and the concurrency cap must hold on that path as on the hand-off path.
@Suite struct EphemeralInPlaceTests {
    @Test func ticksOnThePollersExecutorRunOnAWorkerAndRoundTripTheCursor() async throws {
        let fx = try Fixture(
            #"""
            read -r req
            c=$(printf '%s' "$req" | sed -n 's/.*"cursor":"\([^"]*\)".*/\1/p')
            raw=$(printf '%s' "$c" | tr '_-' '/+' | base64 -d 2>/dev/null || true)
            next=$(printf '%sy' "$raw" | base64 | tr '+/' '-_' | tr -d '=\n')
            printf '{"result":{"next_cursor":"%s"}}\n' "$next"
            """#)
        let p = fx.poller
        #expect(p.preferredExecutor is BlockingWorkers)
        let c = fx.ctx()
        // (Not a typed-throws closure: Swift 6.3.1's SILGen crashes on one returning a tuple here.)
        let task = Task(executorPreference: p.preferredExecutor) {
            () -> (onWorker: [Bool], cursor: Data?, error: PollerError?) in
            var onWorker = [BlockingWorkers.shared.isCurrent] // the in-place branch's condition
            var cursor: Data?
            for _ in 0..<3 {
                var ctx = c
                ctx.cursor = cursor
                do throws(PollerError) { cursor = try await p.tick(ctx).nextCursor } catch {
                    return (onWorker, cursor, error)
                }
                onWorker.append(BlockingWorkers.shared.isCurrent)
            }
            return (onWorker, cursor, nil)
        }
        let (onWorker, cursor, error) = await task.value
        #expect(error == nil)
        #expect(onWorker == [true, true, true, true])
        #expect(cursor == Data("yyy".utf8))
    }

    /// Only a task's job counts: other blocking work on a worker (a long-lived plugin's reader,
    /// and what its executor runs there) must not take an exchange in place.
    @Test func plainBlockingWorkIsNotInPlace() async {
        let plain = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            BlockingWorkers.shared.run { c.resume(returning: BlockingWorkers.shared.isCurrent) }
        }
        #expect(!plain)
        #expect(await Task(executorPreference: BlockingWorkers.shared) { BlockingWorkers.shared.isCurrent }.value)
    }

    @Test func aHangRunInPlaceIsKilledWithItsGroupWhenCancelled() async throws {
        let fx = try Fixture("read -r req; sh -c 'trap \"\" TERM; sleep 300' & echo $! > grandchild.pid; wait")
        let pidFile = fx.dir.appendingPathComponent("grandchild.pid").path
        let p = fx.poller
        let c = fx.ctx()
        let task = Task(executorPreference: p.preferredExecutor) { () -> (Bool, PollerError?) in
            let inPlace = BlockingWorkers.shared.isCurrent
            do throws(PollerError) {
                _ = try await p.tick(c)
                return (inPlace, nil)
            } catch { return (inPlace, error) }
        }
        let pid = try await ProcessProbe.waitForPid(pidFile)
        #expect(ProcessProbe.isLive(pid))
        task.cancel() // the runner's watchdog at the tick's timeout
        let (inPlace, error) = await task.value
        #expect(inPlace)
        #expect(error?.errorClass == .transient)
        #expect(await ProcessProbe.waitGone(pid), "grandchild \(pid) survived")
    }

    @Test func theCapHoldsForTicksWaitingOnTheWorkers() async throws {
        // 8 ticks, at most 2 at once; each records how many ran at its start (the files present).
        let fx = try Fixture(
            #"""
            read -r req
            touch "run.$$"
            n=$(ls | grep -c '^run\.')
            echo "$n" > "seen.$$"
            sleep 0.05
            rm "run.$$"
            echo '{"result":{}}'
            """#, maxConcurrent: 2)
        let p = fx.poller
        let results = await withTaskGroup(of: Bool.self, returning: [Bool].self) { g in
            for i in 0..<8 {
                let c = fx.ctx(job: "j\(i)")
                g.addTask(executorPreference: p.preferredExecutor) { (try? await p.tick(c)) != nil }
            }
            return await g.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 8 && results.allSatisfy { $0 })
        let seen = try FileManager.default.contentsOfDirectory(atPath: fx.dir.path).filter { $0.hasPrefix("seen.") }
        #expect(seen.count == 8)
        let counts = try seen.map {
            try String(contentsOf: fx.dir.appendingPathComponent($0), encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines)
        }
        #expect(counts.allSatisfy { Int($0).map { (1...2).contains($0) } ?? false }, "concurrent runs seen: \(counts)")
        #expect(fx.permits.inUse == 0)
    }
}
