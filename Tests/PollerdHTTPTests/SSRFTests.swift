import Foundation
import PollerdCore
import Testing

@testable import PollerdHTTP

/// The SSRF guard against real loopback servers: every refused form reaches nothing.
@Suite struct SSRFTests {
    /// Every way of writing a loopback address at the test servers (IPv4 at `v4`, IPv6 at `v6`).
    static func loopbackForms(v4: Int, v6: Int) -> [String] {
        [
            "http://127.0.0.1:\(v4)/", "http://127.0.0.2:\(v4)/", "http://127.255.255.254:\(v4)/",
            "http://localhost:\(v4)/",
            "http://2130706433:\(v4)/", "http://0x7f000001:\(v4)/", "http://0177.0.0.1:\(v4)/",
            "http://0x7f.0.0.1:\(v4)/",
            "http://127.1:\(v4)/", "http://017700000001:\(v4)/",
            "http://[::1]:\(v6)/", "http://[0:0:0:0:0:0:0:1]:\(v6)/", "http://[::ffff:127.0.0.1]:\(v4)/",
            "http://[::ffff:7f00:1]:\(v4)/",
            "http://[::127.0.0.1]:\(v4)/",
        ]
    }

    @Test func everyFormOfLoopbackIsRefusedAndTheServerHearsNothing() async throws {
        try await FeedServer.with(hosts: ["127.0.0.1", "::1"]) { servers in
            let (v4, v6) = (servers[0], servers[1])
            let fetcher = HTTPFetcher()
            for url in Self.loopbackForms(v4: v4.port, v6: v6.port) {
                do throws(FetchError) {
                    _ = try await fetcher.fetch(FetchRequest(url: url))
                    Issue.record("\(url) was fetched")
                } catch {
                    #expect(error.kind == .blocked, "\(url): \(error)")
                    #expect(
                        error.message.contains("loopback") || error.message.contains("non-standard numeric form"),
                        "\(url): \(error)")
                }
            }
            #expect(v4.requests.isEmpty && v6.requests.isEmpty)
            // The same servers are reachable when the job allows private networks.
            _ = try await fetcher.fetch(FetchRequest(url: "http://127.0.0.1:\(v4.port)/x", allowPrivateNetworks: true))
            _ = try await fetcher.fetch(FetchRequest(url: "http://[::1]:\(v6.port)/x", allowPrivateNetworks: true))
            #expect(v4.requests.count == 1 && v6.requests.count == 1)
        }
    }

    /// Names whose DNS answers fall in each refused class (the answers come from a table).
    @Test(arguments: [
        ("ten.test", "10.0.0.5", "private"), ("172.test", "172.20.1.1", "private"),
        ("192.test", "192.168.0.10", "private"),
        ("meta.test", "169.254.169.254", "metadata"), ("ll.test", "169.254.10.10", "link-local"),
        ("cgnat.test", "100.64.1.1", "carrier-grade NAT"),
        ("mcast.test", "224.0.0.251", "multicast"), ("zero.test", "0.0.0.0", "unspecified"),
        ("bcast.test", "255.255.255.255", "broadcast"),
        ("ula.test", "fd00::1", "unique local"), ("ll6.test", "fe80::1", "link-local"),
        ("mcast6.test", "ff05::2", "multicast"),
        ("mapped.test", "::ffff:10.0.0.1", "IPv4-mapped"), ("nat64.test", "64:ff9b::a9fe:a9fe", "NAT64"),
        ("unspec6.test", "::", "unspecified"),
        ("lo.test", "127.0.0.53", "loopback"), ("lo6.test", "::1", "loopback"),
    ])
    func aNameResolvingToARefusedClassIsRefused(_ name: String, _ address: String, _ word: String) async throws {
        let fetcher = HTTPFetcher(resolver: TableResolver(table: [name: [address]]))
        do throws(FetchError) {
            _ = try await fetcher.fetch(FetchRequest(url: "http://\(name)/feed"))
            Issue.record("\(name) → \(address) was fetched")
        } catch {
            #expect(error.kind == .blocked)
            #expect(error.message.contains(address) || error.message.contains(IPAddress(address)!.description))
            #expect(error.message.contains(word), "\(error.message)")
            #expect(error.message.contains(name))
        }
    }

    /// One bad answer among good ones refuses the name: a rebinding answer is never tried.
    @Test func aMixedAnswerIsRefused() async throws {
        try await FeedServer.with { servers in
            let s = servers[0]
            let fetcher = HTTPFetcher(resolver: TableResolver(table: ["mixed.test": ["93.184.215.14", "127.0.0.1"]]))
            await #expect(throws: FetchError.self) {
                _ = try await fetcher.fetch(FetchRequest(url: "http://mixed.test:\(s.port)/"))
            }
            #expect(s.requests.isEmpty)
        }
    }

    /// A redirect is checked like the first hop: an allowed server that redirects to loopback
    /// (in several forms) gets the tick refused, and the target hears nothing.
    @Test func aRedirectToLoopbackIsRefused() async throws {
        try await FeedServer.with(hosts: ["127.0.0.1", "127.0.0.1", "::1"]) { servers in
            let (front, target, target6) = (servers[0], servers[1], servers[2])
            let policy = AddressPolicy(allow: [AddressRange("127.0.0.1/32:\(front.port)")!])
            let fetcher = HTTPFetcher(policy: policy)
            let targets = [
                "http://127.0.0.1:\(target.port)/secret", "http://localhost:\(target.port)/secret",
                "http://2130706433:\(target.port)/secret", "http://[::1]:\(target6.port)/secret",
                "http://[::ffff:127.0.0.1]:\(target.port)/secret",
            ]
            for (i, t) in targets.enumerated() {
                front.serve("/r\(i)", .text("", [("Location", t)], status: 302))
                var ticker = Ticker(
                    poller: RSSPoller(fetcher: fetcher), config: .object(["feed_url": .string(front.base + "/r\(i)")]))
                let e = try #require(await ticker.tick().error, "\(t)")
                #expect(e.errorClass == .config && e.code == .blockedAddress, "\(t): \(e)")
                #expect(e.message.contains(t), "\(e.message)")
            }
            #expect(front.requests.count == targets.count)
            #expect(target.requests.isEmpty && target6.requests.isEmpty)
        }
    }

    @Test func onlyHTTPAndHTTPSAreFetched() async throws {
        let fetcher = HTTPFetcher()
        for url in [
            "file:///etc/passwd", "gopher://example.com/", "ftp://example.com/feed", "javascript:alert(1)",
            "http:///nohost",
        ] {
            do throws(FetchError) {
                _ = try await fetcher.fetch(FetchRequest(url: url))
                Issue.record("\(url) was fetched")
            } catch {
                #expect(error.kind == .badURL, "\(url): \(error)")
            }
        }
        #expect(throws: ConfigIssue.self) {
            try RSSPoller(fetcher: fetcher).validate(config: .object(["feed_url": .string("file:///etc/passwd")]))
        }
        #expect(throws: ConfigIssue.self) {
            try RSSPoller(fetcher: fetcher).validate(config: .object(["feed_url": .string("http://0x7f000001/")]))
        }
    }
}

@Suite struct FetcherSettingsTests {
    /// `pollers.http.allow_addresses` opens one address and port to every job, and
    /// `user_agent` replaces pollerd's own.
    @Test func theDaemonAllowListAndUserAgentApply() async throws {
        try await FeedServer.with(hosts: ["127.0.0.1", "127.0.0.1"]) { servers in
            let (open, closed) = (servers[0], servers[1])
            open.serve("/x", .text("ok"))
            let fetcher = HTTPFetcher()
            var http = HTTPSettings()
            http.allowAddresses = [AddressRange("127.0.0.1/32:\(open.port)")!]
            http.userAgent = "ExampleBot/1.0"
            fetcher.configure(http)
            let r = try await fetcher.fetch(FetchRequest(url: open.base + "/x"))
            #expect(r.status == 200 && open.requests.first?.headers["user-agent"] == "ExampleBot/1.0")
            await #expect(throws: FetchError.self) {
                _ = try await fetcher.fetch(FetchRequest(url: closed.base + "/x"))
            }
            #expect(closed.requests.isEmpty)
            fetcher.configure(HTTPSettings())
            await #expect(throws: FetchError.self) { _ = try await fetcher.fetch(FetchRequest(url: open.base + "/x")) }
            #expect(open.requests.count == 1)
        }
    }
}
