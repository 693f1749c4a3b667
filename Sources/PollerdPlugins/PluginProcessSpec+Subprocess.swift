import Foundation
import PollerdCore
import PollerdPollers
import Subprocess
import Synchronization
import SystemPackage

extension PluginProcessSpec {
    /// The child's environment: the minimal base, the manifest's `env`, the lifecycle's own variables.
    func childEnvironment(adding extra: [String: String]) -> [String: String] {
        var env = ProcessGroup.baseEnvironment(inherit: inheritEnv, from: ProcessInfo.processInfo.environment)
        for (k, v) in self.env { env[k] = v }
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// The child's environment as Subprocess takes it, with the lifecycle's own variables.
    func subprocessEnvironment(adding extra: [String: String]) -> Environment {
        let env = childEnvironment(adding: extra)
        var keys: [Environment.Key: String] = [:]
        for (k, v) in env { if let key = Environment.Key(rawValue: k) { keys[key] = v } }
        return .custom(keys)
    }

    /// Own process group; teardown is SIGTERM to the group, the grace, then SIGKILL.
    var platformOptions: PlatformOptions {
        var options = PlatformOptions()
        options.processGroupID = 0
        options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .milliseconds(killGraceMs))]
        return options
    }

    var executable: Executable { command.contains("/") ? .path(FilePath(command)) : .name(command) }
}

/// Turns a plugin's stderr bytes into whole lines for its status, whatever the amount: a line
/// longer than 64 KiB keeps only its last 4 KiB.
final class StderrLines: Sendable {
    private let status: PluginStatus
    private let pending = Mutex<[UInt8]>([])

    init(status: PluginStatus) { self.status = status }

    func feed(_ bytes: some Sequence<UInt8>) {
        let text: String? = pending.withLock { p in
            p.append(contentsOf: bytes)
            defer { if p.count > 64 * 1024 { p.removeFirst(p.count - 4096) } }
            guard let nl = p.lastIndex(of: 10) else { return nil }
            defer { p.removeSubrange(...nl) }
            return String(decoding: p[...nl], as: UTF8.self)
        }
        if let text { status.appendStderr(text) }
    }

    func flush() {
        let rest = pending.withLock { p in defer { p = [] }; return p }
        if !rest.isEmpty { status.appendStderr(String(decoding: rest, as: UTF8.self)) }
    }
}

extension PluginStatus {
    /// Reads a plugin's stderr to the end, whatever its size, keeping the last lines.
    func drain(_ stderr: SubprocessOutputSequence) async {
        let lines = StderrLines(status: self)
        do {
            for try await chunk in stderr {
                chunk.withUnsafeBytes { lines.feed($0) }
            }
        } catch {}
        lines.flush()
    }

    /// Counts a tick and returns its ack, or throws its failure with the last stderr lines.
    func settle(_ result: Result<TickAck, PollerError>) throws(PollerError) -> TickAck {
        switch result {
        case .success(let ack):
            recordTick(error: nil)
            return ack
        case .failure(let e):
            let full = withStderr(e)
            recordTick(error: full.message)
            throw full
        }
    }
}
