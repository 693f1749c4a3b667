import Foundation
import PollerdCore
import PollerdPostgres
import PollerdSQLite
import PollerdTestKit
import PostgresNIO
import Synchronization
import Testing

/// Makes stores for the contract suite. A backend gives a new, empty place for each test (a
/// file, a database), opens one daemon's view of it as often as a test asks, and removes the
/// place after the test. Each view is run (`run(clock:)`) and prepared before the test sees it,
/// and stopped after, as the daemon's store service does.
struct StoreFactory: Sendable, CustomTestStringConvertible {
    let name: String
    /// Makes a new place and returns where it is.
    let makePlace: @Sendable () async throws -> String
    /// One daemon's view of the place, unprepared, keeping time as asked: with `.caller` every
    /// expiry follows the `nowMs` the test passes (most tests move time that way); with `.store`
    /// the store decides expiries by its own clock, which the test never drives.
    let open: @Sendable (_ place: String, _ time: StoreTime) throws -> any PollerdStore
    /// Removes the place and everything in it.
    let removePlace: @Sendable (_ place: String) async throws -> Void
    /// For a backend whose writers run side by side: opens, on a connection of its own, a
    /// transaction that does `what` and stays open until the returned release is called (which
    /// commits it). nil for a backend with one writer (SQLite): there no call can meet another's
    /// open transaction, so what it would test cannot happen, and the tests that use it check
    /// the single writer's answer instead.
    let hold: (@Sendable (_ place: String, _ what: HeldWrite) async throws -> @Sendable () async throws -> Void)?

    var testDescription: String { name }

    /// Runs `body` on a new place, then stops every view the body opened and removes the place.
    func withPlace<T>(_ body: (StorePlace) async throws -> T) async throws -> T {
        let place = StorePlace(factory: self, location: try await makePlace())
        do {
            let result = try await body(place)
            await place.stop()
            try await removePlace(place.location)
            return result
        } catch {
            await place.stop()
            try? await removePlace(place.location)
            throw error
        }
    }

    /// One view of a new place: what most tests need.
    func withStore<T>(_ body: (any PollerdStore) async throws -> T) async throws -> T {
        try await withPlace { place in try await body(try await place.open()) }
    }

    static let sqlite = StoreFactory(
        name: "sqlite",
        makePlace: {
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "pollerd-contract-\(UUID().uuidString)/state.db"
            ).path
        },
        open: { path, time in try SQLiteBackend.open(path: path, synchronousFull: false, time: time) },
        removePlace: { path in
            try FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
        },
        // One writer: a transaction cannot be held open beside another's write.
        hold: nil
    )

    static let postgres = StoreFactory(
        name: "postgres",
        makePlace: { try await PostgresTestServer.makeDatabase() },
        open: { location, time in try PostgresTestServer.open(location, time: time) },
        removePlace: { location in try await PostgresTestServer.dropDatabase(location) },
        hold: { location, what in
            // A transaction on a connection of its own, left open until the release commits it.
            let url = try PostgresURL(parsing: location)
            let conn = try await PostgresConnection.connect(
                configuration: PostgresTestServer.configuration(url), id: Int.random(in: 0..<Int.max),
                logger: PostgresTestServer.logger)
            let logger = PostgresTestServer.logger
            try await conn.query("BEGIN", logger: logger)
            switch what {
            case .lockRow(let jobID):
                try await conn.query("SELECT 1 FROM poll_state WHERE job_id = \(jobID) FOR UPDATE", logger: logger)
            case .control(let jobID, let paused):
                try await conn.query(
                    "UPDATE poll_state SET paused = \(paused) WHERE job_id = \(jobID)", logger: logger)
                try await conn.query(
                    "INSERT INTO control_log (job_id, action, at) VALUES (\(jobID), \(paused ? "pause" : "resume"), 0)",
                    logger: logger)
            }
            return {
                try await conn.query("COMMIT", logger: logger)
                try await conn.close()
            }
        }
    )

    /// Every backend the contract runs on: PostgreSQL when the test command started one
    /// (`POLLERD_TEST_POSTGRES`).
    static let all: [StoreFactory] = [.sqlite] + (PostgresTestServer.url == nil ? [] : [.postgres])
}

/// A write a backend's `hold` hook leaves uncommitted.
enum HeldWrite: Sendable {
    /// Locks the job's row (`SELECT … FOR UPDATE`), as a claim or a commit in flight does.
    case lockRow(jobID: String)
    /// Records an operator's control change, as `setPaused` does, and does not commit it yet.
    case control(jobID: String, paused: Bool)
}

/// A place a contract test runs on, and the views of it the test opened.
final class StorePlace: Sendable {
    let factory: StoreFactory
    let location: String
    private let runs = Mutex<[Task<Void, Never>]>([])

    init(factory: StoreFactory, location: String) {
        self.factory = factory
        self.location = location
    }

    /// One daemon's view of the place: opened, its background work started, prepared.
    func open(time: StoreTime = .caller) async throws -> any PollerdStore {
        let store = try factory.open(location, time)
        #expect(store.time == time)
        // The store's background work for the rest of the test, on a clock that never moves (its
        // timers never fire: no test waits on them); cancelled by `stop()`.
        let run = Task { _ = try? await store.run(clock: ManualClock(nowMs: 0)) }
        runs.withLock { $0.append(run) }
        try await store.prepare()
        return store
    }

    /// Stops every view's background work and waits for it to end.
    func stop() async {
        let all = runs.withLock { r in
            defer { r = [] }
            return r
        }
        for r in all { r.cancel() }
        for r in all { await r.value }
    }
}

/// The store contract: every rule the daemon and the operator facade rely on, for every backend.
@Suite struct StoreContractTests {
    let reg = JobRegistration(jobID: "j", kind: "noop", agent: "default", pausedOnBoot: false)

    func commit(
        _ lease: LeaseGrant, cursor: String?, status: String = "ok", next: Int64 = 100_000, outbox: OutboxBatch = .empty
    ) -> TickCommit {
        TickCommit(
            lease: lease, startedAtMs: 1000, durationMs: 5, status: status, error: status == "ok" ? nil : "boom",
            newCursor: cursor.map { Data($0.utf8) }, itemsSeen: 3, itemsDispatched: 1,
            consecutiveErrors: status == "ok" ? 0 : 1,
            nextRunAtMs: next, pause: false, pausedReason: nil, done: false, scheduleFingerprint: "every=10",
            outbox: outbox)
    }

    func grant(_ a: LeaseAcquisition) throws -> LeaseGrant {
        guard case .granted(let g) = a else { throw CancellationError() }
        return g
    }

    func announce(
        _ store: any PollerdStore, _ daemon: String, _ jobs: [String], file: String = "pollers.yaml",
        aliveUntil: Int64 = 60_000, nowMs: Int64 = 0
    ) async throws -> [String] {
        try await store.announce(
            DaemonAnnouncement(
                daemonID: daemon, jobFile: file, jobs: Dictionary(uniqueKeysWithValues: jobs.map { ($0, "fp-\($0)") }),
                ttlMs: aliveUntil - nowMs), nowMs: nowMs)
    }

    func regs(_ ids: [String]) -> [JobRegistration] {
        ids.map { JobRegistration(jobID: $0, kind: "noop", agent: "d", pausedOnBoot: false) }
    }

    // MARK: Start-up

    /// Daemons that start together on a new store prepare it at once: each waits for the one that
    /// migrates, then finds the schema made, so every one of them starts and the store works.
    /// (SQLite once failed the second with "table poll_state already exists".)
    @Test(arguments: StoreFactory.all)
    func daemonsThatPrepareOneNewStoreAtOnceAllStart(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let stores = try await withThrowingTaskGroup(of: (any PollerdStore).self) { group in
                for _ in 0..<8 { group.addTask { try await place.open() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(stores.count == 8)
            for (i, store) in stores.enumerated() {
                _ = try await store.register(regs(["job-\(i)"]), nowMs: 0)
            }
            // Preparing again (a restart) changes nothing.
            let again = try await place.open()
            #expect(try await again.allStates().map(\.jobID).sorted() == (0..<8).map { "job-\($0)" }.sorted())
        }
    }

    // MARK: Leases, fencing, commits

    /// Every value a claim and a commit carry reads back as written, through the single and the
    /// batch calls: an empty cursor stays an empty cursor (not "no cursor"), bytes that are not
    /// UTF-8 and NUL bytes survive in a cursor, texts keep non-ASCII, NULLs stay NULL.
    @Test(arguments: StoreFactory.all)
    func claimsAndCommitsCarryEveryValueExactly(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            let id = "jöb/ünïcode \u{1F600}"
            _ = try await store.register(
                [JobRegistration(jobID: id, kind: "noop", agent: "", pausedOnBoot: false)], nowMs: 0)
            let binary = Data([0x00, 0xFF, 0xFE, 0x00, 0x41, 0xC3])
            var c = commit(
                try grant(
                    try await store.acquireLease(jobID: id, holder: "höst-A", ttlMs: 60_000, nowMs: 1000, slotMs: nil)),
                cursor: nil, status: "transient")
            c.newCursor = binary
            c.error = "kaputt: \"ü\" \u{7F}"
            c.pause = true
            c.pausedReason = ""
            #expect(try await store.commit([c], nowMs: 1001) == [0])
            var row = try #require(try await store.state(jobID: id))
            #expect(row.cursor == binary && row.lastError == c.error && row.lastStatus == "transient")
            #expect(row.paused && row.pausedReason == "" && row.pausedAtMs == 1001 && row.consecutiveErrors == 1)
            _ = try await store.setPaused(jobID: id, paused: false, reason: nil, nowMs: 1002)

            let claimed = try await store.acquireLeases(
                [LeaseRequest(jobID: id, ttlMs: 60_000, slotMs: nil, maxBacklog: nil)], holder: "höst-A", nowMs: 2000)
            let lease = try grant(try #require(claimed.first))
            #expect(lease.cursor == binary && lease.consecutiveErrors == 1 && lease.lastAlertAtMs == nil)
            var empty = commit(lease, cursor: "")
            empty.nextRunAtMs = nil
            #expect(try await store.commitTick(empty, nowMs: 2001))
            row = try #require(try await store.state(jobID: id))
            #expect(row.cursor == Data() && row.lastError == nil && row.nextRunAtMs == nil && row.lastOkAtMs == 1000)
            let again = try grant(
                try await store.acquireLease(jobID: id, holder: "höst-A", ttlMs: 60_000, nowMs: 3000, slotMs: nil))
            #expect(again.cursor == Data())
        }
    }

    @Test(arguments: StoreFactory.all)
    func cursorRoundTripAndAbsentCursorKeepsTheOld(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register([reg], nowMs: 0)
            let l1 = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 1000, slotMs: nil))
            #expect(l1.cursor == nil)
            #expect(try await store.commitTick(commit(l1, cursor: "c1"), nowMs: 1005))
            let l2 = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 2000, slotMs: nil))
            #expect(l2.cursor == Data("c1".utf8))
            #expect(l2.token == l1.token + 1)
            #expect(try await store.commitTick(commit(l2, cursor: nil), nowMs: 2005))
            let row = try #require(try await store.state(jobID: "j"))
            #expect(row.cursor == Data("c1".utf8))
            #expect(
                row.ticksTotal == 2 && row.itemsSeenTotal == 6 && row.itemsDispatchedTotal == 2
                    && row.lastStatus == "ok")
            #expect(row.nextRunAtMs == 100_000)
            #expect(try await store.lease(jobID: "j") == LeaseRecord(holder: "A", token: l2.token, untilMs: 0))
        }
    }

    @Test(arguments: StoreFactory.all)
    func leaseIsExclusiveUntilItExpiresAndAStaleHolderIsFencedOff(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register([reg], nowMs: 0)
            let a = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 10_000, nowMs: 0, slotMs: nil))
            #expect(
                try await store.acquireLease(jobID: "j", holder: "B", ttlMs: 10_000, nowMs: 5000, slotMs: nil)
                    == .held(by: "A", untilMs: 10_000))
            let b = try grant(
                try await store.acquireLease(jobID: "j", holder: "B", ttlMs: 10_000, nowMs: 10_000, slotMs: nil))
            #expect(b.token > a.token)
            // A's tick ran past its lease and lost it: fenced off.
            #expect(try await store.commitTick(commit(a, cursor: "stale"), nowMs: 11_000) == false)
            #expect(try await store.commitTick(commit(b, cursor: "fresh"), nowMs: 11_000))
            #expect(try await store.state(jobID: "j")?.cursor == Data("fresh".utf8))
            #expect(try await store.renewLease(a, ttlMs: 10_000, nowMs: 11_000) == false)
        }
    }

    /// A holder claims only jobs it has no tick of in flight, so a lease of its own that is still
    /// unexpired was left by a commit that failed (a full disk): it does not block the holder's
    /// next claim, which bumps the token and fences off the tick that held it. Another holder
    /// still waits for the lease to expire.
    @Test(arguments: StoreFactory.all)
    func aHoldersOwnLeftoverLeaseDoesNotBlockItsNextClaim(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register([reg], nowMs: 0)
            let first = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 0, slotMs: nil))
            // Its commit never landed; a second later A claims the job again.
            #expect(
                try await store.acquireLease(jobID: "j", holder: "B", ttlMs: 60_000, nowMs: 1000, slotMs: nil)
                    == .held(by: "A", untilMs: 60_000))
            let again = try grant(
                try await store.acquireLeases(
                    [LeaseRequest(jobID: "j", ttlMs: 60_000, slotMs: nil, maxBacklog: nil)],
                    holder: "A", nowMs: 1000)[0])
            #expect(again.token > first.token)
            #expect(try await store.commitTick(commit(first, cursor: "stale"), nowMs: 1500) == false)
            #expect(try await store.commitTick(commit(again, cursor: "fresh"), nowMs: 1500))
            #expect(try await store.state(jobID: "j")?.cursor == Data("fresh".utf8))
        }
    }

    /// One call claims a batch of due jobs, answering each as a lone claim would; one call
    /// commits a batch of ticks, fencing each on its own.
    @Test(arguments: StoreFactory.all)
    func batchClaimsAndCommitsAnswerEachJobAsAloneWould(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            let pausedJob = JobRegistration(jobID: "paused", kind: "noop", agent: "d", pausedOnBoot: true)
            _ = try await store.register(regs(["free", "held", "later", "full", "fenced"]) + [pausedJob], nowMs: 0)
            // Set the stage: "held" is leased by B, "later" is planned at 50 s, "full" has a backlog.
            _ = try grant(
                try await store.acquireLease(jobID: "held", holder: "B", ttlMs: 60_000, nowMs: 0, slotMs: nil))
            let l = try grant(
                try await store.acquireLease(jobID: "later", holder: "B", ttlMs: 60_000, nowMs: 0, slotMs: nil))
            #expect(try await store.commitTick(commit(l, cursor: "c", next: 50_000), nowMs: 1))
            let full = try grant(
                try await store.acquireLease(jobID: "full", holder: "B", ttlMs: 60_000, nowMs: 0, slotMs: nil))
            #expect(
                try await store.commitTick(
                    TickCommit(
                        lease: full, startedAtMs: 1, durationMs: 1, status: "ok", error: nil, newCursor: Data("f".utf8),
                        itemsSeen: 1, itemsDispatched: 0, consecutiveErrors: 0, nextRunAtMs: nil, pause: false,
                        pausedReason: nil, done: false, scheduleFingerprint: "s",
                        outbox: OutboxBatch(
                            sinks: ["s"],
                            entries: [
                                ItemEnvelope.make(
                                    jobID: "full", kind: "noop", agent: "d", foundAtMs: 1,
                                    item: .object(["id": .string("x")]))
                            ],
                            dedupWindow: 10, foundAtMs: 1)), nowMs: 1))
            let answers = try await store.acquireLeases(
                [
                    LeaseRequest(jobID: "free", ttlMs: 30_000, slotMs: 10_000, maxBacklog: nil),
                    LeaseRequest(jobID: "held", ttlMs: 30_000, slotMs: 10_000, maxBacklog: nil),
                    LeaseRequest(jobID: "later", ttlMs: 30_000, slotMs: 10_000, maxBacklog: nil),
                    LeaseRequest(jobID: "paused", ttlMs: 30_000, slotMs: 10_000, maxBacklog: nil),
                    LeaseRequest(jobID: "full", ttlMs: 30_000, slotMs: 10_000, maxBacklog: 1),
                    LeaseRequest(jobID: "fenced", ttlMs: 30_000, slotMs: 10_000, maxBacklog: nil),
                ], holder: "A", nowMs: 10_000)
            #expect(answers.count == 6)
            let free = try grant(answers[0])
            #expect(free.untilMs == 40_000 && free.holder == "A")
            #expect(answers[1] == .held(by: "B", untilMs: 60_000))
            #expect(answers[2] == .notDue(untilMs: 50_000))
            #expect(answers[3] == .paused(reason: "paused_on_boot"))
            #expect(answers[4] == .backlogged(pending: 1, limit: 1))
            let fenced = try grant(answers[5])
            #expect(try await store.reset(jobID: "fenced", nowMs: 10_001))
            let results = try await store.commit(
                [commit(free, cursor: "one"), commit(fenced, cursor: "two")], nowMs: 10_002)
            #expect(results == [0, nil])
            #expect(try await store.state(jobID: "free")?.cursor == Data("one".utf8))
            #expect(try await store.state(jobID: "fenced")?.cursor == nil)
            #expect(try await store.acquireLeases([], holder: "A", nowMs: 0).isEmpty)
            #expect(try await store.commit([], nowMs: 0).isEmpty)
        }
    }

    /// A daemon stopped (SIGSTOP) while it held a lease, resumed after another daemon took the
    /// job and committed: nothing it does changes the job.
    @Test(arguments: StoreFactory.all)
    func aStoppedDaemonResumedPastItsLeaseChangesNothing(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let stopped = try await place.open()
            let live = try await place.open()
            _ = try await stopped.register([reg], nowMs: 0)
            let old = try grant(
                try await stopped.acquireLease(jobID: "j", holder: "stopped", ttlMs: 30_000, nowMs: 0, slotMs: 0))
            // 90 s later: the live daemon takes the expired lease, runs two slots and commits them.
            for (i, now) in [Int64(90_000), 100_000].enumerated() {
                let g = try grant(
                    try await live.acquireLease(jobID: "j", holder: "live", ttlMs: 30_000, nowMs: now, slotMs: now))
                #expect(try await live.commitTick(commit(g, cursor: "live-\(i)", next: now + 10_000), nowMs: now + 1))
            }
            let before = try #require(try await live.state(jobID: "j"))
            // The stopped daemon wakes up with its old lease: renewing, committing, releasing all fail.
            #expect(try await stopped.renewLease(old, ttlMs: 30_000, nowMs: 0) == false)
            #expect(try await stopped.commitTick(commit(old, cursor: "stale", next: 1), nowMs: 1) == false)
            try await stopped.releaseLease(old)
            let after = try #require(try await live.state(jobID: "j"))
            #expect(after == before)
            #expect(after.cursor == Data("live-1".utf8))
            #expect(try await live.lease(jobID: "j")?.holder == "live")
        }
    }

    @Test(arguments: StoreFactory.all)
    func twoDaemonsOnOneStoreNeverBothCommitTheSameSlot(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let s1 = try await place.open()
            let s2 = try await place.open()
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
                            guard
                                case .granted(let g)? = try? await store.acquireLease(
                                    jobID: "j", holder: holder, ttlMs: 60_000, nowMs: now, slotMs: thisSlot)
                            else { return false }
                            return
                                (try? await store.commitTick(
                                    self.commit(g, cursor: "\(round)", next: thisSlot + 10_000), nowMs: now)) == true
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.filter { $0 }.count == 1, "round \(round): \(results)")
                commits += results.filter { $0 }.count
                // The slower daemon arriving after the commit is refused too: the slot already ran.
                let late = try await s2.acquireLease(
                    jobID: "j", holder: "B", ttlMs: 60_000, nowMs: now + 1, slotMs: slot)
                #expect(late == .notDue(untilMs: slot + 10_000))
                slot += 10_000
            }
            #expect(commits == 40)
            #expect(try await s1.state(jobID: "j")?.ticksTotal == 40)
        }
    }

    @Test(arguments: StoreFactory.all)
    func pausedOnBootAppliesOnlyWhenFirstSeen(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            let r = JobRegistration(jobID: "p", kind: "noop", agent: "default", pausedOnBoot: true)
            let first = try #require(try await store.register([r], nowMs: 7)["p"])
            #expect(first.paused && first.pausedAtMs == 7)
            #expect(
                try await store.acquireLease(jobID: "p", holder: "A", ttlMs: 1000, nowMs: 0, slotMs: nil)
                    == .paused(reason: "paused_on_boot"))
            #expect(try await store.setPaused(jobID: "p", paused: false, reason: nil, nowMs: 8))
            // A restart registers it again: the operator's resume stands.
            let reopened = try await place.open()
            let again = try #require(try await reopened.register([r], nowMs: 9)["p"])
            #expect(!again.paused && again.pausedAtMs == nil)
        }
    }

    @Test(arguments: StoreFactory.all)
    func resetFencesATickInFlightAndControlsAreLogged(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register([reg], nowMs: 0)
            let cursor0 = try await store.controlCursor()
            let l = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 0, slotMs: nil))
            #expect(try await store.commitTick(commit(l, cursor: "c1"), nowMs: 1))
            let inFlight = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 2, slotMs: nil))
            #expect(try await store.reset(jobID: "j", nowMs: 3))
            #expect(try await store.commitTick(commit(inFlight, cursor: "old-cursor-based"), nowMs: 4) == false)
            #expect(try await store.state(jobID: "j")?.cursor == nil)
            #expect(try await store.setPaused(jobID: "j", paused: true, reason: "maintenance", nowMs: 5))
            let row = try #require(try await store.state(jobID: "j"))
            #expect(row.paused && row.pausedReason == "maintenance" && row.pausedAtMs == 5)
            let batch = try await store.controlChanges(after: cursor0)
            #expect(
                batch.changes == [ControlChange(jobID: "j", action: .reset), ControlChange(jobID: "j", action: .pause)])
            #expect(try await store.controlChanges(after: batch.next).changes.isEmpty)
            #expect(try await store.setPaused(jobID: "nope", paused: true, reason: nil, nowMs: 6) == false)
            #expect(try await store.reset(jobID: "nope", nowMs: 6) == false)
        }
    }

    /// A reader never moves its cursor past a control that commits after it looked: each look
    /// returns exactly the controls committed since the previous one, in order, none twice.
    @Test(arguments: StoreFactory.all)
    func aControlThatCommitsAfterALookIsSeenByTheNextLook(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let reader = try await place.open()
            let writer = try await place.open()
            _ = try await writer.register(regs(["a", "b"]), nowMs: 0)
            var cursor = try await reader.controlCursor()
            var seen: [ControlChange] = []
            var written: [ControlChange] = []
            // Writers and the reader interleave; every look must return only new changes.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for i in 0..<30 {
                        let id = i % 2 == 0 ? "a" : "b"
                        _ = try await writer.setPaused(jobID: id, paused: i % 4 < 2, reason: "n\(i)", nowMs: Int64(i))
                    }
                }
                for _ in 0..<10 {
                    let b = try await reader.controlChanges(after: cursor)
                    seen += b.changes
                    cursor = b.next
                    await Task.yield()
                }
                try await group.waitForAll()
            }
            seen += try await reader.controlChanges(after: cursor).changes
            for i in 0..<30 {
                written.append(ControlChange(jobID: i % 2 == 0 ? "a" : "b", action: i % 4 < 2 ? .pause : .resume))
            }
            #expect(seen == written)
        }
    }

    /// A control whose transaction is still open when a reader looks is seen by the look after
    /// it commits: the cursor never moves past it. On a store with one writer it cannot be
    /// open during a look, so there the hook does not exist and the test says so.
    @Test(arguments: StoreFactory.all)
    func aControlHeldOpenDuringALookIsSeenOnceItCommits(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let reader = try await place.open()
            _ = try await reader.register(regs(["a", "b"]), nowMs: 0)
            guard let hold = f.hold else {
                // SQLite: every write is serialised; a control is committed before the next look
                // begins (the interleaving test above covers that order).
                #expect(f.name == "sqlite")
                return
            }
            let start = try await reader.controlCursor()
            let release = try await hold(place.location, .control(jobID: "a", paused: true))
            _ = try await reader.setPaused(jobID: "b", paused: true, reason: nil, nowMs: 1)
            let first = try await reader.controlChanges(after: start)
            try await release()
            let second = try await reader.controlChanges(after: first.next)
            let all = first.changes + second.changes
            #expect(Set(all.map(\.jobID)) == ["a", "b"] && all.count == 2)
        }
    }

    /// A claim that meets a row another transaction has locked answers `.busy` for it (the
    /// slot stays due; the runner asks again within a second) and still answers the rest of the
    /// batch. On a store with one writer no row is ever locked by another: every answer is
    /// definite, whatever the concurrency.
    @Test(arguments: StoreFactory.all)
    func aClaimThatMeetsALockedRowAnswersBusy(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let a = try await place.open()
            let b = try await place.open()
            let ids = (0..<20).map { "job-\($0)" }
            _ = try await a.register(regs(ids), nowMs: 0)
            guard let hold = f.hold else {
                // SQLite: two daemons claim the same jobs at once; each request gets a definite
                // answer (granted to one, held for the other), never `.busy`.
                let requests = ids.map { LeaseRequest(jobID: $0, ttlMs: 60_000, slotMs: nil, maxBacklog: nil) }
                async let x = a.acquireLeases(requests, holder: "A", nowMs: 1)
                async let y = b.acquireLeases(requests, holder: "B", nowMs: 1)
                let (ax, by) = try await (x, y)
                #expect(!(ax + by).contains(.busy))
                for i in ids.indices {
                    let granted = [ax[i], by[i]].filter { if case .granted = $0 { true } else { false } }
                    #expect(granted.count == 1, "\(ids[i]): \(ax[i]) / \(by[i])")
                }
                return
            }
            let release = try await hold(place.location, .lockRow(jobID: "job-0"))
            let answers = try await b.acquireLeases(
                ["job-0", "job-1"].map { LeaseRequest(jobID: $0, ttlMs: 60_000, slotMs: 1, maxBacklog: nil) },
                holder: "B", nowMs: 1)
            #expect(answers.first == .busy)
            _ = try grant(answers[1])
            try await release()
            _ = try grant(try await b.acquireLease(jobID: "job-0", holder: "B", ttlMs: 60_000, nowMs: 2, slotMs: 1))
        }
    }

    @Test(arguments: StoreFactory.all)
    func reclaimFreesOnlyAbandonedLeases(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register(regs(["a", "b", "c", "d"]), nowMs: 0)
            _ = try await store.acquireLease(jobID: "a", holder: "host:111:n1", ttlMs: 60_000, nowMs: 0, slotMs: nil)
            _ = try await store.acquireLease(jobID: "b", holder: "host:222:n2", ttlMs: 60_000, nowMs: 0, slotMs: nil)
            // Another host's holder with a pid that is not alive here, and a host whose name
            // only begins with this one's: neither is this host's to free.
            _ = try await store.acquireLease(jobID: "c", holder: "other:111:n3", ttlMs: 60_000, nowMs: 0, slotMs: nil)
            _ = try await store.acquireLease(jobID: "d", holder: "host2:111:n4", ttlMs: 60_000, nowMs: 0, slotMs: nil)
            let n = try await store.reclaimLeases(on: HostProcesses(host: "host", alive: [1, 222]), nowMs: 1)
            #expect(n == 1)
            for (job, holder) in [("b", "host:222:n2"), ("c", "other:111:n3"), ("d", "host2:111:n4")] {
                #expect(
                    try await store.acquireLease(jobID: job, holder: "X", ttlMs: 1, nowMs: 2, slotMs: nil)
                        == .held(by: holder, untilMs: 60_000))
            }
            guard case .granted = try await store.acquireLease(jobID: "a", holder: "X", ttlMs: 1, nowMs: 2, slotMs: nil)
            else {
                Issue.record("abandoned lease was not freed")
                return
            }
        }
    }

    @Test(arguments: StoreFactory.all)
    func manyConcurrentTicksAllCommit(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            let many = regs((0..<500).map { "j\($0)" })
            _ = try await store.register(many, nowMs: 0)
            let ok = try await withThrowingTaskGroup(of: Bool.self, returning: Int.self) { group in
                for r in many {
                    group.addTask {
                        guard
                            case .granted(let g) = try await store.acquireLease(
                                jobID: r.jobID, holder: "A", ttlMs: 60_000, nowMs: 0, slotMs: 0)
                        else { return false }
                        return try await store.commitTick(self.commit(g, cursor: r.jobID), nowMs: 1)
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(ok == 500)
            let rows = try await store.allStates()
            #expect(rows.allSatisfy { $0.cursor == Data($0.jobID.utf8) && $0.ticksTotal == 1 })
        }
    }

    // MARK: Bounded reads

    /// Rows come a page at a time, by job id, whatever the number of jobs; `allStates` reads
    /// every page.
    @Test(arguments: StoreFactory.all)
    func statesAreReadAPageAtATime(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            let ids = (0..<25).map { String(format: "job-%02d", $0) }
            _ = try await store.register(regs(ids.shuffled()), nowMs: 0)
            var seen: [String] = []
            var after: String?
            while true {
                let page = try await store.states(after: after, limit: 10)
                #expect(page.count <= 10)
                seen += page.map(\.jobID)
                guard page.count == 10, let last = page.last else { break }
                after = last.jobID
            }
            #expect(seen == ids)
            #expect(try await store.states(after: "job-23", limit: 10).map(\.jobID) == ["job-24"])
            #expect(try await store.states(after: nil, limit: 0).isEmpty)
            #expect(try await store.allStates().map(\.jobID) == ids)
        }
    }

    /// The store counts a daemon's jobs as `JobHealth.of` and `isStale` would, row by row, in one
    /// aggregate read: only the jobs that daemon announced.
    @Test(arguments: StoreFactory.all)
    func jobHealthCountsAsTheRowsWould(_ f: StoreFactory) async throws {
        try await f.withStore { store in
            let ids = ["ok", "transient", "permanent", "breaker", "paused", "never", "backpressure", "done", "other"]
            _ = try await store.register(regs(ids), nowMs: 0)
            func tick(_ id: String, status: String, errors: Int, at: Int64, done: Bool = false) async throws {
                let g = try grant(
                    try await store.acquireLease(jobID: id, holder: "A", ttlMs: 60_000, nowMs: at, slotMs: nil))
                var c = commit(g, cursor: "c", status: status)
                c.consecutiveErrors = errors
                c.startedAtMs = at
                c.done = done
                #expect(try await store.commitTick(c, nowMs: at))
            }
            try await tick("ok", status: "ok", errors: 0, at: 1000)
            try await tick("transient", status: "transient", errors: 2, at: 1000)
            try await tick("permanent", status: "permanent", errors: 1, at: 1000)
            try await tick("breaker", status: "transient", errors: 5, at: 1000)
            try await tick("paused", status: "ok", errors: 0, at: 500)
            _ = try await store.setPaused(jobID: "paused", paused: true, reason: "op", nowMs: 2000)
            try await tick("backpressure", status: "backpressure", errors: 0, at: 1000)
            try await tick("done", status: "ok", errors: 0, at: 1000, done: true)
            try await tick("other", status: "permanent", errors: 9, at: 1000)
            _ = try await announce(store, "me", ids.filter { $0 != "other" }, aliveUntil: 1_000_000)
            _ = try await announce(store, "them", ["other"], aliveUntil: 1_000_000)

            let now: Int64 = 100_000
            let query = JobHealthQuery(
                daemonID: "me", breakerThreshold: 5, nowMs: now,
                staleAfterSecs: [10: ["ok", "never", "paused"], 1000: ["transient"]], registeredAtMs: 50_000)
            let counts = try await store.jobHealth(query)
            // The same, row by row.
            let mine = try await store.allStates().filter { $0.jobID != "other" }
            var byState: [JobHealth: Int] = [:]
            for r in mine { byState[JobHealth.of(r, breakerThreshold: 5), default: 0] += 1 }
            var limits: [String: Int64] = [:]
            for (limit, jobs) in query.staleAfterSecs { for j in jobs { limits[j] = limit } }
            let stale = mine.filter {
                JobHealth.isStale($0, maxStalenessSecs: limits[$0.jobID], registeredAtMs: 50_000, nowMs: now)
            }
            #expect(counts.byState == byState)
            #expect(byState.count == 8, "\(byState)") // every state is met once
            #expect(counts.stale == stale.count && Set(stale.map(\.jobID)) == ["ok", "never"])
            #expect(counts.oldestLastOkAtMs == 1000)
            // A daemon that announced nothing has nothing to count.
            var none = query
            none.daemonID = "nobody"
            #expect(try await store.jobHealth(none) == JobHealthCounts(byState: [:], stale: 0, oldestLastOkAtMs: nil))
        }
    }

    // MARK: Time

    /// Daemons whose clocks disagree share a store that keeps time itself (`StoreTime.store`):
    /// every expiry is the store's, whatever instant a caller passes. The test never moves the
    /// store's clock: it passes instants an hour apart, and TTLs of 0 (expired at once on the
    /// store's clock) or of an hour (alive for the whole test).
    @Test(arguments: StoreFactory.all)
    func aStoreThatKeepsTimeIgnoresASkewedDaemonClock(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let a = try await place.open(time: .store)
            let ahead = try await place.open(time: .store)
            let hour: Int64 = 3_600_000
            let aNow: Int64 = 10 * hour
            let aheadNow = aNow + hour
            _ = try await a.register(regs(["j", "k", "mine"]), nowMs: aNow)

            // Leases: the daemon an hour ahead cannot take one the other holds for a minute.
            let g = try grant(
                try await a.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: aNow, slotMs: nil))
            guard
                case .held(by: "A", _) = try await ahead.acquireLease(
                    jobID: "j", holder: "B", ttlMs: 60_000, nowMs: aheadNow, slotMs: nil)
            else {
                Issue.record("a clock an hour ahead took a live lease")
                return
            }
            // A renewal from a clock an hour behind still runs from the store's now.
            #expect(try await a.renewLease(g, ttlMs: 60_000, nowMs: aNow - hour))
            #expect(
                try await ahead.acquireLease(jobID: "j", holder: "B", ttlMs: 1, nowMs: aheadNow, slotMs: nil)
                    .isHeld(by: "A"))
            // A lease with no time left is free to a daemon whose clock is an hour behind.
            _ = try grant(try await a.acquireLease(jobID: "k", holder: "A", ttlMs: 0, nowMs: aNow, slotMs: nil))
            _ = try grant(
                try await ahead.acquireLease(jobID: "k", holder: "B", ttlMs: 60_000, nowMs: aNow - hour, slotMs: nil))

            // Daemons: the one a minute ahead neither forgets the other nor deactivates its jobs.
            #expect(try await announce(a, "A", ["j", "mine"], aliveUntil: aNow + 60_000, nowMs: aNow).isEmpty)
            let minuteAhead = aNow + 60_001
            #expect(try await announce(ahead, "B", ["k"], aliveUntil: minuteAhead + 60_000, nowMs: minuteAhead).isEmpty)
            #expect(try await ahead.liveDaemons(nowMs: minuteAhead).map(\.daemonID).sorted() == ["A", "B"])
            #expect(try await ahead.jobOwners(jobID: "mine", nowMs: minuteAhead) == ["A"])
            #expect(try await ahead.state(jobID: "mine")?.definitionFingerprint == "fp-mine")
            #expect(try await ahead.heartbeat(daemonID: "B", ttlMs: 60_000, nowMs: minuteAhead + hour))
            #expect(try await ahead.liveDaemons(nowMs: minuteAhead + hour).map(\.daemonID).sorted() == ["A", "B"])
            // A daemon whose liveness ran out on the store's clock is forgotten, whatever the
            // caller's clock says (an hour behind here).
            _ = try await announce(ahead, "C", [], aliveUntil: aNow, nowMs: aNow)
            #expect(try await a.liveDaemons(nowMs: aNow - hour).map(\.daemonID).sorted() == ["A", "B"])

            // Lane claims: a claim for a minute holds against a deliverer an hour ahead.
            var b = batch(["x"], sinks: ["file"])
            b.sinkFingerprints = ["file=file(a)"]
            let m = try grant(
                try await a.acquireLease(jobID: "mine", holder: "A", ttlMs: 60_000, nowMs: aNow, slotMs: nil))
            #expect(try await a.commitTick(commit(m, cursor: "c", outbox: b), nowMs: aNow))
            let served = [ServedSink(jobID: "mine", sink: "file", fingerprint: "file=file(a)")]
            try await a.serveSinks(holder: "A", served)
            try await ahead.serveSinks(holder: "B", served)
            #expect(
                try await a.claimLanes(holder: "A", nowMs: aNow, claimMs: 60_000, limit: 10, batchSize: 10).count == 1)
            #expect(
                try await ahead.claimLanes(holder: "B", nowMs: aheadNow, claimMs: 60_000, limit: 10, batchSize: 10)
                    .isEmpty)
        }
    }

    // MARK: Several daemons

    /// Each live daemon's definition of a job, as it announced it; the jobs they define
    /// differently; a daemon whose heartbeat lapsed counts no more.
    @Test(arguments: StoreFactory.all)
    func liveDefinitionsAndTheJobsDefinedDifferently(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register(regs(["a", "shared", "same"]), nowMs: 0)
            #expect(try await store.divergentDefinitions(nowMs: 1).isEmpty) // no daemon yet
            _ = try await store.announce(
                DaemonAnnouncement(
                    daemonID: "d1", jobFile: "one.yaml", jobs: ["a": "fa", "shared": "s1", "same": "x"],
                    ttlMs: 60_000), nowMs: 0)
            #expect(try await store.divergentDefinitions(nowMs: 1).isEmpty) // one daemon agrees with itself
            _ = try await store.announce(
                DaemonAnnouncement(
                    daemonID: "d2", jobFile: "two.yaml", jobs: ["shared": "s2", "same": "x"], ttlMs: 30_000),
                nowMs: 0)
            #expect(try await store.divergentDefinitions(nowMs: 1) == ["shared": ["d1": "s1", "d2": "s2"]])
            #expect(
                try await store.liveDefinitions(jobIDs: ["a", "shared", "none"], nowMs: 1) == [
                    "a": ["d1": "fa"], "shared": ["d1": "s1", "d2": "s2"],
                ])
            // d2's heartbeat lapses: nothing disagrees any more.
            #expect(try await store.divergentDefinitions(nowMs: 30_001).isEmpty)
            #expect(try await store.liveDefinitions(jobIDs: ["shared"], nowMs: 30_001) == ["shared": ["d1": "s1"]])
        }
    }

    @Test(arguments: StoreFactory.all)
    func twoDaemonsWithDifferentJobFilesKeepEachOthersJobsActive(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let one = try await place.open()
            let two = try await place.open()
            _ = try await one.register(regs(["a", "shared"]), nowMs: 0)
            _ = try await two.register(regs(["b", "shared"]), nowMs: 0)
            #expect(try await announce(one, "d1", ["a", "shared"], file: "one.yaml").isEmpty)
            // The second daemon boots last: it must not deactivate the first one's jobs.
            #expect(try await announce(two, "d2", ["b", "shared"], file: "two.yaml").isEmpty)
            #expect(
                Set(try await one.allStates().filter { $0.definitionFingerprint != nil }.map(\.jobID)) == [
                    "a", "b", "shared",
                ])
            #expect(try await one.jobOwners(jobID: "shared", nowMs: 1) == ["d1", "d2"])
            #expect(try await one.liveDaemons(nowMs: 1).map(\.daemonID) == ["d1", "d2"])
            #expect(try await one.liveDaemons(nowMs: 1).map(\.jobs) == [2, 2])
            // d1 reloads without "shared": d2 still runs it, so it stays active.
            #expect(try await announce(one, "d1", ["a"], nowMs: 2).isEmpty)
            #expect(try await one.state(jobID: "shared")?.definitionFingerprint == "fp-shared")
            // d2 stops: "b" and "shared" leave the active set, "a" stays.
            try await two.retire(daemonID: "d2", nowMs: 3)
            let active = Set(try await one.allStates().filter { $0.definitionFingerprint != nil }.map(\.jobID))
            #expect(active == ["a"])
            #expect(try await one.jobOwners(jobID: "b", nowMs: 4).isEmpty)
            // Their state is kept: a daemon that has them again reactivates them.
            #expect(try await announce(two, "d3", ["b"], nowMs: 5).isEmpty)
            #expect(try await one.state(jobID: "b")?.definitionFingerprint == "fp-b")
        }
    }

    @Test(arguments: StoreFactory.all)
    func aDaemonWhoseHeartbeatLapsedIsForgottenAndMustAnnounceAgain(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register(regs(["a", "b"]), nowMs: 0)
            _ = try await announce(store, "d1", ["a"], aliveUntil: 60_000)
            _ = try await announce(store, "d2", ["b"], aliveUntil: 60_000)
            try await store.recordSchedules(
                [
                    ScheduleRecord(
                        jobID: "a", nextRunAtMs: 90_000, scheduleFingerprint: "s", definitionFingerprint: "fp-a")
                ],
                nowMs: 1)
            #expect(try await store.heartbeat(daemonID: "d2", ttlMs: 150_000, nowMs: 50_000))
            // d1 stopped beating at 60 s. At 61 s it is not alive; the next announcement by anyone forgets it.
            #expect(try await store.liveDaemons(nowMs: 61_000).map(\.daemonID) == ["d2"])
            #expect(try await announce(store, "d2", ["b"], aliveUntil: 200_000, nowMs: 61_000) == ["a"])
            #expect(try await store.state(jobID: "a")?.definitionFingerprint == nil)
            // Out of the active set, its state is kept, its planned run with it.
            #expect(try await store.state(jobID: "a")?.nextRunAtMs == 90_000)
            #expect(try await store.heartbeat(daemonID: "d1", ttlMs: 238_000, nowMs: 62_000) == false)
            #expect(try await announce(store, "d1", ["a"], aliveUntil: 300_000, nowMs: 62_000).isEmpty)
            #expect(try await store.state(jobID: "a")?.definitionFingerprint == "fp-a")
        }
    }

    @Test(arguments: StoreFactory.all)
    func pluginStatusRowsAreKeptPerDaemon(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            func rec(_ id: String, _ phase: String) -> PluginStatusRecord {
                PluginStatusRecord(
                    pluginID: id, lifecycle: "long_lived", phase: phase, pid: 42, restarts: 1, ticks: 5, failures: 0,
                    lastError: nil, stderrTail: ["a line"], updatedAtMs: 10)
            }
            try await store.recordPluginStatuses([rec("p", "running")], daemonID: "d1")
            try await store.recordPluginStatuses([rec("p", "backing_off"), rec("o", "idle")], daemonID: "d2")
            // d1 reports again: only its own row is replaced.
            try await store.recordPluginStatuses([rec("p", "stopped")], daemonID: "d1")
            #expect(
                try await store.pluginStatuses() == [
                    DaemonPluginStatus(daemonID: "d2", status: rec("o", "idle")),
                    DaemonPluginStatus(daemonID: "d1", status: rec("p", "stopped")),
                    DaemonPluginStatus(daemonID: "d2", status: rec("p", "backing_off")),
                ])
            // A daemon that reports no plugin any more keeps no row.
            try await store.recordPluginStatuses([], daemonID: "d2")
            #expect(
                try await store.pluginStatuses() == [DaemonPluginStatus(daemonID: "d1", status: rec("p", "stopped"))])
        }
    }

    // MARK: Outbox

    func batch(_ ids: [String], sinks: [String] = ["s"], window: Int = 100) -> OutboxBatch {
        OutboxBatch(
            sinks: sinks,
            entries: ids.map {
                ItemEnvelope.make(
                    jobID: "j", kind: "noop", agent: "default", foundAtMs: 1, item: .object(["id": .string($0)]))
            },
            dedupWindow: window, foundAtMs: 1)
    }

    func tickWith(_ store: any PollerdStore, _ ids: [String], at now: Int64, window: Int = 100) async throws -> Bool {
        let g = try grant(try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: now, slotMs: nil))
        return try await store.commitTick(commit(g, cursor: "c\(now)", outbox: batch(ids, window: window)), nowMs: now)
    }

    /// A deliverer claims only the lanes it serves: the sink by name, and by the fingerprint of
    /// the definition the lane's items were queued under (a lane queued without one, by name).
    @Test(arguments: StoreFactory.all)
    func aDelivererClaimsOnlyTheLanesItServes(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register([reg], nowMs: 0)
            let g = try grant(
                try await store.acquireLease(jobID: "j", holder: "A", ttlMs: 60_000, nowMs: 10, slotMs: nil))
            var b = batch(["x"], sinks: ["hook", "file"])
            b.sinkFingerprints = ["hook=webhook(one)", "file=file(a)"]
            #expect(try await store.commitTick(commit(g, cursor: "c", outbox: b), nowMs: 10))
            // Nothing is served before serveSinks.
            #expect(
                try await store.claimLanes(holder: "D", nowMs: 20, claimMs: 60_000, limit: 10, batchSize: 10).isEmpty)
            // Another job file: the same sink name, another definition; and a sink the lane lacks.
            try await store.serveSinks(
                holder: "D",
                [
                    ServedSink(jobID: "j", sink: "hook", fingerprint: "hook=webhook(two)"),
                    ServedSink(jobID: "j", sink: "stdout", fingerprint: "stdout=stdout()"),
                ])
            #expect(
                try await store.claimLanes(holder: "D", nowMs: 20, claimMs: 60_000, limit: 10, batchSize: 10).isEmpty)
            // The daemon that defines both sinks as the items were queued claims both lanes.
            try await store.serveSinks(
                holder: "E",
                [
                    ServedSink(jobID: "j", sink: "hook", fingerprint: "hook=webhook(one)"),
                    ServedSink(jobID: "j", sink: "file", fingerprint: "file=file(a)"),
                ])
            let lanes = try await store.claimLanes(holder: "E", nowMs: 20, claimMs: 60_000, limit: 10, batchSize: 10)
            #expect(Set(lanes.map(\.lane.sink)) == ["hook", "file"])
            // serveSinks replaces: D now serves the file sink as queued, but E holds it.
            try await store.serveSinks(holder: "D", [ServedSink(jobID: "j", sink: "file", fingerprint: "file=file(a)")])
            #expect(
                try await store.claimLanes(holder: "D", nowMs: 21, claimMs: 60_000, limit: 10, batchSize: 10).isEmpty)
        }
    }

    @Test(arguments: StoreFactory.all)
    func outboxAcksRetriesAndDeadLettersInOrder(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register([reg], nowMs: 0)
            #expect(try await tickWith(store, ["x", "y", "z"], at: 10))
            #expect(try await store.state(jobID: "j")?.outboxBacklog == 3)
            for holder in ["D", "E"] {
                try await store.serveSinks(holder: holder, [ServedSink(jobID: "j", sink: "s", fingerprint: "any")])
            }
            let claimed = try #require(
                try await store.claimLanes(holder: "D", nowMs: 20, claimMs: 60_000, limit: 10, batchSize: 10).first)
            let lane = claimed.lane
            // Claimed: another deliverer gets nothing.
            #expect(
                try await store.claimLanes(holder: "E", nowMs: 21, claimMs: 60_000, limit: 10, batchSize: 10).isEmpty)
            let items = claimed.items
            #expect(items.map(\.key) == ["j:x", "j:y", "j:z"])
            // x acked, y failed: retry later; the claim is released.
            #expect(
                try await store.settle(
                    lane, holder: "D", LaneSettlement(acked: [items[0].seq], failure: .retry(atMs: 1000, error: "503")),
                    nowMs: 30))
            // Not due yet.
            #expect(
                try await store.claimLanes(holder: "D", nowMs: 999, claimMs: 60_000, limit: 10, batchSize: 10).isEmpty)
            let claimedAgain = try #require(
                try await store.claimLanes(holder: "D", nowMs: 1000, claimMs: 60_000, limit: 10, batchSize: 10).first)
            let again = claimedAgain.lane
            #expect(again.attempts == 1)
            #expect(claimedAgain.items.map(\.key) == ["j:y", "j:z"])
            // A settle under a lost claim changes nothing.
            #expect(
                try await store.settle(
                    lane, holder: "D", LaneSettlement(acked: [items[1].seq], failure: nil), nowMs: 1001)
                    == false)
            // y dead-letters; z is delivered.
            #expect(
                try await store.settle(
                    again, holder: "D", LaneSettlement(acked: [], failure: .deadLetter(error: "410 gone")), nowMs: 1002)
            )
            let claimedLast = try #require(
                try await store.claimLanes(holder: "D", nowMs: 1003, claimMs: 60_000, limit: 10, batchSize: 10).first)
            let last = claimedLast.lane
            #expect(claimedLast.items.map(\.key) == ["j:z"])
            #expect(
                try await store.settle(
                    last, holder: "D", LaneSettlement(acked: [items[2].seq], failure: nil), nowMs: 1004))
            #expect(try await store.state(jobID: "j")?.outboxBacklog == 0)
            let dead = try await store.deadLetters(jobID: "j", limit: 10)
            #expect(dead.map(\.key) == ["j:y"] && dead.first?.lastError == "410 gone")
            // Replay puts it back at the end of its lane.
            #expect(try await store.replayDeadLetters(.job("j"), nowMs: 1005) == 1)
            let replayed = try #require(
                try await store.claimLanes(holder: "D", nowMs: 1006, claimMs: 60_000, limit: 10, batchSize: 10).first)
            #expect(replayed.items.map(\.key) == ["j:y"])
        }
    }

    @Test(arguments: StoreFactory.all)
    func theDedupWindowDropsKeysItRemembers(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register([reg], nowMs: 0)
            #expect(try await tickWith(store, ["a", "b"], at: 10, window: 3))
            #expect(try await tickWith(store, ["a", "b", "c"], at: 20, window: 3)) // only c is new
            #expect(try await store.state(jobID: "j")?.outboxBacklog == 3)
            #expect(try await tickWith(store, ["d", "e"], at: 30, window: 3)) // a and b fall out of the window
            #expect(try await tickWith(store, ["a"], at: 40, window: 3))
            #expect(try await store.state(jobID: "j")?.outboxBacklog == 6)
        }
    }

    @Test(arguments: StoreFactory.all)
    func aFullBacklogRefusesScheduledTicks(_ f: StoreFactory) async throws {
        try await f.withPlace { place in
            let store = try await place.open()
            _ = try await store.register([reg], nowMs: 0)
            #expect(try await tickWith(store, ["a", "b", "c"], at: 10))
            #expect(
                try await store.acquireLease(
                    jobID: "j", holder: "A", ttlMs: 1000, nowMs: 20, slotMs: nil, maxBacklog: 3)
                    == .backlogged(pending: 3, limit: 3))
            guard
                case .granted = try await store.acquireLease(
                    jobID: "j", holder: "A", ttlMs: 1000, nowMs: 20, slotMs: nil, maxBacklog: 4)
            else {
                Issue.record("a backlog under the bound refused the lease")
                return
            }
        }
    }
}

extension LeaseAcquisition {
    /// True when the answer is "held by `holder`", whatever its expiry.
    func isHeld(by holder: String) -> Bool {
        if case .held(by: holder, _) = self { return true }
        return false
    }
}
