import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// systemd's readiness protocol (`Type=notify`): a datagram such as `READY=1` to the unix socket
/// `$NOTIFY_SOCKET` names (a leading `@` is the abstract namespace). Without the variable it does
/// nothing.
public struct SystemdNotifier: Sendable {
    public let path: String?

    /// `path`: the socket; nil reads `$NOTIFY_SOCKET`.
    public init(path: String? = nil) {
        let p = path ?? ProcessInfo.processInfo.environment["NOTIFY_SOCKET"]
        self.path = p.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Sends `state` (`READY=1`, `STOPPING=1`, `RELOADING=1`, `STATUS=…`); false if it could not.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        guard let path else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 } // abstract namespace
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, length) }
            }
        }
        return sent == message.count
    }
}
