import Foundation
public import Logging
public import PollerdConfig
public import PollerdCore

/// Runs a plugin through what pollerd will ask of it and says what is wrong in words its
/// author can act on (`pollerd plugins check DIR`).
public enum PluginCheck {
    public struct Finding: Sendable {
        public var ok: Bool
        public var step: String
        public var detail: String
    }

    /// What to do about an error, by its code.
    static func hint(_ e: PollerError) -> String {
        switch e.code {
        case .noReply:
            return
                "the plugin must read one request line from stdin and print exactly one JSON line on stdout before exiting"
        case .emptyReply: return "the first stdout line was empty; print the reply as the first line"
        case .badReply:
            return
                "print {\"result\":{…}} or {\"error\":{\"code\":…,\"message\":…}} as compact JSON on one line; logs go to stderr"
        case .badCursor:
            return
                "next_cursor must be URL-safe base64 without padding (Python: base64.urlsafe_b64encode(raw).decode().rstrip('='))"
        case .replyTooLarge: return "keep the reply line under max_reply_bytes, or raise it in [plugin.poller]"
        case .timeout: return "the tick took longer than tick_timeout_secs"
        case .spawnFailed: return "check [plugin.entrypoint] command (and that it is executable)"
        case .pluginFailed, .pluginCrashed, .pluginRestarting, .pluginExited:
            return
                "the process exited or failed its handshake: a long-lived plugin must answer initialize with result.manifest.plugin.id equal to the manifest's id, then serve poll_tick frames until shutdown"
        case .pluginError:
            return
                "the plugin answered with an error: \(e.errorClass == .transient ? "the job would be retried" : "the job would pause")"
        default: return ""
        }
    }

    /// Ticks each kind twice (without, then with the cursor the first tick returned), its
    /// process supervised on `clock`.
    public static func run(
        manifest: PluginManifest, config: JSONValue, builtins: PollerRegistry, clock: any WallClock, logger: Logger
    ) async -> [Finding] {
        let nowMs = clock.nowMs
        var out: [Finding] = []
        // A set of processes of its own: the check starts and stops only its plugin.
        let processes = PluginProcesses(clock: clock, logger: logger)
        let set = PluginSet.load(
            directories: [(manifest.directory as NSString).deletingLastPathComponent], relativeTo: "/",
            builtins: builtins, processes: processes)
        let mine = set.pollers.filter { manifest.kinds.contains($0.kind) }
        if let why = set.leftOut[manifest.id] {
            await processes.shutdownAll()
            return [Finding(ok: false, step: "load", detail: why)]
        }
        guard !mine.isEmpty else {
            await processes.shutdownAll()
            return [Finding(ok: false, step: "load", detail: "no kind of this plugin could be loaded")]
        }
        for p in mine {
            var cursor: Data?
            for (n, label) in ["tick without a cursor", "tick with the returned cursor"].enumerated() {
                if n == 1 && cursor == nil {
                    out.append(
                        Finding(
                            ok: true, step: "\(p.kind): \(label)",
                            detail: "skipped: the first tick returned no next_cursor"))
                    continue
                }
                let ctx = TickContext(
                    jobID: "plugins-check", kind: p.kind, agent: "default", config: config, cursor: cursor,
                    nowMs: nowMs, intervalHintSecs: 60, timeoutSecs: manifest.tickTimeoutSecs)
                let r = await tick(p, ctx, timeoutSecs: manifest.tickTimeoutSecs, clock: clock)
                switch r {
                case .success(let ack):
                    cursor = ack.nextCursor ?? cursor
                    let c = ack.nextCursor.map { "next_cursor \($0.count) bytes" } ?? "no next_cursor"
                    let nonID = ack.items.filter { $0["id"] == nil }.count
                    var detail = "ok: \(ack.items.count) item(s), \(c), items_seen \(ack.itemsSeen)"
                    if nonID > 0 { detail += "; \(nonID) item(s) without an \"id\" (dedup will hash their content)" }
                    out.append(Finding(ok: true, step: "\(p.kind): \(label)", detail: detail))
                case .failure(let e):
                    let h = hint(e)
                    out.append(
                        Finding(
                            ok: false, step: "\(p.kind): \(label)",
                            detail: "\(e.errorClass.rawValue): \(e.message)\(h.isEmpty ? "" : "\n      → \(h)")"))
                }
            }
        }
        if let tail = set.statuses[manifest.id]?.stderrTail, !tail.isEmpty {
            out.append(
                Finding(ok: true, step: "stderr (last lines)", detail: tail.suffix(5).joined(separator: "\n      ")))
        }
        await processes.shutdownAll()
        return out
    }

    static func tick(
        _ p: any Poller, _ ctx: TickContext, timeoutSecs: Int64, clock: any WallClock
    ) async -> Result<TickAck, PollerError> {
        await withTaskGroup(of: Result<TickAck, PollerError>?.self) { g in
            g.addTask {
                do throws(PollerError) { return .success(try await p.tick(ctx)) } catch {
                    return Task.isCancelled ? nil : .failure(error)
                }
            }
            g.addTask {
                try? await clock.sleep(untilMs: clock.nowMs + timeoutSecs * 1000)
                return Task.isCancelled
                    ? nil : .failure(.transient(.timeout, "no reply within tick_timeout_secs (\(timeoutSecs) s)"))
            }
            var first: Result<TickAck, PollerError> = .failure(.transient(.timeout, "no reply"))
            for await r in g {
                if let r {
                    first = r
                    break
                }
            }
            g.cancelAll()
            return first
        }
    }
}
