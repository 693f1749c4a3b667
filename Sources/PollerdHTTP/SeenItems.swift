import PollerdCore

/// What one tick found, before the seen ring decides what is new.
struct FoundItem {
    var id: String
    var item: JSONValue
    /// For ordering new items oldest first, when every new item has one.
    var sortMs: Int64?
}

/// The new-item rule both HTTP kinds share.
struct SeenItemsStep {
    var delivered: [JSONValue] = []
    var newCount = 0
    var heldBack = 0
    var baseline = false

    /// Applies one document's items to the cursor: new ids (not in the ring) join the held-back
    /// queue oldest first, the first `maxItems` of the queue are delivered, the rest stay in the
    /// cursor for the next ticks. The first run only remembers, unless `deliverExisting`.
    /// `newestFirst`: the document lists newest first (feeds), used when dates are missing.
    static func apply(
        _ found: [FoundItem], to cursor: inout HTTPCursor, maxItems: Int, ringSize: Int, deliverExisting: Bool,
        newestFirst: Bool, nowMs: Int64
    ) -> SeenItemsStep {
        var step = SeenItemsStep()
        let seen = Set(cursor.seen)
        var fresh = found.enumerated().filter { !seen.contains($0.element.id) }
        if fresh.allSatisfy({ $0.element.sortMs != nil }) {
            // Oldest first; equal dates keep the document's own age order.
            fresh.sort { a, b in
                a.element.sortMs! != b.element.sortMs!
                    ? a.element.sortMs! < b.element.sortMs! : (newestFirst ? a.offset > b.offset : a.offset < b.offset)
            }
        } else if newestFirst {
            fresh.reverse()
        }
        step.newCount = fresh.count
        if !cursor.started && !deliverExisting {
            step.baseline = true
        } else {
            cursor.pending += fresh.map(\.element.item)
        }
        cursor.started = true
        let take = min(maxItems, cursor.pending.count)
        step.delivered = Array(cursor.pending.prefix(take))
        cursor.pending.removeFirst(take)
        step.heldBack = cursor.pending.count
        cursor.remember(current: found.map(\.id), capacity: ringSize)
        if !fresh.isEmpty {
            let weekAgo = nowMs - 604_800_000
            cursor.arrivals = (cursor.arrivals.filter { $0 >= weekAgo } + Array(repeating: nowMs, count: fresh.count))
                .suffix(1000)
        }
        return step
    }

    /// Past this many held-back items a tick only delivers from the queue and does not fetch:
    /// ten ticks' worth (at least 1,000), so a source that adds more than a tick takes cannot
    /// grow the cursor without end.
    static func pendingBound(_ maxItems: Int) -> Int { max(1000, 10 * maxItems) }

    /// Only the held-back queue (a 304, or a body unchanged since the last tick).
    static func drain(_ cursor: inout HTTPCursor, maxItems: Int) -> SeenItemsStep {
        var step = SeenItemsStep()
        let take = min(maxItems, cursor.pending.count)
        step.delivered = Array(cursor.pending.prefix(take))
        cursor.pending.removeFirst(take)
        step.heldBack = cursor.pending.count
        return step
    }
}
