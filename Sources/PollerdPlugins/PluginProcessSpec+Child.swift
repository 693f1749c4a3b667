import Foundation
import PollerdCore
import PollerdPollers
import Synchronization

extension PluginProcessSpec {
    /// The child's environment: the minimal base, the manifest's `env`, the lifecycle's own variables.
    func childEnvironment(adding extra: [String: String]) -> [String: String] {
        var env = ProcessGroup.baseEnvironment(inherit: inheritEnv, from: ProcessInfo.processInfo.environment)
        for (k, v) in self.env { env[k] = v }
        for (k, v) in extra { env[k] = v }
        return env
    }
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
        let rest = pending.withLock { p in
            defer { p = [] }
            return p
        }
        if !rest.isEmpty { status.appendStderr(String(decoding: rest, as: UTF8.self)) }
    }
}

extension PluginStatus {
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
