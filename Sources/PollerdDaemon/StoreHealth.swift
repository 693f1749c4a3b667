import Logging
import Metrics
import Synchronization

/// Whether the store answers, as the runner's store calls find it: it changes state on the
/// first failure and on the first success after failures, so the daemon reports a failing store
/// once per change, not once per tick.
struct StoreHealth: Sendable, Equatable {
    /// The last error while failing; nil while the store answers.
    private(set) var failure: String?
    /// Whether a commit failed: then only a commit that lands says the store recovered (a full
    /// disk can still grant leases while it refuses commits, and would flap otherwise).
    private var commitsFailing = false

    /// A change worth reporting.
    enum Change: Sendable, Equatable {
        case failing(String)
        case recovered
    }

    /// The kind of store call: claims may pass while commits fail.
    enum Call: Sendable { case claim, commit }

    /// Records a store call's outcome (nil: it succeeded).
    mutating func record(_ error: String?, call: Call = .commit) -> Change? {
        switch (failure, error) {
        case (nil, let e?):
            failure = e
            commitsFailing = call == .commit
            return .failing(e)
        case (.some, let e?):
            failure = e
            commitsFailing = commitsFailing || call == .commit
            return nil
        case (.some, nil):
            guard call == .commit || !commitsFailing else { return nil }
            failure = nil
            commitsFailing = false
            return .recovered
        case (nil, nil): return nil
        }
    }
}

/// Keeps the runner's `StoreHealth` and reports its changes: one log line and the
/// `pollerd_store_up` gauge (1 or 0) per change.
final class StoreHealthReporter: Sendable {
    private let state = Mutex(StoreHealth())
    private let logger: Logger
    /// Tells damage (stop) from trouble that passes (retry).
    private let isDamage: @Sendable (any Error) -> Bool
    /// The damage found, and who to tell (the runner, which stops).
    private let damage = Mutex<(found: String?, onDamage: (@Sendable (String) -> Void)?)>((nil, nil))

    init(logger: Logger, isDamage: @escaping @Sendable (any Error) -> Bool = { _ in false }) {
        self.logger = logger
        self.isDamage = isDamage
        Gauge(label: "pollerd_store_up").record(1)
    }

    var failure: String? { state.withLock { $0.failure } }
    /// The damage that stopped the daemon, once found.
    var damaged: String? { damage.withLock { $0.found } }

    /// Who is told, once, when the store turns out damaged.
    func onDamage(_ body: @escaping @Sendable (String) -> Void) { damage.withLock { $0.onDamage = body } }

    /// Runs a store call and records whether it answered.
    func observe<T: Sendable>(_ kind: StoreHealth.Call, _ call: () async throws -> T) async throws -> T {
        do {
            let r = try await call()
            report(state.withLock { $0.record(nil, call: kind) })
            return r
        } catch {
            report(state.withLock { $0.record("\(error)", call: kind) })
            if isDamage(error) { found(damage: "\(error)") }
            throw error
        }
    }

    private func found(damage why: String) {
        let tell: (@Sendable (String) -> Void)? = damage.withLock { d in
            guard d.found == nil else { return nil }
            d.found = why
            return d.onDamage
        }
        guard let tell else { return }
        logger.critical(
            "the state database is damaged: the daemon stops rather than retry. Restore it from a backup, or run `pollerd state check` to see the damage and `pollerd state recover` to keep what is readable",
            metadata: ["pollerd.error": "\(why)"])
        tell(why)
    }

    private func report(_ change: StoreHealth.Change?) {
        switch change {
        case .failing(let why)?:
            logger.error(
                "the state store is failing: ticks cannot take leases or commit until it recovers",
                metadata: ["pollerd.error": "\(why)"])
            Gauge(label: "pollerd_store_up").record(0)
        case .recovered?:
            logger.notice("the state store answers again")
            Gauge(label: "pollerd_store_up").record(1)
        case nil:
            break
        }
    }
}
