import Foundation
public import PollerdCore
import PollerdPollers
import Subprocess
import Synchronization
import SystemPackage
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

    public init(pluginID: String, command: String, args: [String] = [], env: [String: String] = [:], inheritEnv: [String] = [], workingDirectory: String, tickTimeoutSecs: Int64 = 60, maxReplyBytes: Int = 4 << 20, killGraceMs: Int64 = 1000) {
        self.pluginID = pluginID; self.command = command; self.args = args; self.env = env; self.inheritEnv = inheritEnv
        self.workingDirectory = workingDirectory; self.tickTimeoutSecs = tickTimeoutSecs; self.maxReplyBytes = maxReplyBytes; self.killGraceMs = killGraceMs
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

    public init(kind: String, spec: PluginProcessSpec, permits: AsyncSemaphore, status: PluginStatus) {
        self.kind = kind
        self.spec = spec
        self.permits = permits
        self.status = status
        ProcessGroup.ignoreSIGPIPE()
    }

    public var timeoutCapSecs: Int64? { spec.tickTimeoutSecs }

    /// Plugins validate their own config; pollerd only requires JSON (which it has).
    public func validate(config: JSONValue) throws(ConfigIssue) {}

    private struct Collected: Sendable {
        var line: [UInt8] = []
        var sawNewline = false
        var overflow = false
    }

    public func tick(_ ctx: TickContext) async throws(PollerError) -> TickAck {
        guard await permits.acquire() else { throw .transient("cancelled", "tick cancelled while waiting for a plugin slot") }
        defer { permits.release() }
        return try status.settle(await spawn(ctx))
    }

    private func spawn(_ ctx: TickContext) async -> Result<TickAck, PollerError> {
        let params = PluginWire.tickParams(kind: kind, jobID: ctx.jobID, agentID: ctx.agent, cursor: ctx.cursor, config: ctx.config,
                                           nowMs: ctx.nowMs, intervalHintSecs: ctx.intervalHintSecs)
        let request = PluginWire.tickRequestLine(params) + "\n"
        let pgid = Mutex<pid_t?>(nil)
        let limit = spec.maxReplyBytes
        let status = self.status
        let grace = spec.killGraceMs
        let run: ExecutionResult<Collected, SequenceOutput, SequenceOutput>
        do {
            run = try await Subprocess.run(spec.executable, arguments: Arguments(spec.args),
                                           environment: spec.subprocessEnvironment(adding: ["NEXO_POLLER_EPHEMERAL": "1", "NEXO_POLLER_PLUGIN_ID": spec.pluginID]),
                                           workingDirectory: FilePath(spec.workingDirectory), platformOptions: spec.platformOptions,
                                           input: .inputWriter, output: .sequence, error: .sequence) { execution in
                pgid.withLock { $0 = execution.processIdentifier.value }
                return try await withThrowingTaskGroup(of: Collected?.self) { group in
                    group.addTask {
                        // Written here rather than with `.string` input: with 1.0.2, a failed write
                        // (the plugin exited without reading stdin) leaves the descriptor open and
                        // Subprocess then crashes the whole process. Always close stdin.
                        let writer = execution.standardInputWriter
                        _ = try? await writer.write(request)
                        try? await writer.finish()
                        return nil
                    }
                    group.addTask {
                        // Always drain stderr, however much the plugin writes; keep its tail.
                        await status.drain(execution.standardError)
                        return nil
                    }
                    group.addTask {
                        var out = Collected()
                        var iterator = execution.standardOutput.makeAsyncIterator()
                        while !out.sawNewline, let chunk = try await iterator.next() {
                            chunk.withUnsafeBytes { out.line.append(contentsOf: $0) }
                            if let nl = out.line.firstIndex(of: 10) {
                                out.line.removeSubrange(nl...)
                                out.sawNewline = true
                            }
                            if out.line.count > limit {
                                out.overflow = true
                                break
                            }
                        }
                        if out.overflow {
                            try? execution.send(signal: .kill, toProcessGroup: true)
                            return out
                        }
                        if out.sawNewline {
                            // The reply is in: give the plugin a moment to exit (its stdout
                            // closes), then end the group. Leaving the scope cancels the timer.
                            async let _: Void = {
                                try? await Task.sleep(for: .milliseconds(grace))
                                if !Task.isCancelled { try? execution.send(signal: .kill, toProcessGroup: true) }
                            }()
                            do { while try await iterator.next() != nil {} } catch {}
                        }
                        return out
                    }
                    var merged = Collected()
                    for try await part in group {
                        if let part { merged = part }
                    }
                    return merged
                }
            }
        } catch {
            ProcessGroup.kill(pgid.withLock { $0 })
            if Task.isCancelled { return .failure(.transient("cancelled", "plugin '\(spec.pluginID)' tick cancelled")) }
            if let se = error as? SubprocessError, se.code == .executableNotFound {
                return .failure(.config("spawn_failed", "plugin '\(spec.pluginID)': command '\(spec.command)' not found"))
            }
            return .failure(.transient("spawn_failed", "plugin '\(spec.pluginID)': cannot run '\(spec.command)': \(error)"))
        }
        // Grandchildren go with the tick.
        ProcessGroup.kill(pgid.withLock { $0 })
        let out = run.closureResult
        if out.overflow {
            return .failure(.transient("reply_too_large", "plugin '\(spec.pluginID)' reply line exceeds \(limit) bytes"))
        }
        if out.line.isEmpty && !out.sawNewline {
            let how: String
            switch run.terminationStatus {
            case .exited(let c): how = "exited with status \(c)"
            case .signaled(let s): how = "was killed by signal \(s)"
            }
            let tail = status.stderrTail.suffix(3).joined(separator: " | ")
            return .failure(.transient("no_reply", "plugin '\(spec.pluginID)' \(how) without a reply\(tail.isEmpty ? "" : "; stderr: \(tail)")"))
        }
        return PluginWire.decodeReply(Data(out.line), allowBare: false).mapError { e in
            PollerError(e.errorClass, code: e.code, "plugin '\(spec.pluginID)': \(e.message)")
        }
    }
}
