#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IP address as bytes: 4 for IPv4, 16 for IPv6.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses the canonical text forms only: a dotted quad of decimal numbers (no leading zeros),
    /// or an IPv6 address (brackets allowed). `inet_pton` is strict in exactly that way.
    public init?(_ text: String) {
        var t = Substring(text)
        if t.hasPrefix("["), t.hasSuffix("]") { t = t.dropFirst().dropLast() }
        if let pct = t.firstIndex(of: "%") { t = t[..<pct] } // a zone id names an interface, not an address
        var v4 = in_addr()
        if inet_pton(AF_INET, String(t), &v4) == 1 {
            self.bytes = withUnsafeBytes(of: v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(t), &v6) == 1 {
            self.bytes = withUnsafeBytes(of: v6) { Array($0) }
            return
        }
        return nil
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// The canonical text form (`inet_ntop`).
    public var description: String {
        var buf = [CChar](repeating: 0, count: 64)
        let family = isIPv4 ? AF_INET : AF_INET6
        let ok = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &buf, socklen_t(buf.count)) != nil }
        guard ok else { return bytes.map(String.init).joined(separator: ".") }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The IPv4 address inside this one's last four bytes.
    func embeddedV4(at offset: Int = 12) -> IPAddress? { IPAddress(bytes: Array(bytes[offset..<offset + 4])) }

    /// True when the first `bits` bits equal `prefix`'s.
    func matches(_ prefix: [UInt8], bits: Int) -> Bool {
        guard prefix.count == bytes.count else { return false }
        var left = bits
        for i in 0..<bytes.count where left > 0 {
            let take = min(8, left)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if bytes[i] & mask != prefix[i] & mask { return false }
            left -= take
        }
        return true
    }
}

/// A block of addresses, written `10.0.0.0/8` or `fc00::/7` (a bare address is one address),
/// optionally limited to one port (`127.0.0.1/32:8080`, `[::1]/128:8080`).
public struct AddressRange: Sendable, Hashable, CustomStringConvertible {
    public let base: IPAddress
    public let bits: Int
    public let port: Int?

    public init(_ base: IPAddress, bits: Int, port: Int? = nil) {
        self.base = base
        self.bits = max(0, min(bits, base.bytes.count * 8))
        self.port = port
    }

    /// Parses `ADDR[/BITS][:PORT]` (an IPv6 address with a port goes in brackets).
    public init?(_ text: String) {
        var rest = Substring(text)
        var port: Int?
        if rest.hasPrefix("[") {
            // [ADDR]/BITS:PORT or [ADDR/BITS]:PORT
            guard let close = rest.firstIndex(of: "]") else { return nil }
            var inside = rest[rest.index(after: rest.startIndex)..<close]
            var after = rest[rest.index(after: close)...]
            if after.hasPrefix("/") {
                let end = after.firstIndex(of: ":") ?? after.endIndex
                inside = Substring(String(inside) + after[..<end])
                after = after[end...]
            }
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            } else if !after.isEmpty {
                return nil
            }
            rest = inside
        } else if rest.filter({ $0 == ":" }).count == 1, let colon = rest.lastIndex(of: ":") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            rest = rest[..<colon]
        }
        var bits: Int?
        if let slash = rest.firstIndex(of: "/") {
            guard let b = Int(rest[rest.index(after: slash)...]) else { return nil }
            bits = b
            rest = rest[..<slash]
        }
        guard let ip = IPAddress(String(rest)) else { return nil }
        let maxBits = ip.bytes.count * 8
        if let bits, !(0...maxBits).contains(bits) { return nil }
        self.init(ip, bits: bits ?? maxBits, port: port)
    }

    public func contains(_ ip: IPAddress, port: Int) -> Bool {
        if let p = self.port, p != port { return false }
        return ip.matches(base.bytes, bits: bits)
    }

    public var description: String {
        let addr = base.isIPv4 ? "\(base)/\(bits)" : "[\(base)]/\(bits)"
        return port.map { "\(addr):\($0)" } ?? "\(base)/\(bits)"
    }
}

/// Which addresses a job may connect to. Everything that is not publicly routable is refused
/// unless the job says `allow_private_networks: true` or the daemon's allow-list names it.
public struct AddressPolicy: Sendable {
    /// Ranges (with an optional port) the daemon allows even though they are not public: a
    /// local feed proxy, say.
    public var allow: [AddressRange]

    public init(allow: [AddressRange] = []) { self.allow = allow }

    /// Why an address is not public, or nil when it is.
    public static func restriction(of ip: IPAddress) -> String? {
        let b = ip.bytes
        if ip.isIPv4 {
            let table: [([UInt8], Int, String)] = [
                ([0, 0, 0, 0], 8, "unspecified (0.0.0.0/8, \"this network\")"),
                ([10, 0, 0, 0], 8, "private (10.0.0.0/8)"),
                ([100, 64, 0, 0], 10, "carrier-grade NAT (100.64.0.0/10)"),
                ([127, 0, 0, 0], 8, "loopback (127.0.0.0/8)"),
                ([169, 254, 169, 254], 32, "the cloud metadata address (link-local 169.254.169.254)"),
                ([169, 254, 0, 0], 16, "link-local (169.254.0.0/16)"),
                ([172, 16, 0, 0], 12, "private (172.16.0.0/12)"),
                ([192, 0, 0, 0], 24, "IETF protocol assignments (192.0.0.0/24)"),
                ([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
                ([192, 168, 0, 0], 16, "private (192.168.0.0/16)"),
                ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
                ([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
                ([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
                ([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
                ([255, 255, 255, 255], 32, "broadcast (255.255.255.255)"),
                ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
            ]
            for (prefix, bits, why) in table where ip.matches(prefix, bits: bits) { return why }
            return nil
        }
        // IPv6 forms that carry an IPv4 address are judged by that address.
        let zero12 = [UInt8](repeating: 0, count: 12)
        if b.allSatisfy({ $0 == 0 }) { return "unspecified (::)" }
        if b == zero12 + [0, 0, 0, 1] { return "loopback (::1)" }
        if ip.matches(zero12[0..<10] + [0xFF, 0xFF] + [0, 0, 0, 0], bits: 96), let v4 = ip.embeddedV4() {
            return restriction(of: v4).map { "IPv4-mapped form of \(v4), \($0)" }
        }
        if ip.matches(zero12 + [0, 0, 0, 0], bits: 96), let v4 = ip.embeddedV4() {
            return "IPv4-compatible form of \(v4)"
                + (restriction(of: v4).map { ", \($0)" } ?? " (deprecated, never routed)")
        }
        if ip.matches([0, 0x64, 0xFF, 0x9B] + [UInt8](repeating: 0, count: 12), bits: 96), let v4 = ip.embeddedV4() {
            return restriction(of: v4).map { "NAT64 form of \(v4), \($0)" }
        }
        if ip.matches([0, 0x64, 0xFF, 0x9B, 0, 1] + [UInt8](repeating: 0, count: 10), bits: 48) {
            return "local-use NAT64 (64:ff9b:1::/48)"
        }
        if ip.matches([0x20, 0x02] + [UInt8](repeating: 0, count: 14), bits: 16), let v4 = ip.embeddedV4(at: 2) {
            return restriction(of: v4).map { "6to4 form of \(v4), \($0)" }
        }
        let table: [([UInt8], Int, String)] = [
            ([0x01, 0x00] + [UInt8](repeating: 0, count: 14), 64, "discard-only (100::/64)"),
            ([0x20, 0x01, 0x00, 0x00] + [UInt8](repeating: 0, count: 12), 32, "Teredo tunnel (2001::/32)"),
            ([0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 12), 32, "documentation (2001:db8::/32)"),
            ([0xFC] + [UInt8](repeating: 0, count: 15), 7, "unique local (fc00::/7)"),
            ([0xFE, 0x80] + [UInt8](repeating: 0, count: 14), 10, "link-local (fe80::/10)"),
            ([0xFE, 0xC0] + [UInt8](repeating: 0, count: 14), 10, "site-local (fec0::/10)"),
            ([0xFF] + [UInt8](repeating: 0, count: 15), 8, "multicast (ff00::/8)"),
        ]
        for (prefix, bits, why) in table where ip.matches(prefix, bits: bits) { return why }
        return nil
    }

    /// Why this job may not connect to `ip:port`, or nil when it may.
    public func refusal(of ip: IPAddress, port: Int, allowPrivate: Bool) -> String? {
        guard let why = Self.restriction(of: ip) else { return nil }
        if allowPrivate { return nil }
        if allow.contains(where: { $0.contains(ip, port: port) }) { return nil }
        return why
    }

    /// A host written as a number in a form other than a dotted quad of decimals (`2130706433`,
    /// `0x7f.1`, `0177.0.0.1`, `127.1`): what C's `inet_aton` would take it for. Such a host is
    /// refused whatever it stands for: nothing legitimate writes an address that way, and
    /// parsers disagree about it.
    public static func obfuscatedIPv4(_ host: String) -> IPAddress? {
        guard !host.isEmpty, IPAddress(host) == nil,
            host.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == "x" || $0 == "X" })
        else { return nil }
        var addr = in_addr()
        guard inet_aton(host, &addr) != 0 else { return nil }
        return IPAddress(bytes: withUnsafeBytes(of: addr) { Array($0) })
    }
}
