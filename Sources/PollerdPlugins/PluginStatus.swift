public import PollerdCore
import Synchronization

/// What an operator sees of a plugin: its last stderr lines, its last error, tick counts.
public final class PluginStatus: Sendable {
    private struct State {
        var stderrTail: [String] = []
        var lastError: String?
        var ticks: Int64 = 0
        var failures: Int64 = 0
    }
    private let state = Mutex(State())
    public let tailLines: Int

    public init(tailLines: Int) {
        self.tailLines = max(1, tailLines)
    }

    /// Appends stderr text (split into lines), keeping the last `tailLines`.
    public func appendStderr(_ text: String) {
        let new = text.split(separator: "\n", omittingEmptySubsequences: true).map { String($0.prefix(1000)) }
        guard !new.isEmpty else { return }
        state.withLock { s in
            s.stderrTail += new
            if s.stderrTail.count > tailLines { s.stderrTail.removeFirst(s.stderrTail.count - tailLines) }
        }
    }

    func recordTick(error: String?) {
        state.withLock { s in
            s.ticks += 1
            if let error { s.failures += 1; s.lastError = error }
        }
    }

    public var stderrTail: [String] { state.withLock { $0.stderrTail } }

    /// A failure with the last stderr lines appended (once), so logs and `jobs show` carry them.
    public func withStderr(_ e: PollerError) -> PollerError {
        guard !e.message.contains("; stderr: ") else { return e }
        let tail = stderrTail.suffix(3).joined(separator: " | ")
        guard !tail.isEmpty else { return e }
        var out = e
        out.message += "; stderr: \(tail)"
        return out
    }
    public var lastError: String? { state.withLock { $0.lastError } }
    public var ticks: Int64 { state.withLock { $0.ticks } }
    public var failures: Int64 { state.withLock { $0.failures } }
}
