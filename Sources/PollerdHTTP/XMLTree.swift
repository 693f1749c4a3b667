import Foundation
import PollerdCore

#if canImport(FoundationXML)
import FoundationXML
#endif

/// A small element tree built with Foundation's `XMLParser` (libxml2's SAX parser). Feeds are
/// read whole and are bounded by the body cap, so a tree is cheap and keeps extraction plain.
final class XNode {
    enum Item {
        case text(String)
        case element(XNode)
    }
    let name: String
    let ns: String
    let qualifiedName: String
    let attributes: [String: String]
    /// The base URL in effect for this element (`xml:base` resolved against its parent's).
    let base: URL?
    var items: [Item] = []
    /// The element children alone, in order (kept beside `items`: extraction asks for children
    /// by name many times per entry).
    private(set) var elements: [XNode] = []

    init(name: String, ns: String, qualifiedName: String, attributes: [String: String], base: URL?) {
        self.name = name
        self.ns = ns
        self.qualifiedName = qualifiedName
        self.attributes = attributes
        self.base = base
    }

    func append(_ child: XNode) {
        items.append(.element(child))
        elements.append(child)
    }

    func children(_ name: String, ns: String) -> [XNode] { elements.filter { $0.name == name && $0.ns == ns } }
    func child(_ name: String, ns: String) -> XNode? { elements.first { $0.name == name && $0.ns == ns } }
    func children(_ name: String, in spaces: Set<String>) -> [XNode] {
        elements.filter { $0.name == name && spaces.contains($0.ns) }
    }
    func child(_ name: String, in spaces: Set<String>) -> XNode? {
        elements.first { $0.name == name && spaces.contains($0.ns) }
    }

    /// An attribute by its local name (`href`, or `rdf:about` as `about` when asked with `prefixed`).
    func attr(_ name: String) -> String? {
        if let v = attributes[name] { return v }
        for (k, v) in attributes where k.hasSuffix(":" + name) && !k.hasPrefix("xmlns") && !k.hasPrefix("xml:") {
            return v
        }
        return nil
    }

    /// All the text below this element, in document order.
    var text: String {
        var out = ""
        appendText(to: &out)
        return out
    }

    private func appendText(to out: inout String) {
        for item in items {
            switch item {
            case .text(let s): out += s
            case .element(let e): e.appendText(to: &out)
            }
        }
    }

    /// The children serialized back to XML (Atom `type="xhtml"` content).
    var innerXML: String {
        var out = ""
        for item in items {
            switch item {
            case .text(let s): out += Self.escape(s, attribute: false)
            case .element(let e): e.serialize(into: &out)
            }
        }
        return out
    }

    private func serialize(into out: inout String) {
        let tag = qualifiedName.split(separator: ":").last.map(String.init) ?? name
        out += "<" + tag
        for (k, v) in attributes.sorted(by: { $0.key < $1.key }) where !k.hasPrefix("xmlns") {
            out += " \(k)=\"\(Self.escape(v, attribute: true))\""
        }
        if items.isEmpty {
            out += "/>"
            return
        }
        out += ">"
        out += innerXML
        out += "</\(tag)>"
    }

    static func escape(_ s: String, attribute: Bool) -> String {
        MarkupEscape.escape(s, quote: attribute, apostrophe: false)
    }
}

/// Why a document could not be read, with where.
public struct FeedParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var line: Int?
    public var column: Int?

    public var description: String {
        if let line, let column { return "\(message) at line \(line), column \(column)" }
        return message
    }
}

/// Builds an `XNode` tree; refuses truncated documents that libxml2 lets through.
final class XMLTreeBuilder: NSObject, XMLParserDelegate {
    private var stack: [XNode] = []
    private(set) var root: XNode?
    private var rootClosed = false
    private let documentBase: URL?
    private static let limitDepth = 256
    private var tooDeep = false
    /// The first error libxml2 reported: it recovers from some (a mismatched end tag) and goes
    /// on, so the parser's final error is not always the one that matters.
    private var firstError: (code: Int, line: Int, column: Int)?

    func parser(_ parser: XMLParser, parseErrorOccurred error: any Error) {
        let code = (error as NSError).code
        // Namespace errors (libxml2's 200s: an undeclared prefix, say) are common in real feeds
        // and harmless: the element is kept, and a well-known prefix gets its namespace below.
        if (200..<300).contains(code) { return }
        if firstError == nil { firstError = (code, parser.lineNumber, parser.columnNumber) }
    }

    init(base: URL?) { self.documentBase = base }

    static let wellKnownPrefixes: [String: String] = [
        "dc": FeedParser.dc, "dcterms": FeedParser.dcterms, "content": FeedParser.contentNS,
        "media": "http://search.yahoo.com/mrss/",
        "itunes": FeedParser.itunes, "atom": FeedParser.atom10, "sy": FeedParser.sy, "rdf": FeedParser.rdf,
    ]

    static func parse(_ utf8: [UInt8], base: URL?) throws(FeedParseError) -> XNode {
        let parser = XMLParser(data: Data(utf8))
        parser.shouldProcessNamespaces = true
        parser.shouldResolveExternalEntities = false
        let builder = XMLTreeBuilder(base: base)
        parser.delegate = builder
        let ok = parser.parse()
        if builder.tooDeep {
            throw FeedParseError(
                message: "elements nest deeper than \(limitDepth) levels", line: parser.lineNumber,
                column: parser.columnNumber)
        }
        let finalCode = (parser.parserError as NSError?)?.code
        let finalMatters = finalCode.map { !(200..<300).contains($0) } ?? false
        if finalMatters || builder.firstError != nil || (!ok && finalCode == nil) {
            let first =
                builder.firstError ?? (
                    (parser.parserError as NSError?)?.code ?? -1, parser.lineNumber, parser.columnNumber
                )
            if builder.root != nil && !builder.rootClosed && (first.code == 5 || first.code == -1) {
                let open = builder.stack.last.map { "<\($0.qualifiedName)>" } ?? "the root element"
                throw FeedParseError(
                    message: "the document is truncated: \(open) is never closed", line: first.line,
                    column: first.column)
            }
            throw FeedParseError(
                message: "malformed XML: \(Self.describe(code: first.code))", line: first.line, column: first.column)
        }
        guard let root = builder.root, builder.rootClosed else {
            // Foundation on Linux reports success for some truncated documents: check that the
            // root element was closed.
            let open = builder.stack.last.map { "<\($0.qualifiedName)>" } ?? "the root element"
            throw FeedParseError(
                message: builder.root == nil
                    ? "the document has no root element" : "the document is truncated: \(open) is never closed",
                line: parser.lineNumber, column: parser.columnNumber)
        }
        return root
    }

    static func describe(code: Int) -> String {
        // libxml2's xmlParserErrors numbers, as NSXMLParser passes them on.
        switch code {
        case 4: return "the document is empty"
        case 5: return "the document ends too early"
        case 9: return "an invalid character"
        case 23: return "a start tag is not finished"
        case 26: return "an undefined entity"
        case 38, 39: return "an attribute is malformed"
        case 41: return "an attribute value is not quoted"
        case 64, 65: return "the XML declaration is malformed"
        case 73: return "a closing tag is expected"
        case 76: return "a closing tag does not match its opening tag"
        case 85: return "extra content after the document's end"
        default: return "parser error \(code)"
        }
    }

    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        flush()
        if stack.count >= Self.limitDepth {
            tooDeep = true
            parser.abortParsing()
            return
        }
        let parentBase = stack.last?.base ?? documentBase
        var base = parentBase
        if let b = attributes["xml:base"] { base = URL(string: b, relativeTo: parentBase)?.absoluteURL ?? parentBase }
        var ns = namespaceURI ?? ""
        if ns.isEmpty, let q = qualifiedName, let colon = q.firstIndex(of: ":"),
            let known = Self.wellKnownPrefixes[String(q[..<colon])]
        {
            ns = known // an undeclared dc:, media:, itunes:… prefix means what it always means
        }
        let node = XNode(name: name, ns: ns, qualifiedName: qualifiedName ?? name, attributes: attributes, base: base)
        if let parent = stack.last { parent.append(node) } else if root == nil { root = node }
        stack.append(node)
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        flush()
        let node = stack.popLast()
        if stack.isEmpty, node != nil, node === root { rootClosed = true }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { append(string) }

    func parser(_ parser: XMLParser, foundCDATA data: Data) { append(String(decoding: data, as: UTF8.self)) }

    /// Text since the last tag: libxml2 hands it over in pieces (around every reference), so
    /// it is gathered here and attached once, not re-concatenated per piece.
    private var pending = ""

    private func append(_ s: String) {
        guard !stack.isEmpty else { return }
        pending += s
    }

    private func flush() {
        guard !pending.isEmpty else { return }
        stack.last?.items.append(.text(pending))
        pending = ""
    }
}
