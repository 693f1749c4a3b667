import PollerdCore
import Synchronization

/// Enforces every tick's timeout and renews the leases of long ticks, for all ticks in flight,
/// from one loop (instead of a timer task per tick). It runs while there is something to watch.
///
/// A lease is measured on the daemon's own clock from the moment it was asked for, so a daemon
/// needs no agreement with the store's clock: it renews at half the TTL, and when it has not
/// renewed by the end of the TTL (the store unreachable, say) it gives the tick up by itself,
/// before another daemon can have taken the job.
final class TickWatchdog: Sendable {
    enum Expiry: Sendable, Equatable { case timedOut, leaseLost }

    struct Entry {
        var deadlineMs: Int64
        var lease: LeaseGrant
        var ttlMs: Int64
        /// When the lease was last asked for or renewed, on the daemon's clock.
        var heldSinceMs: Int64
        var renewing = false
        var onExpire: @Sendable (Expiry) -> Void
        var renewAtMs: Int64 { heldSinceMs + ttlMs / 2 }
        var expiresAtMs: Int64 { heldSinceMs + ttlMs }
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
    /// `heldSinceMs` is when the lease was asked for.
    func watch(
        deadlineMs: Int64, lease: LeaseGrant, ttlMs: Int64, heldSinceMs: Int64,
        onExpire: @escaping @Sendable (Expiry) -> Void
    ) -> UInt64 {
        let (id, start) = state.withLock { s -> (UInt64, Bool) in
            s.nextID += 1
            s.entries[s.nextID] = Entry(
                deadlineMs: deadlineMs, lease: lease, ttlMs: ttlMs, heldSinceMs: heldSinceMs, onExpire: onExpire)
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

    /// What one look at the entries decided.
    struct Look {
        var expired: [(Entry, Expiry)] = []
        var renew: [(UInt64, Entry)] = []
        /// When to look again; nil: nothing is left to watch.
        var wakeMs: Int64?
    }

    /// Decides, at `nowMs`, which ticks expire (timeout, or a lease not renewed within its TTL)
    /// and which leases to renew; removes the expired entries and marks the renewals in progress.
    static func look(_ entries: inout [UInt64: Entry], nowMs now: Int64) -> Look {
        var out = Look()
        for (id, e) in entries {
            // The lease first: when both passed (a daemon stopped, then resumed), the result can
            // no longer be committed whatever the timeout says, and the log should say why.
            if e.expiresAtMs <= now {
                out.expired.append((e, .leaseLost))
                entries[id] = nil
            } else if e.deadlineMs <= now {
                out.expired.append((e, .timedOut))
                entries[id] = nil
            } else if e.renewAtMs <= now, !e.renewing {
                entries[id]!.renewing = true
                out.renew.append((id, entries[id]!))
            }
        }
        guard !entries.isEmpty else { return out }
        let soonest =
            entries.values.map { min($0.deadlineMs, $0.expiresAtMs, $0.renewing ? $0.expiresAtMs : $0.renewAtMs) }.min()
            ?? now
        out.wakeMs = max(now + 1, min(soonest, now + resolutionMs))
        return out
    }

    /// Records a renewal's answer: `ok` (nil: the store could not be reached, try again on the
    /// next look). Returns the entry when the store refused it (the lease was lost).
    static func renewed(_ entries: inout [UInt64: Entry], id: UInt64, askedAtMs: Int64, ok: Bool?) -> Entry? {
        guard entries[id] != nil else { return nil }
        entries[id]!.renewing = false
        switch ok {
        case true?:
            entries[id]!.heldSinceMs = askedAtMs
            return nil
        case false?: return entries.removeValue(forKey: id)
        case nil: return nil
        }
    }

    private func loop() async {
        while true {
            let now = clock.nowMs
            let look: Look = state.withLock { s in
                let l = Self.look(&s.entries, nowMs: now)
                if l.wakeMs == nil && l.renew.isEmpty { s.running = false }
                return l
            }
            for (e, why) in look.expired { e.onExpire(why) }
            for (id, e) in look.renew {
                let asked = clock.nowMs
                let ok: Bool?
                do { ok = try await store.renewLease(e.lease, ttlMs: e.ttlMs, nowMs: asked) } catch { ok = nil }
                let lost = state.withLock { Self.renewed(&$0.entries, id: id, askedAtMs: asked, ok: ok) }
                lost?.onExpire(.leaseLost)
            }
            // `running` was cleared under the same lock: a later `watch` starts a new loop.
            guard let wake = look.wakeMs else { return }
            try? await clock.sleep(untilMs: wake)
        }
    }
}
