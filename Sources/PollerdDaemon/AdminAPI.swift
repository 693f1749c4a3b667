import Foundation
public import Hummingbird
public import Logging
public import PollerdAdmin
public import PollerdConfig
public import PollerdCore
public import PollerdDelivery
import Synchronization

/// The job file a running daemon has now (replaced on every accepted reload).
public final class LiveJobFile: Sendable {
    private let box: Mutex<JobFile>
    public init(_ file: JobFile) { box = Mutex(file) }
    public var file: JobFile { box.withLock { $0 } }
    public func replace(_ file: JobFile) { box.withLock { $0 = file } }
}

/// The admin API's routes, over the operator facade: every route answers JSON, errors as
/// `{"error": {"code", "message"}}`. nexo's paths (`/admin/pollers/…`) answer too.
public struct AdminAPI: Sendable {
    public let store: any PollerdStore
    public let clock: any WallClock
    public let live: LiveJobFile
    /// The daemon's runner (readiness); nil when the API serves a store alone (tests).
    public let runner: Runner?
    public let reloader: ReloadService?
    public let holder: String
    /// The NATS broker of the `nats` sinks, when one is configured (readiness, the dashboard).
    public let broker: NATSBroker?
    public let logger: Logger
    /// Jobs that never ticked ok count their staleness from here.
    let startedAtMs: Int64

    public init(
        store: any PollerdStore, clock: any WallClock, live: LiveJobFile, runner: Runner?, reloader: ReloadService?,
        holder: String, broker: NATSBroker? = nil, logger: Logger
    ) {
        self.broker = broker
        self.store = store
        self.clock = clock
        self.live = live
        self.runner = runner
        self.reloader = reloader
        self.holder = holder
        self.logger = logger
        self.startedAtMs = clock.nowMs
    }

    var facade: Operator { Operator(store: store, clock: clock, settings: live.file.settings) }

    /// The probe `/readyz` (`/healthz` and `/metrics` are the server's own): all that the probe
    /// listener serves.
    public func registerProbes(on router: Router<AdminRequestContext>) {
        router.get("/readyz") { _, _ in try await readiness() }
    }

    public func register(on router: Router<AdminRequestContext>) {
        registerProbes(on: router)
        for prefix in ["/admin/jobs", "/admin/pollers"] {
            router.get(RouterPath(prefix)) { _, _ in try await jobs() }
            router.get(RouterPath(prefix + "/:id")) { request, c in
                let n = try Self.limit(request.uri.queryParameters.get("ticks"), default: 50, name: "ticks")
                return try await job(try id(c), ticks: n)
            }
            router.get(RouterPath(prefix + "/:id/cursors")) { request, c in
                let jobID = try id(c)
                let n = try Self.limit(request.uri.queryParameters.get("limit"), default: 50, name: "limit")
                return try await guarded {
                    json(
                        .object([
                            "cursors": .array(try await facade.cursorHistory(jobID, limit: n).map(OperatorJSON.tick))
                        ]))
                }
            }
            router.post(RouterPath(prefix + "/:id/cursor")) { request, c in
                let jobID = try id(c)
                let body = try await object(request)
                let actor = Self.actor(c)
                switch (body["cursor"], body["rewind_to_tick"]) {
                case (let v?, nil):
                    var bytes: Data?
                    if v != .null {
                        guard let text = v.stringValue, let d = Base64URL.decode(text), d.count <= 1 << 20 else {
                            throw AdminError(
                                .badRequest, "bad_body",
                                "'cursor' must be base64url (at most 1 MiB decoded), or null to clear it")
                        }
                        bytes = d
                    }
                    return try await guarded {
                        try await facade.setCursor(jobID, to: bytes, actor: actor)
                        return json(
                            .object([
                                "ok": .bool(true), "id": .string(jobID),
                                "cursor_bytes": bytes.map { .int(Int64($0.count)) } ?? .null,
                            ]))
                    }
                case (nil, let t?):
                    guard let seq = t.intValue else {
                        throw AdminError(.badRequest, "bad_body", "'rewind_to_tick' must be a tick number")
                    }
                    return try await guarded {
                        let r = try await facade.rewindCursor(jobID, toTick: seq, actor: actor)
                        return json(
                            .object(["ok": .bool(true), "id": .string(jobID), "rewound_to": OperatorJSON.tick(r)]))
                    }
                default:
                    throw AdminError(
                        .badRequest, "bad_body", "give exactly one of 'cursor' (base64url or null) or 'rewind_to_tick'")
                }
            }
            router.get(RouterPath(prefix + "/:id/explain")) { _, c in
                try await guarded { json(OperatorJSON.explanation(try await facade.explain(try id(c)))) }
            }
            router.post(RouterPath(prefix + "/:id/run")) { _, c in try await run(try id(c)) }
            router.post(RouterPath(prefix + "/:id/pause")) { request, c in
                let jobID = try id(c)
                let body = try await object(request)
                let note = try body["note"].map { v -> String in
                    guard let s = v.stringValue, s.utf8.count <= 1024 else {
                        throw AdminError(.badRequest, "bad_body", "'note' must be a string of at most 1024 bytes")
                    }
                    return s
                }
                return try await guarded {
                    try await facade.pause(jobID, note: note ?? "paused via the admin API", actor: Self.actor(c))
                    return json(.object(["ok": .bool(true), "id": .string(jobID), "paused": .bool(true)]))
                }
            }
            router.post(RouterPath(prefix + "/:id/resume")) { _, c in
                let jobID = try id(c)
                return try await guarded {
                    try await facade.resume(jobID, actor: Self.actor(c))
                    return json(.object(["ok": .bool(true), "id": .string(jobID), "paused": .bool(false)]))
                }
            }
            router.post(RouterPath(prefix + "/:id/reset")) { request, c in
                let jobID = try id(c)
                let body = try await object(request)
                let forget = body["forget_seen"]?.boolValue ?? false
                if let v = body["forget_seen"], v.boolValue == nil {
                    throw AdminError(.badRequest, "bad_body", "'forget_seen' must be true or false")
                }
                return try await guarded {
                    try await facade.reset(jobID, forgetSeen: forget, actor: Self.actor(c))
                    return json(.object(["ok": .bool(true), "id": .string(jobID), "reset": .bool(true)]))
                }
            }
        }
        router.post("/admin/reload") { request, _ in
            try await reload(dryRun: Self.flag(request.uri.queryParameters.get("dry_run")))
        }
        router.post("/admin/pollers/reload") { request, _ in
            try await reload(dryRun: Self.flag(request.uri.queryParameters.get("dry_run")))
        }
        router.get("/admin/audit") { request, _ in
            let jobID = request.uri.queryParameters.get("job")
            let n = try Self.limit(request.uri.queryParameters.get("limit"), default: 100, name: "limit")
            return try await guarded {
                json(.object(["audit": .array(try await facade.audit(jobID: jobID, limit: n).map(OperatorJSON.audit))]))
            }
        }
        router.get("/admin/plugins") { _, _ in
            try await guarded {
                json(.object(["plugins": .array(try await facade.pluginStatuses().map(OperatorJSON.plugin))]))
            }
        }
        router.get("/admin/outbox") { request, _ in
            let jobID = request.uri.queryParameters.get("job")
            return try await guarded {
                json(
                    .object([
                        "lanes": .array(
                            try await facade.outboxStats().filter { jobID == nil || $0.jobID == jobID }.map(
                                OperatorJSON.lane))
                    ]))
            }
        }
        router.get("/admin/dlq") { request, _ in
            let jobID = request.uri.queryParameters.get("job")
            let limitText = request.uri.queryParameters.get("limit")
            guard let limit = limitText.map({ Int($0) }) ?? 100, (1...10_000).contains(limit) else {
                throw AdminError(.badRequest, "bad_query", "limit must be a number from 1 to 10000")
            }
            return try await guarded {
                json(
                    .object([
                        "dead_letters": .array(
                            try await facade.deadLetters(jobID: jobID, limit: limit).map {
                                OperatorJSON.deadLetter($0, envelope: false)
                            })
                    ]))
            }
        }
        router.get("/admin/dlq/:dl") { _, c in
            guard let text = c.parameters.get("dl"), let n = Int64(text) else {
                throw AdminError(.badRequest, "bad_id", "a dead letter id is a number")
            }
            return try await guarded {
                guard let d = try await facade.deadLetter(id: n) else {
                    throw AdminError(.notFound, "not_found", "no dead letter \(n)")
                }
                return json(OperatorJSON.deadLetter(d, envelope: true))
            }
        }
        router.post("/admin/dlq/replay") { request, _ in
            let sel = try await selection(request)
            return try await guarded {
                json(.object(["ok": .bool(true), "replayed": .int(Int64(try await facade.replayDeadLetters(sel)))]))
            }
        }
        router.post("/admin/dlq/drop") { request, _ in
            let sel = try await selection(request)
            return try await guarded {
                json(.object(["ok": .bool(true), "dropped": .int(Int64(try await facade.dropDeadLetters(sel)))]))
            }
        }
    }

    // MARK: Handlers

    func readiness() async throws -> Response {
        if let runner {
            guard runner.isServing else {
                throw AdminError(.serviceUnavailable, "not_ready", "the runner has not booted yet, or is shutting down")
            }
            if let failure = runner.storeFailure {
                throw AdminError(.serviceUnavailable, "store_unavailable", "the state store is failing: \(failure)")
            }
        }
        // The nats sinks cannot deliver: their items wait in the outbox until the broker answers.
        if let problem = broker?.problem {
            throw AdminError(.serviceUnavailable, "broker_unavailable", "the nats sinks cannot publish: \(problem)")
        }
        return json(.object(["ready": .bool(true)]))
    }

    /// The job file's jobs merged with the store's: jobs that never ran, invalid jobs with their
    /// located error, and jobs no longer in the file (marked removed, or run elsewhere).
    func jobs() async throws -> Response {
        let file = live.file
        guard
            case .object(var o) = try await guarded({
                try await facade.listingJSON(file: file, registeredAtMs: startedAtMs)
            })
        else { return json(.null) }
        // Reads may pass while writes fail (a full disk): the runner's view of the store says so.
        if let runner {
            o["store"] = .object([
                "ok": .bool(runner.storeFailure == nil), "error": runner.storeFailure.map(JSONValue.string) ?? .null,
            ])
        }
        return json(.object(o))
    }

    func job(_ jobID: String, ticks: Int) async throws -> Response {
        let file = live.file
        return json(
            try await guarded { try await facade.jobJSON(jobID, file: file, ticks: ticks, registeredAtMs: startedAtMs) }
        )
    }

    func run(_ jobID: String) async throws -> Response {
        let t = try await manualTick(jobID)
        let ack = t.report.ack
        return json(
            .object([
                "ok": .bool(t.outcome == .ok), "id": .string(jobID), "status": .string(t.status),
                "error": t.error.map(JSONValue.string) ?? .null,
                "items_seen": .int(ack?.itemsSeen ?? 0), "items_dispatched": .int(ack?.itemsDispatched ?? 0),
                "items": .int(Int64(ack?.items.count ?? 0)), "duration_ms": .int(t.report.durationMs),
                "warnings": .array(t.report.warnings.map(JSONValue.string)),
            ]))
    }

    /// Ticks a job of the daemon's job file now (the API's and the dashboard's "run").
    func manualTick(_ jobID: String) async throws -> ManualTick {
        let file = live.file
        guard let spec = file.jobs.first(where: { $0.id == jobID }) else {
            if let e = file.errors.first(where: { $0.jobID == jobID }) {
                throw AdminError(.conflict, "invalid_job", "job '\(jobID)' is invalid: \(e)")
            }
            throw AdminError(.notFound, "not_found", "no job '\(jobID)' in the daemon's job file")
        }
        return try await guarded {
            try await facade.tick(spec, registry: file.registry, holder: holder + "+api", dryRun: false, logger: logger)
        }
    }

    func reload(dryRun: Bool) async throws -> Response {
        guard let reloader, let runner else {
            throw AdminError(.serviceUnavailable, "no_daemon", "reload needs a running daemon")
        }
        let file = reloader.load()
        guard file.errors.isEmpty else {
            throw AdminError(.badRequest, "invalid_job_file", file.errors.map(\.description).joined(separator: "; "))
        }
        if dryRun {
            guard case .object(var o) = OperatorJSON.plan(runner.plan(for: file.jobs, settings: file.settings)) else {
                return json(.null)
            }
            o["ok"] = .bool(true)
            o["dry_run"] = .bool(true)
            return json(.object(o))
        }
        guard let plan = await reloader.reload(reason: "admin API") else {
            throw AdminError(.conflict, "reload_failed", "the reload was not applied; the daemon's log says why")
        }
        guard case .object(var o) = OperatorJSON.plan(plan) else { return json(.null) }
        o["ok"] = .bool(true)
        return json(.object(o))
    }

    // MARK: Helpers

    func id(_ context: AdminRequestContext) throws -> String {
        guard let s = context.parameters.get("id"), Self.isJobID(s) else {
            throw AdminError(.badRequest, "bad_id", "a job id is 1 to 64 letters, digits, '_', '.' or '-'")
        }
        return s
    }

    static func isJobID(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64
            && s.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F
                    || b == 0x2E || b == 0x2D
            }
    }

    static func flag(_ v: String?) -> Bool { v == "1" || v == "true" || v == "yes" }

    /// Who an action is recorded as in the audit log.
    static func actor(_ c: AdminRequestContext) -> String { "admin-api (\(c.role?.rawValue ?? "open"))" }

    static func limit(_ text: String?, default d: Int, name: String) throws -> Int {
        guard let text else { return d }
        guard let n = Int(text), (1...10_000).contains(n) else {
            throw AdminError(.badRequest, "bad_query", "\(name) must be a number from 1 to 10000")
        }
        return n
    }

    /// The request body as a JSON object (an empty body is an empty object).
    func object(_ request: Request) async throws -> [String: JSONValue] {
        let buffer = try await request.body.collect(upTo: 64 << 10)
        if buffer.readableBytes == 0 { return [:] }
        guard let v = try? JSONValue.parse(bytes: buffer.readableBytesView), case .object(let o) = v else {
            throw AdminError(.badRequest, "bad_body", "the body must be a JSON object")
        }
        return o
    }

    /// `{"ids": [...]}`, `{"job": "ID"}` or `{"all": true}`: exactly one.
    func selection(_ request: Request) async throws -> DeadLetterSelection {
        let o = try await object(request)
        var choices: [DeadLetterSelection] = []
        if let ids = o["ids"] {
            guard case .array(let a) = ids, !a.isEmpty else {
                throw AdminError(.badRequest, "bad_body", "'ids' must be a non-empty list of numbers")
            }
            let numbers = a.compactMap(\.intValue)
            guard numbers.count == a.count else {
                throw AdminError(.badRequest, "bad_body", "'ids' must be a non-empty list of numbers")
            }
            choices.append(.ids(numbers))
        }
        if let job = o["job"] {
            guard let s = job.stringValue, Self.isJobID(s) else {
                throw AdminError(.badRequest, "bad_body", "'job' must be a job id")
            }
            choices.append(.job(s))
        }
        if o["all"] == .bool(true) { choices.append(.all) }
        guard choices.count == 1 else {
            throw AdminError(.badRequest, "bad_body", "give exactly one of 'ids', 'job' or 'all': true")
        }
        return choices[0]
    }

    /// Runs a store call; unknown jobs are 404, a failing store 503.
    func guarded<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let e as AdminError {
            throw e
        } catch let e as Operator.UnknownJob {
            throw AdminError(.notFound, "not_found", e.description)
        } catch let e as Operator.NoSuchCursor {
            throw AdminError(.notFound, "not_found", e.description)
        } catch {
            logger.warning("admin API: the store failed", metadata: ["pollerd.error": "\(error)"])
            throw AdminError(.serviceUnavailable, "store_unavailable", "the state store failed: \(error)")
        }
    }

    func json(_ v: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(
            status: status, headers: headers, body: .init(byteBuffer: .init(string: v.canonicalString + "\n")))
    }
}
