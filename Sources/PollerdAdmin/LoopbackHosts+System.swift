import Foundation
public import PollerdCore

extension LoopbackHosts {
    /// `localhost` and the names this machine's `/etc/hosts` maps to loopback addresses, read once
    /// when the admin server is built (a name added later needs a restart).
    public static func system(hostsFile: String = "/etc/hosts") -> LoopbackHosts {
        guard let text = try? String(contentsOfFile: hostsFile, encoding: .utf8) else { return LoopbackHosts() }
        return parsingHostsFile(text)
    }
}
