import Foundation
import PollerdCore
import PollerdPollers
import Subprocess
import SystemPackage

extension PluginProcessSpec {
    /// The child's environment as Subprocess takes it, with the lifecycle's own variables.
    func subprocessEnvironment(adding extra: [String: String]) -> Environment {
        var env = ProcessGroup.baseEnvironment(inherit: inheritEnv, from: ProcessInfo.processInfo.environment)
        for (k, v) in self.env { env[k] = v }
        for (k, v) in extra { env[k] = v }
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

extension PluginStatus {
    /// Reads a plugin's stderr to the end, whatever its size, keeping the last lines.
    func drain(_ stderr: SubprocessOutputSequence) async {
        var pending: [UInt8] = []
        do {
            for try await chunk in stderr {
                chunk.withUnsafeBytes { pending.append(contentsOf: $0) }
                if let nl = pending.lastIndex(of: 10) {
                    appendStderr(String(decoding: pending[...nl], as: UTF8.self))
                    pending.removeSubrange(...nl)
                }
                if pending.count > 64 * 1024 { pending.removeFirst(pending.count - 4096) }
            }
        } catch {}
        if !pending.isEmpty { appendStderr(String(decoding: pending, as: UTF8.self)) }
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
