import Foundation

#if canImport(Glibc)
public import Glibc
#endif

/// Looks at real processes from tests: waits are bounded and yield, they never sleep.
public enum ProcessProbe {
    /// Waits (up to 10 s) until a file holds a pid.
    public static func waitForPid(_ path: String) async throws -> pid_t {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let s = try? String(contentsOfFile: path, encoding: .utf8),
                let pid = pid_t(s.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return pid
            }
            await Task.yield()
        }
        throw CancellationError()
    }

    /// True if the process exists and is not a zombie.
    public static func isLive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    /// Waits (up to 10 s) until the process is gone; false if it survived.
    public static func waitGone(_ pid: pid_t) async -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !isLive(pid) { return true }
            await Task.yield()
        }
        return false
    }
}
