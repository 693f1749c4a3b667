import Foundation
import PollerdCore
import Testing

@testable import PollerdHTTP

/// The fixture corpus (Fixtures/make_corpus.py): feeds shaped like real ones, each with the
/// entries it must yield, or the error it must give.
@Suite struct FeedCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Fixtures/feeds")

    static var names: [String] {
        let index = (try? String(contentsOf: root.appendingPathComponent("INDEX"), encoding: .utf8)) ?? ""
        return index.split(separator: "\n").map(String.init)
    }

    @Test func theCorpusHasAtLeastEightyFeeds() {
        #expect(Self.names.count >= 80)
    }

    @Test(arguments: FeedCorpusTests.names)
    func feedYieldsItsExpectedEntries(_ name: String) throws {
        let stem = String(name[..<name.lastIndex(of: ".")!])
        let body = try Data(contentsOf: Self.root.appendingPathComponent(name))
        let meta = try JSONValue.parse(Data(contentsOf: Self.root.appendingPathComponent(stem + ".meta.json")))
        let expected = try JSONValue.parse(Data(contentsOf: Self.root.appendingPathComponent(stem + ".expected.json")))
        let result = Result { () throws(FeedParseError) -> ParsedFeed in
            try FeedParser.parse(
                Array(body), url: meta["base"]?.stringValue, contentType: meta["content_type"]?.stringValue)
        }
        if let wanted = expected["error"]?.stringValue {
            switch result {
            case .success(let feed):
                Issue.record("\(name): parsed (\(feed.entries.count) entries) but must fail with \(wanted)")
            case .failure(let e):
                let text = e.description
                #expect(wanted.split(separator: "|").contains { text.contains($0) }, "\(name): \(text)")
                if text.contains("truncated") || text.contains("malformed XML") {
                    #expect(e.line != nil && e.column != nil, "\(name): no position in \(text)")
                }
            }
            return
        }
        let feed = try result.get()
        guard case .array(let want) = expected else {
            Issue.record("\(name): bad expectation")
            return
        }
        #expect(feed.entries.count == want.count, "\(name): \(feed.entries.count) entries, expected \(want.count)")
        for (got, exp) in zip(feed.entries.map(\.json), want) {
            guard case .object(var g) = got, case .object(var e) = exp else { continue }
            let gotID = g.removeValue(forKey: "id")?.stringValue ?? ""
            let expID = e.removeValue(forKey: "id")?.stringValue ?? ""
            #expect(Self.idMatches(gotID, expID), "\(name): id \(gotID) vs \(expID)")
            for key in e.keys.sorted() {
                #expect(
                    g[key] == e[key],
                    "\(name) [\(expID)] \(key): got \(g[key].map { $0.canonicalString } ?? "nil"), expected \(e[key]!.canonicalString)"
                )
            }
        }
    }

    /// `<hash>`: a content hash; `X#<hash16>`: a repeated id made unique.
    static func idMatches(_ got: String, _ pattern: String) -> Bool {
        func hex(_ s: Substring, _ n: Int) -> Bool { s.count == n && s.allSatisfy(\.isHexDigit) }
        if pattern == "<hash>" { return got.hasPrefix("sha256:") && hex(got.dropFirst(7), 32) }
        if pattern.hasSuffix("#<hash16>") {
            let prefix = pattern.dropLast("<hash16>".count)
            return got.hasPrefix(prefix) && hex(got.dropFirst(prefix.count), 16)
        }
        return got == pattern
    }
}
