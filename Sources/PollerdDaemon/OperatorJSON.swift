import Foundation
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
            "last_run_at": time(r.lastRunAtMs), "next_run_at": time(r.nextRunAtMs),
            "last_status": text(r.lastStatus), "last_error": text(r.lastError), "last_duration_ms": int(r.lastDurationMs),
            "consecutive_errors": .int(Int64(r.consecutiveErrors)), "ticks_total": .int(r.ticksTotal),
            "items_seen_total": .int(r.itemsSeenTotal), "items_dispatched_total": .int(r.itemsDispatchedTotal),
            "paused": .bool(r.paused), "paused_reason": text(r.pausedReason), "done": .bool(r.done),
            "outbox_backlog": .int(r.outboxBacklog), "paused_at": time(r.pausedAtMs), "last_alert_at": time(r.lastAlertAtMs),
        ])
    }

    /// The explain answer.
    public static func explanation(_ e: Explanation) -> JSONValue {
        var next: [String: JSONValue] = ["code": .string(e.code)]
        switch e.next {
        case .paused(let since, let cause, let note):
            next["since"] = time(since); next["cause"] = .string(cause.rawValue); next["note"] = text(note)
        case .breakerOpen(let until, let n), .backingOff(let until, let n):
            next["until"] = time(until); next["failures"] = .int(Int64(n))
        case .backlogFull(let pending, let limit):
            next["pending"] = .int(pending); next["limit"] = .int(limit)
        case .leaseHeld(let holder, let until):
            next["holder"] = .string(holder); next["until"] = time(until)
        case .nextRun(let at):
            next["at"] = time(at)
        case .done, .notInAnyJobFile, .unplanned:
            break
        }
        let last: JSONValue
        switch e.last {
        case .never: last = .null
        case .ran(let at, let status, let error, let duration):
            last = .object(["at": time(at), "status": .string(status), "error": text(error), "duration_ms": int(duration)])
        }
        return .object(["job_id": .string(e.jobID), "last": last, "next": .object(next),
                        "owners": .array(e.owners.map { .string($0) }), "text": .string(e.text)])
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
            "job_id": .string(l.jobID), "sink": .string(l.sink), "pending": .int(l.pending), "attempts": .int(Int64(l.attempts)),
            "next_attempt_at": l.pending > 0 ? time(l.nextAttemptAtMs) : .null, "last_error": text(l.lastError),
            "oldest_found_at": time(l.oldestFoundAtMs), "delivered": .int(l.delivered), "retried": .int(l.retried),
            "dead_lettered": .int(l.deadLettered),
        ])
    }

    /// What a daemon last reported of a plugin.
    public static func plugin(_ r: PluginStatusRecord) -> JSONValue {
        .object([
            "daemon_id": .string(r.daemonID), "plugin_id": .string(r.pluginID), "lifecycle": .string(r.lifecycle),
            "phase": .string(r.phase), "pid": r.pid.map { .int(Int64($0)) } ?? .null, "restarts": .int(Int64(r.restarts)),
            "ticks": .int(r.ticks), "failures": .int(r.failures), "last_error": text(r.lastError),
            "stderr_tail": .array(r.stderrTail.map { .string($0) }), "reported_at": time(r.updatedAtMs),
        ])
    }

    /// One tick of the history.
    public static func tick(_ t: TickRecord) -> JSONValue {
        .object([
            "tick": .int(t.seq), "slot": time(t.slotMs), "started_at": time(t.startedAtMs), "duration_ms": .int(t.durationMs),
            "status": .string(t.status), "error": text(t.error), "items_found": .int(t.itemsFound), "items_new": .int(t.itemsNew),
            "duplicates_dropped": .int(t.duplicates), "cursor_changed": .bool(t.cursorChanged),
            "cursor": t.cursor.map { .string(Base64URL.encode($0)) } ?? .null, "holder": .string(t.holder),
        ])
    }

    /// One audit entry.
    public static func audit(_ a: AuditEntry) -> JSONValue {
        .object(["at": time(a.atMs), "actor": .string(a.actor), "action": .string(a.action), "job_id": text(a.jobID), "detail": text(a.detail)])
    }

    /// A reload plan.
    public static func plan(_ p: ReloadPlan) -> JSONValue {
        func list(_ ids: [String]) -> JSONValue { .array(ids.map(JSONValue.string)) }
        return .object(["add": list(p.add), "replace": list(p.replace), "remove": list(p.remove), "keep": list(p.keep)])
    }
}
