/// The hosts that reach only this machine, as a listen address or an HTTP `Host` header names
/// them: an IP literal in the loopback range, in any notation the SSRF rules parse
/// (`127.0.0.1`, `[::1]`, `[::ffff:127.0.0.1]`, `127.1`, `0x7f000001`, `2130706433`), or a name
/// matched exactly (`localhost`, and the names a hosts file maps to loopback addresses).
///
/// A name is never judged by how it starts: `127.0.0.1.evil.example` is a DNS name that its owner
/// can point anywhere, which is how a DNS-rebinding page reaches a loopback port.
public struct LoopbackHosts: Sendable, Equatable {
    /// The loopback names, lowercased, without a trailing dot.
    public let names: Set<String>

    /// `localhost`, plus `names`.
    public init(names: some Sequence<String> = []) {
        var all: Set<String> = ["localhost"]
        for name in names { all.insert(Self.canonicalName(name)) }
        self.names = all
    }

    /// `localhost` and the names that a hosts file (`/etc/hosts` syntax) maps to a loopback address.
    /// A line's first field is the address, the rest its names; `#` starts a comment.
    public static func parsingHostsFile(_ text: String) -> LoopbackHosts {
        var names: [String] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let content = line.prefix { $0 != "#" }
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let ip = IPAddress(String(fields[0])), ip.isLoopback else { continue }
            names += fields.dropFirst().map(String.init)
        }
        return LoopbackHosts(names: names)
    }

    /// True when `host` (a host without a port; an IPv6 literal with or without brackets) reaches
    /// this machine only.
    public func contains(_ host: String) -> Bool {
        let name = Self.canonicalName(host)
        if name.isEmpty { return false }
        if let ip = IPAddress(name) { return ip.isLoopback }
        if let ip = AddressPolicy.obfuscatedIPv4(name) { return ip.isLoopback }
        return names.contains(name)
    }

    /// True when a `Host` header's value (`host`, `host:port`, `[v6]`, `[v6]:port`) names this
    /// machine only. A value that is not of that shape is not.
    public func containsAuthority(_ authority: String) -> Bool {
        guard let host = Self.host(ofAuthority: authority) else { return false }
        return contains(host)
    }

    /// The host of a `Host` header's value, or nil when the value is malformed: an IPv6 literal
    /// must be bracketed, and a port is digits only.
    public static func host(ofAuthority authority: String) -> String? {
        var rest = Substring(authority)
        let host: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = rest[rest.startIndex...close]
            rest = rest[rest.index(after: close)...]
        } else {
            let colon = rest.firstIndex(of: ":") ?? rest.endIndex
            host = rest[..<colon]
            rest = rest[colon...]
        }
        if !rest.isEmpty {
            let port = rest.dropFirst()
            guard rest.first == ":", !port.isEmpty, port.count <= 5, port.allSatisfy(\.isASCIIDigit) else {
                return nil
            }
        }
        return host.isEmpty ? nil : String(host)
    }

    private static func canonicalName(_ host: String) -> String {
        var name = host.lowercased()
        if name.hasSuffix("."), !name.hasSuffix("..") { name.removeLast() }
        return name
    }
}

extension IPAddress {
    /// An address in 127.0.0.0/8, `::1`, or the IPv4-mapped form of a 127.0.0.0/8 address: one
    /// that never leaves this machine.
    public var isLoopback: Bool {
        if isIPv4 { return bytes[0] == 127 }
        if bytes == [UInt8](repeating: 0, count: 15) + [1] { return true }
        let mappedPrefix = [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF]
        return Array(bytes[0..<12]) == mappedPrefix && bytes[12] == 127
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
