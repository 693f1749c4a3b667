import PollerdCore
import Testing

/// The tokenless admin API's DNS-rebinding guard: which `Host` values name this machine only. Every
/// form the SSRF suite writes an address in is tried as a `Host`; only the loopback ones pass.
@Suite struct LoopbackHostsTests {
    let hosts = LoopbackHosts()

    /// Every address form of the SSRF suite, bracketed where IPv6, with and without a port: passes
    /// exactly when the address it stands for is loopback.
    @Test(arguments: AddressPolicyTests.refused.map(\.0) + AddressPolicyTests.publicAddresses)
    func anAddressPassesOnlyWhenItIsLoopback(_ text: String) throws {
        let ip = try #require(IPAddress(text))
        // Loopback itself, or its IPv4-mapped form (a socket on that address is this machine's); the
        // IPv4-compatible, NAT64 and 6to4 forms of 127.0.0.1 are routed elsewhere.
        let why = AddressPolicy.restriction(of: ip) ?? ""
        let loopback = why.hasPrefix("loopback") || (why.hasPrefix("IPv4-mapped") && why.hasSuffix("(127.0.0.0/8)"))
        let bare = text.hasPrefix("[") ? String(text.dropFirst().dropLast()) : text
        let written = ip.isIPv4 ? [bare, bare + ":9091"] : ["[\(bare)]", "[\(bare)]:9091"]
        for authority in written {
            #expect(hosts.containsAuthority(authority) == loopback, "\(authority)")
        }
        #expect(ip.isLoopback == loopback, "\(text)")
    }

    /// The numeric forms that C's `inet_aton` reads pass when they stand for a loopback address:
    /// no DNS name is written that way, so none can be rebound.
    @Test(arguments: AddressPolicyTests.obfuscated)
    func obfuscatedNumbersAreReadAsTheAddressTheyStandFor(_ host: String, _ meaning: String) {
        #expect(hosts.containsAuthority(host + ":9091") == meaning.hasPrefix("127."), "\(host)")
    }

    /// Names are matched exactly: a name that starts like a loopback address, or ends like one, is
    /// a DNS name its owner can point at 127.0.0.1.
    @Test(arguments: [
        "127.0.0.1.evil.example", "127.evil.example", "127.0.0.1.nip.io", "localhost.evil.example",
        "evil.localhost", "localhost1", "evil.example", "[localhost]", "0x7f.evil.example",
        "", ":9091", "localhost:", "localhost:99999x", "localhost:9091:1", "[::1", "::1", "::1:9091",
        "[::1]x", "127.0.0.1:-1", "127.0.0.1 ", " localhost", "localhost..",
    ])
    func namesAndMalformedValuesThatAreNotLoopbackAreRefused(_ authority: String) {
        #expect(!hosts.containsAuthority(authority), "'\(authority)'")
    }

    @Test(arguments: [
        "localhost", "LOCALHOST", "localhost.", "localhost:9091", "LocalHost:1", "[::1]:9091", "127.0.0.1.",
    ])
    func localhostInAnyCasePasses(_ authority: String) {
        #expect(hosts.containsAuthority(authority), "\(authority)")
    }

    /// The names `/etc/hosts` maps to loopback addresses pass; the names it maps elsewhere do not.
    @Test func aHostsFileAddsItsLoopbackNames() {
        let file = """
            127.0.0.1\tlocalhost
            127.0.1.1 build-box.example build-box # Debian's own name for the machine
            ::1       ip6-localhost ip6-loopback
            10.0.0.5  nas.lan
            # 127.0.0.1 commented.example
            not-an-address  broken.example
            """
        let hosts = LoopbackHosts.parsingHostsFile(file)
        for name in ["localhost", "build-box", "build-box.example", "ip6-localhost", "IP6-LOOPBACK:9091"] {
            #expect(hosts.containsAuthority(name), "\(name)")
        }
        for name in ["nas.lan", "commented.example", "broken.example", "build-box.example.evil.example"] {
            #expect(!hosts.containsAuthority(name), "\(name)")
        }
    }

    @Test func theHostOfAnAuthorityIsParsedStrictly() {
        #expect(LoopbackHosts.host(ofAuthority: "[::1]:9091") == "[::1]")
        #expect(LoopbackHosts.host(ofAuthority: "localhost:9091") == "localhost")
        #expect(LoopbackHosts.host(ofAuthority: "localhost") == "localhost")
        #expect(LoopbackHosts.host(ofAuthority: "::1") == nil)
        #expect(LoopbackHosts.host(ofAuthority: "a:b") == nil)
    }
}
