import Foundation
import PollerdCore
import Testing

@testable import PollerdHTTP

/// `rss` and `http_json` against a real HTTP server on loopback.
@Suite struct HTTPKindTests {
    /// A fetcher that may reach the test server (loopback) only through `allow_private_networks`.
    static func rss(_ url: String, _ extra: [String: JSONValue] = [:], fetcher: HTTPFetcher = HTTPFetcher()) -> Ticker {
        var config: [String: JSONValue] = ["feed_url": .string(url), "allow_private_networks": .bool(true)]
        for (k, v) in extra { config[k] = v }
        return Ticker(poller: RSSPoller(fetcher: fetcher), config: .object(config))
    }

    static func ids(_ ack: TickAck?) -> [String] { (ack?.items ?? []).compactMap { $0["id"]?.stringValue } }

    @Test func conditionalGetWithETagAndLastModified() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.on("/feed") { r in
                if r.headers["if-none-match"] == "\"v1\"" { return .init(status: 304) }
                return .feed(
                    rssFeed([2, 1]), [("ETag", "\"v1\""), ("Last-Modified", "Mon, 02 Jan 2026 10:00:00 GMT")])
            }
            var t = Self.rss(s.base + "/feed", ["deliver_existing": .bool(true)])
            let first = await t.tick()
            #expect(Self.ids(first.ack) == ["e1", "e2"])
            let second = await t.tick()
            #expect(second.ack?.items.isEmpty == true)
            #expect(second.ack?.details?["not_modified"] == .bool(true))
            let sent = s.requests.last!.headers
            #expect(sent["if-none-match"] == "\"v1\"")
            #expect(sent["if-modified-since"] == "Mon, 02 Jan 2026 10:00:00 GMT")
            #expect(sent["user-agent"]?.hasPrefix("pollerd/") == true)
        }
    }

    @Test func anUnchangedBodyIsNotParsedAgain() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/feed", .feed(rssFeed([1])))
            var t = Self.rss(s.base + "/feed", ["deliver_existing": .bool(true)])
            #expect(Self.ids(await t.tick().ack) == ["e1"])
            let again = await t.tick().ack
            #expect(again?.details?["unchanged_body"] == .bool(true))
            #expect(again?.details?["format"] == nil)
            #expect(again?.items.isEmpty == true)
        }
    }

    @Test func gzipBodiesAreDecoded() async throws {
        let gz = try Data(
            contentsOf: FeedCorpusTests.root.deletingLastPathComponent().appendingPathComponent("http/blog.xml.gz"))
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve(
                "/feed.gz",
                .init(
                    headers: [("Content-Encoding", "gzip"), ("Content-Type", "application/rss+xml")], body: Array(gz)))
            var t = Self.rss(s.base + "/feed.gz", ["deliver_existing": .bool(true)])
            let ack = try #require(await t.tick().ack)
            #expect(ack.items.count == 3)
            #expect(s.requests[0].headers["accept-encoding"]?.contains("gzip") == true)
        }
    }

    /// A gzip body that inflates past the ratio limit fails the tick with the limit named, and
    /// its value (the message was `…: limit`).
    @Test func aGzipBombNamesTheLimitItTripped() async throws {
        let gz = try Data(
            contentsOf: FeedCorpusTests.root.deletingLastPathComponent().appendingPathComponent("http/bomb.xml.gz"))
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve(
                "/bomb.gz",
                .init(
                    headers: [("Content-Encoding", "gzip"), ("Content-Type", "application/rss+xml")], body: Array(gz)))
            var t = Self.rss(s.base + "/bomb.gz", ["deliver_existing": .bool(true)])
            let e = try #require(await t.tick().error)
            #expect(e.message.contains("decompression ratio limit") && e.message.contains("200 times"), "\(e.message)")
        }
    }

    @Test func redirectsAreFollowedWithoutReplacingTheURL() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/old", .text("", [("Location", "/middle")], status: 301))
            s.serve("/middle", .text("", [("Location", s.base + "/new")], status: 307))
            s.serve("/new", .feed(rssFeed([1])))
            var t = Self.rss(s.base + "/old", ["deliver_existing": .bool(true)])
            let ack = try #require(await t.tick().ack)
            #expect(Self.ids(ack) == ["e1"])
            #expect(ack.details?["redirects"] == .array([.string(s.base + "/middle"), .string(s.base + "/new")]))
            // The next tick starts from the configured URL again.
            _ = await t.tick()
            #expect(s.requests.map(\.path) == ["/old", "/middle", "/new", "/old", "/middle", "/new"])
        }
    }

    @Test func tooManyRedirectsAndLoopsFail() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            for i in 0..<8 { s.serve("/r\(i)", .text("", [("Location", "/r\(i + 1)")], status: 302)) }
            s.serve("/loop", .text("", [("Location", "/loop")], status: 302))
            var many = Self.rss(s.base + "/r0")
            let e = try #require(await many.tick().error)
            #expect(e.errorClass == .transient && e.message.contains("more than 5 redirects"))
            var loop = Self.rss(s.base + "/loop")
            #expect(try #require(await loop.tick().error).message.contains("loop"))
        }
    }

    @Test func tooManyRequestsHonoursRetryAfterInBothForms() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/secs", .text("slow down", [("Retry-After", "120")], status: 429))
            var t = Self.rss(s.base + "/secs")
            let e = try #require(await t.tick().error)
            #expect(e.errorClass == .transient && e.code == .rateLimited && e.retryAfterSecs == 120)
            #expect(e.message.contains(s.base + "/secs") && e.message.contains("429"))

            var dated = Self.rss(s.base + "/date")
            // An HTTP date five minutes after the tick's start.
            let httpDate = Self.httpDate(ms: dated.nowMs + 300_000)
            s.serve("/date", .text("", [("Retry-After", httpDate)], status: 429))
            let e2 = try #require(await dated.tick().error)
            #expect(
                e2.errorClass == .transient && e2.retryAfterSecs == 300,
                "\(httpDate) → \(String(describing: e2.retryAfterSecs))")
            // The planner uses it as the next delay.
            let job = JobSpec(id: "j", kind: "rss", schedule: Schedule(.every(seconds: 60)))
            let plan = TickPlanner.plan(
                job: job, outcome: .failed(e2), previousErrors: 0, breakerThreshold: 5, offsetMs: 0, nowMs: 0)
            #expect(plan.nextRunAtMs == 300_000)
        }
    }

    static func httpDate(ms: Int64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    @Test func statusCodesFallIntoTheirClasses() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            let cases: [(Int, ErrorClass, PollerError.Code)] = [
                (401, .permanent, .credentials), (403, .permanent, .credentials), (404, .permanent, .httpStatus),
                (410, .permanent, .httpStatus),
                (400, .permanent, .httpStatus), (408, .transient, .httpStatus), (500, .transient, .httpStatus),
                (502, .transient, .httpStatus),
            ]
            for (status, cls, code) in cases {
                s.serve("/s\(status)", .text("x", status: status))
                var t = Self.rss(s.base + "/s\(status)")
                let e = try #require(await t.tick().error, "\(status)")
                #expect(e.errorClass == cls && e.code == code, "\(status): \(e)")
                #expect(e.message.contains("/s\(status)") && e.message.contains("\(status)"))
            }
        }
    }

    @Test func anUnparseableBodyIsTransientAndSaysWhere() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/bad", .feed("<rss version=\"2.0\"><channel>\n<item><title>x</title>\n<item>"))
            var t = Self.rss(s.base + "/bad")
            let e = try #require(await t.tick().error)
            #expect(e.errorClass == .transient && e.code == .badResponse)
            #expect(e.message.contains(s.base + "/bad") && e.message.contains("line 3"), "\(e.message)")
        }
    }

    @Test func aBodyOverTheCapIsRefused() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            let big = rssFeed(Array(1...400))
            s.serve("/big", .feed(big)) // with Content-Length: refused before reading
            // Without a length (chunked): refused once the bytes read pass the cap.
            s.serve(
                "/chunked",
                .init(headers: [("Content-Type", "application/rss+xml")], body: Array(big.utf8), streamed: true))
            var t = Self.rss(s.base + "/big", ["max_body_bytes": .int(4096)])
            let e = try #require(await t.tick().error)
            #expect(
                e.code == .outputTooLarge && e.message.contains("4096")
                    && e.message.contains("is \(big.utf8.count) bytes"), "\(e)")
            var c = Self.rss(s.base + "/chunked", ["max_body_bytes": .int(4096)])
            let e2 = try #require(await c.tick().error)
            #expect(e2.code == .outputTooLarge && e2.message.contains("passed the 4096-byte cap"), "\(e2)")
        }
    }

    @Test func aSlowBodyRunsIntoTheTimeout() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve(
                "/slow",
                .init(
                    headers: [("Content-Type", "application/rss+xml")], body: Array(rssFeed([1]).utf8), streamed: true,
                    chunkSize: 16, stallAfterBytes: 32))
            var t = Self.rss(s.base + "/slow", ["request_timeout_secs": .int(1)])
            let e = try #require(await t.tick().error)
            #expect(e.errorClass == .transient && e.code == .timeout, "\(e)")
        }
    }

    @Test func overflowIsCarriedAcrossTicksOldestFirstAndNothingIsDropped() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/feed", .feed(rssFeed([1])))
            var t = Self.rss(s.base + "/feed", ["max_items_per_tick": .int(3)])
            let base = try #require(await t.tick().ack)
            #expect(base.items.isEmpty && base.details?["baseline"] != nil)
            // Seven new entries at once; newest first in the document.
            s.serve("/feed", .feed(rssFeed([8, 7, 6, 5, 4, 3, 2, 1])))
            var got: [String] = []
            for _ in 0..<4 {
                let ack = try #require(await t.tick().ack)
                #expect(ack.items.count <= 3)
                got += Self.ids(ack)
            }
            #expect(got == ["e2", "e3", "e4", "e5", "e6", "e7", "e8"])
            // While items wait, the next tick comes at the schedule's interval at the latest.
            s.serve("/feed", .feed(rssFeed([12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1])))
            let ack = try #require(await t.tick().ack)
            #expect(ack.details?["held_back"] == .int(1))
            #expect(ack.details?["cadence"]?["reason"]?.stringValue?.contains("held back") == true)
        }
    }

    @Test func aRepeatedGuidStillYieldsEachEntryOnce() async throws {
        let feed = """
            <rss version="2.0"><channel><title>t</title>
            <item><title>A</title><guid>same</guid></item>
            <item><title>B</title><guid>same</guid></item>
            </channel></rss>
            """
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/feed", .feed(feed))
            var t = Self.rss(s.base + "/feed", ["deliver_existing": .bool(true)])
            let first = try #require(await t.tick().ack)
            #expect(first.items.compactMap { $0["title"]?.stringValue } == ["B", "A"])
            s.serve("/feed", .feed(feed + " ")) // a new body, same entries
            #expect(try #require(await t.tick().ack).items.isEmpty)
        }
    }

    @Test func httpJSONFollowsNextLinksInTheBodyAndHashesMissingIDs() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/api", .text(#"{"data":{"items":[{"id":1,"v":"a"},{"id":2,"v":"b"}]},"next":"/api/2"}"#))
            s.serve("/api/2", .text(#"{"data":{"items":[{"v":"no id"},{"id":3}]},"next":null}"#))
            var t = Ticker(
                poller: HTTPJSONPoller(fetcher: HTTPFetcher()),
                config: .object([
                    "url": .string(s.base + "/api"), "items_path": .string("data.items"), "next_path": .string("next"),
                    "allow_private_networks": .bool(true), "deliver_existing": .bool(true),
                ]))
            let ack = try #require(await t.tick().ack)
            #expect(ack.items.count == 4)
            #expect(ack.details?["pages"] == .int(2))
            #expect(ack.details?["hashed_ids"] == .int(1))
            s.serve("/api", .text(#"{"data":{"items":[{"id":4},{"id":1,"v":"a"}]},"next":"/api/2"}"#))
            let next = try #require(await t.tick().ack)
            #expect(next.items == [.object(["id": .int(4)])])
        }
    }

    @Test func httpJSONFollowsLinkHeaders() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve(
                "/r",
                .text(#"[{"id":"a"}]"#, [("Link", "<\(s.base)/r?page=2>; rel=\"next\", <\(s.base)/r>; rel=\"first\"")]))
            s.on("/r") { r in
                r.query == "page=2"
                    ? .text(#"[{"id":"b"}]"#) : .text(#"[{"id":"a"}]"#, [("Link", "</r?page=2>; rel=\"next\"")])
            }
            var t = Ticker(
                poller: HTTPJSONPoller(kind: "webhook_poll", fetcher: HTTPFetcher()),
                config: .object([
                    "url": .string(s.base + "/r"), "allow_private_networks": .bool(true),
                    "deliver_existing": .bool(true), "max_per_tick": .int(10),
                ]))
            let ack = try #require(await t.tick().ack)
            #expect(ack.items.compactMap { $0["id"]?.stringValue } == ["a", "b"])
            #expect(s.requests.map(\.query) == ["", "page=2"])
        }
    }

    @Test func httpJSONSaysWhenItemsPathIsNotAnArray() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/x", .text(#"{"data":{"items":{"not":"a list"}}}"#))
            var t = Ticker(
                poller: HTTPJSONPoller(fetcher: HTTPFetcher()),
                config: .object([
                    "url": .string(s.base + "/x"), "items_path": .string("data.items"),
                    "allow_private_networks": .bool(true),
                ]))
            let e = try #require(await t.tick().error)
            #expect(e.errorClass == .transient && e.message.contains("items_path 'data.items' is not an array"))
        }
    }

    @Test func atMostTwoRequestsPerHostAreInFlight() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/held", .init(body: Array(rssFeed([1]).utf8), hold: true))
            let fetcher = HTTPFetcher()
            let url = s.base + "/held"
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<5 {
                    group.addTask {
                        var t = Self.rss(url, fetcher: fetcher)
                        _ = await t.tick()
                    }
                }
                await s.waitForInFlight(2)
                #expect(fetcher.inFlight(host: "127.0.0.1") == 2)
                s.release()
                try await group.waitForAll()
            }
            #expect(s.maxInFlight == 2)
            #expect(s.requests.count == 5)
        }
    }

    /// The connection goes to the address that was checked: a name that only the test's
    /// resolver knows still reaches the server, with its own name in `Host`.
    @Test func theConnectionIsPinnedToTheCheckedAddress() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/feed", .feed(rssFeed([1])))
            let fetcher = HTTPFetcher(resolver: TableResolver(table: ["feeds.test": ["127.0.0.1"]]))
            var t = Self.rss("http://feeds.test:\(s.port)/feed", ["deliver_existing": .bool(true)], fetcher: fetcher)
            let ack = try #require(await t.tick().ack)
            #expect(Self.ids(ack) == ["e1"])
            #expect(s.requests.first?.headers["host"] == "feeds.test:\(s.port)")
            #expect(ack.details?["address"] == .string("127.0.0.1"))
        }
    }

    @Test func feedHintsSetTheCadence() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/ttl", .feed(rssFeed([1], extraChannel: "<ttl>30</ttl>")))
            var t = Self.rss(s.base + "/ttl")
            let ack = try #require(await t.tick().ack)
            #expect(ack.nextIntervalSecs == 1800)
            #expect(ack.details?["cadence"]?["reason"]?.stringValue?.contains("ttl") == true)
            s.serve("/cc", .feed(rssFeed([1]), [("Cache-Control", "public, max-age=600")]))
            var c = Self.rss(s.base + "/cc", ["max_interval_secs": .int(300)])
            let capped = try #require(await c.tick().ack)
            #expect(capped.nextIntervalSecs == 300)
            s.serve("/plain", .feed(rssFeed([1])))
            var p = Self.rss(s.base + "/plain")
            #expect(try #require(await p.tick().ack).nextIntervalSecs == nil)
        }
    }
}

@Suite struct CadenceTests {
    @Test func theRuleInOrder() {
        let none = Cadence.Hints()
        #expect(
            Cadence.decide(
                scheduleSecs: 60, minSecs: nil, maxSecs: nil, entryFrequency: false, entriesLastWeek: 0, hints: none,
                backlog: 0)
                == Cadence(seconds: 60, reason: "schedule", overrides: false))
        // Entry frequency: a week over the entries of the week, clamped.
        let busy = Cadence.decide(
            scheduleSecs: 3600, minSecs: 300, maxSecs: 86_400, entryFrequency: true, entriesLastWeek: 1008, hints: none,
            backlog: 0)
        #expect(busy.seconds == 600 && busy.overrides)
        let quiet = Cadence.decide(
            scheduleSecs: 3600, minSecs: 300, maxSecs: 7200, entryFrequency: true, entriesLastWeek: 0, hints: none,
            backlog: 0)
        #expect(quiet.seconds == 7200)
        let fast = Cadence.decide(
            scheduleSecs: 3600, minSecs: 300, maxSecs: nil, entryFrequency: true, entriesLastWeek: 100_000, hints: none,
            backlog: 0)
        #expect(fast.seconds == 300 && fast.reason.contains("min_interval_secs"))
        // Hints raise, never lower.
        let ttl = Cadence.decide(
            scheduleSecs: 60, minSecs: nil, maxSecs: nil, entryFrequency: false, entriesLastWeek: 0,
            hints: .init(ttlSecs: 3600, maxAgeSecs: 30), backlog: 0)
        #expect(ttl.seconds == 3600 && ttl.reason.contains("ttl"))
        let expires = Cadence.decide(
            scheduleSecs: 60, minSecs: nil, maxSecs: 1800, entryFrequency: false, entriesLastWeek: 0,
            hints: .init(expiresSecs: 7200), backlog: 0)
        #expect(expires.seconds == 1800 && expires.reason.contains("max_interval_secs"))
        // A backlog comes back soon.
        let backlog = Cadence.decide(
            scheduleSecs: 600, minSecs: 30, maxSecs: nil, entryFrequency: false, entriesLastWeek: 0,
            hints: .init(ttlSecs: 3600), backlog: 5)
        #expect(backlog.seconds == 30)
        #expect(Cadence.maxAge("no-cache, max-age=60") == nil)
        #expect(Cadence.maxAge("max-age=\"90\"") == 90)
    }
}

@Suite struct RedirectRuleTests {
    let https = try! HTTPFetcher.target(of: "https://feeds.example.com/a")

    @Test func httpsNeverGoesDownToPlainHTTP() {
        #expect(throws: FetchError.self) {
            try HTTPFetcher.redirect(
                from: "https://feeds.example.com/a", target: https, status: 301, location: "http://feeds.example.com/a",
                method: "GET", visited: [])
        }
    }

    @Test func relativeLocationsResolveAndCredentialsStayWithTheirOrigin() throws {
        let same = try HTTPFetcher.redirect(
            from: "https://feeds.example.com/a/b", target: https, status: 302, location: "../c",
            method: "GET", visited: [])
        #expect(same == .init(url: "https://feeds.example.com/c", dropBody: false, crossOrigin: false))
        let other = try HTTPFetcher.redirect(
            from: "https://feeds.example.com/a", target: https, status: 307, location: "https://cdn.example.net/a",
            method: "POST", visited: [])
        #expect(other.crossOrigin && !other.dropBody)
        let seeOther = try HTTPFetcher.redirect(
            from: "https://feeds.example.com/a", target: https, status: 303, location: "/done",
            method: "POST", visited: [])
        #expect(seeOther.dropBody)
        #expect(throws: FetchError.self) {
            try HTTPFetcher.redirect(
                from: "https://feeds.example.com/a", target: https, status: 302, location: "file:///etc/passwd",
                method: "GET", visited: [])
        }
        #expect(throws: FetchError.self) {
            try HTTPFetcher.redirect(
                from: "https://feeds.example.com/a", target: https, status: 302, location: "/a", method: "GET",
                visited: ["https://feeds.example.com/a"])
        }
    }

    /// A source that adds more than a tick takes cannot grow the cursor without end: past the
    /// bound a tick delivers from the queue and does not fetch.
    @Test func aFullBacklogIsDrainedBeforeFetchingAgain() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            s.serve("/feed", .feed(rssFeed([1])))
            var t = HTTPKindTests.rss(s.base + "/feed", ["max_items_per_tick": .int(1)])
            _ = await t.tick()
            s.serve("/feed", .feed(rssFeed(Array((2...1100).reversed()))))
            let first = try #require(await t.tick().ack)
            #expect(first.items.count == 1 && first.details?["held_back"] == .int(1098))
            let before = s.requests.count
            let drained = try #require(await t.tick().ack)
            #expect(drained.details?["backlog"] != nil && drained.items.count == 1)
            #expect(s.requests.count == before)
        }
    }
}
