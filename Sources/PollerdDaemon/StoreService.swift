public import PollerdCore
public import ServiceLifecycle
import Synchronization

/// Opens once the store is prepared (`PollerdStore.prepare()`: checked, its schema up to date).
/// The services that use the store wait for it, so none reads or writes a store that is still
/// being migrated, by this daemon or by another one that started at the same time.
public final class StoreReadiness: Sendable {
    private enum Phase {
        case waiting
        case ready
        case failed(any Error)
    }
    private struct State {
        var phase = Phase.waiting
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())

    public init() {}

    /// Returns once the store is prepared; throws the preparation's error if it failed, or
    /// `CancellationError` if the task is cancelled first.
    public func wait() async throws {
        let id = state.withLock { s in
            defer { s.nextID += 1 }
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let now: Result<Void, any Error>? = state.withLock { s in
                    switch s.phase {
                    case .ready: return .success(())
                    case .failed(let e): return .failure(e)
                    case .waiting:
                        if Task.isCancelled { return .failure(CancellationError()) }
                        s.waiters[id] = c
                        return nil
                    }
                }
                if let now { c.resume(with: now) }
            }
        } onCancel: {
            let c = state.withLock { s in s.waiters.removeValue(forKey: id) }
            c?.resume(throwing: CancellationError())
        }
    }

    /// True once the store is prepared.
    public var isReady: Bool {
        state.withLock { s in
            if case .ready = s.phase { return true }
            return false
        }
    }

    func settle(_ result: Result<Void, any Error>) {
        let waiters = state.withLock { s in
            guard case .waiting = s.phase else { return [CheckedContinuation<Void, any Error>]() }
            switch result {
            case .success: s.phase = .ready
            case .failure(let e): s.phase = .failed(e)
            }
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume(with: result) }
    }
}

/// The store as a service: first in the group, so it stops last. It starts the store's
/// background work, prepares the store, then opens `readiness`. A store that cannot be
/// prepared (damaged, written by a newer version, unreachable) stops the daemon with
/// `StoreService.NotPrepared`.
public struct StoreService: Service {
    let store: any PollerdStore
    let clock: any WallClock
    let readiness: StoreReadiness

    /// The store could not be prepared: the daemon does not start.
    public struct NotPrepared: Error, CustomStringConvertible {
        /// The store's error (`store.isDamage` tells whether the data is damaged).
        public let underlying: any Error
        public let isDamage: Bool
        public var description: String { "\(underlying)" }
    }

    public init(store: any PollerdStore, clock: any WallClock, readiness: StoreReadiness) {
        self.store = store
        self.clock = clock
        self.readiness = readiness
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.run(clock: clock) }
                do {
                    try await store.prepare()
                    readiness.settle(.success(()))
                } catch {
                    let failure = NotPrepared(underlying: error, isDamage: store.isDamage(error))
                    readiness.settle(.failure(failure))
                    group.cancelAll()
                    throw failure
                }
                try await group.waitForAll()
            }
        }
    }
}

/// Runs a service once the store is prepared: the services that read or write the store (the
/// runner, the deliverer, the admin API) start only then. A graceful shutdown or a failed
/// preparation while it waits ends it without running the service.
public struct AfterStoreReady<Wrapped: Service>: Service {
    let readiness: StoreReadiness
    let service: Wrapped

    public init(_ service: Wrapped, readiness: StoreReadiness) {
        self.service = service
        self.readiness = readiness
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await readiness.wait() }
        } catch is StoreService.NotPrepared {
            return // the store service stops the daemon with the error
        } catch is CancellationError {
            return
        }
        try await service.run()
    }
}
