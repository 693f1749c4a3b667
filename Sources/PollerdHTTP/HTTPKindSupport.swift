import Crypto
import Foundation
import PollerdCore
import PollerdPollers

/// The state an HTTP kind keeps in its job's cursor (JSON): the ring of seen ids, the
/// validators for conditional GET, the body's hash, items found but not yet delivered, and
/// whether the first run's baseline was taken.
struct HTTPCursor: Equatable {
    static let version: Int64 = 1
    /// Seen ids, oldest first, at most the ring's size.
    var seen: [String] = []
    var etag: String?
    var lastModified: String?
    /// SHA-256 of the last body parsed: the same body again is not parsed again.
    var bodyHash: String?
    /// Items found but held back by `max_items_per_tick`, oldest first.
    var pending: [JSONValue] = []
    /// The first run took its baseline (or delivered, with `deliver_existing`).
    var started = false
    /// When new entries were found (ms), for the entry-frequency cadence; the last week only.
    var arrivals: [Int64] = []

    /// Reads a stored cursor. A cursor from elsewhere (nexo's `{"seen_ids":[…],"etag":…}`) is
    /// taken over; anything unreadable starts afresh and says so.
    static func decode(_ data: Data?) -> (HTTPCursor, note: String?) {
        guard let data, !data.isEmpty else { return (HTTPCursor(), nil) }
        guard let v = try? JSONValue.parse(data), case .object(let o) = v else {
            return (
                HTTPCursor(),
                "the stored cursor was not readable JSON; starting afresh (a baseline, unless deliver_existing)"
            )
        }
        var c = HTTPCursor()
        func strings(_ key: String) -> [String] {
            if case .array(let a)? = o[key] { return a.compactMap(\.stringValue) }
            return []
        }
        c.seen = strings("seen").isEmpty ? strings("seen_ids") : strings("seen")
        c.etag = o["etag"]?.stringValue
        c.lastModified = o["last_modified"]?.stringValue
        c.bodyHash = o["body_sha256"]?.stringValue
        if case .array(let p)? = o["pending"] { c.pending = p }
        c.started = o["started"]?.boolValue ?? !c.seen.isEmpty
        if case .array(let a)? = o["arrivals"] { c.arrivals = a.compactMap(\.intValue) }
        return (c, nil)
    }

    func encode() -> Data {
        var o: [String: JSONValue] = [
            "v": .int(Self.version), "seen": .array(seen.map(JSONValue.string)), "started": .bool(started),
        ]
        if let etag { o["etag"] = .string(etag) }
        if let lastModified { o["last_modified"] = .string(lastModified) }
        if let bodyHash { o["body_sha256"] = .string(bodyHash) }
        if !pending.isEmpty { o["pending"] = .array(pending) }
        if !arrivals.isEmpty { o["arrivals"] = .array(arrivals.map(JSONValue.int)) }
        return Data(JSONValue.object(o).canonicalString.utf8)
    }

    /// Remembers the ids of the current document: ids still in the document move to the newest
    /// end (so a long feed never pushes its own entries out), then the oldest are dropped past
    /// `capacity` (never below the document's own size).
    mutating func remember(current: [String], capacity: Int) {
        let now = Set(current)
        var ring = seen.filter { !now.contains($0) }
        var added = Set<String>()
        for id in current where added.insert(id).inserted { ring.append(id) }
        let keep = max(capacity, added.count)
        if ring.count > keep { ring.removeFirst(ring.count - keep) }
        seen = ring
    }
}

/// The keys and behaviour `rss` and `http_json` share: the request, the cap, the conditional
/// GET, the error classes and the cadence.
struct HTTPSourceConfig {
    var url: String
    var method = "GET"
    var headers: [(name: String, value: String)] = []
    var body: [UInt8]?
    var userAgent: String?
    var allowPrivateNetworks = false
    var maxItemsPerTick = 100
    var seenIDs = 1000
    var deliverExisting = false
    var minIntervalSecs: Int64?
    var maxIntervalSecs: Int64?
    var entryFrequency = false
    var maxBodyBytes = 10 << 20
    var connectTimeoutSecs: Int64 = 10
    var requestTimeoutSecs: Int64 = 30

    static let sharedKeys: Set<String> = [
        "headers", "user_agent", "allow_private_networks", "max_items_per_tick", "max_per_tick", "seen_ids",
        "deliver_existing",
        "min_interval_secs", "max_interval_secs", "entry_frequency", "max_body_bytes", "connect_timeout_secs",
        "request_timeout_secs",
        // nexo's keys: delivery there was the poller's own business; here it is the job's sinks.
        "message_template", "deliver",
    ]

    /// Reads and checks the shared keys; `urlKey` names the URL's key.
    init(_ c: ConfigReader, urlKey: String) throws(ConfigIssue) {
        guard let u = try c.string(urlKey) else {
            throw ConfigIssue(path: [urlKey], "is required: the http(s) URL to poll")
        }
        do { _ = try HTTPFetcher.target(of: u) } catch { throw ConfigIssue(path: [urlKey], error.message) }
        if let weird = AddressPolicy.obfuscatedIPv4((try? HTTPFetcher.target(of: u))?.host ?? "") {
            throw ConfigIssue(
                path: [urlKey], "the host is \(weird) written in a non-standard numeric form; write it as a dotted quad"
            )
        }
        url = u
        if let h = try c.stringMap("headers") {
            for (k, v) in h.sorted(by: { $0.key < $1.key }) {
                guard Self.isToken(k) else {
                    throw ConfigIssue(path: ["headers", k], "is not a valid HTTP header name")
                }
                guard !v.contains("\r"), !v.contains("\n") else {
                    throw ConfigIssue(path: ["headers", k], "must not contain a line break")
                }
                headers.append((k, v))
            }
        }
        userAgent = try c.string("user_agent")
        if let ua = userAgent, ua.contains("\r") || ua.contains("\n") {
            throw ConfigIssue(path: ["user_agent"], "must not contain a line break")
        }
        allowPrivateNetworks = try c.bool("allow_private_networks") ?? false
        let perTick = try c.int("max_items_per_tick")
        let nexoPerTick = try c.int("max_per_tick")
        if let m = perTick ?? nexoPerTick {
            guard (1...100_000).contains(m) else {
                throw ConfigIssue(path: ["max_items_per_tick"], "must be between 1 and 100000")
            }
            maxItemsPerTick = Int(m)
        }
        if let s = try c.int("seen_ids") {
            guard (1...1_000_000).contains(s) else {
                throw ConfigIssue(path: ["seen_ids"], "must be between 1 and 1000000")
            }
            seenIDs = Int(s)
        }
        deliverExisting = try c.bool("deliver_existing") ?? false
        entryFrequency = try c.bool("entry_frequency") ?? false
        minIntervalSecs = try c.int("min_interval_secs")
        maxIntervalSecs = try c.int("max_interval_secs")
        if let m = minIntervalSecs, !(1...31_536_000).contains(m) {
            throw ConfigIssue(path: ["min_interval_secs"], "must be between 1 and 31536000")
        }
        if let m = maxIntervalSecs, !(1...31_536_000).contains(m) {
            throw ConfigIssue(path: ["max_interval_secs"], "must be between 1 and 31536000")
        }
        if let lo = minIntervalSecs, let hi = maxIntervalSecs, lo > hi {
            throw ConfigIssue(path: ["min_interval_secs"], "(\(lo)) is above max_interval_secs (\(hi))")
        }
        if let b = try c.int("max_body_bytes") {
            guard (1024...(256 << 20)).contains(b) else {
                throw ConfigIssue(path: ["max_body_bytes"], "must be between 1024 and 268435456")
            }
            maxBodyBytes = Int(b)
        }
        if let t = try c.int("connect_timeout_secs") {
            guard (1...300).contains(t) else {
                throw ConfigIssue(path: ["connect_timeout_secs"], "must be between 1 and 300")
            }
            connectTimeoutSecs = t
        }
        if let t = try c.int("request_timeout_secs") {
            guard (1...3600).contains(t) else {
                throw ConfigIssue(path: ["request_timeout_secs"], "must be between 1 and 3600")
            }
            requestTimeoutSecs = t
        }
    }

    static func isToken(_ s: String) -> Bool {
        !s.isEmpty
            && s.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                    || "!#$%&'*+-.^_`|~".utf8.contains(b)
            }
    }

    /// The request for one fetch, with the cursor's validators.
    func request(url: String? = nil, cursor: HTTPCursor?, tickTimeoutSecs: Int64) -> FetchRequest {
        var headers = self.headers
        if let ua = userAgent { headers.append(("User-Agent", ua)) }
        if let cursor {
            if let e = cursor.etag { headers.append(("If-None-Match", e)) }
            if let lm = cursor.lastModified { headers.append(("If-Modified-Since", lm)) }
        }
        // Leave the tick a moment to commit: the request ends before the tick's own timeout.
        let timeout = max(1, min(requestTimeoutSecs, tickTimeoutSecs - 1))
        return FetchRequest(
            url: url ?? self.url, method: method, headers: headers, body: body,
            allowPrivateNetworks: allowPrivateNetworks,
            maxBodyBytes: maxBodyBytes, connectTimeout: .seconds(min(connectTimeoutSecs, timeout)),
            timeout: .seconds(timeout))
    }
}

/// How HTTP answers and failures become tick errors.
enum HTTPOutcome {
    /// nil for 2xx and 304; otherwise the tick's error.
    static func failure(status: Int, response: FetchResponse, nowMs: Int64) -> PollerError? {
        if (200..<300).contains(status) || status == 304 { return nil }
        let url = response.url
        let reason = HTTPStatusText.reason(status)
        switch status {
        case 408, 429, 500...599:
            let retry = retryAfterSecs(response.header("retry-after"), nowMs: nowMs)
            let hint = retry.map { "; Retry-After \($0) s" } ?? ""
            return PollerError.transient(
                status == 429 ? .rateLimited : .httpStatus, "\(url) answered \(status) \(reason)\(hint)"
            ).retrying(afterSecs: retry)
        case 401, 403:
            return .permanent(
                .credentials,
                "\(url) answered \(status) \(reason): the credentials (headers) are missing, wrong or expired")
        case 400..<500:
            return .permanent(.httpStatus, "\(url) answered \(status) \(reason)")
        default:
            return .transient(.badResponse, "\(url) answered \(status) \(reason), which a poll does not expect")
        }
    }

    /// `Retry-After` as seconds from now: a number of seconds, or an HTTP date.
    static func retryAfterSecs(_ value: String?, nowMs: Int64) -> Int64? {
        guard let v = value?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        if let secs = Int64(v) { return secs >= 0 ? secs : nil }
        guard let at = FeedDate.parse(v) else { return nil }
        return max(0, (at - nowMs + 999) / 1000)
    }

    static func failure(_ e: FetchError) -> PollerError {
        switch e.kind {
        case .badURL: return .config(.badConfig, e.description)
        case .blocked: return .config(.blockedAddress, e.description)
        case .network: return .transient(.network, e.description)
        case .timeout: return .transient(.timeout, e.description)
        case .tooLarge: return .transient(.outputTooLarge, e.description)
        case .redirect: return .transient(.badResponse, e.description)
        }
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        Hex.encode(SHA256.hash(data: bytes))
    }
}

enum HTTPStatusText {
    static func reason(_ code: Int) -> String {
        switch code {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 410: "Gone"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: ""
        }
    }
}

/// The next delay of an HTTP job: the rule, in order.
/// 1. Items held back by `max_items_per_tick`: come back at `min_interval_secs` (else the
///    schedule's interval) to take them.
/// 2. Otherwise the schedule's interval; with `entry_frequency: true`, a week divided by the
///    entries of the last week (Miniflux's "entry frequency"), or `max_interval_secs` when there
///    were none.
/// 3. The source's own hints raise it, never lower it: RSS `<ttl>`, `sy:updatePeriod` /
///    `sy:updateFrequency`, `Cache-Control: max-age` and `Expires`.
/// 4. The result is kept within `min_interval_secs` … `max_interval_secs` (default 1 s … 1 day).
/// When the result is the schedule's own interval for the schedule's reason, the schedule
/// stays in charge (`next_interval_secs` is not set).
struct Cadence: Equatable {
    var seconds: Int64
    var reason: String
    /// False when the schedule's own next slot applies.
    var overrides: Bool

    struct Hints {
        var ttlSecs: Int64?
        var updatePeriodSecs: Int64?
        var maxAgeSecs: Int64?
        var expiresSecs: Int64?
    }

    static func decide(
        scheduleSecs: Int64, minSecs: Int64?, maxSecs: Int64?, entryFrequency: Bool, entriesLastWeek: Int,
        hints: Hints, backlog: Int
    ) -> Cadence {
        let lo = minSecs ?? 1
        let hi = max(lo, maxSecs ?? 86_400)
        if backlog > 0 {
            let s = minSecs ?? min(scheduleSecs, hi)
            return Cadence(
                seconds: max(1, s), reason: "\(backlog) item(s) held back by max_items_per_tick",
                overrides: minSecs != nil)
        }
        var secs = scheduleSecs
        var reason = "schedule"
        if entryFrequency {
            if entriesLastWeek == 0 {
                secs = hi
                reason = "entry frequency: no entries in the last 7 days"
            } else {
                secs = 604_800 / Int64(entriesLastWeek)
                reason = "entry frequency: \(entriesLastWeek) entries in the last 7 days"
            }
        }
        let asks: [(Int64?, String)] = [
            (hints.ttlSecs, "the feed's ttl"), (hints.updatePeriodSecs, "the feed's sy:updatePeriod"),
            (hints.maxAgeSecs, "Cache-Control max-age"), (hints.expiresSecs, "Expires"),
        ]
        for (ask, what) in asks {
            if let ask, ask > secs {
                secs = ask
                reason = "\(what) (\(ask) s)"
            }
        }
        if secs < lo {
            secs = lo
            reason += ", raised to min_interval_secs"
        }
        if secs > hi {
            secs = hi
            reason += ", capped at max_interval_secs"
        }
        let overrides = !(reason == "schedule" && secs == scheduleSecs)
        return Cadence(seconds: secs, reason: reason, overrides: overrides)
    }

    /// `Cache-Control: max-age` (nil with no-cache / no-store).
    static func maxAge(_ header: String?) -> Int64? {
        guard let h = header?.lowercased() else { return nil }
        let parts = h.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.contains("no-cache") || parts.contains("no-store") { return nil }
        for p in parts where p.hasPrefix("max-age=") {
            if let v = Int64(p.dropFirst("max-age=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))),
                v > 0
            {
                return v
            }
        }
        return nil
    }

    /// Seconds until `Expires` (nil when absent, past, or `0`).
    static func expires(_ header: String?, nowMs: Int64) -> Int64? {
        guard let h = header, let at = FeedDate.parse(h), at > nowMs else { return nil }
        return (at - nowMs) / 1000
    }

    var json: JSONValue {
        .object([
            "next_interval_secs": .int(seconds), "reason": .string(reason), "overrides_schedule": .bool(overrides),
        ])
    }
}

/// Dotted paths with `[n]` indices into JSON: `data.items`, `results[0].entries`, `[2]`.
struct JSONPath: Equatable, CustomStringConvertible {
    enum Step: Equatable {
        case key(String)
        case index(Int)
    }
    let steps: [Step]
    let description: String

    init(_ text: String) throws(ConfigIssue) {
        description = text
        var steps: [Step] = []
        var key = ""
        var i = text.startIndex
        func flushKey() {
            if !key.isEmpty {
                steps.append(.key(key))
                key = ""
            }
        }
        while i < text.endIndex {
            let c = text[i]
            switch c {
            case ".":
                if key.isEmpty && (steps.isEmpty || text[text.index(before: i)] != "]") {
                    throw ConfigIssue("'\(text)': an empty key before a '.'")
                }
                flushKey()
            case "[":
                flushKey()
                guard let close = text[i...].firstIndex(of: "]"), let n = Int(text[text.index(after: i)..<close]),
                    n >= 0
                else {
                    throw ConfigIssue("'\(text)': '[' must hold an index, as in items[0]")
                }
                steps.append(.index(n))
                i = close
            default:
                key.append(c)
            }
            i = text.index(after: i)
        }
        if text.hasSuffix(".") { throw ConfigIssue("'\(text)' ends with '.'") }
        flushKey()
        self.steps = steps
    }

    func value(in v: JSONValue) -> JSONValue? {
        var cur = v
        for s in steps {
            switch s {
            case .key(let k):
                guard let next = cur[k] else { return nil }
                cur = next
            case .index(let n):
                guard case .array(let a) = cur, n < a.count else { return nil }
                cur = a[n]
            }
        }
        return cur
    }
}
