import Foundation
import Logging
import PollerdCore
import PollerdSQLite
import PollerdTestKit
import ServiceLifecycle
import Synchronization
import Testing

@testable import PollerdDaemon

/// The store service prepares the store before any service that uses it starts, and a store that
/// cannot be prepared stops the daemon before anything reads or writes it.
@Suite struct StoreServiceTests {
    /// Records whether it ran, and whether the store was ready then.
    final class Probe: Service, Sendable {
        let ran = Mutex<[Bool]>([])
        let store: any PollerdStore
        init(store: any PollerdStore) { self.store = store }
        func run() async throws {
            // A read that needs the schema: it fails if the store was not prepared yet.
            let ok = (try? await store.allStates()) != nil
            ran.withLock { $0.append(ok) }
            try? await gracefulShutdown()
        }
    }

    static var quiet: Logger {
        var l = Logger(label: "test")
        l.logLevel = .critical
        return l
    }

    /// The store's service and a probe that uses the store, as the daemon's group holds them.
    static func group(_ store: any PollerdStore) -> (ServiceGroup, StoreReadiness, Probe) {
        let readiness = StoreReadiness()
        let probe = Probe(store: store)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    StoreService(store: store, clock: ManualClock(nowMs: 0), readiness: readiness),
                    AfterStoreReady(probe, readiness: readiness),
                ], logger: Self.quiet))
        return (group, readiness, probe)
    }

    @Test func servicesThatUseTheStoreStartOnceItIsPrepared() async throws {
        let (group, readiness, probe) = Self.group(try SQLiteBackend.open(path: tempDBPath(), synchronousFull: false))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await readiness.wait()
            #expect(readiness.isReady)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(probe.ran.withLock { $0 } == [true])
    }

    @Test func aStoreThatCannotBePreparedStopsTheDaemonBeforeAnyServiceStarts() async throws {
        let path = tempDBPath()
        // A file that is not a database at all.
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(repeating: 0xA5, count: 8192).write(to: URL(fileURLWithPath: path))
        do {
            let (group, readiness, probe) = Self.group(try SQLiteBackend.open(path: path, synchronousFull: false))
            do {
                try await group.run()
                Issue.record("the daemon ran on a file that is not a database")
            } catch let e as StoreService.NotPrepared {
                #expect(e.isDamage, "\(e)")
            }
            #expect(probe.ran.withLock { $0 }.isEmpty)
            await #expect(throws: StoreService.NotPrepared.self) { try await readiness.wait() }
        } catch let e as SQLiteBackend.Corrupt {
            // Refused as it opens: as good, nothing ran either.
            #expect(e.description.contains(path))
        }
    }

    @Test func aWaiterThatIsCancelledStopsWaiting() async throws {
        let readiness = StoreReadiness()
        let waiter = Task { try await readiness.wait() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(!readiness.isReady)
    }
}
