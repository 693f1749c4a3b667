import Foundation
import PollerdCore
import PollerdSQLite
import Testing

func tempDBPath() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-test-\(UUID().uuidString)")
    return dir.appendingPathComponent("state.db").path
}

@Suite struct SQLiteStateStoreTests {
    let reg = JobRegistration(jobID: "j", kind: "noop", agent: "default", pausedOnBoot: false)

    func commit(_ lease: LeaseGrant, cursor: String?, status: String = "ok", next: Int64 = 100_000) -> TickCommit {
        TickCommit(lease: lease, startedAtMs: 1000, durationMs: 5, status: status, error: status == "ok" ? nil : "boom",
                   newCursor: cursor.map { Data($0.utf8) }, itemsSeen: 3, itemsDispatched: 1, consecutiveErrors: status == "ok" ? 0 : 1,
                   nextRunAtMs: next, pause: false, pausedReason: nil, done: false, scheduleFingerprint: "every=10")
    }

    func grant(_ a: LeaseAcquisition) throws -> LeaseGrant {
        guard case .granted(let g) = a else { throw CancellationError() }
        return g
    }

    @Test func cursorRoundTripAndAbsentCursorKeepsTheOld() async throws {
        let store = try SQLiteStateStore(path: tempDBPath())
        _ = try await store.register([reg], nowMs: 0)
        let l1 = try grant(try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 1000, slotMs: nil))
        #expect(l1.cursor == nil)
        #expect(try await store.commit(commit(l1, cursor: "c1"), nowMs: 1005))
        let l2 = try grant(try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 2000, slotMs: nil))
        #expect(l2.cursor == Data("c1".utf8))
        #expect(l2.token == l1.token + 1)
        #expect(try await store.commit(commit(l2, cursor: nil), nowMs: 2005))
        let row = try #require(try await store.state(jobID: "j"))
        #expect(row.cursor == Data("c1".utf8))
        #expect(row.ticksTotal == 2 && row.itemsSeenTotal == 6 && row.itemsDispatchedTotal == 2 && row.lastStatus == "ok")
        #expect(row.nextRunAtMs == 100_000)
    }

    @Test func leaseIsExclusiveUntilItExpires() async throws {
        let store = try SQLiteStateStore(path: tempDBPath())
        _ = try await store.register([reg], nowMs: 0)
        let a = try grant(try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 10_000, nowMs: 0, slotMs: nil))
        #expect(try await store.acquireLease(jobID: "j", holder: "B", ttlMs: 10_000, nowMs: 5000, slotMs: nil) == .held(by: "A", untilMs: 10_000))
        let b = try grant(try await store.acquireLease(jobID: "j", holder: "B", ttlMs: 10_000, nowMs: 10_000, slotMs: nil))
        #expect(b.token > a.token)
        // A's tick ran past its lease and lost it: fenced off.
        #expect(try await store.commit(commit(a, cursor: "stale"), nowMs: 11_000) == false)
        #expect(try await store.commit(commit(b, cursor: "fresh"), nowMs: 11_000))
        #expect(try await store.state(jobID: "j")?.cursor == Data("fresh".utf8))
        #expect(try await store.renewLease(a, untilMs: 99_999) == false)
    }

    @Test func twoStoresOnOneFileNeverBothCommitTheSameSlot() async throws {
        let path = tempDBPath()
        let s1 = try SQLiteStateStore(path: path)
        let s2 = try SQLiteStateStore(path: path)
        _ = try await s1.register([reg], nowMs: 0)
        var commits = 0
        var slot: Int64 = 10_000
        for round in 0..<40 {
            let now = slot + Int64(round % 3)
            let thisSlot = slot
            // Both daemons race for the same slot; each commits if it gets the lease.
            let results = await withTaskGroup(of: Bool.self, returning: [Bool].self) { group in
                for (store, holder) in [(s1, "A"), (s2, "B")] {
                    group.addTask {
                        guard case .granted(let g)? = try? await store.acquireLease(jobID: "j", holder: holder, ttlMs: 60_000, nowMs: now, slotMs: thisSlot) else { return false }
                        return (try? await store.commit(self.commit(g, cursor: "\(round)", next: thisSlot + 10_000), nowMs: now)) == true
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { $0 }.count == 1, "round \(round): \(results)")
            commits += results.filter { $0 }.count
            // The slower daemon arriving after the commit is refused too: the slot already ran.
            let late = try await s2.acquireLease(jobID: "j", holder: "B", ttlMs: 60_000, nowMs: now + 1, slotMs: slot)
            #expect(late == .notDue(untilMs: slot + 10_000))
            slot += 10_000
        }
        #expect(commits == 40)
        #expect(try await s1.state(jobID: "j")?.ticksTotal == 40)
    }

    @Test func pausedOnBootAppliesOnlyWhenFirstSeen() async throws {
        let path = tempDBPath()
        let store = try SQLiteStateStore(path: path)
        let r = JobRegistration(jobID: "p", kind: "noop", agent: "default", pausedOnBoot: true)
        #expect(try await store.register([r], nowMs: 0)["p"]?.paused == true)
        #expect(try await store.acquireLease(jobID: "p", holder: "A", ttlMs: 1000, nowMs: 0, slotMs: nil) == .paused(reason: "paused_on_boot"))
        #expect(try await store.setPaused(jobID: "p", paused: false, reason: nil, nowMs: 1))
        // A restart registers it again: the operator's resume stands.
        let reopened = try SQLiteStateStore(path: path)
        #expect(try await reopened.register([r], nowMs: 2)["p"]?.paused == false)
    }

    @Test func controlsAreLoggedAndResetFencesATickInFlight() async throws {
        let store = try SQLiteStateStore(path: tempDBPath())
        _ = try await store.register([reg], nowMs: 0)
        let seq0 = try await store.lastControlSeq()
        let l = try grant(try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 0, slotMs: nil))
        #expect(try await store.commit(commit(l, cursor: "c1"), nowMs: 1))
        let inFlight = try grant(try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 2, slotMs: nil))
        #expect(try await store.reset(jobID: "j", nowMs: 3))
        #expect(try await store.commit(commit(inFlight, cursor: "old-cursor-based"), nowMs: 4) == false)
        #expect(try await store.state(jobID: "j")?.cursor == nil)
        #expect(try await store.setPaused(jobID: "j", paused: true, reason: "maintenance", nowMs: 5))
        let changes = try await store.controlChanges(after: seq0)
        #expect(changes.map(\.action) == [.reset, .pause])
        #expect(try await store.setPaused(jobID: "nope", paused: true, reason: nil, nowMs: 6) == false)
        #expect(try await store.reset(jobID: "nope", nowMs: 6) == false)
    }

    @Test func reclaimFreesOnlyAbandonedLeases() async throws {
        let store = try SQLiteStateStore(path: tempDBPath())
        let regs = ["a", "b"].map { JobRegistration(jobID: $0, kind: "noop", agent: "d", pausedOnBoot: false) }
        _ = try await store.register(regs, nowMs: 0)
        _ = try await store.acquireLease(jobID: "a", holder: "host:111:dead", ttlMs: 60_000, nowMs: 0, slotMs: nil)
        _ = try await store.acquireLease(jobID: "b", holder: "host:222:alive", ttlMs: 60_000, nowMs: 0, slotMs: nil)
        let n = try await store.reclaimLeases(isAbandoned: { $0.hasSuffix("dead") }, nowMs: 1)
        #expect(n == 1)
        #expect(try await store.acquireLease(jobID: "b", holder: "X", ttlMs: 1, nowMs: 2, slotMs: nil) == .held(by: "host:222:alive", untilMs: 60_000))
        guard case .granted = try await store.acquireLease(jobID: "a", holder: "X", ttlMs: 1, nowMs: 2, slotMs: nil) else {
            Issue.record("abandoned lease was not freed")
            return
        }
    }

    @Test func groupCommitServesManyConcurrentTicks() async throws {
        let store = try SQLiteStateStore(path: tempDBPath())
        let regs = (0..<500).map { JobRegistration(jobID: "j\($0)", kind: "noop", agent: "d", pausedOnBoot: false) }
        _ = try await store.register(regs, nowMs: 0)
        let ok = try await withThrowingTaskGroup(of: Bool.self, returning: Int.self) { group in
            for r in regs {
                group.addTask {
                    guard case .granted(let g) = try await store.acquireLease(jobID: r.jobID, holder: "A", ttlMs: 60_000, nowMs: 0, slotMs: 0) else { return false }
                    return try await store.commit(self.commit(g, cursor: r.jobID), nowMs: 1)
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(ok == 500)
        let rows = try await store.allStates()
        #expect(rows.allSatisfy { $0.cursor == Data($0.jobID.utf8) && $0.ticksTotal == 1 })
    }
}
