import Foundation
public import PollerdCore
import PollerdPollers
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How to run one plugin's processes: what the manifest says, resolved.
public struct PluginProcessSpec: Sendable, Equatable {
    public var pluginID: String
    public var command: String
    public var args: [String]
    public var env: [String: String]
    public var inheritEnv: [String]
    public var workingDirectory: String
    public var tickTimeoutSecs: Int64
    public var maxReplyBytes: Int
    /// SIGTERM to the group, then this long before SIGKILL.
    public var killGraceMs: Int64

    public init(
        pluginID: String, command: String, args: [String] = [], env: [String: String] = [:], inheritEnv: [String] = [],
        workingDirectory: String, tickTimeoutSecs: Int64 = 60, maxReplyBytes: Int = 4 << 20, killGraceMs: Int64 = 1000
    ) {
        self.pluginID = pluginID
        self.command = command
        self.args = args
        self.env = env
        self.inheritEnv = inheritEnv
        self.workingDirectory = workingDirectory
        self.tickTimeoutSecs = tickTimeoutSecs
        self.maxReplyBytes = maxReplyBytes
        self.killGraceMs = killGraceMs
    }

}

/// A plugin kind with `lifecycle = "ephemeral"`: one process per tick, in its own process group.
/// stdin gets the request line then EOF; the first stdout line is the reply; stderr is always
/// drained (its tail kept); the reply line is bounded; the whole group dies with the tick.
/// `max_concurrent_ticks` is enforced per plugin (the semaphore is shared by its kinds).
public struct EphemeralPluginPoller: Poller {
    public let kind: String
    public let spec: PluginProcessSpec
    public let permits: AsyncSemaphore
    public let status: PluginStatus
    /// Built once: the daemon's environment does not change while it runs.
    private let childEnvironment: [String: String]

    public init(kind: String, spec: PluginProcessSpec, permits: AsyncSemaphore, status: PluginStatus) {
        self.kind = kind
        self.spec = spec
        self.permits = permits
        self.status = status
        self.childEnvironment = spec.childEnvironment(adding: [
            "NEXO_POLLER_EPHEMERAL": "1", "NEXO_POLLER_PLUGIN_ID": spec.pluginID,
        ])
        ProcessGroup.ignoreSIGPIPE()
    }

    public var timeoutCapSecs: Int64? { spec.tickTimeoutSecs }

    /// Ticks start on a worker thread for blocking exchanges and run their exchange there, in
    /// place: no hand-off to a worker and back per tick.
    public var preferredExecutor: (any TaskExecutor)? { BlockingWorkers.shared }
    /// The plugin's `max_concurrent_ticks`, shared by its kinds.
    public var concurrencyLimit: ConcurrencyLimit? {
        ConcurrencyLimit(group: "plugin:" + spec.pluginID, limit: permits.permits)
    }

    /// Plugins validate their own config; pollerd only requires JSON (which it has).
    public func validate(config: JSONValue) throws(ConfigIssue) {}

    public func tick(_ ctx: TickContext) async throws(PollerError) -> TickAck {
        guard await permits.acquire() else {
            throw .transient(.cancelled, "tick cancelled while waiting for a plugin slot")
        }
        defer { permits.release() }
        return try status.settle(await spawn(ctx))
    }

    private func spawn(_ ctx: TickContext) async -> Result<TickAck, PollerError> {
        let request = PluginWire.tickRequestLine(
            kind: kind, jobID: ctx.jobID, agentID: ctx.agent, cursor: ctx.cursor, config: ctx.config,
            nowMs: ctx.nowMs, intervalHintSecs: ctx.intervalHintSecs)
        let limit = spec.maxReplyBytes
        let lines = StderrLines(status: status)
        let result = await DirectSpawn.run(
            executable: spec.command, args: spec.args, env: childEnvironment, workingDirectory: spec.workingDirectory,
            request: request, limit: limit, graceMs: spec.killGraceMs
        ) { lines.feed($0) }
        lines.flush()
        let out: DirectSpawn.Outcome
        switch result {
        case .failure(.notFound):
            return .failure(.config(.spawnFailed, "plugin '\(spec.pluginID)': command '\(spec.command)' not found"))
        case .failure(.spawn(let why)):
            return .failure(.transient(.spawnFailed, "plugin '\(spec.pluginID)': cannot run '\(spec.command)': \(why)"))
        case .success(let o):
            out = o
        }
        if Task.isCancelled { return .failure(.transient(.cancelled, "plugin '\(spec.pluginID)' tick cancelled")) }
        if out.overflow {
            return .failure(.transient(.replyTooLarge, "plugin '\(spec.pluginID)' reply line exceeds \(limit) bytes"))
        }
        if out.line.isEmpty && !out.sawNewline {
            let how = out.how
            let tail = status.stderrTail.suffix(3).joined(separator: " | ")
            return .failure(
                .transient(
                    .noReply,
                    "plugin '\(spec.pluginID)' \(how) without a reply\(tail.isEmpty ? "" : "; stderr: \(tail)")"))
        }
        return PluginWire.decodeReply(out.line, allowBare: false).mapError { e in
            PollerError(e.errorClass, code: e.code, "plugin '\(spec.pluginID)': \(e.message)")
        }
    }
}
