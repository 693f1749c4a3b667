import PollerdCore
import Testing

@testable import PollerdHTTP

/// Every address class the SSRF guard refuses, in every way it can be written.
@Suite struct AddressPolicyTests {
    /// (written form, a word the refusal must contain)
    static let refused: [(String, String)] = [
        ("127.0.0.1", "loopback"), ("127.1.2.3", "loopback"), ("127.255.255.254", "loopback"), ("::1", "loopback"),
        ("[::1]", "loopback"), ("0:0:0:0:0:0:0:1", "loopback"),
        ("10.0.0.1", "private"), ("10.255.255.255", "private"), ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"), ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"), ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"), ("::", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("fc00::1", "unique local"), ("fd12:3456:789a::1", "unique local"),
        // IPv4 inside IPv6.
        ("::ffff:127.0.0.1", "IPv4-mapped"), ("::ffff:7f00:1", "IPv4-mapped"), ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:10.0.0.1", "private"), ("::127.0.0.1", "IPv4-compatible"), ("::10.1.2.3", "IPv4-compatible"),
        ("64:ff9b::7f00:1", "NAT64"), ("64:ff9b::a9fe:a9fe", "metadata"), ("64:ff9b:1::1", "local-use NAT64"),
        ("2002:7f00:1::", "6to4"), ("2002:c0a8:101::1", "6to4"),
        ("240.0.0.1", "reserved"), ("192.0.0.8", "IETF"), ("198.18.0.1", "benchmarking"),
        ("2001:db8::1", "documentation"),
    ]

    @Test(arguments: refused)
    func refusesNonPublicAddresses(_ text: String, _ word: String) throws {
        let ip = try #require(IPAddress(text), "\(text) does not parse")
        let why = try #require(AddressPolicy.restriction(of: ip), "\(text) was not refused")
        #expect(why.contains(word), "\(text): \(why)")
        #expect(AddressPolicy().refusal(of: ip, port: 80, allowPrivate: false) != nil)
        #expect(AddressPolicy().refusal(of: ip, port: 80, allowPrivate: true) == nil)
    }

    static let publicAddresses = [
        "8.8.8.8", "1.1.1.1", "93.184.215.14", "172.32.0.1", "172.15.255.255", "100.128.0.1", "169.253.0.1",
        "2606:4700:4700::1111", "2a00:1450:4001:82b::200e", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
    ]

    @Test(arguments: publicAddresses)
    func allowsPublicAddresses(_ text: String) throws {
        let ip = try #require(IPAddress(text))
        #expect(AddressPolicy.restriction(of: ip) == nil, "\(text) refused: \(AddressPolicy.restriction(of: ip) ?? "")")
    }

    static let obfuscated = [
        ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("0xA9FEA9FE", "169.254.169.254"),
        ("3232235777", "192.168.1.1"),
        ("0x08.0x08.0x08.0x08", "8.8.8.8"), ("010.0.0.1", "8.0.0.1"),
    ]

    /// Hosts written as numbers in other forms are refused whatever they stand for.
    @Test(arguments: obfuscated)
    func refusesObfuscatedNumericHosts(_ host: String, _ meaning: String) {
        #expect(AddressPolicy.obfuscatedIPv4(host)?.description == meaning)
    }

    /// Names that only look numeric, and plain names, are left to DNS (and the check of what it returns).
    @Test(arguments: [
        "fdic.gov", "cafe.be", "deadbeef", "1e100.net", "example.com", "127.0.0.1", "10.0.0.1", "face.b00c",
        "0xcafe.example",
    ])
    func leavesNamesAndDottedQuadsAlone(_ host: String) {
        #expect(AddressPolicy.obfuscatedIPv4(host) == nil)
    }

    @Test func allowListOpensOneRangeAndPort() throws {
        let policy = AddressPolicy(allow: [
            try #require(AddressRange("127.0.0.1/32:8080")), try #require(AddressRange("10.1.0.0/16")),
            try #require(AddressRange("[::1]/128:9000")),
        ])
        #expect(policy.refusal(of: IPAddress("127.0.0.1")!, port: 8080, allowPrivate: false) == nil)
        #expect(policy.refusal(of: IPAddress("127.0.0.1")!, port: 8081, allowPrivate: false) != nil)
        #expect(policy.refusal(of: IPAddress("127.0.0.2")!, port: 8080, allowPrivate: false) != nil)
        #expect(policy.refusal(of: IPAddress("10.1.200.3")!, port: 443, allowPrivate: false) == nil)
        #expect(policy.refusal(of: IPAddress("10.2.0.1")!, port: 443, allowPrivate: false) != nil)
        #expect(policy.refusal(of: IPAddress("::1")!, port: 9000, allowPrivate: false) == nil)
        #expect(AddressRange("10.0.0.0/33") == nil)
        #expect(AddressRange("nonsense") == nil)
    }
}
