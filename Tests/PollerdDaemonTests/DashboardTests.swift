import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import PollerdAdmin
import PollerdConfig
import PollerdCore
import PollerdDelivery
import PollerdPollers
import PollerdSQLite
import PollerdTestKit
import Testing

@testable import PollerdDaemon

/// The dashboard through Hummingbird's router test framework (no socket): login and sessions,
/// CSRF, origins, roles, the pages, filters, the actions and what they change in the store.
/// The same pages in a real browser: scripts/dashboard_browser_test.py.
@Suite struct DashboardTests {
    static let adminToken = AdminAPITests.adminToken
    static let readToken = AdminAPITests.readToken

    struct Fixture {
        let store: any PollerdStore
        let clock: ManualClock
        let sessions: AdminSessions
        let app: Application<RouterResponder<AdminRequestContext>>
    }

    static func fixture(tokens: [(String, AdminRole)]? = nil, broker: NATSBroker? = nil) async throws -> Fixture {
        let (store, file) = try await AdminAPITests.seeded()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let clock = ManualClock(nowMs: t0)
        let api = AdminAPI(
            store: store, clock: clock, live: LiveJobFile(file), runner: nil, reloader: nil, holder: "test",
            broker: broker, logger: logger)
        let dashboard = try Dashboard(api: api)
        let auth = AdminAuth(tokens: tokens ?? [(adminToken, .admin), (readToken, .read)], openProbes: true)
        let sessions = AdminSessions(clock: clock)
        let router = AdminServer.router(registry: nil, auth: auth, sessions: sessions) {
            api.register(on: $0)
            dashboard.register(on: $0)
        }
        return Fixture(store: store, clock: clock, sessions: sessions, app: Application(router: router))
    }

    static func text(_ r: TestResponse) -> String { String(buffer: r.body) }

    static func form(_ fields: [(String, String)]) -> ByteBuffer {
        ByteBuffer(
            string: fields.map { "\(PercentEncoding.component($0.0))=\(PercentEncoding.component($0.1))" }.joined(
                separator: "&"))
    }

    static func headers(cookie: String? = nil, form: Bool = false, extra: [(String, String)] = []) -> HTTPFields {
        var h = HTTPFields()
        if let cookie { h[.cookie] = "\(AdminSessions.cookieName)=\(cookie)" }
        if form { h[.contentType] = "application/x-www-form-urlencoded" }
        for (k, v) in extra { h[HTTPField.Name(k)!] = v }
        return h
    }

    /// Logs in through the form; returns the session cookie and its CSRF token.
    static func login(_ client: some TestClientProtocol, token: String) async throws -> (cookie: String, csrf: String) {
        let cookie = try await client.execute(
            uri: "/login", method: .post, headers: headers(form: true),
            body: form([("token", token), ("next", "/")])
        ) { r -> String in
            #expect(r.status == .seeOther)
            #expect(r.headers[.location] == "/")
            let set = r.headers[.setCookie] ?? ""
            #expect(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"))
            return String(set.split(separator: ";")[0].split(separator: "=", maxSplits: 1)[1])
        }
        let csrf = try await client.execute(uri: "/", method: .get, headers: headers(cookie: cookie)) { r -> String in
            #expect(r.status == .ok)
            let page = text(r)
            guard let range = page.range(of: "<meta name=\"csrf-token\" content=\"") else { return "" }
            return String(page[range.upperBound...].prefix { $0 != "\"" })
        }
        #expect(csrf.count == 43)
        return (cookie, csrf)
    }

    @Test func aPageWithoutASessionGoesToTheLoginAndAWrongTokenIsRefused() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/jobs/alpha?x=1", method: .get) { r in
                #expect(r.status == .seeOther)
                #expect(r.headers[.location] == "/login?next=%2Fjobs%2Falpha%3Fx%3D1")
            }
            try await client.execute(uri: "/login?next=/jobs/alpha", method: .get) { r in
                #expect(r.status == .ok)
                #expect(Self.text(r).contains("name=\"token\"") && Self.text(r).contains("value=\"/jobs/alpha\""))
                #expect(r.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("script-src 'self'") == true)
            }
            try await client.execute(
                uri: "/login", method: .post, headers: Self.headers(form: true), body: Self.form([("token", "wrong")])
            ) { r in
                #expect(r.status == .unauthorized)
                #expect(Self.text(r).contains("not one of this daemon&#39;s"))
                #expect(r.headers[.setCookie] == nil)
            }
            // The API's JSON routes still answer 401, not a redirect.
            try await client.execute(uri: "/admin/jobs", method: .get) { r in #expect(r.status == .unauthorized) }
            // No open redirect after login.
            for next in ["//evil.example/x", "https://evil.example", "/\\evil.example"] {
                try await client.execute(
                    uri: "/login", method: .post, headers: Self.headers(form: true),
                    body: Self.form([("token", Self.adminToken), ("next", next)])
                ) { r in
                    #expect(r.status == .seeOther && r.headers[.location] == "/")
                }
            }
        }
    }

    @Test func theJobTableShowsEveryJobEscapedAndFilters() async throws {
        let f = try await Self.fixture()
        _ = try await f.store.setPaused(
            jobID: "beta", paused: true, reason: "<script>alert(1)</script> & co", nowMs: t0)
        try await f.app.test(.router) { client in
            let (cookie, _) = try await Self.login(client, token: Self.readToken)
            try await client.execute(uri: "/", method: .get, headers: Self.headers(cookie: cookie)) { r in
                let page = Self.text(r)
                for id in ["job-alpha", "job-beta", "job-broken", "job-gone"] { #expect(page.contains("id=\"\(id)\"")) }
                #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"))
                #expect(!page.contains("<script>alert(1)"))
                #expect(
                    page.contains("badge invalid") && page.contains("badge removed") && page.contains("badge paused"))
                #expect(page.contains("every_secs"), "the invalid job's located error is shown")
                #expect(
                    r.headers[.cacheControl] == "no-store" && r.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
                // A read session sees the actions disabled.
                #expect(page.contains("disabled title=\"needs an admin token\""))
            }
            try await client.execute(uri: "/?status=paused", method: .get, headers: Self.headers(cookie: cookie)) { r in
                let page = Self.text(r)
                #expect(page.contains("id=\"job-beta\"") && !page.contains("id=\"job-alpha\""))
                #expect(page.contains("1 of 4"))
            }
            try await client.execute(uri: "/?q=ALP", method: .get, headers: Self.headers(cookie: cookie)) { r in
                #expect(Self.text(r).contains("id=\"job-alpha\"") && !Self.text(r).contains("id=\"job-beta\""))
            }
            try await client.execute(uri: "/?status=bogus", method: .get, headers: Self.headers(cookie: cookie)) { r in
                #expect(r.status == .badRequest)
                #expect(r.headers[.contentType]?.hasPrefix("text/html") == true)
                #expect(Self.text(r).contains("unknown status filter"))
            }
            try await client.execute(uri: "/?page=0", method: .get, headers: Self.headers(cookie: cookie)) { r in
                #expect(r.status == .badRequest)
            }
            // A crafted flash cannot say anything but its fixed sentence.
            try await client.execute(
                uri: "/?done=paused&done_job=%3Cb%3Ex", method: .get, headers: Self.headers(cookie: cookie)
            ) { r in
                #expect(Self.text(r).contains("Paused the job."))
            }
            for page in [
                "/plugins", "/outbox", "/dlq", "/audit", "/jobs/alpha", "/jobs/broken", "/jobs/gone", "/static/app.css",
                "/static/app.js",
            ] {
                try await client.execute(uri: page, method: .get, headers: Self.headers(cookie: cookie)) { r in
                    #expect(r.status == .ok, "\(page)")
                }
            }
            try await client.execute(uri: "/jobs/nope", method: .get, headers: Self.headers(cookie: cookie)) { r in
                #expect(r.status == .notFound && Self.text(r).contains("no job &#39;nope&#39;"))
            }
            try await client.execute(uri: "/jobs/..%2Fx", method: .get, headers: Self.headers(cookie: cookie)) { r in
                #expect(r.status == .badRequest)
            }
        }
    }

    /// The job table says which daemon holds a job's lease or ran it last, and the page lists every
    /// live daemon with its host and heartbeat.
    @Test func theJobTableNamesTheDaemonAndThePageListsTheLiveOnes() async throws {
        let f = try await Self.fixture()
        _ = try await f.store.announce(
            DaemonAnnouncement(
                daemonID: "web-1:4242:ab", jobFile: "/etc/pollerd/pollers.yaml", jobs: ["alpha": "fp"],
                ttlMs: 60_000), nowMs: t0)
        guard
            case .granted = try await f.store.acquireLease(
                jobID: "alpha", holder: "web-1:4242:ab", ttlMs: 600_000, nowMs: t0, slotMs: nil)
        else { throw CancellationError() }
        try await f.app.test(.router) { client in
            let (cookie, _) = try await Self.login(client, token: Self.readToken)
            try await client.execute(uri: "/", method: .get, headers: Self.headers(cookie: cookie)) { r in
                let page = Self.text(r)
                #expect(page.contains("<td class=\"daemon\">web-1:4242 <small>ticking</small></td>"), "\(page)")
                #expect(page.contains("id=\"daemons\"") && page.contains("<td>web-1</td><td class=\"num\">4242</td>"))
                #expect(page.contains("/etc/pollerd/pollers.yaml"))
            }
        }
    }

    /// A job the daemon paused on a permanent error is named in the banner, as an open breaker
    /// is; a job an operator paused is not.
    @Test func theBannerCountsJobsPausedByAnError() async throws {
        let f = try await Self.fixture()
        _ = try await f.store.setPaused(jobID: "beta", paused: true, reason: "maintenance", nowMs: t0)
        guard
            case .granted(let lease) = try await f.store.acquireLease(
                jobID: "alpha", holder: "h", ttlMs: 60_000, nowMs: t0, slotMs: nil)
        else {
            Issue.record("no lease")
            return
        }
        let failed = TickCommit(
            lease: lease, startedAtMs: t0, durationMs: 1, status: "permanent", error: "401 unauthorized",
            newCursor: nil, itemsSeen: 0, itemsDispatched: 0, consecutiveErrors: 1, nextRunAtMs: nil, pause: true,
            pausedReason: "permanent error: 401 unauthorized", done: false, scheduleFingerprint: "s")
        #expect(try await f.store.commitTick(failed, nowMs: t0))
        try await f.app.test(.router) { client in
            let (cookie, _) = try await Self.login(client, token: Self.readToken)
            try await client.execute(uri: "/", method: .get, headers: Self.headers(cookie: cookie)) { r in
                #expect(
                    Self.text(r).contains(
                        "1 job(s) were paused by an error and wait for an operator to resume them (filter: paused)."))
            }
        }
    }

    @Test func anActionNeedsTheSessionsCSRFTokenAndAnAdminRole() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.router) { client in
            let admin = try await Self.login(client, token: Self.adminToken)
            let pause = "/ui/jobs/alpha/pause"
            // No token, a wrong token: refused, nothing changes.
            for csrf in [nil, "wrong", admin.csrf + "x"] as [String?] {
                var fields = [("note", "x"), ("back", "/")]
                if let csrf { fields.append(("csrf", csrf)) }
                try await client.execute(
                    uri: pause, method: .post, headers: Self.headers(cookie: admin.cookie, form: true),
                    body: Self.form(fields)
                ) { r in
                    #expect(r.status == .forbidden)
                    #expect(Self.text(r).contains("CSRF"))
                }
            }
            #expect(try await f.store.state(jobID: "alpha")?.paused == false)
            // The right token: paused with the note, audited as the dashboard.
            try await client.execute(
                uri: pause, method: .post, headers: Self.headers(cookie: admin.cookie, form: true),
                body: Self.form([("csrf", admin.csrf), ("note", "vendor outage"), ("back", "/?kind=noop")])
            ) { r in
                #expect(r.status == .seeOther)
                #expect(r.headers[.location] == "/?kind=noop&done=paused&done_job=alpha")
            }
            let row = try await f.store.state(jobID: "alpha")
            #expect(row?.paused == true && row?.pausedReason == "vendor outage")
            let audit = try await f.store.auditLog(jobID: "alpha", limit: 5)
            #expect(
                audit.first?.action == "pause" && audit.first?.actor == "dashboard (admin)"
                    && audit.first?.detail == "vendor outage")
            // The JSON API with the session cookie takes the token as a header.
            try await client.execute(
                uri: "/admin/jobs/alpha/resume", method: .post, headers: Self.headers(cookie: admin.cookie)
            ) { r in
                #expect(r.status == .forbidden)
            }
            try await client.execute(
                uri: "/admin/jobs/alpha/resume", method: .post,
                headers: Self.headers(cookie: admin.cookie, extra: [("X-CSRF-Token", admin.csrf)])
            ) { r in
                #expect(r.status == .ok)
            }
            // A page of another site posting here is refused, token or not.
            for extra in [
                [("Origin", "http://evil.example")], [("Sec-Fetch-Site", "cross-site")], [("Origin", "null")],
            ] {
                try await client.execute(
                    uri: pause, method: .post, headers: Self.headers(cookie: admin.cookie, form: true, extra: extra),
                    body: Self.form([("csrf", admin.csrf)])
                ) { r in
                    #expect(r.status == .forbidden && Self.text(r).contains("may not change anything"))
                }
            }
            // A read session with its own valid CSRF token is refused at the action.
            let reader = try await Self.login(client, token: Self.readToken)
            try await client.execute(
                uri: "/ui/jobs/beta/pause", method: .post, headers: Self.headers(cookie: reader.cookie, form: true),
                body: Self.form([("csrf", reader.csrf), ("note", "no")])
            ) { r in
                #expect(r.status == .forbidden)
                #expect(Self.text(r).contains("a read token may not POST"))
            }
            #expect(try await f.store.state(jobID: "beta")?.paused == false)
            // Another session's CSRF token does not do.
            try await client.execute(
                uri: "/ui/jobs/beta/pause", method: .post, headers: Self.headers(cookie: admin.cookie, form: true),
                body: Self.form([("csrf", reader.csrf)])
            ) { r in #expect(r.status == .forbidden) }
        }
    }

    @Test func runRewindResetBulkAndDeadLetterForms() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.router) { client in
            let (cookie, csrf) = try await Self.login(client, token: Self.adminToken)
            func post(_ uri: String, _ fields: [(String, String)]) async throws -> (HTTPResponse.Status, String) {
                try await client.execute(
                    uri: uri, method: .post, headers: Self.headers(cookie: cookie, form: true),
                    body: Self.form([("csrf", csrf)] + fields)
                ) { r in (r.status, r.headers[.location] ?? Self.text(r)) }
            }
            // Two manual ticks of alpha (a noop that advances its cursor).
            var (status, location) = try await post("/ui/jobs/alpha/run", [("back", "/jobs/alpha")])
            #expect(status == .seeOther && location == "/jobs/alpha?done=ran&done_job=alpha&done_status=ok")
            f.clock.advance(byMs: 1000)
            _ = try await post("/ui/jobs/alpha/run", [])
            let history = try await f.store.tickHistory(jobID: "alpha", limit: 10)
            #expect(history.count == 2)
            let first = try #require(history.last)
            #expect(try await f.store.state(jobID: "alpha")?.cursor != first.cursor)
            // The job page lists both cursors with a rewind form; rewind to the first.
            try await client.execute(uri: "/jobs/alpha", method: .get, headers: Self.headers(cookie: cookie)) { r in
                #expect(Self.text(r).contains("name=\"rewind_to_tick\" value=\"\(first.seq)\""))
            }
            (status, location) = try await post("/ui/jobs/alpha/cursor", [("rewind_to_tick", "\(first.seq)")])
            #expect(status == .seeOther && location.hasSuffix("done=rewound&done_job=alpha&done_n=\(first.seq)"))
            #expect(try await f.store.state(jobID: "alpha")?.cursor == first.cursor)
            (status, _) = try await post("/ui/jobs/alpha/cursor", [("rewind_to_tick", "999")])
            #expect(status == .notFound)
            (status, _) = try await post("/ui/jobs/alpha/cursor", [("set", "1"), ("cursor", "not base64!")])
            #expect(status == .badRequest)
            (status, _) = try await post("/ui/jobs/alpha/cursor", [("set", "1"), ("cursor", "")])
            #expect(status == .seeOther)
            #expect(try await f.store.state(jobID: "alpha")?.cursor == nil)
            // Reset, and an unknown action, an unknown job, a job id that is not one.
            (status, _) = try await post("/ui/jobs/alpha/reset", [("forget_seen", "1")])
            #expect(status == .seeOther)
            #expect(try await f.store.auditLog(jobID: "alpha", limit: 1).first?.action == "reset")
            (status, _) = try await post("/ui/jobs/alpha/explode", [])
            #expect(status == .notFound)
            (status, _) = try await post("/ui/jobs/nope/pause", [])
            #expect(status == .notFound)
            (status, _) = try await post("/ui/jobs/broken/run", [])
            #expect(status == .conflict)
            // Bulk: pause everything of kind noop that has a row (alpha, beta, gone); then resume.
            (status, location) = try await post(
                "/ui/bulk", [("action", "pause"), ("kind", "noop"), ("note", "freeze")])
            #expect(status == .seeOther && location == "/?kind=noop&done=bulk_paused&done_n=3")
            for id in ["alpha", "beta", "gone"] {
                #expect(try await f.store.state(jobID: id)?.pausedReason == "freeze")
            }
            (status, location) = try await post("/ui/bulk", [("action", "resume"), ("q", "alp")])
            #expect(location.hasSuffix("done=bulk_resumed&done_n=1"))
            let alphaPaused = try await f.store.state(jobID: "alpha")?.paused
            let betaPaused = try await f.store.state(jobID: "beta")?.paused
            #expect(alphaPaused == false && betaPaused == true)
            (status, _) = try await post("/ui/bulk", [("action", "delete")])
            #expect(status == .badRequest)
            // Dead letters: a selection is required and must be numbers.
            (status, _) = try await post("/ui/dlq", [("action", "replay")])
            #expect(status == .badRequest)
            (status, _) = try await post("/ui/dlq", [("action", "drop"), ("ids", "x")])
            #expect(status == .badRequest)
            (status, location) = try await post(
                "/ui/dlq", [("action", "replay_all"), ("scope_job", "alpha"), ("back", "/jobs/alpha")])
            #expect(status == .seeOther && location == "/jobs/alpha?done=replayed&done_n=0")
            // A body that is not a form.
            try await client.execute(
                uri: "/ui/bulk", method: .post,
                headers: Self.headers(
                    cookie: cookie, extra: [("X-CSRF-Token", csrf), ("Content-Type", "application/json")]),
                body: ByteBuffer(string: "{}")
            ) { r in #expect(r.status == .badRequest) }
        }
    }

    @Test func sessionsEndAtLogoutAndAfterTheirTTL() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.router) { client in
            let a = try await Self.login(client, token: Self.adminToken)
            try await client.execute(
                uri: "/logout", method: .post, headers: Self.headers(cookie: a.cookie, form: true),
                body: Self.form([("csrf", a.csrf)])
            ) { r in
                #expect(r.status == .seeOther && r.headers[.location] == "/login")
                #expect(r.headers[.setCookie]?.contains("Max-Age=0") == true)
            }
            try await client.execute(uri: "/", method: .get, headers: Self.headers(cookie: a.cookie)) { r in
                #expect(r.status == .seeOther)
            }
            // A read session may log out too (its only state change).
            let b = try await Self.login(client, token: Self.readToken)
            try await client.execute(
                uri: "/logout", method: .post, headers: Self.headers(cookie: b.cookie, form: true),
                body: Self.form([("csrf", b.csrf)])
            ) { r in #expect(r.status == .seeOther) }
            let c = try await Self.login(client, token: Self.readToken)
            f.clock.advance(byMs: AdminSessions.defaultTTLMs + 1)
            try await client.execute(uri: "/", method: .get, headers: Self.headers(cookie: c.cookie)) { r in
                #expect(r.status == .seeOther)
            }
            try await client.execute(
                uri: "/ui/jobs/alpha/pause", method: .post, headers: Self.headers(cookie: c.cookie, form: true),
                body: Self.form([("csrf", c.csrf)])
            ) { r in
                #expect(r.status == .unauthorized && Self.text(r).contains("Log in"))
            }
        }
    }

    @Test func withNoTokenTheDashboardIsOpenOnLoopbackNamesOnly() async throws {
        let f = try await Self.fixture(tokens: [])
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/", method: .get, headers: Self.headers(extra: [("Host", "localhost")])) {
                r in
                #expect(r.status == .ok && Self.text(r).contains("open access"))
            }
            try await client.execute(uri: "/login", method: .get) { r in
                #expect(r.status == .seeOther && r.headers[.location] == "/")
            }
            // A second Host that differs from the first is refused (the router test client always
            // sends `localhost` as the first; AdminServerTests send single hosts over a socket).
            try await client.execute(
                uri: "/admin/jobs", method: .get, headers: Self.headers(extra: [("Host", "evil.example:9091")])
            ) { r in
                #expect(r.status == .badRequest)
            }
            // A cross-site form post to the open API is refused; the same-origin one passes.
            try await client.execute(
                uri: "/ui/jobs/alpha/pause", method: .post,
                headers: Self.headers(
                    form: true, extra: [("Origin", "http://evil.example")]),
                body: Self.form([("note", "x")])
            ) { r in #expect(r.status == .forbidden) }
            #expect(try await f.store.state(jobID: "alpha")?.paused == false)
            try await client.execute(
                uri: "/ui/jobs/alpha/pause", method: .post,
                headers: Self.headers(
                    form: true, extra: [("Origin", "http://localhost")]),
                body: Self.form([("note", "x")])
            ) { r in #expect(r.status == .seeOther) }
            #expect(try await f.store.state(jobID: "alpha")?.paused == true)
        }
    }

    @Test func sparklineMarksSkippedSlotsAndErrors() {
        let ticks = [
            TickRecord(
                seq: 3, jobID: "j", slotMs: 3, startedAtMs: t0 + 3000, durationMs: 0, status: "skipped",
                error: "backpressure: 9 undelivered",
                itemsFound: 0, itemsNew: 0, duplicates: 0, cursor: nil, cursorChanged: false, holder: "h"),
            TickRecord(
                seq: 2, jobID: "j", slotMs: 2, startedAtMs: t0 + 2000, durationMs: 400, status: "transient",
                error: "HTTP 502 <bad>",
                itemsFound: 0, itemsNew: 0, duplicates: 0, cursor: nil, cursorChanged: false, holder: "h"),
            TickRecord(
                seq: 1, jobID: "j", slotMs: 1, startedAtMs: t0 + 1000, durationMs: 100, status: "ok", error: nil,
                itemsFound: 3, itemsNew: 2, duplicates: 1, cursor: nil, cursorChanged: true, holder: "h"),
        ]
        let svg = Dashboard.sparkline(ticks)
        // Oldest left: ok, then the error, then the skipped slot.
        let classes = svg.components(separatedBy: "<rect class=\"").dropFirst().map { String($0.prefix { $0 != "\"" }) }
        #expect(classes == ["ok", "err", "skip"])
        #expect(svg.contains("aria-label=\"last 3 ticks: 1 ok, 1 failed, 1 skipped\""))
        #expect(svg.contains("HTTP 502 &lt;bad&gt;") && !svg.contains("<bad>"))
        #expect(svg.contains("backpressure: 9 undelivered"))
    }

    @Test func formFieldsAndSessionsUnderHostileInput() {
        let f = FormFields("a=1&b=x+y%21&a=2&bad=%zz&=empty&flag&c=%E2%82%AC")
        #expect(f["a"] == "1" && f.all("a") == ["1", "2"])
        #expect(f["b"] == "x y!" && f["bad"] == nil && f["flag"] == "" && f["c"] == "€" && f[""] == "empty")
        let clock = ManualClock(nowMs: t0)
        let sessions = AdminSessions(clock: clock, ttlMs: 1000, capacity: 3)
        let ids = (0..<5).map { i -> String in
            clock.advance(byMs: 1)
            return sessions.open(role: i.isMultiple(of: 2) ? .admin : .read).id
        }
        #expect(sessions.count == 3)
        #expect(
            sessions.session(ids[0]) == nil && sessions.session(ids[1]) == nil
                && sessions.session(ids[4])?.role == .admin)
        #expect(Set(ids).count == 5 && ids.allSatisfy { $0.count == 43 })
        #expect(sessions.session(String(repeating: "a", count: 10_000)) == nil)
        clock.advance(byMs: 1000)
        #expect(sessions.session(ids[4]) == nil)
        #expect(
            AdminSessions.constantTimeEqual("abc", "abc") && !AdminSessions.constantTimeEqual("abc", "abd")
                && !AdminSessions.constantTimeEqual("abc", "ab"))
        #expect(
            HTML.localPath("/jobs/a?b=1") == "/jobs/a?b=1" && HTML.localPath("//x") == "/"
                && HTML.localPath("http://x") == "/"
                && HTML.localPath("/a\r\nSet-Cookie: x") == "/" && HTML.localPath(nil) == "/")
    }

    /// A broker the nats sinks cannot reach: the banner above every page and `/readyz` say so.
    @Test func aBrokerThatIsDownShowsInTheBannerAndReadiness() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        // Never run: its client stays unconnected, as one whose server does not answer.
        let broker = try NATSBroker(settings: BrokerSettings(urls: ["nats://127.0.0.1:9"]), logger: logger)
        let f = try await Self.fixture(broker: broker)
        try await f.app.test(.router) { client in
            let (cookie, _) = try await Self.login(client, token: Self.readToken)
            try await client.execute(uri: "/", method: .get, headers: Self.headers(cookie: cookie)) { r in
                #expect(r.status == .ok)
                #expect(Self.text(r).contains("The nats sinks cannot publish, their items wait in the outbox"))
            }
            try await client.execute(uri: "/readyz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(Self.text(r).contains("broker_unavailable"))
            }
        }
    }
}
