import Foundation
public import Hummingbird
import Mustache
public import PollerdAdmin
import PollerdConfig
import PollerdCore
import PollerdDelivery

/// The web dashboard at `/`: server-rendered HTML (Mustache templates compiled into the binary),
/// readable without JavaScript. Its actions are plain HTML forms that post to `/ui/…` and come
/// back with a 303 (post/redirect/get); the auth middleware has already checked the session, its
/// CSRF token, the origin and the role before a handler runs. It reads and acts through the same
/// operator facade as the admin API.
public struct Dashboard: Sendable {
    let api: AdminAPI
    let library: MustacheLibrary
    /// Rows of the job table per page.
    public static let pageSize = 100
    /// Ticks in a sparkline.
    public static let sparkTicks = 30

    public init(api: AdminAPI) throws {
        self.api = api
        var library = MustacheLibrary()
        let templates: [(String, String)] = [
            ("layout", DashboardTemplates.layout), ("hidden", DashboardTemplates.hidden),
            ("actions", DashboardTemplates.actions),
            ("jobs", DashboardTemplates.jobs), ("job", DashboardTemplates.job), ("lanes", DashboardTemplates.lanes),
            ("letters", DashboardTemplates.letters), ("auditTable", DashboardTemplates.auditTable),
            ("outbox", DashboardTemplates.outbox),
            ("dlq", DashboardTemplates.dlq), ("audit", DashboardTemplates.audit),
            ("plugins", DashboardTemplates.plugins),
        ]
        for (name, text) in templates { try library.register(text, named: name) }
        self.library = library
    }

    public func register(on router: Router<AdminRequestContext>) {
        router.get("/static/app.css") { _, _ in
            HTML.asset(DashboardTemplates.stylesheet, type: "text/css; charset=utf-8")
        }
        router.get("/static/favicon.svg") { _, _ in HTML.asset(DashboardTemplates.favicon, type: "image/svg+xml") }
        router.get("/static/app.js") { _, _ in
            HTML.asset(DashboardTemplates.script, type: "text/javascript; charset=utf-8")
        }
        router.get("/") { request, c in try await index(request, c) }
        router.get("/jobs/:id") { request, c in try await jobPage(request, c) }
        router.get("/plugins") { request, c in try await pluginsPage(request, c) }
        router.get("/outbox") { request, c in try await outboxPage(request, c) }
        router.get("/dlq") { request, c in try await dlqPage(request, c) }
        router.get("/audit") { request, c in try await auditPage(request, c) }
        router.post("/ui/jobs/:id/:action") { request, c in try await jobAction(request, c) }
        router.post("/ui/bulk") { request, c in try await bulk(request, c) }
        router.post("/ui/dlq") { request, c in try await deadLetterAction(request, c) }
    }

    // MARK: The job table

    /// A job of the table: the listing entry, with its status as the filters know it.
    struct Entry {
        var listing: JobListing
        var status: String
        var stale: Bool
        var spec: JobSpec?
    }

    /// The statuses the table filters on, in the order of the select.
    static let statusFilters: [(String, String)] = [
        ("", "all"), ("ok", "ok"), ("failing", "failing"), ("backing_off", "backing off"),
        ("breaker_open", "breaker open"),
        ("backlogged", "backlogged"), ("paused", "paused"), ("stale", "stale"), ("never_ran", "never ran"),
        ("done", "done"),
        ("invalid", "invalid"), ("removed", "removed"), ("elsewhere", "run elsewhere"),
    ]

    func entries() async throws -> [Entry] {
        let file = api.live.file
        let listing = try await api.guarded { try await api.facade.listing(file: file) }
        let specs = Dictionary(file.jobs.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let threshold = file.settings.breakerThreshold
        let now = api.clock.nowMs
        return listing.map { l in
            let spec = specs[l.id]
            let status = l.status(breakerThreshold: threshold)
            let stale =
                l.row.map {
                    JobHealth.isStale(
                        $0, maxStalenessSecs: spec?.maxStalenessSecs, registeredAtMs: api.startedAtMs, nowMs: now)
                } ?? false
            return Entry(listing: l, status: status, stale: stale, spec: spec)
        }
    }

    /// The table's filters, validated.
    struct Filter {
        var status = ""
        var kind = ""
        var q = ""

        init(status: String?, kind: String?, q: String?) throws {
            self.status = status ?? ""
            guard Dashboard.statusFilters.contains(where: { $0.0 == self.status }) else {
                throw AdminError(.badRequest, "bad_query", "unknown status filter '\(self.status)'")
            }
            self.kind = kind ?? ""
            self.q = (q ?? "").trimmingCharacters(in: .whitespaces)
            guard self.kind.utf8.count <= 128, self.q.utf8.count <= 128 else {
                throw AdminError(.badRequest, "bad_query", "a filter is at most 128 bytes")
            }
        }

        func matches(_ e: Entry, statusToo: Bool = true, kindToo: Bool = true) -> Bool {
            if statusToo && !status.isEmpty && !(status == "stale" ? e.stale : e.status == status) { return false }
            if kindToo && !kind.isEmpty && (e.listing.kind ?? "") != kind { return false }
            if !q.isEmpty && !e.listing.id.localizedCaseInsensitiveContains(q) { return false }
            return true
        }

        var query: String {
            [("status", status), ("kind", kind), ("q", q)].filter { !$0.1.isEmpty }.map {
                "\($0.0)=\(PercentEncoding.component($0.1))"
            }
            .joined(separator: "&")
        }
    }

    func index(_ request: Request, _ c: AdminRequestContext) async throws -> Response {
        let p = request.uri.queryParameters
        let filter = try Filter(status: p.get("status"), kind: p.get("kind"), q: p.get("q"))
        let pageText = p.get("page") ?? "1"
        guard let page = Int(pageText), page >= 1 else {
            throw AdminError(.badRequest, "bad_query", "page must be a number from 1")
        }
        let all = try await entries()
        let matched = all.filter { filter.matches($0) }
        let pageCount = max(1, (matched.count + Self.pageSize - 1) / Self.pageSize)
        let shown = Array(matched.dropFirst((min(page, pageCount) - 1) * Self.pageSize).prefix(Self.pageSize))
        let now = api.clock.nowMs
        var rows: [[String: Any]] = []
        for e in shown {
            var ticks: [TickRecord] = []
            if e.listing.row != nil {
                ticks = try await api.guarded {
                    try await api.store.tickHistory(jobID: e.listing.id, limit: Self.sparkTicks)
                }
            }
            rows.append(jobRow(e, ticks: ticks, now: now))
        }
        var v = base(request, c, title: "Jobs", nav: "/")
        v["jobs"] = rows
        v["shownText"] = matched.count == all.count ? "\(all.count)" : "\(matched.count) of \(all.count)"
        v["matched"] = matched.count
        v["bulkable"] = matched.contains { $0.listing.row != nil }
        v["filtered"] = !filter.query.isEmpty
        v["status"] = filter.status
        v["kind"] = filter.kind
        v["q"] = filter.q
        let forStatus = all.filter { filter.matches($0, statusToo: false) }
        v["statuses"] = Self.statusFilters.map { value, label -> [String: Any] in
            let n =
                value.isEmpty
                ? forStatus.count : forStatus.filter { value == "stale" ? $0.stale : $0.status == value }.count
            return ["value": value, "label": label, "count": n, "selected": value == filter.status]
        }.filter {
            ($0["count"] as? Int ?? 0) > 0 || ($0["selected"] as? Bool ?? false) || ($0["value"] as? String) == ""
        }
        let forKind = all.filter { filter.matches($0, kindToo: false) }
        var kindCounts: [String: Int] = [:]
        for e in forKind { kindCounts[e.listing.kind ?? "", default: 0] += 1 }
        var kinds: [[String: Any]] = [
            ["value": "", "label": "all", "count": forKind.count, "selected": filter.kind.isEmpty]
        ]
        for k in kindCounts.keys.sorted() where !k.isEmpty {
            kinds.append(["value": k, "label": k, "count": kindCounts[k]!, "selected": k == filter.kind])
        }
        if !filter.kind.isEmpty && kindCounts[filter.kind] == nil {
            kinds.append(["value": filter.kind, "label": filter.kind, "count": 0, "selected": true])
        }
        v["kinds"] = kinds
        if pageCount > 1 {
            let q = filter.query.isEmpty ? "" : filter.query + "&"
            v["pages"] = true
            v["page"] = min(page, pageCount)
            v["pageCount"] = pageCount
            if page > 1 { v["prev"] = "/?\(q)page=\(min(page, pageCount) - 1)" }
            if page < pageCount { v["next"] = "/?\(q)page=\(page + 1)" }
        }
        v["warnings"] = try await warnings(all)
        // Every live daemon on the store, with its host and when its heartbeat runs out.
        let daemons = try await api.guarded { try await api.facade.daemons() }
        v["daemons"] = daemons.map { d -> [String: Any] in
            let parts = d.daemonID.split(separator: ":", omittingEmptySubsequences: false)
            return [
                "host": parts.first.map(String.init) ?? d.daemonID, "pid": parts.count == 3 ? String(parts[1]) : "",
                "jobFile": d.jobFile, "jobs": d.jobs, "started": Self.relative(d.startedAtMs, now: now),
                "startedAt": Self.absolute(d.startedAtMs), "aliveFor": "\(max(0, d.aliveUntilMs - now) / 1000) s",
            ]
        }
        return try render("jobs", v)
    }

    /// One row of the job table.
    func jobRow(_ e: Entry, ticks: [TickRecord], now: Int64) -> [String: Any] {
        var o = actionFields(e.listing)
        o["kind"] = e.listing.kind ?? ""
        o["status"] = e.status
        o["statusLabel"] = e.status.replacingOccurrences(of: "_", with: " ")
        o["stale"] = e.stale
        if let row = e.listing.row {
            o["lastRun"] = Self.relative(row.lastRunAtMs, now: now)
            o["lastRunAt"] = Self.absolute(row.lastRunAtMs)
            o["nextRun"] = row.shownNextRunMs.map { Self.relative($0, now: now) } ?? "—"
            o["nextRunAt"] = Self.absolute(row.shownNextRunMs)
            if row.paused, let note = row.pausedReason { o["note"] = note }
            o["error"] = Self.clip(e.listing.error ?? row.lastError ?? "", 200)
            // The daemon that holds the lease now, or ran the job last.
            if let holder = row.leaseHolder {
                let parts = holder.split(separator: ":", omittingEmptySubsequences: false)
                o["daemon"] = parts.count == 3 ? "\(parts[0]):\(parts[1])" : holder
                o["ticking"] = row.leaseUntilMs > now
            }
        } else {
            o["lastRun"] = "never"
            o["nextRun"] = "—"
            o["error"] = Self.clip(e.listing.error ?? "", 400)
        }
        let ran = ticks.filter { $0.status != "skipped" }
        if let last = ran.first { o["newLast"] = "\(last.itemsNew)" } else { o["newLast"] = "—" }
        if ran.count > 1 {
            let avg = Double(ran.reduce(0) { $0 + $1.itemsNew }) / Double(ran.count)
            o["newPerTick"] = avg < 10 ? String(format: "%.1f avg", avg) : "\(Int(avg.rounded())) avg"
        }
        o["sparkline"] = Self.sparkline(ticks)
        return o
    }

    /// The fields the action buttons need for a job.
    func actionFields(_ l: JobListing) -> [String: Any] {
        [
            "id": l.id,
            // Pause, resume, reset and the cursor need a stored row; run needs the job in the file.
            "actionable": l.row != nil,
            "paused": l.row?.paused ?? false,
        ]
    }

    /// What an operator should look at first, above every page (pg-boss puts its warnings there too).
    func warnings(_ all: [Entry]) async throws -> [String] {
        var out: [String] = []
        if let failure = api.runner?.storeFailure { out.append("The state store is failing: \(failure)") }
        if let problem = api.broker?.problem {
            out.append("The nats sinks cannot publish, their items wait in the outbox: \(problem)")
        }
        let invalid = all.filter { $0.status == "invalid" }.count
        if invalid > 0 { out.append("\(invalid) job(s) in the job file are invalid and do not run (filter: invalid).") }
        let stale = all.filter(\.stale).count
        if stale > 0 {
            out.append(
                "\(stale) job(s) have had no successful tick for longer than their max_staleness_secs (filter: stale).")
        }
        let breaker = all.filter { $0.status == "breaker_open" }.count
        if breaker > 0 { out.append("\(breaker) job(s) have their breaker open (filter: breaker open).") }
        let errorPaused = all.filter { $0.listing.row.map(Explanation.pausedByError) ?? false }.count
        if errorPaused > 0 {
            out.append(
                "\(errorPaused) job(s) were paused by an error and wait for an operator to resume them (filter: paused)."
            )
        }
        let divergent = try await api.guarded { try await api.facade.divergentDefinitions() }
        if !divergent.isEmpty {
            let some = divergent.keys.sorted().prefix(5).joined(separator: ", ")
            out.append(
                "\(divergent.count) job(s) are defined differently by live daemons (\(some)\(divergent.count > 5 ? ", …" : "")): "
                    + "each tick runs under the definition of the daemon that claims it, and delivers to its sinks.")
        }
        // The database's own upkeep (PostgreSQL: an old transaction, tables full of dead rows).
        if let upkeep = try? await api.facade.maintenance() { out += upkeep.warnings }
        let letters = try await api.guarded { try await api.facade.deadLetters(jobID: nil, limit: 1000) }.count
        if letters > 0 {
            out.append(
                "\(letters == 1000 ? "1000+" : "\(letters)") dead letter(s) wait for a replay or a drop (see Dead letters)."
            )
        }
        return out
    }

    // MARK: A job's page

    func jobPage(_ request: Request, _ c: AdminRequestContext) async throws -> Response {
        let jobID = try api.id(c)
        let file = api.live.file
        guard let l = try await api.guarded({ try await api.facade.listing(file: file, jobID: jobID) }) else {
            throw AdminError(.notFound, "not_found", "no job '\(jobID)' in the job file or the state store")
        }
        let now = api.clock.nowMs
        var v = base(request, c, title: jobID, nav: "/")
        v.merge(actionFields(l)) { _, b in b }
        let spec = file.jobs.first { $0.id == jobID }
        v["kind"] = l.kind ?? "?"
        v["fileError"] =
            l.error
            ?? (l.inFile
                ? nil
                : (l.removed
                    ? "This job is no longer in any running daemon's job file."
                    : "This job is not in this daemon's job file; another daemon runs it."))
        let status = l.status(breakerThreshold: file.settings.breakerThreshold)
        v["status"] = status
        v["statusLabel"] = status.replacingOccurrences(of: "_", with: " ")
        if let row = l.row {
            let d = try await api.guarded { try await api.facade.job(jobID) }
            v["stale"] = JobHealth.isStale(
                row, maxStalenessSecs: spec?.maxStalenessSecs, registeredAtMs: api.startedAtMs, nowMs: now)
            if row.paused { v["note"] = row.pausedReason ?? "paused" }
            v["lastRun"] = Self.relative(row.lastRunAtMs, now: now)
            v["lastRunAt"] = Self.absolute(row.lastRunAtMs)
            v["lastStatus"] = row.lastStatus
            v["lastDuration"] = row.lastDurationMs.map(Self.duration)
            v["nextRun"] = row.shownNextRunMs.map { Self.relative($0, now: now) } ?? "—"
            v["nextRunAt"] = Self.absolute(row.shownNextRunMs)
            v["lastOk"] = Self.relative(row.lastOkAtMs, now: now)
            v["lastOkAt"] = Self.absolute(row.lastOkAtMs)
            v["lastError"] = row.lastError ?? "—"
            v["consecutiveErrors"] = row.consecutiveErrors
            v["ticksTotal"] = row.ticksTotal
            v["itemsSeen"] = row.itemsSeenTotal
            v["cursorPreview"] = row.cursor.map { Self.clip(Base64URL.encode($0), 120) } ?? "none"
            v["cursorSize"] = row.cursor.map { "(\($0.count) bytes)" } ?? ""
            v["lease"] =
                d.lease.map { l in
                    l.untilMs > now
                        ? "held by \(l.holder) for \(Self.relative(l.untilMs, now: now).replacingOccurrences(of: "in ", with: "")) more (token \(l.token))"
                        : "free (last held by \(l.holder), token \(l.token))"
                } ?? "never taken"
            v["explain"] = d.explanation.text
            let ticks = try await api.guarded { try await api.facade.history(jobID, limit: 50) }
            v["sparkline"] = Self.sparkline(Array(ticks.prefix(Self.sparkTicks)))
            v["ticks"] = ticks.map { t -> [String: Any] in
                [
                    "tick": t.seq > 0 ? "\(t.seq)" : "—", "slot": t.slotMs.map { RFC3339.format(ms: $0) } ?? "manual",
                    "started": Self.relative(t.startedAtMs, now: now), "startedAt": RFC3339.format(ms: t.startedAtMs),
                    "duration": t.status == "skipped" ? "—" : Self.duration(t.durationMs), "status": t.status,
                    "rowClass": t.status == "skipped" ? "skipped" : "", "found": t.itemsFound, "new": t.itemsNew,
                    "duplicates": t.duplicates,
                    "cursorChanged": t.cursorChanged, "error": t.error ?? "",
                ]
            }
            let cursors = try await api.guarded { try await api.facade.cursorHistory(jobID, limit: 50) }
            v["cursors"] = cursors.map { t -> [String: Any] in
                [
                    "id": jobID, "tick": t.seq, "started": Self.relative(t.startedAtMs, now: now),
                    "startedAt": RFC3339.format(ms: t.startedAtMs),
                    "items": t.itemsNew, "preview": t.cursor.map { Self.clip(Base64URL.encode($0), 80) } ?? "cleared",
                    "size": t.cursor.map { "(\($0.count) bytes)" } ?? "",
                ]
            }
        } else {
            v["lastRun"] = "never"
            v["nextRun"] = "when the daemon registers it"
            v["lastOk"] = "never"
            v["lastError"] = "—"
            v["consecutiveErrors"] = 0
            v["ticksTotal"] = 0
            v["itemsSeen"] = 0
            v["cursorPreview"] = "none"
            v["lease"] = "none"
            v["explain"] =
                l.error.map { "The job file's entry is invalid, so no daemon runs it: \($0)" }
                ?? "The job is in the job file but the store has no row for it yet: the daemon registers it when it starts or reloads."
            v["sparkline"] = ""
            v["ticks"] = [[String: Any]]()
            v["cursors"] = [[String: Any]]()
        }
        let lanes = try await api.guarded { try await api.facade.outboxStats() }.filter { $0.jobID == jobID }
        v["lanes"] = lanes.map { Self.lane($0, now: now) }
        let letters = try await api.guarded { try await api.facade.deadLetters(jobID: jobID, limit: 200) }
        v["letters"] = letters.map { Self.letter($0, now: now) }
        v["hasLetters"] = !letters.isEmpty
        v["scopeJob"] = jobID
        let audit = try await api.guarded { try await api.facade.audit(jobID: jobID, limit: 50) }
        v["audit"] = audit.map { Self.audit($0, now: now) }
        return try render("job", v)
    }

    // MARK: Other pages

    func pluginsPage(_ request: Request, _ c: AdminRequestContext) async throws -> Response {
        let now = api.clock.nowMs
        let plugins = try await api.guarded { try await api.facade.pluginStatuses() }
        var v = base(request, c, title: "Plugins", nav: "/plugins")
        v["plugins"] = plugins.map { reported -> [String: Any] in
            let p = reported.status
            return [
                "plugin": p.pluginID, "daemon": reported.daemonID, "lifecycle": p.lifecycle, "phase": p.phase,
                "phaseClass": p.phase.lowercased().replacingOccurrences(of: " ", with: "_"),
                "pid": p.pid.map { "\($0)" } ?? "—", "restarts": p.restarts, "ticks": p.ticks, "failures": p.failures,
                "error": p.lastError ?? "", "reported": Self.relative(p.updatedAtMs, now: now),
                "reportedAt": RFC3339.format(ms: p.updatedAtMs),
                "hasStderr": !p.stderrTail.isEmpty, "stderrCount": p.stderrTail.count,
                "stderr": p.stderrTail.joined(separator: "\n"),
            ]
        }
        return try render("plugins", v)
    }

    func outboxPage(_ request: Request, _ c: AdminRequestContext) async throws -> Response {
        let now = api.clock.nowMs
        let lanes = try await api.guarded { try await api.facade.outboxStats() }
        var v = base(request, c, title: "Outbox", nav: "/outbox")
        v["lanes"] = lanes.map { Self.lane($0, now: now) }
        return try render("outbox", v)
    }

    func dlqPage(_ request: Request, _ c: AdminRequestContext) async throws -> Response {
        let now = api.clock.nowMs
        let letters = try await api.guarded { try await api.facade.deadLetters(jobID: nil, limit: 500) }
        var v = base(request, c, title: "Dead letters", nav: "/dlq")
        v["letters"] = letters.map { Self.letter($0, now: now) }
        v["hasLetters"] = !letters.isEmpty
        v["count"] = letters.count == 500 ? "newest 500" : "\(letters.count)"
        return try render("dlq", v)
    }

    func auditPage(_ request: Request, _ c: AdminRequestContext) async throws -> Response {
        let now = api.clock.nowMs
        let audit = try await api.guarded { try await api.facade.audit(jobID: nil, limit: 200) }
        var v = base(request, c, title: "Audit", nav: "/audit")
        v["audit"] = audit.map { Self.audit($0, now: now) }
        return try render("audit", v)
    }

    // MARK: Actions (forms)

    func jobAction(_ request: Request, _ c: AdminRequestContext) async throws -> Response {
        let jobID = try api.id(c)
        let form = try await Self.form(request)
        let back = HTML.localPath(form["back"] ?? "/jobs/\(jobID)")
        let actor = "dashboard (\(c.role?.rawValue ?? "open"))"
        switch c.parameters.get("action") ?? "" {
        case "pause":
            let note = (form["note"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard note.utf8.count <= 1024 else {
                throw AdminError(.badRequest, "bad_body", "a pause note is at most 1024 bytes")
            }
            try await api.guarded {
                try await api.facade.pause(jobID, note: note.isEmpty ? "paused from the dashboard" : note, actor: actor)
            }
            return HTML.redirect(Self.flash(back, "paused", job: jobID))
        case "resume":
            try await api.guarded { try await api.facade.resume(jobID, actor: actor) }
            return HTML.redirect(Self.flash(back, "resumed", job: jobID))
        case "reset":
            let forget = form["forget_seen"] == "1"
            try await api.guarded { try await api.facade.reset(jobID, forgetSeen: forget, actor: actor) }
            return HTML.redirect(Self.flash(back, "reset", job: jobID))
        case "run":
            let t = try await api.manualTick(jobID)
            return HTML.redirect(Self.flash(back, "ran", job: jobID, status: t.status))
        case "cursor":
            if let text = form["rewind_to_tick"] {
                guard let seq = Int64(text) else {
                    throw AdminError(.badRequest, "bad_body", "'rewind_to_tick' must be a tick number")
                }
                _ = try await api.guarded { try await api.facade.rewindCursor(jobID, toTick: seq, actor: actor) }
                return HTML.redirect(Self.flash(back, "rewound", job: jobID, n: Int(seq)))
            }
            guard form["set"] != nil else {
                throw AdminError(.badRequest, "bad_body", "give 'rewind_to_tick', or 'set' with 'cursor'")
            }
            let text = (form["cursor"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            var bytes: Data?
            if !text.isEmpty {
                guard let d = Base64URL.decode(text) else {
                    throw AdminError(.badRequest, "bad_body", "the cursor must be base64url")
                }
                bytes = d
            }
            try await api.guarded { try await api.facade.setCursor(jobID, to: bytes, actor: actor) }
            return HTML.redirect(Self.flash(back, bytes == nil ? "cursor_cleared" : "cursor_set", job: jobID))
        default:
            throw AdminError(.notFound, "not_found", "no such action")
        }
    }

    /// Pause or resume every job the table's filter matches (Oban Web's "act on everything
    /// matching the filter"), each audited.
    func bulk(_ request: Request, _ c: AdminRequestContext) async throws -> Response {
        let form = try await Self.form(request)
        let filter = try Filter(status: form["status"], kind: form["kind"], q: form["q"])
        let actor = "dashboard bulk (\(c.role?.rawValue ?? "open"))"
        let action = form["action"] ?? ""
        guard action == "pause" || action == "resume" else {
            throw AdminError(.badRequest, "bad_body", "'action' must be pause or resume")
        }
        let note = (form["note"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard note.utf8.count <= 1024 else {
            throw AdminError(.badRequest, "bad_body", "a pause note is at most 1024 bytes")
        }
        var n = 0
        for e in try await entries() where filter.matches(e) {
            guard let row = e.listing.row, row.paused != (action == "pause") else { continue }
            try await api.guarded {
                if action == "pause" {
                    try await api.facade.pause(
                        e.listing.id, note: note.isEmpty ? "paused from the dashboard (bulk)" : note, actor: actor)
                } else {
                    try await api.facade.resume(e.listing.id, actor: actor)
                }
            }
            n += 1
        }
        let back = filter.query.isEmpty ? "/" : "/?" + filter.query
        return HTML.redirect(Self.flash(back, action == "pause" ? "bulk_paused" : "bulk_resumed", n: n))
    }

    func deadLetterAction(_ request: Request, _ c: AdminRequestContext) async throws -> Response {
        let form = try await Self.form(request)
        let back = HTML.localPath(form["back"] ?? "/dlq")
        let selection: DeadLetterSelection
        let action = form["action"] ?? ""
        switch action {
        case "replay", "drop":
            let ids = try form.all("ids").map { text -> Int64 in
                guard let n = Int64(text) else {
                    throw AdminError(.badRequest, "bad_body", "a dead letter id is a number")
                }
                return n
            }
            guard !ids.isEmpty else { throw AdminError(.badRequest, "bad_body", "select at least one dead letter") }
            selection = .ids(ids)
        case "replay_all":
            if let job = form["scope_job"] {
                guard AdminAPI.isJobID(job) else {
                    throw AdminError(.badRequest, "bad_body", "'scope_job' must be a job id")
                }
                selection = .job(job)
            } else {
                selection = .all
            }
        default:
            throw AdminError(.badRequest, "bad_body", "'action' must be replay, drop or replay_all")
        }
        let n = try await api.guarded {
            action == "drop"
                ? try await api.facade.dropDeadLetters(selection) : try await api.facade.replayDeadLetters(selection)
        }
        return HTML.redirect(Self.flash(back, action == "drop" ? "dropped" : "replayed", n: n))
    }

    // MARK: Rendering

    /// The values every page has: who is looking, the CSRF token, the navigation, the flash.
    func base(_ request: Request, _ c: AdminRequestContext, title: String, nav: String) -> [String: Any] {
        let items: [(String, String)] = [
            ("/", "Jobs"), ("/plugins", "Plugins"), ("/outbox", "Outbox"), ("/dlq", "Dead letters"),
            ("/audit", "Audit"),
        ]
        var v: [String: Any] = [
            "title": title, "csrf": c.session?.csrf ?? "", "open": c.openAccess, "role": c.role?.rawValue ?? "read",
            "canAct": c.role == .admin, "version": PollerdVersion.string, "now": RFC3339.format(ms: api.clock.nowMs),
            "nav": items.map { ["href": $0.0, "label": $0.1, "current": $0.0 == nav] as [String: Any] },
            "back": Self.back(request),
        ]
        if let f = Self.flashText(request.uri.queryParameters) { v["flash"] = f }
        return v
    }

    func render(_ template: String, _ values: [String: Any]) throws -> Response {
        guard let content = library.render(values, withTemplate: template) else {
            throw AdminError(.internalServerError, "template", "the dashboard template '\(template)' is missing")
        }
        var page = values
        page["content"] = content
        guard let html = library.render(page, withTemplate: "layout") else {
            throw AdminError(.internalServerError, "template", "the dashboard layout is missing")
        }
        return HTML.response(html)
    }

    /// A form body (the middleware may have collected it already to check the CSRF token).
    static func form(_ request: Request) async throws -> FormFields {
        var request = request
        guard request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") ?? true else {
            throw AdminError(
                .badRequest, "bad_body", "the dashboard's actions take a form (application/x-www-form-urlencoded)")
        }
        return FormFields(String(buffer: try await request.collectBody(upTo: 64 << 10)))
    }

    /// This page's address without its flash parameters: where an action comes back to.
    static func back(_ request: Request) -> String {
        let kept = (request.uri.query ?? "").split(separator: "&").filter { !$0.hasPrefix("done") }
        return request.uri.path + (kept.isEmpty ? "" : "?" + kept.joined(separator: "&"))
    }

    /// `back` with what was done, for the page to say so.
    static func flash(
        _ back: String, _ code: String, job: String? = nil, n: Int? = nil, status: String? = nil
    ) -> String {
        var q = "done=\(code)"
        if let job { q += "&done_job=\(PercentEncoding.component(job))" }
        if let n { q += "&done_n=\(n)" }
        if let status { q += "&done_status=\(PercentEncoding.component(status))" }
        return back + (back.contains("?") ? "&" : "?") + q
    }

    /// The sentence a flash code stands for (a fixed text per code: a crafted link cannot make
    /// the page say anything else).
    static func flashText(_ p: Parameters) -> String? {
        guard let code = p.get("done") else { return nil }
        let job = p.get("done_job").flatMap { AdminAPI.isJobID($0) ? $0 : nil } ?? "the job"
        let n = p.get("done_n").flatMap { Int($0) } ?? 0
        switch code {
        case "paused": return "Paused \(job)."
        case "resumed": return "Resumed \(job)."
        case "reset": return "Reset \(job): its cursor and error counters are cleared."
        case "ran":
            let status =
                p.get("done_status").flatMap { ["ok", "transient", "permanent", "config"].contains($0) ? $0 : nil }
                ?? "done"
            return "Ran \(job): \(status)."
        case "rewound": return "Rewound \(job) to the cursor of tick \(n)."
        case "cursor_set": return "Set the cursor of \(job)."
        case "cursor_cleared": return "Cleared the cursor of \(job)."
        case "bulk_paused": return "Paused \(n) job(s)."
        case "bulk_resumed": return "Resumed \(n) job(s)."
        case "replayed": return "Replayed \(n) dead letter(s)."
        case "dropped": return "Dropped \(n) dead letter(s)."
        default: return nil
        }
    }

    static func lane(_ l: OutboxLaneStats, now: Int64) -> [String: Any] {
        [
            "job": l.jobID, "sink": l.sink, "pending": l.pending, "attempts": l.attempts,
            "nextAttempt": l.pending > 0 ? relative(l.nextAttemptAtMs, now: now) : "—",
            "oldest": relative(l.oldestFoundAtMs, now: now),
            "delivered": l.delivered, "retried": l.retried, "deadLettered": l.deadLettered, "error": l.lastError ?? "",
        ]
    }

    static func letter(_ d: DeadLetter, now: Int64) -> [String: Any] {
        [
            "id": d.id, "job": d.jobID, "sink": d.sink, "key": clip(d.key, 60), "attempts": d.attempts,
            "failed": relative(d.failedAtMs, now: now), "failedAt": RFC3339.format(ms: d.failedAtMs),
            "error": clip(d.lastError, 300),
        ]
    }

    static func audit(_ a: AuditEntry, now: Int64) -> [String: Any] {
        var o: [String: Any] = [
            "at": relative(a.atMs, now: now), "atFull": RFC3339.format(ms: a.atMs), "actor": a.actor,
            "action": a.action,
            "detail": a.detail ?? "",
        ]
        if let j = a.jobID { o["job"] = j }
        return o
    }

    // MARK: Formatting

    static func absolute(_ ms: Int64?) -> String { ms.map { RFC3339.format(ms: $0) } ?? "" }

    /// "12 s ago", "in 3 min", "never".
    static func relative(_ ms: Int64?, now: Int64) -> String {
        guard let ms else { return "never" }
        let d = now - ms
        let a = abs(d) / 1000
        let text: String
        switch a {
        case 0: return "now"
        case ..<60: text = "\(a) s"
        case ..<3600: text = "\(a / 60) min"
        case ..<172_800: text = "\(a / 3600) h"
        default: text = "\(a / 86400) d"
        }
        return d >= 0 ? "\(text) ago" : "in \(text)"
    }

    static func duration(_ ms: Int64) -> String {
        ms < 1000 ? "\(ms) ms" : String(format: "%.1f s", Double(ms) / 1000)
    }

    static func clip(_ s: String, _ n: Int) -> String { s.count <= n ? s : String(s.prefix(n)) + "…" }

    /// The recent ticks as an inline SVG bar chart, oldest left: a bar's height is the tick's
    /// duration (square root, so short ticks stay visible beside a slow one); green ok, red an
    /// error, a short grey bar a skipped slot. Each bar's title says what it was.
    static func sparkline(_ newestFirst: [TickRecord]) -> String {
        guard !newestFirst.isEmpty else { return "<span class=\"muted\">no ticks yet</span>" }
        let ticks = Array(newestFirst.reversed())
        let barW = 4
        let gap = 1
        let height = 22
        let width = ticks.count * (barW + gap)
        let longest = max(1, ticks.filter { $0.status != "skipped" }.map(\.durationMs).max() ?? 1)
        var ok = 0
        var errors = 0
        var skipped = 0
        var bars = ""
        for (i, t) in ticks.enumerated() {
            let cls: String
            let h: Int
            switch t.status {
            case "skipped":
                cls = "skip"
                h = 5
                skipped += 1
            case "ok":
                cls = "ok"
                ok += 1
                h = max(2, Int((Double(t.durationMs) / Double(longest)).squareRoot() * Double(height - 2)))
            case "cancelled":
                cls = "other"
                h = 3
            default:
                cls = "err"
                errors += 1
                h = max(3, Int((Double(t.durationMs) / Double(longest)).squareRoot() * Double(height - 2)))
            }
            var title = "\(RFC3339.format(ms: t.startedAtMs)): \(t.status)"
            if t.status != "skipped" { title += ", \(duration(t.durationMs)), \(t.itemsNew) new" }
            if let e = t.error { title += " (\(clip(e, 120)))" }
            bars +=
                "<rect class=\"\(cls)\" x=\"\(i * (barW + gap))\" y=\"\(height - h)\" width=\"\(barW)\" height=\"\(h)\"><title>\(HTML.escape(title))</title></rect>"
        }
        let label = "last \(ticks.count) ticks: \(ok) ok, \(errors) failed, \(skipped) skipped"
        return
            "<svg class=\"spark\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"\(label)\">"
            + "<line class=\"base\" x1=\"0\" y1=\"\(height)\" x2=\"\(width)\" y2=\"\(height)\"/>" + bars + "</svg>"
    }
}
