import Synchronization

/// Enforces every tick's timeout and renews the leases of long ticks, for all ticks in flight,
/// from one loop (instead of a timer task per tick). It runs while there is something to watch.
final class TickWatchdog: Sendable {
    enum Expiry: Sendable { case timedOut, leaseLost }

    private struct Entry {
        var deadlineMs: Int64
        var lease: LeaseGrant
        var ttlMs: Int64
        var onExpire: @Sendable (Expiry) -> Void
        var renewAtMs: Int64 { lease.untilMs - ttlMs / 2 }
    }
    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextID: UInt64 = 0
        var running = false
    }

    /// The longest the loop sleeps before looking again (new entries never wait longer).
    static let resolutionMs: Int64 = 100

    private let clock: any WallClock
    private let store: any StateStore
    private let state = Mutex(State())

    init(clock: any WallClock, store: any StateStore) {
        self.clock = clock
        self.store = store
    }

    /// Watches a tick; `onExpire` is called at most once, when it times out or loses its lease.
    func watch(deadlineMs: Int64, lease: LeaseGrant, ttlMs: Int64, onExpire: @escaping @Sendable (Expiry) -> Void) -> UInt64 {
        let (id, start) = state.withLock { s -> (UInt64, Bool) in
            s.nextID += 1
            s.entries[s.nextID] = Entry(deadlineMs: deadlineMs, lease: lease, ttlMs: ttlMs, onExpire: onExpire)
            if s.running { return (s.nextID, false) }
            s.running = true
            return (s.nextID, true)
        }
        if start {
            // Unstructured on purpose: the loop serves every tick in flight, whichever task
            // started it, and ends by itself when nothing is left to watch.
            Task { await self.loop() }
        }
        return id
    }

    /// Stops watching a tick that ended.
    func unwatch(_ id: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    private func loop() async {
        while true {
            let now = clock.nowMs
            let (expired, renew, wake): ([Entry], [(UInt64, Entry)], Int64?) = state.withLock { s in
                var expired: [Entry] = []
                var renew: [(UInt64, Entry)] = []
                for (id, e) in s.entries {
                    if e.deadlineMs <= now {
                        expired.append(e)
                        s.entries[id] = nil
                    } else if e.renewAtMs <= now {
                        renew.append((id, e))
                    }
                }
                if s.entries.isEmpty && renew.isEmpty {
                    s.running = false
                    return (expired, [], nil)
                }
                let soonest = s.entries.values.map { min($0.deadlineMs, $0.renewAtMs) }.min() ?? now
                return (expired, renew, min(soonest, now + Self.resolutionMs))
            }
            for e in expired { e.onExpire(.timedOut) }
            for (id, e) in renew {
                let until = clock.nowMs + e.ttlMs
                let ok = (try? await store.renewLease(e.lease, untilMs: until)) == true
                let lost: Entry? = state.withLock { s in
                    guard s.entries[id] != nil else { return nil }
                    if ok { s.entries[id]!.lease.untilMs = until; return nil }
                    return s.entries.removeValue(forKey: id)
                }
                lost?.onExpire(.leaseLost)
            }
            guard let wake else { return }
            try? await clock.sleep(untilMs: max(wake, now + 1))
        }
    }
}
