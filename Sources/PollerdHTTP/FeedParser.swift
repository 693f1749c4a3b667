import Crypto
import Foundation
public import PollerdCore

/// One enclosure (a podcast's audio, an image), merged from `enclosure`, `media:content`,
/// `media:group` and Atom's `rel="enclosure"` links.
public struct FeedEnclosure: Sendable, Equatable {
    public var url: String
    public var type: String?
    public var length: Int64?
}

/// One entry of a feed, normalized.
public struct FeedEntry: Sendable, Equatable {
    /// The entry's key: guid / atom:id / JSON Feed id, else the link, else a hash of the content.
    public var id: String
    /// How `id` was found: `guid`, `link` or `hash`.
    public var idSource: String
    public var title: String?
    public var link: String?
    /// ISO 8601 UTC, or nil when missing or unparseable.
    public var published: String?
    public var updated: String?
    public var summary: String?
    public var content: String?
    public var authors: [String] = []
    public var categories: [String] = []
    public var enclosures: [FeedEnclosure] = []

    /// The item pollerd emits: every field present, missing ones null, lists possibly empty.
    public var json: JSONValue {
        func s(_ v: String?) -> JSONValue { v.map(JSONValue.string) ?? .null }
        return .object([
            "id": .string(id), "title": s(title), "link": s(link), "published": s(published), "updated": s(updated),
            "summary": s(summary), "content": s(content),
            "authors": .array(authors.map(JSONValue.string)), "categories": .array(categories.map(JSONValue.string)),
            "enclosures": .array(
                enclosures.map { e in
                    .object(["url": .string(e.url), "type": s(e.type), "length": e.length.map(JSONValue.int) ?? .null])
                }),
        ])
    }

    /// The instant used to order new entries (published, else updated).
    var sortMs: Int64? { (published ?? updated).flatMap(RFC3339.parse) }
}

/// A parsed feed.
public struct ParsedFeed: Sendable {
    /// `rss-0.90`, `rss-0.91`, `rss-0.92`, `rss-2.0`, `rss-1.0`, `atom-1.0`, `atom-0.3`, `jsonfeed-1.0`, `jsonfeed-1.1`.
    public var format: String
    public var title: String?
    /// In document order.
    public var entries: [FeedEntry]
    /// RSS `<ttl>`, in seconds.
    public var ttlSecs: Int64?
    /// `sy:updatePeriod` / `sy:updateFrequency`, in seconds.
    public var updatePeriodSecs: Int64?
    /// How the bytes were decoded (`utf-8 from the XML declaration`).
    public var encoding: String
}

/// Reads RSS 0.90–2.0, RSS 1.0 (RDF), Atom 0.3 and 1.0, and JSON Feed 1.0/1.1, told apart by
/// content, never by URL or media type.
public enum FeedParser {
    static let atom10 = "http://www.w3.org/2005/Atom"
    static let atom03 = "http://purl.org/atom/ns#"
    static let rss10 = "http://purl.org/rss/1.0/"
    static let rss090 = "http://my.netscape.com/rdf/simple/0.9/"
    static let rdf = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
    static let dc = "http://purl.org/dc/elements/1.1/"
    static let dcterms = "http://purl.org/dc/terms/"
    static let contentNS = "http://purl.org/rss/1.0/modules/content/"
    static let media: Set<String> = ["http://search.yahoo.com/mrss/", "http://search.yahoo.com/mrss"]
    static let sy = "http://purl.org/rss/1.0/modules/syndication/"
    static let itunes = "http://www.itunes.com/dtds/podcast-1.0.dtd"
    static let atoms: Set<String> = [atom10, atom03]
    /// Where RSS's own elements live: no namespace (0.91–2.0), or RSS 1.0's / 0.90's.
    static let rssSpaces: Set<String> = ["", rss10, rss090]

    /// Parses a document fetched from `url` (the base for relative links).
    public static func parse(
        _ body: [UInt8], url: String?, contentType: String? = nil
    ) throws(FeedParseError) -> ParsedFeed {
        let base = url.flatMap { URL(string: $0) }
        var start = 0
        if body.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }
        while start < body.count, [0x20, 0x09, 0x0A, 0x0D].contains(body[start]) { start += 1 }
        if start < body.count, body[start] == UInt8(ascii: "{") {
            return try JSONFeedParser.parse(Array(body[start...]), base: base)
        }
        let decoded: FeedText.Decoded
        do { decoded = try FeedText.decode(body, httpCharset: FeedText.charset(ofContentType: contentType)) } catch {
            throw FeedParseError(message: error.description)
        }
        let root = try XMLTreeBuilder.parse(FeedText.sanitize(decoded.utf8), base: base)
        let encoding = "\(decoded.encoding) (\(decoded.source))"
        switch (root.name, root.ns) {
        case ("rss", ""):
            return rss(root, version: root.attr("version") ?? "2.0", encoding: encoding)
        case ("RDF", rdf):
            return rdfFeed(root, encoding: encoding)
        case ("feed", atom10):
            return atomFeed(root, ns: atom10, format: "atom-1.0", encoding: encoding)
        case ("feed", atom03):
            return atomFeed(root, ns: atom03, format: "atom-0.3", encoding: encoding)
        case ("feed", ""):
            // An Atom feed that forgot its namespace.
            return atomFeed(root, ns: "", format: "atom-1.0", encoding: encoding)
        default:
            throw FeedParseError(
                message: "not a feed: the root element is <\(root.qualifiedName)>"
                    + (root.ns.isEmpty ? "" : " in \(root.ns)"))
        }
    }

    // MARK: RSS

    static func rss(_ root: XNode, version: String, encoding: String) -> ParsedFeed {
        let channel = root.child("channel", in: rssSpaces) ?? root
        var items = channel.children("item", in: rssSpaces)
        // some 0.9x feeds put items beside the channel
        if items.isEmpty { items = root.children("item", in: rssSpaces) }
        let v = ["0.90", "0.91", "0.92", "0.93", "0.94", "2.0", "2.0.1"].contains(version) ? version : "2.0"
        return ParsedFeed(
            format: "rss-" + (v.hasPrefix("2.0") ? "2.0" : v),
            title: trimmed(channel.child("title", in: rssSpaces)?.text),
            entries: uniqueIDs(items.map { rssEntry($0, channelAuthors: []) }),
            ttlSecs: ttl(channel), updatePeriodSecs: updatePeriod(channel), encoding: encoding)
    }

    static func rdfFeed(_ root: XNode, encoding: String) -> ParsedFeed {
        let channel = root.child("channel", in: rssSpaces)
        let items = root.children("item", in: rssSpaces)
        let format = items.first?.ns == rss090 || channel?.ns == rss090 ? "rss-0.90" : "rss-1.0"
        return ParsedFeed(
            format: format, title: trimmed(channel?.child("title", in: rssSpaces)?.text),
            entries: uniqueIDs(items.map { rssEntry($0, channelAuthors: []) }),
            ttlSecs: channel.flatMap(ttl), updatePeriodSecs: channel.flatMap(updatePeriod) ?? updatePeriod(root),
            encoding: encoding)
    }

    static func ttl(_ channel: XNode) -> Int64? {
        guard let t = trimmed(channel.child("ttl", in: rssSpaces)?.text), let minutes = Int64(t), minutes > 0,
            minutes <= 525_600
        else { return nil }
        return minutes * 60
    }

    static func updatePeriod(_ channel: XNode) -> Int64? {
        guard let p = trimmed(channel.child("updatePeriod", ns: sy)?.text)?.lowercased() else { return nil }
        let period: Int64
        switch p {
        case "hourly": period = 3600
        case "daily": period = 86_400
        case "weekly": period = 604_800
        case "monthly": period = 2_592_000
        case "yearly": period = 31_536_000
        default: return nil
        }
        let freq = trimmed(channel.child("updateFrequency", ns: sy)?.text).flatMap { Int64($0) } ?? 1
        return freq > 0 ? max(60, period / freq) : period
    }

    static func rssEntry(_ item: XNode, channelAuthors: [String]) -> FeedEntry {
        let guidNode = item.child("guid", in: rssSpaces)
        let guid = trimmed(guidNode?.text)
        var link = trimmed(item.child("link", in: rssSpaces)?.text).flatMap {
            resolve($0, against: item.child("link", in: rssSpaces)?.base)
        }
        if link == nil, let alt = atomAlternate(item, ns: atom10) { link = alt }
        if link == nil, let guid, guidNode?.attr("isPermaLink")?.lowercased() != "false",
            guid.hasPrefix("http://") || guid.hasPrefix("https://")
        {
            link = guid
        }
        let about = item.attributes["rdf:about"] ?? item.attr("about")
        var e = FeedEntry(id: "", idSource: "guid")
        e.title = trimmed(item.child("title", in: rssSpaces)?.text) ?? trimmed(item.child("title", ns: dc)?.text)
        e.link = link
        e.summary = nonEmpty(item.child("description", in: rssSpaces)?.text)
        e.content = nonEmpty(item.child("encoded", ns: contentNS)?.text)
        e.published =
            date(item.child("pubDate", in: rssSpaces)) ?? date(item.child("date", ns: dc)) ?? date(
                item.child("published", ns: atom10))
            ?? date(item.child("issued", ns: dcterms))
        e.updated = date(item.child("updated", ns: atom10)) ?? date(item.child("modified", ns: dcterms))
        var authors: [String] = []
        for a in item.children("author", in: rssSpaces) { if let t = trimmed(a.text) { authors.append(rssAuthor(t)) } }
        for a in item.children("creator", ns: dc) { if let t = trimmed(a.text) { authors.append(t) } }
        for a in item.children("author", ns: itunes) { if let t = trimmed(a.text) { authors.append(t) } }
        for a in item.children("author", ns: atom10) {
            if let t = trimmed(a.child("name", ns: atom10)?.text) { authors.append(t) }
        }
        e.authors = dedupe(authors.isEmpty ? channelAuthors : authors)
        var cats: [String] = []
        for c in item.children("category", in: rssSpaces) { if let t = trimmed(c.text) { cats.append(t) } }
        for c in item.children("subject", ns: dc) { if let t = trimmed(c.text) { cats.append(t) } }
        e.categories = dedupe(cats)
        var enc: [FeedEnclosure] = []
        for n in item.children("enclosure", in: rssSpaces) {
            if let u = n.attr("url").flatMap({ resolve($0, against: n.base) }) {
                enc.append(FeedEnclosure(url: u, type: nonEmpty(n.attr("type")), length: length(n.attr("length"))))
            }
        }
        enc += mediaEnclosures(item)
        e.enclosures = mergeEnclosures(enc)
        if let guid {
            e.id = guid
            e.idSource = "guid"
        } else if let about = about.flatMap(trimmed) {
            e.id = about
            e.idSource = "guid"
        } else if let link {
            e.id = link
            e.idSource = "link"
        } else {
            e.id = contentHash(e)
            e.idSource = "hash"
        }
        return e
    }

    /// `name@example.com (Jane Doe)` → `Jane Doe`; otherwise the text as it is.
    static func rssAuthor(_ t: String) -> String {
        if let open = t.firstIndex(of: "("), t.hasSuffix(")"), t[..<open].contains("@") {
            let name = t[t.index(after: open)..<t.index(before: t.endIndex)].trimmingCharacters(in: .whitespaces)
            if !name.isEmpty { return name }
        }
        return t
    }

    static func mediaEnclosures(_ item: XNode) -> [FeedEnclosure] {
        var out: [FeedEnclosure] = []
        var contents = item.children("content", in: media)
        for g in item.children("group", in: media) { contents += g.children("content", in: media) }
        for n in contents {
            guard let u = n.attr("url").flatMap({ resolve($0, against: n.base) }) else { continue }
            out.append(FeedEnclosure(url: u, type: nonEmpty(n.attr("type")), length: length(n.attr("fileSize"))))
        }
        return out
    }

    /// One enclosure per URL; a later mention fills what an earlier one left out.
    static func mergeEnclosures(_ list: [FeedEnclosure]) -> [FeedEnclosure] {
        var out: [FeedEnclosure] = []
        for e in list {
            if let i = out.firstIndex(where: { $0.url == e.url }) {
                if out[i].type == nil { out[i].type = e.type }
                if out[i].length == nil { out[i].length = e.length }
            } else {
                out.append(e)
            }
        }
        return out
    }

    // MARK: Atom

    static func atomFeed(_ root: XNode, ns: String, format: String, encoding: String) -> ParsedFeed {
        var feedAuthors: [String] = []
        for a in root.children("author", ns: ns) {
            if let n = trimmed(a.child("name", ns: ns)?.text) { feedAuthors.append(n) }
        }
        let entries = root.children("entry", ns: ns).map { atomEntry($0, ns: ns, feedAuthors: feedAuthors) }
        return ParsedFeed(
            format: format, title: textConstruct(root.child("title", ns: ns)).flatMap(trimmed),
            entries: uniqueIDs(entries),
            ttlSecs: nil, updatePeriodSecs: updatePeriod(root), encoding: encoding)
    }

    static func atomAlternate(_ node: XNode, ns: String) -> String? {
        let links = node.children("link", ns: ns)
        let alternates = links.filter { ($0.attr("rel") ?? "alternate") == "alternate" }
        let best = alternates.first { ($0.attr("type") ?? "").contains("html") } ?? alternates.first
        return best.flatMap { l in l.attr("href").flatMap { resolve($0, against: l.base) } }
    }

    static func atomEntry(_ entry: XNode, ns: String, feedAuthors: [String]) -> FeedEntry {
        var e = FeedEntry(id: "", idSource: "guid")
        e.title = textConstruct(entry.child("title", ns: ns)).flatMap(trimmed)
        e.link = atomAlternate(entry, ns: ns)
        if ns == atom03 {
            e.published = date(entry.child("issued", ns: ns)) ?? date(entry.child("created", ns: ns))
            e.updated = date(entry.child("modified", ns: ns))
        } else {
            e.published = date(entry.child("published", ns: ns))
            e.updated = date(entry.child("updated", ns: ns))
        }
        e.summary = textConstruct(entry.child("summary", ns: ns)).flatMap(nonEmpty)
        if let c = entry.child("content", ns: ns) {
            if let src = c.attr("src"), c.items.isEmpty {
                e.content = resolve(src, against: c.base)
            } else {
                e.content = textConstruct(c).flatMap(nonEmpty)
            }
        }
        var authors: [String] = []
        for a in entry.children("author", ns: ns) {
            if let n = trimmed(a.child("name", ns: ns)?.text) { authors.append(n) }
        }
        e.authors = dedupe(authors.isEmpty ? feedAuthors : authors)
        e.categories = dedupe(
            entry.children("category", ns: ns).compactMap { trimmed($0.attr("term")) ?? trimmed($0.text) })
        var enc: [FeedEnclosure] = []
        for l in entry.children("link", ns: ns) where l.attr("rel") == "enclosure" {
            if let u = l.attr("href").flatMap({ resolve($0, against: l.base) }) {
                enc.append(FeedEnclosure(url: u, type: nonEmpty(l.attr("type")), length: length(l.attr("length"))))
            }
        }
        enc += mediaEnclosures(entry)
        e.enclosures = mergeEnclosures(enc)
        if let id = trimmed(entry.child("id", ns: ns)?.text) {
            e.id = id
            e.idSource = "guid"
        } else if let link = e.link {
            e.id = link
            e.idSource = "link"
        } else {
            e.id = contentHash(e)
            e.idSource = "hash"
        }
        return e
    }

    /// An Atom text construct: `xhtml` content is the inner markup of its `div`; `html` and
    /// `text` are the text (entities decoded, as a reader shows them).
    static func textConstruct(_ node: XNode?) -> String? {
        guard let node else { return nil }
        let type = (node.attr("type") ?? "text").lowercased()
        if type == "xhtml" || type == "application/xhtml+xml" {
            let div = node.elements.first { $0.name == "div" }
            return (div ?? node).innerXML.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return node.text
    }

    // MARK: Shared

    /// Entries keep their ids unique within one document: a second entry with an id already
    /// used gets that id plus a hash of its content, so each entry is taken once; an exact
    /// repeat of an entry is the same entry and is dropped.
    static func uniqueIDs(_ entries: [FeedEntry]) -> [FeedEntry] {
        var seen: [String: [FeedEntry]] = [:]
        var out: [FeedEntry] = []
        for var e in entries {
            if let earlier = seen[e.id] {
                if earlier.contains(where: { $0.json == e.json }) { continue }
                seen[e.id, default: []].append(e)
                e.id = e.id + "#" + contentHash(e).dropFirst("sha256:".count).prefix(16)
            } else {
                seen[e.id] = [e]
            }
            out.append(e)
        }
        return out
    }

    static func contentHash(_ e: FeedEntry) -> String {
        let text =
            [e.title, e.link, e.summary, e.content, e.published, e.updated].map { $0 ?? "" }.joined(separator: "\u{1F}")
            + e.enclosures.map(\.url).joined(separator: "\u{1F}")
        return "sha256:" + Hex.encode(SHA256.hash(data: Data(text.utf8)).prefix(16))
    }

    static func date(_ node: XNode?) -> String? { FeedDate.normalized(node?.text) }

    static func length(_ s: String?) -> Int64? {
        guard let s = trimmed(s), let v = Int64(s), v >= 0 else { return nil }
        return v
    }

    static func resolve(_ href: String, against base: URL?) -> String? {
        guard let h = trimmed(href) else { return nil }
        // Absolute http(s) links, the common case, need no URL parsing.
        if h.utf8.starts(with: "https://".utf8) || h.utf8.starts(with: "http://".utf8) { return h }
        if let u = URL(string: h), u.scheme != nil { return h }
        guard let base, let u = URL(string: h, relativeTo: base) else {
            return URL(string: h) != nil ? h : h.addingPercentEncoding(withAllowedCharacters: .urlFragmentAllowed)
        }
        return u.absoluteURL.absoluteString
    }

    /// The text without leading and trailing white space (ASCII white space and no-break
    /// spaces), or nil when nothing is left. Works on UTF-8 directly: Foundation's
    /// `trimmingCharacters` goes through UTF-16 and was a quarter of the parse time.
    static func trimmed(_ s: String?) -> String? {
        guard let s else { return nil }
        let u = s.utf8
        var start = u.startIndex
        var end = u.endIndex
        while start < end {
            let b = u[start]
            if b == 0x20 || (b >= 0x09 && b <= 0x0D) {
                start = u.index(after: start)
                continue
            }
            if b == 0xC2, u.index(after: start) < end, u[u.index(after: start)] == 0xA0 {
                start = u.index(start, offsetBy: 2)
                continue
            }
            break
        }
        while end > start {
            let i = u.index(before: end)
            let b = u[i]
            if b == 0x20 || (b >= 0x09 && b <= 0x0D) {
                end = i
                continue
            }
            if b == 0xA0, i > start, u[u.index(before: i)] == 0xC2 {
                end = u.index(before: i)
                continue
            }
            break
        }
        if start == end { return nil }
        if start == u.startIndex && end == u.endIndex { return s }
        return String(s[start..<end])
    }

    static func nonEmpty(_ s: String?) -> String? { trimmed(s) }

    static func dedupe(_ list: [String]) -> [String] {
        var seen = Set<String>()
        return list.filter { seen.insert($0).inserted }
    }
}

/// JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1).
enum JSONFeedParser {
    static func parse(_ bytes: [UInt8], base: URL?) throws(FeedParseError) -> ParsedFeed {
        let doc: JSONValue
        do { doc = try JSONValue.parse(bytes: bytes) } catch {
            if let f = error as? JSONParser.Failure {
                let (line, column) = position(of: f.offset, in: bytes)
                throw FeedParseError(message: "malformed JSON: \(f.reason)", line: line, column: column)
            }
            throw FeedParseError(message: "malformed JSON: \(error)")
        }
        guard case .object = doc else {
            throw FeedParseError(message: "not a feed: the JSON document is not an object")
        }
        guard let version = doc["version"]?.stringValue,
            version.hasPrefix("https://jsonfeed.org/version/") || version.hasPrefix("http://jsonfeed.org/version/")
        else {
            throw FeedParseError(message: "not a feed: the JSON object has no JSON Feed \"version\"")
        }
        guard case .array(let items)? = doc["items"] else {
            throw FeedParseError(message: "JSON Feed without an \"items\" array")
        }
        let feedBase = base
        var feedAuthors = names(doc)
        if feedAuthors.isEmpty { feedAuthors = [] }
        var entries: [FeedEntry] = []
        for item in items {
            guard case .object = item else { continue }
            var e = FeedEntry(id: "", idSource: "guid")
            e.title = FeedParser.trimmed(item["title"]?.stringValue)
            e.link =
                item["url"]?.stringValue.flatMap { FeedParser.resolve($0, against: feedBase) }
                ?? item["external_url"]?.stringValue.flatMap { FeedParser.resolve($0, against: feedBase) }
            e.published = FeedDate.normalized(item["date_published"]?.stringValue)
            e.updated = FeedDate.normalized(item["date_modified"]?.stringValue)
            e.summary = FeedParser.nonEmpty(item["summary"]?.stringValue)
            e.content =
                FeedParser.nonEmpty(item["content_html"]?.stringValue)
                ?? FeedParser.nonEmpty(item["content_text"]?.stringValue)
            let authors = names(item)
            e.authors = FeedParser.dedupe(authors.isEmpty ? feedAuthors : authors)
            if case .array(let tags)? = item["tags"] {
                e.categories = FeedParser.dedupe(tags.compactMap { FeedParser.trimmed($0.stringValue) })
            }
            if case .array(let atts)? = item["attachments"] {
                e.enclosures = FeedParser.mergeEnclosures(
                    atts.compactMap { a in
                        guard let u = a["url"]?.stringValue.flatMap({ FeedParser.resolve($0, against: feedBase) })
                        else { return nil }
                        return FeedEnclosure(
                            url: u, type: a["mime_type"]?.stringValue, length: a["size_in_bytes"]?.intValue)
                    })
            }
            // `id` must be a string; 1.0 feeds sometimes wrote a number.
            let id: String? = item["id"]?.stringValue ?? item["id"]?.intValue.map { String($0) }
            if let id = FeedParser.trimmed(id) {
                e.id = id
                e.idSource = "guid"
            } else if let link = e.link {
                e.id = link
                e.idSource = "link"
            } else {
                e.id = FeedParser.contentHash(e)
                e.idSource = "hash"
            }
            entries.append(e)
        }
        let format = version.hasSuffix("/1") || version.hasSuffix("/1.0") ? "jsonfeed-1.0" : "jsonfeed-1.1"
        return ParsedFeed(
            format: format, title: FeedParser.trimmed(doc["title"]?.stringValue),
            entries: FeedParser.uniqueIDs(entries),
            ttlSecs: nil, updatePeriodSecs: nil, encoding: "utf-8 (JSON)")
    }

    /// `authors` (1.1) or `author` (1.0) names.
    static func names(_ v: JSONValue) -> [String] {
        if case .array(let list)? = v["authors"] {
            return list.compactMap { FeedParser.trimmed($0["name"]?.stringValue) }
        }
        if let n = FeedParser.trimmed(v["author"]?["name"]?.stringValue) { return [n] }
        return []
    }

    static func position(of offset: Int, in bytes: [UInt8]) -> (Int, Int) {
        var line = 1
        var col = 1
        for b in bytes.prefix(offset) {
            if b == 0x0A {
                line += 1
                col = 1
            } else {
                col += 1
            }
        }
        return (line, col)
    }
}
