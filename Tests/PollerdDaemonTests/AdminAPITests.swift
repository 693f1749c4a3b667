import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PollerdAdmin
import PollerdConfig
import PollerdCore
import PollerdPollers
import PollerdSQLite
import PollerdTestKit
import Testing

@testable import PollerdDaemon

/// Every admin route, through Hummingbird's router test framework (no socket), with both roles,
/// missing and wrong tokens, bad ids and bad bodies; and one test over a real socket.
@Suite struct AdminAPITests {
    static let adminToken = "admin-token-0123456789abcdef"
    static let readToken = "read-token-0123456789abcdef"
    static let yaml = """
        pollers:
          jobs:
            - { id: alpha, kind: noop, schedule: { every_secs: 60 }, config: { advance_cursor: true } }
            - { id: beta, kind: noop, schedule: { every_secs: 60 } }
            - { id: broken, kind: noop, schedule: { every_secs: 0 } }
        """

    struct Fixture {
        let api: AdminAPI
        let store: any PollerdStore
        let app: Application<RouterResponder<AdminRequestContext>>
    }

    /// A store as a running daemon leaves it: the file's jobs registered and announced, plus a
    /// row for a job no longer in the file.
    static func seeded() async throws -> (store: any PollerdStore, file: JobFile) {
        let store = try SQLiteBackend.open(path: tempDBPath(), synchronousFull: false)
        try await store.prepare()
        let file = JobFile.parse(
            yaml, path: "/etc/pollerd/pollers.yaml", registry: Builtins.registry(), environment: [:], nowMs: t0)
        _ = try await store.register(
            file.jobs.map { JobRegistration(jobID: $0.id, kind: $0.kind, agent: $0.agent, pausedOnBoot: false) }
                + [JobRegistration(jobID: "gone", kind: "noop", agent: "default", pausedOnBoot: false)], nowMs: t0)
        _ = try await store.announce(
            DaemonAnnouncement(
                daemonID: "d1", jobFile: file.path,
                jobs: Dictionary(uniqueKeysWithValues: file.jobs.map { ($0.id, $0.fingerprint) }),
                ttlMs: 3_600_000), nowMs: t0)
        return (store, file)
    }

    static func fixture(openProbes: Bool = true, tokens: [(String, AdminRole)]? = nil) async throws -> Fixture {
        let (store, file) = try await seeded()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let api = AdminAPI(
            store: store, clock: ManualClock(nowMs: t0), live: LiveJobFile(file), runner: nil, reloader: nil,
            holder: "test", logger: logger)
        let auth = AdminAuth(tokens: tokens ?? [(adminToken, .admin), (readToken, .read)], openProbes: openProbes)
        let router = AdminServer.router(registry: nil, auth: auth) { api.register(on: $0) }
        return Fixture(api: api, store: store, app: Application(router: router))
    }

    static func headers(_ token: String?) -> HTTPFields {
        var h = HTTPFields()
        if let token { h[.authorization] = "Bearer \(token)" }
        return h
    }

    static func json(_ r: TestResponse) -> JSONValue {
        (try? JSONValue.parse(bytes: r.body.readableBytesView)) ?? .null
    }

    @Test func missingAndWrongTokensAre401() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.router) { client in
            for token in [nil, "nope", "Basic abc", Self.adminToken + "x"] as [String?] {
                var h = Self.headers(nil)
                if let token { h[.authorization] = token.hasPrefix("Basic") ? token : "Bearer \(token)" }
                try await client.execute(uri: "/admin/jobs", method: .get, headers: h) { r in
                    #expect(r.status == .unauthorized)
                    #expect(r.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                    #expect(Self.json(r)["error"]?["code"] == .string("unauthorized"))
                }
            }
        }
    }

    @Test func aReadTokenReadsButMayNotAct() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.router) { client in
            try await client.execute(uri: "/admin/jobs", method: .get, headers: Self.headers(Self.readToken)) { r in
                #expect(r.status == .ok)
                guard case .array(let jobs)? = Self.json(r)["jobs"] else {
                    Issue.record("no jobs")
                    return
                }
                let byID = Dictionary(
                    uniqueKeysWithValues: jobs.compactMap { j in j["id"]?.stringValue.map { ($0, j) } })
                #expect(byID["alpha"]?["valid"] == .bool(true) && byID["alpha"]?["in_file"] == .bool(true))
                #expect(byID["broken"]?["valid"] == .bool(false))
                #expect(byID["broken"]?["error"]?.stringValue?.contains("/etc/pollerd/pollers.yaml:") == true)
                #expect(byID["gone"]?["in_file"] == .bool(false))
            }
            for action in ["pause", "resume", "reset", "run"] {
                try await client.execute(
                    uri: "/admin/jobs/alpha/\(action)", method: .post, headers: Self.headers(Self.readToken)
                ) { r in
                    #expect(r.status == .forbidden, "\(action)")
                    #expect(Self.json(r)["error"]?["code"] == .string("forbidden"))
                }
            }
            try await client.execute(
                uri: "/admin/dlq/replay", method: .post, headers: Self.headers(Self.readToken),
                body: ByteBuffer(string: #"{"all":true}"#)
            ) { r in #expect(r.status == .forbidden) }
        }
    }

    @Test func anAdminPausesWithANoteResumesAndResets() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.router) { client in
            let h = Self.headers(Self.adminToken)
            try await client.execute(
                uri: "/admin/jobs/alpha/pause", method: .post, headers: h,
                body: ByteBuffer(string: #"{"note":"vendor maintenance"}"#)
            ) { r in
                #expect(r.status == .ok && Self.json(r)["paused"] == .bool(true))
            }
            try await client.execute(uri: "/admin/jobs/alpha", method: .get, headers: h) { r in
                let j = Self.json(r)
                #expect(j["paused"] == .bool(true))
                #expect(j["paused_reason"]?.stringValue?.contains("vendor maintenance") == true)
                #expect(j["explain"]?["next"]?["code"] == .string("paused"))
                #expect(j["explain"]?["text"]?.stringValue?.contains("vendor maintenance") == true)
            }
            try await client.execute(uri: "/admin/jobs/alpha/explain", method: .get, headers: h) { r in
                #expect(r.status == .ok && Self.json(r)["job_id"] == .string("alpha"))
            }
            try await client.execute(uri: "/admin/jobs/alpha/resume", method: .post, headers: h) { r in
                #expect(Self.json(r)["paused"] == .bool(false))
            }
            try await client.execute(uri: "/admin/jobs/alpha/run", method: .post, headers: h) { r in
                #expect(r.status == .ok && Self.json(r)["status"] == .string("ok"))
            }
            try await client.execute(uri: "/admin/jobs/alpha", method: .get, headers: h) { r in
                #expect(Self.json(r)["cursor_bytes"] != .null)
            }
            try await client.execute(uri: "/admin/jobs/alpha/reset", method: .post, headers: h) { r in
                #expect(Self.json(r)["reset"] == .bool(true))
            }
            try await client.execute(uri: "/admin/jobs/alpha", method: .get, headers: h) { r in
                #expect(Self.json(r)["cursor"] == .null)
            }
        }
    }

    @Test func tickHistoryCursorsAndTheAuditLog() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.router) { client in
            let h = Self.headers(Self.adminToken)
            for _ in 0..<2 {
                try await client.execute(uri: "/admin/jobs/alpha/run", method: .post, headers: h) { r in
                    #expect(r.status == .ok)
                }
            }
            var firstTick: Int64 = 0
            try await client.execute(
                uri: "/admin/jobs/alpha?ticks=5", method: .get, headers: Self.headers(Self.readToken)
            ) { r in
                guard case .array(let ticks)? = Self.json(r)["ticks"] else {
                    Issue.record("no ticks")
                    return
                }
                #expect(ticks.count == 2)
                #expect(
                    ticks.first?["items_found"] != nil && ticks.first?["duplicates_dropped"] != nil
                        && ticks.first?["status"] == .string("ok"))
                firstTick = ticks.last?["tick"]?.intValue ?? 0
            }
            try await client.execute(
                uri: "/admin/jobs/alpha/cursors", method: .get, headers: Self.headers(Self.readToken)
            ) { r in
                guard case .array(let c)? = Self.json(r)["cursors"] else {
                    Issue.record("no cursors")
                    return
                }
                #expect(c.count == 2) // noop with advance_cursor changes it each tick
            }
            try await client.execute(
                uri: "/admin/jobs/alpha/cursor", method: .post, headers: Self.headers(Self.readToken),
                body: ByteBuffer(string: #"{"cursor":null}"#)
            ) { r in #expect(r.status == .forbidden) }
            try await client.execute(
                uri: "/admin/jobs/alpha/cursor", method: .post, headers: h,
                body: ByteBuffer(string: #"{"cursor":"aGVsbG8"}"#)
            ) { r in
                #expect(r.status == .ok && Self.json(r)["cursor_bytes"] == .int(5))
            }
            try await client.execute(
                uri: "/admin/jobs/alpha/cursor", method: .post, headers: h,
                body: ByteBuffer(string: #"{"rewind_to_tick":\#(firstTick)}"#)
            ) { r in
                #expect(r.status == .ok && Self.json(r)["rewound_to"]?["tick"] == .int(firstTick))
            }
            for body in [
                #"{"cursor":"!!"}"#, #"{"rewind_to_tick":"x"}"#, #"{}"#, #"{"cursor":null,"rewind_to_tick":1}"#,
            ] {
                try await client.execute(
                    uri: "/admin/jobs/alpha/cursor", method: .post, headers: h, body: ByteBuffer(string: body)
                ) { r in
                    #expect(r.status == .badRequest, "\(body)")
                }
            }
            try await client.execute(
                uri: "/admin/jobs/alpha/cursor", method: .post, headers: h,
                body: ByteBuffer(string: #"{"rewind_to_tick":999999}"#)
            ) { r in
                #expect(r.status == .notFound)
            }
            try await client.execute(
                uri: "/admin/jobs/alpha/reset", method: .post, headers: h,
                body: ByteBuffer(string: #"{"forget_seen":true}"#)
            ) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/admin/audit?job=alpha", method: .get, headers: Self.headers(Self.readToken))
            { r in
                guard case .array(let a)? = Self.json(r)["audit"] else {
                    Issue.record("no audit")
                    return
                }
                #expect(a.compactMap { $0["action"]?.stringValue } == ["reset", "cursor.rewind", "cursor.set"])
                #expect(a.first?["actor"] == .string("admin-api (admin)"))
                #expect(a.first?["detail"]?.stringValue?.contains("dedup key") == true)
            }
        }
    }

    @Test func badIDsUnknownJobsAndBadBodies() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.router) { client in
            let h = Self.headers(Self.adminToken)
            try await client.execute(uri: "/admin/jobs/" + String(repeating: "x", count: 65), method: .get, headers: h)
            { r in
                #expect(r.status == .badRequest && Self.json(r)["error"]?["code"] == .string("bad_id"))
            }
            try await client.execute(uri: "/admin/jobs/a%24b", method: .get, headers: h) { r in
                #expect(r.status == .badRequest)
            }
            try await client.execute(uri: "/admin/jobs/nosuch", method: .get, headers: h) { r in
                #expect(r.status == .notFound && Self.json(r)["error"]?["code"] == .string("not_found"))
            }
            try await client.execute(uri: "/admin/jobs/nosuch/pause", method: .post, headers: h) { r in
                #expect(r.status == .notFound)
            }
            try await client.execute(uri: "/admin/jobs/nosuch/run", method: .post, headers: h) { r in
                #expect(r.status == .notFound)
            }
            try await client.execute(uri: "/admin/jobs/broken/run", method: .post, headers: h) { r in
                #expect(r.status == .conflict && Self.json(r)["error"]?["code"] == .string("invalid_job"))
            }
            for body in ["not json", "[1,2]", #"{"note": 5}"#, #"{"note":"\#(String(repeating: "n", count: 2000))"}"#] {
                try await client.execute(
                    uri: "/admin/jobs/alpha/pause", method: .post, headers: h, body: ByteBuffer(string: body)
                ) { r in
                    #expect(
                        r.status == .badRequest && Self.json(r)["error"]?["code"] == .string("bad_body"),
                        "\(body.prefix(20))")
                }
            }
            for body in ["{}", #"{"ids":[]}"#, #"{"ids":["a"]}"#, #"{"ids":[1],"all":true}"#, #"{"job":"$"}"#] {
                try await client.execute(
                    uri: "/admin/dlq/drop", method: .post, headers: h, body: ByteBuffer(string: body)
                ) { r in
                    #expect(r.status == .badRequest, "\(body)")
                }
            }
            try await client.execute(uri: "/admin/dlq/abc", method: .get, headers: h) { r in
                #expect(r.status == .badRequest)
            }
            try await client.execute(uri: "/admin/dlq/999", method: .get, headers: h) { r in
                #expect(r.status == .notFound)
            }
            try await client.execute(uri: "/admin/dlq?limit=0", method: .get, headers: h) { r in
                #expect(r.status == .badRequest)
            }
        }
    }

    @Test func theOtherRoutesAnswer() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.router) { client in
            let h = Self.headers(Self.readToken)
            try await client.execute(uri: "/admin/plugins", method: .get, headers: h) { r in
                #expect(r.status == .ok && Self.json(r)["plugins"] != nil)
            }
            try await client.execute(uri: "/admin/outbox?job=alpha", method: .get, headers: h) { r in
                #expect(r.status == .ok && Self.json(r)["lanes"] != nil)
            }
            try await client.execute(uri: "/admin/dlq", method: .get, headers: h) { r in
                #expect(Self.json(r)["dead_letters"] == .array([]))
            }
            try await client.execute(
                uri: "/admin/dlq/replay", method: .post, headers: Self.headers(Self.adminToken),
                body: ByteBuffer(string: #"{"all":true}"#)
            ) { r in
                #expect(r.status == .ok && Self.json(r)["replayed"] == .int(0))
            }
            // Without a running daemon there is nothing to reload.
            try await client.execute(
                uri: "/admin/reload?dry_run=1", method: .post, headers: Self.headers(Self.adminToken)
            ) { r in
                #expect(r.status == .serviceUnavailable)
            }
            // nexo's paths.
            try await client.execute(uri: "/admin/pollers", method: .get, headers: h) { r in
                #expect(r.status == .ok && Self.json(r)["jobs"] != nil)
            }
            try await client.execute(
                uri: "/admin/pollers/beta/pause", method: .post, headers: Self.headers(Self.adminToken)
            ) { r in
                #expect(Self.json(r)["ok"] == .bool(true))
            }
            try await client.execute(uri: "/admin/pollers/beta", method: .get, headers: h) { r in
                #expect(Self.json(r)["paused"] == .bool(true))
            }
        }
    }

    @Test func probesAreOpenUnlessTheSettingCloses() async throws {
        let open = try await Self.fixture()
        try await open.app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { r in
                #expect(r.status == .ok && Self.json(r)["ready"] == .bool(true))
            }
        }
        let closed = try await Self.fixture(openProbes: false)
        try await closed.app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .unauthorized) }
            try await client.execute(uri: "/healthz", method: .get, headers: Self.headers(Self.readToken)) { r in
                #expect(r.status == .ok)
            }
        }
    }

    @Test func noTokenMeansLoopbackOnly() throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        #expect(throws: AdminServer.OpenOnNetwork.self) {
            _ = try AdminServer.application(
                host: "0.0.0.0", port: 0, registry: nil, auth: AdminAuth(tokens: [], openProbes: true), logger: logger)
        }
        _ = try AdminServer.application(
            host: "0.0.0.0", port: 0, registry: nil,
            auth: AdminAuth(tokens: [(Self.adminToken, .admin)], openProbes: true), logger: logger)
        _ = try AdminServer.application(
            host: "127.0.0.1", port: 0, registry: nil, auth: AdminAuth(tokens: [], openProbes: true), logger: logger)
        let env = AdminAuth.from(
            AdminSettings(),
            environment: ["POLLERD_ADMIN_TOKEN": Self.adminToken, "POLLERD_READ_TOKEN": Self.readToken])
        #expect(
            env.role(of: Self.adminToken) == .admin && env.role(of: Self.readToken) == .read && env.role(of: "x") == nil
        )
    }

    /// The same API over a real socket.
    @Test func overARealSocket() async throws {
        let f = try await Self.fixture()
        try await f.app.test(.live) { client in
            try await client.execute(uri: "/admin/jobs/alpha", method: .get, headers: Self.headers(Self.readToken)) {
                r in
                #expect(r.status == .ok && Self.json(r)["id"] == .string("alpha"))
            }
            try await client.execute(uri: "/admin/jobs/alpha", method: .get) { r in #expect(r.status == .unauthorized) }
        }
    }
}
