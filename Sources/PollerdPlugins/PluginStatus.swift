public import Logging
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
    /// Where each stderr line also goes (the daemon's log, at debug, with the plugin id).
    private let forward: (@Sendable (String) -> Void)?

    public init(tailLines: Int, forward: (@Sendable (String) -> Void)? = nil) {
        self.tailLines = max(1, tailLines)
        self.forward = forward
    }

    /// A status whose stderr lines also go to `logger` at debug, with the plugin's id.
    public static func logging(tailLines: Int, pluginID: String, logger: Logger) -> PluginStatus {
        guard logger.logLevel <= .debug else { return PluginStatus(tailLines: tailLines) }
        let forward: @Sendable (String) -> Void = { line in
            logger.debug(
                "plugin stderr", metadata: ["pollerd.plugin.id": .string(pluginID), "pollerd.line": .string(line)])
        }
        return PluginStatus(tailLines: tailLines, forward: forward)
    }

    /// Appends stderr text (split into lines), keeping the last `tailLines`.
    public func appendStderr(_ text: String) {
        let new = text.split(separator: "\n", omittingEmptySubsequences: true).map { String($0.prefix(1000)) }
        guard !new.isEmpty else { return }
        if let forward { for line in new { forward(line) } }
        state.withLock { s in
            s.stderrTail += new
            if s.stderrTail.count > tailLines { s.stderrTail.removeFirst(s.stderrTail.count - tailLines) }
        }
    }

    func recordTick(error: String?) {
        state.withLock { s in
            s.ticks += 1
            if let error {
                s.failures += 1
                s.lastError = error
            }
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
