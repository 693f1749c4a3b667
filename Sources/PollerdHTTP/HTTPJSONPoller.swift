import Crypto
import Foundation
public import PollerdCore
import PollerdPollers

/// `http_json` (and nexo's name for it, `webhook_poll`): polls a JSON API, takes the array at
/// `items_path`, keys each item by `id_field`, and emits each new item once, following `next`
/// links across pages. See docs/pollers.md.
public struct HTTPJSONPoller: Poller {
    public let kind: String
    let fetcher: HTTPFetcher

    public init(kind: String = "http_json", fetcher: HTTPFetcher) {
        self.kind = kind
        self.fetcher = fetcher
    }

    static let keys: Set<String> = HTTPSourceConfig.sharedKeys.union([
        "url", "method", "body", "items_path", "id_field", "next_path", "max_pages",
    ])
    static let methods: Set<String> = ["GET", "POST", "PUT", "PATCH", "QUERY"]

    struct Config {
        var source: HTTPSourceConfig
        var itemsPath: JSONPath?
        var idField: JSONPath
        var nextPath: JSONPath?
        var maxPages = 10
    }

    static func config(_ value: JSONValue) throws(ConfigIssue) -> Config {
        let c = try ConfigReader(value)
        try c.allowOnly(keys)
        var source = try HTTPSourceConfig(c, urlKey: "url")
        if let m = try c.string("method") {
            guard methods.contains(m.uppercased()) else {
                throw ConfigIssue(path: ["method"], "must be one of \(methods.sorted().joined(separator: ", "))")
            }
            source.method = m.uppercased()
        }
        switch c.object["body"] {
        case nil, .null?: break
        case .string(let s)?: source.body = Array(s.utf8)
        case let v?:
            source.body = Array(v.canonicalString.utf8)
            if !source.headers.contains(where: { $0.name.lowercased() == "content-type" }) {
                source.headers.append(("Content-Type", "application/json"))
            }
        }
        func path(_ key: String) throws(ConfigIssue) -> JSONPath? {
            guard let s = try c.string(key), !s.isEmpty else { return nil }
            do { return try JSONPath(s) } catch { throw ConfigIssue(path: [key], error.message) }
        }
        let itemsPath = try path("items_path")
        let defaultID = try JSONPath("id")
        let idField = try path("id_field") ?? defaultID
        var cfg = Config(source: source, itemsPath: itemsPath, idField: idField, nextPath: try path("next_path"))
        if let p = try c.int("max_pages") {
            guard (1...1000).contains(p) else { throw ConfigIssue(path: ["max_pages"], "must be between 1 and 1000") }
            cfg.maxPages = Int(p)
        }
        return cfg
    }

    public func validate(config: JSONValue) throws(ConfigIssue) { _ = try Self.config(config) }

    public func tick(_ ctx: TickContext) async throws(PollerError) -> TickAck {
        let cfg: Config
        do { cfg = try Self.config(ctx.config) } catch { throw .config(.badConfig, error.description) }
        var (cursor, note) = HTTPCursor.decode(ctx.cursor)
        var details: [String: JSONValue] = ["url": .string(cfg.source.url)]
        if let note { details["cursor_note"] = .string(note) }
        if cursor.pending.count >= SeenItemsStep.pendingBound(cfg.source.maxItemsPerTick) {
            details["backlog"] = .string(
                "\(cursor.pending.count) item(s) held back: delivering them before fetching again")
            let step = SeenItemsStep.drain(&cursor, maxItems: cfg.source.maxItemsPerTick)
            return RSSPoller.ack(
                step: step, cursor: cursor, cfg: cfg.source, ctx: ctx, hints: Cadence.Hints(), entriesLastWeek: 0,
                details: details)
        }

        var url = cfg.source.url
        var visited: Set<String> = []
        var found: [FoundItem] = []
        var hashed = 0
        var pages = 0
        var first: FetchResponse?
        var step: SeenItemsStep?
        while pages < cfg.maxPages, visited.insert(url).inserted {
            let request = cfg.source.request(
                url: url, cursor: pages == 0 ? cursor : nil, tickTimeoutSecs: ctx.timeoutSecs)
            let response: FetchResponse
            do { response = try await fetcher.fetch(request) } catch { throw HTTPOutcome.failure(error) }
            if let failure = HTTPOutcome.failure(status: response.status, response: response, nowMs: ctx.nowMs) {
                throw failure
            }
            pages += 1
            if pages == 1 {
                first = response
                details["status"] = .int(Int64(response.status))
                details["address"] = .string(response.address)
                if !response.redirects.isEmpty {
                    details["redirects"] = .array(response.redirects.map(JSONValue.string))
                }
                if response.status == 304 {
                    details["not_modified"] = .bool(true)
                    step = SeenItemsStep.drain(&cursor, maxItems: cfg.source.maxItemsPerTick)
                    break
                }
                let hash = HTTPOutcome.sha256(response.body)
                if hash == cursor.bodyHash {
                    details["unchanged_body"] = .bool(true)
                    step = SeenItemsStep.drain(&cursor, maxItems: cfg.source.maxItemsPerTick)
                    break
                }
                cursor.bodyHash = hash
            }
            let doc: JSONValue
            do { doc = try JSONValue.parse(bytes: response.body) } catch {
                if let f = error as? JSONParser.Failure {
                    let (line, column) = JSONFeedParser.position(of: f.offset, in: response.body)
                    throw .transient(
                        .badResponse,
                        "\(response.url): the body is not JSON: \(f.reason) at line \(line), column \(column)")
                }
                throw .transient(.badResponse, "\(response.url): the body is not JSON: \(error)")
            }
            let list: JSONValue? = cfg.itemsPath.map { $0.value(in: doc) } ?? doc
            guard case .array(let items)? = list else {
                let place = cfg.itemsPath.map { "items_path '\($0)'" } ?? "the document's root (items_path is empty)"
                throw .transient(
                    .badResponse, "\(response.url): \(place) is not an array" + (list == nil ? " (not found)" : ""))
            }
            for raw in items {
                let item: JSONValue = if case .object = raw { raw } else { .object(["value": raw]) }
                let id: String
                switch cfg.idField.value(in: item) {
                case .string(let s)? where !s.isEmpty: id = s
                case .int(let n)?: id = String(n)
                case .double(let d)? where d.rounded() == d: id = String(Int64(d))
                default:
                    id = "sha256:" + HTTPOutcome.sha256(Array(item.canonicalString.utf8)).prefix(32)
                    hashed += 1
                }
                found.append(FoundItem(id: id, item: item, sortMs: nil))
            }
            guard let next = Self.nextPage(doc: doc, response: response, nextPath: cfg.nextPath) else { break }
            url = next
        }
        if step == nil {
            step = SeenItemsStep.apply(
                Self.unique(found), to: &cursor, maxItems: cfg.source.maxItemsPerTick, ringSize: cfg.source.seenIDs,
                deliverExisting: cfg.source.deliverExisting, newestFirst: false, nowMs: ctx.nowMs)
            details["items"] = .int(Int64(found.count))
            details["pages"] = .int(Int64(pages))
            if hashed > 0 { details["hashed_ids"] = .int(Int64(hashed)) }
        }
        if let first, first.status != 304 {
            cursor.etag = first.header("etag")
            cursor.lastModified = first.header("last-modified")
        }
        let hints = Cadence.Hints(
            maxAgeSecs: Cadence.maxAge(first?.header("cache-control")),
            expiresSecs: Cadence.expires(first?.header("expires"), nowMs: ctx.nowMs))
        let lastWeek = cursor.arrivals.filter { $0 >= ctx.nowMs - 604_800_000 }.count
        return RSSPoller.ack(
            step: step!, cursor: cursor, cfg: cfg.source, ctx: ctx, hints: hints, entriesLastWeek: lastWeek,
            details: details)
    }

    /// The same id twice in one poll (an item that moved between pages) counts once.
    static func unique(_ found: [FoundItem]) -> [FoundItem] {
        var seen = Set<String>()
        return found.filter { seen.insert($0.id).inserted }
    }

    /// The next page: `next_path` in the body, else a `Link: <…>; rel="next"` header.
    static func nextPage(doc: JSONValue, response: FetchResponse, nextPath: JSONPath?) -> String? {
        var next: String?
        if let nextPath, let s = nextPath.value(in: doc)?.stringValue, !s.isEmpty { next = s }
        if next == nil, let link = response.header("link") { next = linkNext(link) }
        guard let next, let u = URL(string: next, relativeTo: URL(string: response.url)) else { return nil }
        return u.absoluteURL.absoluteString
    }

    /// The `rel="next"` target of an RFC 8288 `Link` header.
    static func linkNext(_ header: String) -> String? {
        for part in header.split(separator: ",") {
            let pieces = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let target = pieces.first, target.hasPrefix("<"), target.hasSuffix(">") else { continue }
            for p in pieces.dropFirst() {
                let kv = p.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if kv.count == 2, kv[0].lowercased() == "rel",
                    kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased().split(separator: " ")
                        .contains("next")
                {
                    return String(target.dropFirst().dropLast())
                }
            }
        }
        return nil
    }
}

/// The built-in kinds that need the network.
public enum HTTPKinds {
    /// `rss`, `http_json` and `webhook_poll` on one fetcher.
    public static func pollers(fetcher: HTTPFetcher) -> [any Poller] {
        [
            RSSPoller(fetcher: fetcher), HTTPJSONPoller(kind: "http_json", fetcher: fetcher),
            HTTPJSONPoller(kind: "webhook_poll", fetcher: fetcher),
        ]
    }
}
