import Foundation
public import Logging
public import PollerdCore
import PollerdPollers
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Supervision settings from `[plugin.supervisor]`.
public struct SupervisorPolicy: Sendable, Equatable {
    public var respawn: Bool
    public var maxAttempts: Int
    public var backoffMs: Int64
    /// How long `initialize` may take.
    public var handshakeTimeoutMs: Int64 = 5000
    /// How long the plugin gets to exit after `shutdown`.
    public var shutdownGraceMs: Int64 = 2000

    public init(respawn: Bool, maxAttempts: Int, backoffMs: Int64) {
        self.respawn = respawn
        self.maxAttempts = maxAttempts
        self.backoffMs = backoffMs
    }

    /// Backoff before restart attempt `n` (1-based): backoff_ms · 2^(n-1), at most 60 s.
    public func backoff(attempt n: Int) -> Int64 {
        min(60_000, backoffMs << Int64(min(max(n - 1, 0), 20)))
    }
}

/// A long-lived plugin process: started on first use, `initialize`d, then sent `poll_tick`
/// requests with ids (up to `max_concurrent_ticks` in flight). When it dies, the ticks in flight
/// fail as transient and the supervisor restarts it with backoff; after `max_attempts` failed
/// starts in a row it gives up and the plugin's kinds fail with the reason.
public final class LongLivedPlugin: Sendable {
    /// Where the plugin is in its life.
    public enum Phase: Sendable, Equatable {
        case idle, starting
        case running(pid: Int32)
        case backingOff(untilMs: Int64)
        case failed(String)
        case stopped
    }

    private struct State {
        var supervisor: PluginSupervisor
        var nextID: Int64 = 100
        /// Unchecked continuations: each is resumed only by whoever takes it out of `pending`
        /// under the lock, so exactly once; the checked kind costs an allocation per tick.
        var pending: [Int64: UnsafeContinuation<Result<[UInt8], PollerError>, Never>] = [:]
        var channel: PluginChannel?
        var starters: [CheckedContinuation<Result<Void, PollerError>, Never>] = []
        /// Waiting for the current process to be gone (shutdown's grace).
        var goneWaiters: [CheckedContinuation<Void, Never>] = []
    }

    public let spec: PluginProcessSpec
    public let policy: SupervisorPolicy
    public let status: PluginStatus
    public let permits: AsyncSemaphore
    private let state: Mutex<State>
    /// Runs the tasks that prefer it on the plugin's reader thread while a process is served
    /// (`ReaderExecutor`); the runner starts this plugin's ticks with it.
    public let executor = ReaderExecutor()
    /// Backoffs, the handshake timeout and the shutdown grace run on it.
    let clock: any WallClock
    let logger: Logger

    public init(
        spec: PluginProcessSpec, policy: SupervisorPolicy, status: PluginStatus, permits: AsyncSemaphore,
        clock: any WallClock, logger: Logger
    ) {
        self.spec = spec
        self.policy = policy
        self.status = status
        self.permits = permits
        self.clock = clock
        var logger = logger
        logger[metadataKey: "pollerd.plugin.id"] = "\(spec.pluginID)"
        self.logger = logger
        self.state = Mutex(State(supervisor: PluginSupervisor(policy: policy)))
        ProcessGroup.ignoreSIGPIPE()
    }

    /// Where the plugin is in its life.
    public var phase: Phase {
        switch state.withLock({ $0.supervisor.phase }) {
        case .idle: .idle
        case .starting: .starting
        case .running(let pid): .running(pid: pid)
        case .backingOff(let until): .backingOff(untilMs: until)
        case .failed(let why): .failed(why)
        case .stopped: .stopped
        }
    }
    /// How many times it was restarted.
    public var restarts: Int { state.withLock { $0.supervisor.restarts } }

    // MARK: ticks

    /// Sends one `poll_tick` and waits for the reply with the same id.
    public func tick(kind: String, _ ctx: TickContext) async throws(PollerError) -> TickAck {
        guard await permits.acquire() else {
            throw .transient(.cancelled, "tick cancelled while waiting for a plugin slot")
        }
        defer { permits.release() }
        try await ensureRunning()
        let reply = await call(method: "poll_tick") { out in
            PluginWire.writeTickParams(
                kind: kind, jobID: ctx.jobID, agentID: ctx.agent, cursor: ctx.cursor, config: ctx.config,
                nowMs: ctx.nowMs, intervalHintSecs: ctx.intervalHintSecs, into: &out)
        }
        // `jsonrpc` and `id` stay in: a bare TickReply ignores unknown fields, as serde does.
        let result = reply.flatMap { call in
            PluginWire.decodeReply(call.line, allowBare: true, id: call.id)
                .mapError { PollerError($0.errorClass, code: $0.code, "plugin '\(spec.pluginID)': \($0.message)") }
        }
        return try status.settle(result)
    }

    /// Sends a request frame and waits for its reply line (or the plugin's death, or
    /// cancellation); the line is returned with the request's id, unparsed.
    private func call(
        method: String, params: (inout [UInt8]) -> Void
    ) async -> Result<(line: [UInt8], id: Int64), PollerError> {
        let id = state.withLock { s -> Int64 in
            s.nextID += 1
            return s.nextID
        }
        let frame = Self.frame(id: id, method: method, params: params)
        let reply = await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Result<[UInt8], PollerError>, Never>) in
                let target: (channel: PluginChannel, now: Bool)? = state.withLock { s in
                    if Task.isCancelled { return nil }
                    guard case .running = s.supervisor.phase, let ch = s.channel else { return nil }
                    s.pending[id] = c
                    return (ch, Self.writeAtOnce(waiting: s.pending.count, slots: permits.permits))
                }
                // Written outside the lock; a frame refused (the plugin just ended) fails when the
                // reader fails what is pending.
                if let target {
                    target.channel.send(frame, now: target.now, readerFlushes: executor.isCurrent)
                } else {
                    c.resume(
                        returning: .failure(
                            .transient(
                                Task.isCancelled ? .cancelled : .pluginDown, "plugin '\(spec.pluginID)' is not running")
                        ))
                }
            }
        } onCancel: {
            // A timed-out tick gives its id up; a late reply is then ignored.
            state.withLock { $0.pending.removeValue(forKey: id) }?.resume(
                returning: .failure(.transient(.cancelled, "tick cancelled")))
        }
        return reply.map { ($0, id) }
    }

    /// Whether a request frame goes to the plugin at once, or waits to be written together with
    /// the frames of the other ticks running now (see `PluginChannel.send`). `waiting`: the
    /// requests waiting for a reply, this one included; `slots`: `max_concurrent_ticks`.
    ///
    /// At once while the plugin has room to spare: it starts on the request now, while the
    /// daemon prepares the next ones. Batched once three quarters of its slots wait: a plugin
    /// that far behind gains nothing from an early request, and reading many at a time costs it
    /// fewer wake-ups and reads. Measured at 16 in flight (BENCHMARKS.md): batching every frame
    /// sent with others in flight cost the C plugin a fifth of its rate; writing every frame at
    /// once cost the Python SDK plugin a quarter of its; this threshold costs neither.
    static func writeAtOnce(waiting: Int, slots: Int) -> Bool {
        waiting == 1 || waiting * 4 <= slots * 3
    }

    /// Whether the reader may hold `held` batched frames for a later round: while more than three
    /// quarters of `max_concurrent_ticks` were written and are not answered yet, the plugin has
    /// work queued, and frames written together later cost it one wake-up instead of several.
    /// A plugin slower than the daemon (the Python SDK) otherwise got one frame per reply.
    private func mayHoldFrames(held: Int) -> Bool {
        let written = state.withLock { $0.pending.count } - held
        return !Self.writeAtOnce(waiting: written, slots: permits.permits)
    }

    /// A JSON-RPC request frame, written directly: the same bytes as the canonical JSON of
    /// `{"id","jsonrpc","method","params"}` (keys in that sorted order), without building and
    /// sorting an object per tick. `params` appends the params object.
    static func frame(id: Int64, method: String, params: (inout [UInt8]) -> Void) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(literal: #"{"id":"#)
        JSONValue.writeInt(id, into: &out)
        out.append(literal: #","jsonrpc":"2.0","method":"#)
        JSONValue.writeString(method, into: &out)
        out.append(literal: #","params":"#)
        params(&out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The frame for an already built params value.
    static func frame(id: Int64, method: String, params: JSONValue) -> [UInt8] {
        frame(id: id, method: method) { params.writeCanonical(into: &$0) }
    }

    // MARK: lifecycle

    /// Starts the plugin if it is not running, waiting for its handshake.
    func ensureRunning() async throws(PollerError) {
        let now = clock.nowMs
        let use = state.withLock { $0.supervisor.use(nowMs: now) }
        switch use {
        case .ready: return
        case .fail(let why): throw .permanent(.pluginFailed, "plugin '\(spec.pluginID)' failed: \(why)")
        case .restarting(let until):
            throw .transient(
                .pluginRestarting,
                "plugin '\(spec.pluginID)' is restarting (next attempt at \(RFC3339.format(ms: until)))")
        case .start, .wait:
            if case .start = use {
                // Unstructured on purpose: the process outlives the tick that started it; the
                // supervisor owns it until shutdown.
                Task { await self.supervise() }
            }
            let r: Result<Void, PollerError> = await withCheckedContinuation { c in
                let now: Result<Void, PollerError>? = state.withLock { s in
                    switch s.supervisor.phase {
                    case .running: return .success(())
                    case .failed(let why):
                        return .failure(.permanent(.pluginFailed, "plugin '\(spec.pluginID)' failed: \(why)"))
                    case .backingOff(let until) where until > now:
                        return .failure(.transient(.pluginRestarting, "plugin '\(spec.pluginID)' is restarting"))
                    case .stopped: return .failure(.permanent(.pluginFailed, "plugin was shut down"))
                    case .idle, .starting, .backingOff:
                        s.starters.append(c)
                        return nil
                    }
                }
                if let now { c.resume(returning: now) }
            }
            try r.get()
        }
    }

    private func settleStarters(_ r: Result<Void, PollerError>) {
        let waiting = state.withLock { s -> [CheckedContinuation<Result<Void, PollerError>, Never>] in
            defer { s.starters = [] }
            return s.starters
        }
        for c in waiting { c.resume(returning: r) }
    }

    /// Runs the process; restarts it per the policy until it gives up or is shut down.
    private func supervise() async {
        while true {
            let started = clock.nowMs
            let outcome = await runOnce()
            let now = clock.nowMs
            let next = state.withLock { $0.supervisor.exited(outcome, livedMs: now - started, nowMs: now) }
            failPending("plugin '\(spec.pluginID)' exited while ticks were in flight: \(outcome)")
            switch next {
            case .stopped:
                logger.info("plugin stopped", metadata: ["pollerd.plugin.exit": "\(outcome)"])
                settleStarters(.failure(.permanent(.pluginFailed, "plugin was shut down")))
                return
            case .giveUp(let why):
                logger.error(
                    "plugin gave up: its kinds fail until the daemon restarts or reloads it",
                    metadata: ["pollerd.plugin.reason": "\(why)"])
                settleStarters(.failure(.permanent(.pluginFailed, "plugin '\(spec.pluginID)' failed: \(why)")))
                return
            case .restart(let at, let attempt):
                logger.warning(
                    "plugin exited; restarting after a backoff",
                    metadata: [
                        "pollerd.plugin.exit": "\(outcome)", "pollerd.plugin.attempt": "\(attempt)",
                        "pollerd.plugin.restart_in_ms": "\(at - now)",
                    ])
                // Ticks waiting for this start fail now (transient); later ones trigger nothing:
                // the supervisor restarts after the backoff.
                settleStarters(
                    .failure(.transient(.pluginRestarting, "plugin '\(spec.pluginID)' \(outcome); restarting")))
                try? await clock.sleep(untilMs: at)
                guard state.withLock({ $0.supervisor.backoffElapsed() }) else { return }
            }
        }
    }

    private func failPending(_ message: String) {
        let all = state.withLock { s -> [UnsafeContinuation<Result<[UInt8], PollerError>, Never>] in
            defer { s.pending = [:] }
            return Array(s.pending.values)
        }
        for c in all { c.resume(returning: .failure(.transient(.pluginCrashed, message))) }
    }

    /// One process lifetime: spawn, handshake, serve frames until it exits. Returns how it ended.
    private func runOnce() async -> String {
        let env = spec.childEnvironment(adding: ["NEXO_PLUGIN_ID": spec.pluginID])
        let spawned = DirectSpawn.spawn(
            executable: spec.command, args: spec.args, env: env, workingDirectory: spec.workingDirectory)
        let channel: PluginChannel
        switch spawned {
        case .failure(.notFound(let c)): return "cannot start '\(c)': command not found"
        case .failure(.spawn(let why)): return "cannot start '\(spec.command)': \(why)"
        case .success(let child): channel = PluginChannel(child)
        }
        logger.info("plugin started", metadata: ["pollerd.plugin.pid": "\(channel.pid)"])
        state.withLock { s in s.channel = channel }
        let status = self.status
        let limit = spec.maxReplyBytes
        let grace = Duration.milliseconds(spec.killGraceMs)
        let how: String = await withTaskGroup(of: String?.self) { group in
            group.addTask {
                // Handshake first; the reader below answers it.
                await self.handshake(channel)
                return nil
            }
            group.addTask {
                // The reader, on a thread of its own for the life of the process: frames with an
                // id answer a request; lines that are not JSON are logged (kept in the stderr
                // tail) and ignored.
                await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
                    BlockingWorkers.shared.run {
                        let lines = StderrLines(status: status)
                        let how = channel.serve(
                            limit: limit, grace: grace, executor: self.executor,
                            holdFrames: { self.mayHoldFrames(held: $0) }, onLine: { self.route($0) },
                            onOversize: { self.dropOversize(id: $0, limit: limit) },
                            onStderr: { lines.feed($0) })
                        lines.flush()
                        c.resume(returning: how)
                    }
                }
            }
            var how = "ended"
            for await r in group {
                if let r {
                    how = r
                    break
                }
            }
            if channel.killedAsHung {
                how =
                    "was killed: it stopped reading its stdin with \(channel.maxQueuedBytes >> 20) MiB of requests waiting"
                logger.error(
                    "plugin killed as hung: it stopped reading its stdin",
                    metadata: ["pollerd.plugin.pid": "\(channel.pid)"])
            }
            logger.info(
                "plugin exited", metadata: ["pollerd.plugin.pid": "\(channel.pid)", "pollerd.plugin.exit": "\(how)"])
            // The process is reaped: nothing more is sent to it, and whoever waits for a reply (a
            // tick, the handshake) hears now; so does a shutdown waiting for it to be gone.
            let gone = state.withLock { s in
                s.channel = nil
                defer { s.goneWaiters = [] }
                return s.goneWaiters
            }
            for w in gone { w.resume() }
            self.failPending("plugin '\(self.spec.pluginID)' exited while ticks were in flight")
            group.cancelAll()
            return how
        }
        return how + tailHint()
    }

    private func tailHint() -> String {
        let t = status.stderrTail.suffix(3).joined(separator: " | ")
        return t.isEmpty ? "" : "; stderr: \(t)"
    }

    private func handshake(_ channel: PluginChannel) async {
        // The channel is open but calls need `.running`; the handshake goes in directly.
        let id: Int64 = 1
        let frame = JSONValue.object([
            "jsonrpc": .string("2.0"), "id": .int(id), "method": .string("initialize"),
            "params": .object(["nexo_version": .string("0.2.0"), "pollerd": .bool(true)]),
        ]).canonicalString
        let reply: Result<JSONValue, PollerError> = await withTaskGroup(of: Result<JSONValue, PollerError>?.self) { g in
            g.addTask {
                await withUnsafeContinuation { (c: UnsafeContinuation<Result<[UInt8], PollerError>, Never>) in
                    // The reader clears the channel before it fails what is pending: a process
                    // that already exited is seen here, so nobody waits for a reply never coming.
                    let open = self.state.withLock { s -> Bool in
                        guard s.channel != nil, !Task.isCancelled else { return false }
                        s.pending[id] = c
                        return true
                    }
                    if open {
                        channel.send(Array(frame.utf8))
                    } else {
                        c.resume(returning: .failure(.transient(.pluginExited, "plugin exited before the handshake")))
                    }
                }.flatMap { Self.handshakeFrame($0, id: id) }
            }
            g.addTask {
                try? await self.clock.sleep(untilMs: self.clock.nowMs + self.policy.handshakeTimeoutMs)
                if Task.isCancelled { return nil }
                return .failure(
                    .transient(.handshakeTimeout, "no reply to initialize within \(self.policy.handshakeTimeoutMs) ms"))
            }
            var first: Result<JSONValue, PollerError> = .failure(.transient(.handshake, "no reply"))
            for await r in g {
                if let r {
                    first = r
                    break
                }
            }
            g.cancelAll()
            // Resume the waiter if the timeout won, so the group can finish.
            state.withLock { $0.pending.removeValue(forKey: id) }?.resume(
                returning: .failure(.transient(.handshakeTimeout, "no reply to initialize")))
            return first
        }
        var problem: String?
        switch reply {
        case .failure(let e): problem = e.message
        case .success(let frame):
            let got = frame["result"]?["manifest"]?["plugin"]?["id"]?.stringValue
            if frame["error"] != nil {
                problem = "initialize failed: \(frame["error"]!.canonicalString)"
            } else if got != spec.pluginID {
                problem = "initialize reply names plugin '\(got ?? "nothing")', expected '\(spec.pluginID)'"
            }
        }
        if let problem {
            status.appendStderr("[pollerd] handshake failed: \(problem)")
            logger.warning("plugin handshake failed", metadata: ["pollerd.plugin.reason": "\(problem)"])
            channel.killGroup()
            return
        }
        state.withLock { s in s.supervisor.handshook(pid: channel.pid) }
        settleStarters(.success(()))
    }

    /// Hands a stdout line to the tick (or handshake) waiting for its id. The id is scanned for
    /// (`PluginWire.frameID`, nothing built; it stops at the id, so an id written first costs
    /// the least) and the waiting task parses the line, so the reader thread resumes it without
    /// parsing. A line whose id cannot be read that way (an escaped key, `7.0`) is parsed here to
    /// find it: lines that are not JSON or carry no id are logged and ignored.
    private func route(_ line: [UInt8]) {
        var id = PluginWire.frameID(prefix: line)
        if id == nil, let v = try? JSONValue.parse(bytes: line), case .object = v { id = v["id"]?.intValue }
        guard let id else {
            if !line.isEmpty {
                status.appendStderr(
                    "[pollerd] ignored stdout line: \(String(decoding: line.prefix(200), as: UTF8.self))")
            }
            return
        }
        state.withLock { $0.pending.removeValue(forKey: id) }?.resume(returning: .success(line))
    }

    /// A stdout line over the reply bound was dropped: the tick it answers (if its top-level id
    /// could be read, wherever it stands) fails now rather than at its timeout.
    private func dropOversize(id: Int64?, limit: Int) {
        status.appendStderr("[pollerd] stdout line over \(limit) bytes dropped")
        guard let id else { return }
        state.withLock { $0.pending.removeValue(forKey: id) }?
            .resume(
                returning: .failure(
                    .transient(.replyTooLarge, "plugin '\(spec.pluginID)' reply line exceeds \(limit) bytes")))
    }

    /// Sends `shutdown`, waits the grace period for the process to exit, then kills its group.
    public func shutdown() async {
        let (running, channel) = state.withLock { s -> (Bool, PluginChannel?) in (s.supervisor.shutdown(), s.channel) }
        settleStarters(.failure(.permanent(.pluginFailed, "plugin was shut down")))
        if let channel {
            if running {
                let id = state.withLock { s -> Int64 in
                    s.nextID += 1
                    return s.nextID
                }
                let frame = JSONValue.object([
                    "jsonrpc": .string("2.0"), "id": .int(id), "method": .string("shutdown"),
                    "params": .object(["reason": .string("daemon exit")]),
                ]).canonicalString
                channel.send(Array(frame.utf8))
                // Then EOF, for a plugin that ends on that rather than on `shutdown`.
                channel.closeInput()
                await waitGone(graceMs: policy.shutdownGraceMs)
            }
            channel.killGroup()
        }
        failPending("plugin shut down")
    }

    /// Waits until the current process is gone (reaped) or the grace on the clock is over.
    private func waitGone(graceMs: Int64) async {
        let deadline = clock.nowMs + graceMs
        await withTaskGroup(of: Void.self) { g in
            g.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let goneAlready = self.state.withLock { s -> Bool in
                        if s.channel == nil { return true }
                        s.goneWaiters.append(c)
                        return false
                    }
                    if goneAlready { c.resume() }
                }
            }
            g.addTask { try? await self.clock.sleep(untilMs: deadline) }
            await g.next()
            g.cancelAll()
            // The waiter is resumed by the reader when the process goes; resume it now if the
            // grace ran out first, so the group can end.
            let left = self.state.withLock { s in
                defer { s.goneWaiters = [] }
                return s.goneWaiters
            }
            for w in left { w.resume() }
        }
    }
}

/// The poller for one kind of a long-lived plugin.
public struct LongLivedPluginPoller: Poller {
    public let kind: String
    public let plugin: LongLivedPlugin

    public init(kind: String, plugin: LongLivedPlugin) {
        self.kind = kind
        self.plugin = plugin
    }

    public var timeoutCapSecs: Int64? { plugin.spec.tickTimeoutSecs }
    public var preferredExecutor: (any TaskExecutor)? { plugin.executor }
    /// The plugin's `max_concurrent_ticks`, shared by its kinds.
    public var concurrencyLimit: ConcurrencyLimit? {
        ConcurrencyLimit(group: "plugin:" + plugin.spec.pluginID, limit: plugin.permits.permits)
    }
    public func validate(config: JSONValue) throws(ConfigIssue) {}
    public func tick(_ ctx: TickContext) async throws(PollerError) -> TickAck {
        try await plugin.tick(kind: kind, ctx)
    }
}

extension LongLivedPlugin {
    /// The handshake's reply frame as JSON; a line that is not a JSON object answering `id`
    /// fails as the plugin's bad reply.
    static func handshakeFrame(_ line: [UInt8], id: Int64) -> Result<JSONValue, PollerError> {
        guard let v = try? JSONValue.parse(bytes: line), case .object = v else {
            return .failure(
                .transient(.badReply, "plugin reply is not JSON: \(String(decoding: line.prefix(200), as: UTF8.self))"))
        }
        guard v["id"]?.intValue == id else { return .failure(.transient(.badReply, "reply frame names two ids")) }
        return .success(v)
    }
}
