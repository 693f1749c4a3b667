import Foundation
public import PollerdCore

#if canImport(Glibc)
import Glibc
#endif

/// Who holds a lease: `host:pid:nonce`, new on every start. It is also the daemon's id in the
/// store, and tells a successor on the same host whether the holder's process is gone.
public enum HolderIdentity {
    /// This host's name, with `:` replaced (it separates the id's parts).
    public static var hostname: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count)
        let name = String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name.replacingOccurrences(of: ":", with: "_")
    }

    /// A new holder id for this process.
    public static func make() -> String {
        "\(hostname):\(getpid()):\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
    }

    /// The processes alive on this host now (from `/proc`), for freeing what crashed daemons here
    /// held; nil where `/proc` cannot be listed (nothing is then freed before it expires).
    @Sendable public static func localProcesses() -> HostProcesses? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        let pids = Set(names.compactMap { Int32($0) })
        guard pids.contains(getpid()) else { return nil }
        return HostProcesses(host: hostname, alive: pids)
    }

    /// True for a holder that ran on this host in a process that no longer exists.
    @Sendable public static func isAbandoned(_ holder: String) -> Bool {
        guard let pid = HostProcesses.pid(ofHolder: holder, onHost: hostname), pid != getpid() else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }
}
