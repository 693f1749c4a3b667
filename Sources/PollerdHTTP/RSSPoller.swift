import Foundation
public import PollerdCore
import PollerdPollers

/// `rss`: polls an RSS (0.90–2.0, 1.0), Atom (0.3, 1.0) or JSON Feed (1.0, 1.1) document and
/// emits each new entry once, as `{"id","title","link","published","updated","summary",
/// "content","authors","categories","enclosures"}`. See docs/pollers.md.
public struct RSSPoller: Poller {
    public let kind = "rss"
    let fetcher: HTTPFetcher

    public init(fetcher: HTTPFetcher) { self.fetcher = fetcher }

    static let keys: Set<String> = HTTPSourceConfig.sharedKeys.union(["feed_url"])

    static func config(_ value: JSONValue) throws(ConfigIssue) -> HTTPSourceConfig {
        let c = try ConfigReader(value)
        try c.allowOnly(keys)
        return try HTTPSourceConfig(c, urlKey: "feed_url")
    }

    public func validate(config: JSONValue) throws(ConfigIssue) { _ = try Self.config(config) }

    public func tick(_ ctx: TickContext) async throws(PollerError) -> TickAck {
        let cfg: HTTPSourceConfig
        do { cfg = try Self.config(ctx.config) } catch { throw .config(.badConfig, error.description) }
        var (cursor, note) = HTTPCursor.decode(ctx.cursor)
        var details: [String: JSONValue] = ["url": .string(cfg.url)]
        if let note { details["cursor_note"] = .string(note) }
        if cursor.pending.count >= SeenItemsStep.pendingBound(cfg.maxItemsPerTick) {
            // Drain before fetching more: the cursor stays bounded, and nothing is dropped (what
            // the source adds meanwhile is still there at the next fetch, or it was never kept).
            details["backlog"] = .string(
                "\(cursor.pending.count) item(s) held back: delivering them before fetching again")
            let step = SeenItemsStep.drain(&cursor, maxItems: cfg.maxItemsPerTick)
            return Self.ack(
                step: step, cursor: cursor, cfg: cfg, ctx: ctx, hints: Cadence.Hints(), entriesLastWeek: 0,
                details: details)
        }

        let response: FetchResponse
        do { response = try await fetcher.fetch(cfg.request(cursor: cursor, tickTimeoutSecs: ctx.timeoutSecs)) } catch {
            throw HTTPOutcome.failure(error)
        }
        details["status"] = .int(Int64(response.status))
        details["address"] = .string(response.address)
        if !response.redirects.isEmpty { details["redirects"] = .array(response.redirects.map(JSONValue.string)) }
        if let failure = HTTPOutcome.failure(status: response.status, response: response, nowMs: ctx.nowMs) {
            throw failure
        }

        var step: SeenItemsStep
        var hints = Cadence.Hints(
            maxAgeSecs: Cadence.maxAge(response.header("cache-control")),
            expiresSecs: Cadence.expires(response.header("expires"), nowMs: ctx.nowMs))
        var entriesLastWeek = cursor.arrivals.filter { $0 >= ctx.nowMs - 604_800_000 }.count
        let hash = response.status == 304 ? nil : HTTPOutcome.sha256(response.body)
        if response.status == 304 {
            details["not_modified"] = .bool(true)
            step = SeenItemsStep.drain(&cursor, maxItems: cfg.maxItemsPerTick)
        } else if let hash, hash == cursor.bodyHash {
            details["unchanged_body"] = .bool(true)
            step = SeenItemsStep.drain(&cursor, maxItems: cfg.maxItemsPerTick)
        } else {
            guard !response.body.isEmpty else {
                throw .transient(.badResponse, "\(response.url) answered \(response.status) with an empty body")
            }
            let feed: ParsedFeed
            do {
                feed = try FeedParser.parse(
                    response.body, url: response.url, contentType: response.header("content-type"))
            } catch {
                throw .transient(.badResponse, "\(response.url): \(error)")
            }
            details["format"] = .string(feed.format)
            details["encoding"] = .string(feed.encoding)
            details["entries"] = .int(Int64(feed.entries.count))
            hints.ttlSecs = feed.ttlSecs
            hints.updatePeriodSecs = feed.updatePeriodSecs
            let weekAgo = ctx.nowMs - 604_800_000
            let dated = feed.entries.compactMap(\.sortMs)
            if !dated.isEmpty { entriesLastWeek = dated.filter { $0 >= weekAgo && $0 <= ctx.nowMs + 86_400_000 }.count }
            let found = feed.entries.map { FoundItem(id: $0.id, item: $0.json, sortMs: $0.sortMs) }
            step = SeenItemsStep.apply(
                found, to: &cursor, maxItems: cfg.maxItemsPerTick, ringSize: cfg.seenIDs,
                deliverExisting: cfg.deliverExisting, newestFirst: true, nowMs: ctx.nowMs)
            cursor.bodyHash = hash
            let hashed = feed.entries.filter { $0.idSource == "hash" }.count
            if hashed > 0 { details["hashed_ids"] = .int(Int64(hashed)) }
        }
        if response.status != 304 {
            cursor.etag = response.header("etag")
            cursor.lastModified = response.header("last-modified")
        }
        return Self.ack(
            step: step, cursor: cursor, cfg: cfg, ctx: ctx, hints: hints, entriesLastWeek: entriesLastWeek,
            details: details)
    }

    static func ack(
        step: SeenItemsStep, cursor: HTTPCursor, cfg: HTTPSourceConfig, ctx: TickContext, hints: Cadence.Hints,
        entriesLastWeek: Int, details: [String: JSONValue]
    ) -> TickAck {
        var details = details
        details["new"] = .int(Int64(step.newCount))
        details["delivered"] = .int(Int64(step.delivered.count))
        details["held_back"] = .int(Int64(step.heldBack))
        if step.baseline {
            details["baseline"] = .string(
                "first run: \(step.newCount) existing item(s) marked seen, none delivered (deliver_existing: true delivers them)"
            )
        }
        let cadence = Cadence.decide(
            scheduleSecs: ctx.intervalHintSecs, minSecs: cfg.minIntervalSecs, maxSecs: cfg.maxIntervalSecs,
            entryFrequency: cfg.entryFrequency, entriesLastWeek: entriesLastWeek, hints: hints, backlog: step.heldBack)
        details["cadence"] = cadence.json
        return TickAck(
            nextCursor: cursor.encode(), nextIntervalSecs: cadence.overrides ? cadence.seconds : nil,
            itemsSeen: Int64(step.newCount), items: step.delivered, details: .object(details))
    }
}
