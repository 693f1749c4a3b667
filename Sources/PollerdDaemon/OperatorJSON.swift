import Foundation
public import PollerdConfig
public import PollerdCore

/// The JSON an operator reads, the same from the CLI (`--json`) and the admin API.
public enum OperatorJSON {
    static func time(_ ms: Int64?) -> JSONValue { ms.map { .string(RFC3339.format(ms: $0)) } ?? .null }
    static func text(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
    static func int(_ i: Int64?) -> JSONValue { i.map(JSONValue.int) ?? .null }

    /// A job's stored state.
    public static func job(_ r: JobStateRow) -> JSONValue {
        .object([
            "id": .string(r.jobID), "kind": .string(r.kind), "agent": .string(r.agent),
            "active": .bool(r.definitionFingerprint != nil),
            "cursor": r.cursor.map { .string(Base64URL.encode($0)) } ?? .null,
            "cursor_bytes": int(r.cursor.map { Int64($0.count) }),
            "last_run_at": time(r.lastRunAtMs), "next_run_at": time(r.shownNextRunMs),
            "last_status": text(r.lastStatus), "last_error": text(r.lastError),
            "last_duration_ms": int(r.lastDurationMs),
            "consecutive_errors": .int(Int64(r.consecutiveErrors)), "ticks_total": .int(r.ticksTotal),
            "items_seen_total": .int(r.itemsSeenTotal), "items_dispatched_total": .int(r.itemsDispatchedTotal),
            "paused": .bool(r.paused), "paused_reason": text(r.pausedReason), "done": .bool(r.done),
            "outbox_backlog": .int(r.outboxBacklog), "paused_at": time(r.pausedAtMs),
            "last_alert_at": time(r.lastAlertAtMs),
            // The daemon that holds the lease now, or ran the job last (its lease released or lapsed).
            "lease_holder": text(r.leaseHolder), "lease_until": r.leaseUntilMs > 0 ? time(r.leaseUntilMs) : .null,
        ])
    }

    /// The explain answer.
    public static func explanation(_ e: Explanation) -> JSONValue {
        var next: [String: JSONValue] = ["code": .string(e.code)]
        switch e.next {
        case .paused(let since, let cause, let note):
            next["since"] = time(since)
            next["cause"] = .string(cause.rawValue)
            next["note"] = text(note)
        case .breakerOpen(let until, let n), .backingOff(let until, let n):
            next["until"] = time(until)
            next["failures"] = .int(Int64(n))
        case .backlogFull(let pending, let limit):
            next["pending"] = .int(pending)
            next["limit"] = .int(limit)
        case .leaseHeld(let holder, let until):
            next["holder"] = .string(holder)
            next["until"] = time(until)
        case .nextRun(let at):
            next["at"] = time(at)
        case .done, .notInAnyJobFile, .unplanned:
            break
        }
        let last: JSONValue
        switch e.last {
        case .never: last = .null
        case .ran(let at, let status, let error, let duration):
            last = .object([
                "at": time(at), "status": .string(status), "error": text(error), "duration_ms": int(duration),
            ])
        }
        return .object([
            "job_id": .string(e.jobID), "last": last, "next": .object(next),
            "owners": .array(e.owners.map { .string($0) }), "text": .string(e.text),
            "divergent_definitions": .object(e.divergentDefinitions.mapValues { .string($0) }),
        ])
    }

    /// A dead letter, with its envelope when asked.
    public static func deadLetter(_ d: DeadLetter, envelope: Bool) -> JSONValue {
        var o: [String: JSONValue] = [
            "id": .int(d.id), "job_id": .string(d.jobID), "sink": .string(d.sink), "key": .string(d.key),
            "attempts": .int(Int64(d.attempts)), "last_error": .string(d.lastError),
            "found_at": time(d.foundAtMs), "failed_at": time(d.failedAtMs),
        ]
        if envelope { o["envelope"] = (try? JSONValue.parse(Data(d.envelope.utf8))) ?? .string(d.envelope) }
        return .object(o)
    }

    /// One outbox lane (a job × sink queue).
    public static func lane(_ l: OutboxLaneStats) -> JSONValue {
        .object([
            "job_id": .string(l.jobID), "sink": .string(l.sink), "pending": .int(l.pending),
            "attempts": .int(Int64(l.attempts)),
            "next_attempt_at": l.pending > 0 ? time(l.nextAttemptAtMs) : .null, "last_error": text(l.lastError),
            "oldest_found_at": time(l.oldestFoundAtMs), "delivered": .int(l.delivered), "retried": .int(l.retried),
            "dead_lettered": .int(l.deadLettered),
        ])
    }

    /// What a daemon last reported of a plugin.
    public static func plugin(_ reported: DaemonPluginStatus) -> JSONValue {
        let r = reported.status
        return .object([
            "daemon_id": .string(reported.daemonID), "plugin_id": .string(r.pluginID),
            "lifecycle": .string(r.lifecycle),
            "phase": .string(r.phase), "pid": r.pid.map { .int(Int64($0)) } ?? .null,
            "restarts": .int(Int64(r.restarts)),
            "ticks": .int(r.ticks), "failures": .int(r.failures), "last_error": text(r.lastError),
            "stderr_tail": .array(r.stderrTail.map { .string($0) }), "reported_at": time(r.updatedAtMs),
        ])
    }

    /// One tick of the history.
    public static func tick(_ t: TickRecord) -> JSONValue {
        .object([
            "tick": .int(t.seq), "slot": time(t.slotMs), "started_at": time(t.startedAtMs),
            "duration_ms": .int(t.durationMs),
            "status": .string(t.status), "error": text(t.error), "items_found": .int(t.itemsFound),
            "items_new": .int(t.itemsNew),
            "duplicates_dropped": .int(t.duplicates), "cursor_changed": .bool(t.cursorChanged),
            "cursor": t.cursor.map { .string(Base64URL.encode($0)) } ?? .null, "holder": .string(t.holder),
        ])
    }

    /// One audit entry.
    public static func audit(_ a: AuditEntry) -> JSONValue {
        .object([
            "at": time(a.atMs), "actor": .string(a.actor), "action": .string(a.action), "job_id": text(a.jobID),
            "detail": text(a.detail),
        ])
    }

    /// A reload plan.
    public static func plan(_ p: ReloadPlan) -> JSONValue {
        func list(_ ids: [String]) -> JSONValue { .array(ids.map(JSONValue.string)) }
        return .object(["add": list(p.add), "replace": list(p.replace), "remove": list(p.remove), "keep": list(p.keep)])
    }
}

extension OperatorJSON {
    /// A job's health and staleness, added to its JSON.
    static func health(
        _ o: inout [String: JSONValue], row: JobStateRow, spec: JobSpec?, settings: GlobalSettings,
        registeredAtMs: Int64?, nowMs: Int64
    ) {
        o["health"] = .string(JobHealth.of(row, breakerThreshold: settings.breakerThreshold).rawValue)
        o["stale"] = .bool(
            JobHealth.isStale(
                row, maxStalenessSecs: spec?.maxStalenessSecs, registeredAtMs: registeredAtMs, nowMs: nowMs))
        o["max_staleness_secs"] = spec?.maxStalenessSecs.map(JSONValue.int) ?? .null
        o["last_ok_at"] = time(row.lastOkAtMs)
    }

    /// The job listing as `GET /admin/jobs` and `pollerd jobs list --json` give it. Jobs that
    /// never ticked ok count their staleness from `registeredAtMs` (nil: never stale).
    public static func listing(
        _ listing: [JobListing], file: JobFile, registeredAtMs: Int64?, nowMs: Int64
    ) -> JSONValue {
        var out: [JSONValue] = []
        out.reserveCapacity(listing.count)
        let specs = Dictionary(file.jobs.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for l in listing {
            var o: [String: JSONValue] = [
                "id": .string(l.id), "in_file": .bool(l.inFile), "valid": .bool(l.error == nil),
                "removed": .bool(l.removed), "kind": text(l.kind),
                "status": .string(l.status(breakerThreshold: file.settings.breakerThreshold)),
            ]
            if let e = l.error { o["error"] = .string(e) }
            if let r = l.row, case .object(let state) = job(r) {
                o.merge(state) { a, _ in a }
                health(
                    &o, row: r, spec: specs[l.id], settings: file.settings, registeredAtMs: registeredAtMs, nowMs: nowMs
                )
            } else {
                o["never_ran"] = .bool(true)
            }
            out.append(.object(o))
        }
        return .object(["jobs": .array(out)])
    }
}

extension Operator {
    /// `GET /admin/jobs`, from the store.
    public func listingJSON(file: JobFile, registeredAtMs: Int64?) async throws -> JSONValue {
        OperatorJSON.listing(
            try await listing(file: file), file: file, registeredAtMs: registeredAtMs, nowMs: clock.nowMs)
    }

    /// `GET /admin/jobs/{id}`: the state, lease, explain answer, health and the last `ticks` ticks.
    public func jobJSON(_ jobID: String, file: JobFile, ticks: Int, registeredAtMs: Int64?) async throws -> JSONValue {
        let d = try await job(jobID)
        guard case .object(var o) = OperatorJSON.job(d.row) else { return .null }
        o["explain"] = OperatorJSON.explanation(d.explanation)
        o["lease"] =
            d.lease.map { l in
                .object([
                    "holder": .string(l.holder),
                    "until": l.untilMs > 0 ? .string(RFC3339.format(ms: l.untilMs)) : .null, "token": .int(l.token),
                ])
            } ?? .null
        o["in_file"] = .bool(file.jobs.contains { $0.id == jobID })
        OperatorJSON.health(
            &o, row: d.row, spec: file.jobs.first { $0.id == jobID }, settings: file.settings,
            registeredAtMs: registeredAtMs, nowMs: clock.nowMs)
        o["ticks"] = .array(try await history(jobID, limit: ticks).map(OperatorJSON.tick))
        return .object(o)
    }
}
