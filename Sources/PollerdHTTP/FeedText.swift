import Foundation

/// Turns a feed's bytes into well-formed UTF-8 XML: picks the encoding, transcodes, and makes
/// the document safe for a strict XML parser without changing what it says.
enum FeedText {
    /// Where the encoding came from, for the tick's details.
    struct Decoded {
        var utf8: [UInt8]
        var encoding: String
        var source: String
    }

    struct DecodeError: Error, CustomStringConvertible {
        var description: String
    }

    /// The charset parameter of a Content-Type header.
    static func charset(ofContentType value: String?) -> String? {
        guard let value else { return nil }
        for part in value.split(separator: ";").dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces).lowercased() == "charset" else { continue }
            let v = kv[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            return v.isEmpty ? nil : v.lowercased()
        }
        return nil
    }

    /// The `encoding` of an XML declaration at the start of ASCII-compatible bytes.
    static func declaredEncoding(_ bytes: ArraySlice<UInt8>) -> String? {
        guard bytes.starts(with: Array("<?xml".utf8)) else { return nil }
        let head = bytes.prefix(256)
        guard let end = head.firstIndex(of: UInt8(ascii: ">")) else { return nil }
        let decl = String(decoding: head[..<end], as: UTF8.self)
        guard let r = decl.range(of: "encoding") else { return nil }
        var rest = decl[r.upperBound...].drop { $0 == " " || $0 == "=" || $0 == "\t" }
        guard let quote = rest.first, quote == "\"" || quote == "'" else { return nil }
        rest = rest.dropFirst()
        guard let close = rest.firstIndex(of: quote) else { return nil }
        let name = rest[..<close].lowercased()
        return name.isEmpty ? nil : name
    }

    static func encoding(named name: String) -> String.Encoding? {
        switch name.lowercased() {
        case "utf-8", "utf8", "us-ascii", "ascii", "unicode-1-1-utf-8": return .utf8
        case "utf-16le": return .utf16LittleEndian
        case "utf-16be": return .utf16BigEndian
        case "utf-16", "utf16", "ucs-2": return .utf16
        case "iso-8859-1", "latin1", "iso8859-1", "iso_8859-1", "l1": return .isoLatin1
        case "windows-1252", "cp1252", "x-cp1252": return .windowsCP1252
        case "iso-8859-2", "latin2": return .isoLatin2
        case "windows-1250", "cp1250": return .windowsCP1250
        case "windows-1251", "cp1251": return .windowsCP1251
        case "windows-1253", "cp1253": return .windowsCP1253
        case "windows-1254", "cp1254": return .windowsCP1254
        case "shift_jis", "shift-jis", "sjis", "x-sjis": return .shiftJIS
        case "euc-jp": return .japaneseEUC
        case "iso-2022-jp": return .iso2022JP
        case "macintosh", "mac", "x-mac-roman": return .macOSRoman
        default: return nil
        }
    }

    /// Picks the encoding (byte order mark, then the HTTP charset, then the XML declaration,
    /// then UTF-8 if the bytes are valid UTF-8, else Windows-1252, as feedparser falls back) and
    /// transcodes to UTF-8.
    static func decode(_ data: [UInt8], httpCharset: String?) throws(DecodeError) -> Decoded {
        var bytes = data[...]
        var chosen: (String.Encoding, String, String)?
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            bytes = bytes.dropFirst(3)
            chosen = (.utf8, "utf-8", "byte order mark")
        } else if bytes.starts(with: [0xFF, 0xFE]) {
            bytes = bytes.dropFirst(2)
            chosen = (.utf16LittleEndian, "utf-16le", "byte order mark")
        } else if bytes.starts(with: [0xFE, 0xFF]) {
            bytes = bytes.dropFirst(2)
            chosen = (.utf16BigEndian, "utf-16be", "byte order mark")
        } else if bytes.starts(with: [0x3C, 0x00, 0x3F, 0x00]) {
            chosen = (.utf16LittleEndian, "utf-16le", "first bytes")
        } else if bytes.starts(with: [0x00, 0x3C, 0x00, 0x3F]) {
            chosen = (.utf16BigEndian, "utf-16be", "first bytes")
        }
        if chosen == nil, let cs = httpCharset, let enc = encoding(named: cs) {
            chosen = (enc, cs, "HTTP Content-Type")
        }
        if chosen == nil, let declared = declaredEncoding(bytes) {
            guard let enc = encoding(named: declared) else {
                throw DecodeError(
                    description: "the XML declaration names an encoding pollerd does not read: \(declared)")
            }
            chosen = (enc, declared, "XML declaration")
        }
        let (enc, name, source) = chosen ?? (.utf8, "utf-8", "default")
        var text: String?
        if enc == .utf8 {
            if validUTF8(bytes) { return Decoded(utf8: Array(bytes), encoding: name, source: source) }
            text = String(bytes: bytes, encoding: .windowsCP1252)
            if text != nil {
                return Decoded(
                    utf8: stripDeclaredEncoding(Array(text!.utf8)), encoding: "windows-1252",
                    source: "fallback: not valid UTF-8")
            }
        } else {
            text = String(bytes: bytes, encoding: enc)
        }
        guard let text else { throw DecodeError(description: "the body is not valid \(name) (from the \(source))") }
        return Decoded(utf8: stripDeclaredEncoding(Array(text.utf8)), encoding: name, source: source)
    }

    static func validUTF8(_ bytes: ArraySlice<UInt8>) -> Bool {
        // Fast path for ASCII, then the standard library's validating decode.
        if bytes.allSatisfy({ $0 < 0x80 }) { return true }
        return String(validating: bytes, as: UTF8.self) != nil
    }

    /// Replaces an XML declaration's encoding with UTF-8 once the text is transcoded.
    static func stripDeclaredEncoding(_ utf8: [UInt8]) -> [UInt8] {
        guard utf8.starts(with: Array("<?xml".utf8)), let end = utf8.prefix(256).firstIndex(of: UInt8(ascii: ">"))
        else { return utf8 }
        return Array("<?xml version=\"1.0\" encoding=\"UTF-8\"?>".utf8) + utf8[(end + 1)...]
    }

    /// Makes the document acceptable to a strict XML parser without changing its content:
    /// - the DOCTYPE goes (no DTD is ever loaded or expanded: no external entities, no
    ///   entity-expansion bombs);
    /// - HTML named references (`&nbsp;`, `&eacute;`, …) become numeric references;
    /// - a `&` that starts no reference becomes `&amp;` (`AT&T` in an RSS title);
    /// - a control character XML forbids becomes U+FFFD.
    ///
    /// It reads the markup as XML does, so that what it removes is exactly what the parser would
    /// take for a DOCTYPE: comments, CDATA sections and processing instructions pass through
    /// untouched to their first terminator (`-->`, `]]>`, `?>`), and a quoted attribute value
    /// runs to its closing quote. Every other `<` that begins no tag (a stray `<` in text, in an
    /// attribute value, or another `<!` declaration) becomes `&lt;`, and so does the tail of a
    /// construct that never ends: the parser never sees a `<!` it could read as a declaration.
    static func sanitize(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count + input.count / 32)
        let n = input.count
        input.withUnsafeBufferPointer { buf in
            @inline(__always) func starts(_ lit: StaticString, at j: Int) -> Bool {
                let len = lit.utf8CodeUnitCount
                guard j + len <= n else { return false }
                return memcmp(buf.baseAddress! + j, lit.utf8Start, len) == 0
            }
            /// The index just past the first `terminator` at or after `j`, or nil.
            func end(of terminator: StaticString, from j: Int) -> Int? {
                var k = j
                let first = terminator.utf8Start.pointee
                while k < n {
                    if buf[k] == first, starts(terminator, at: k) { return k + terminator.utf8CodeUnitCount }
                    k += 1
                }
                return nil
            }
            /// Copies a comment, CDATA section or PI whole; an unterminated one is escaped text.
            func copyConstruct(from j: Int, through terminator: StaticString, skipping opener: Int) -> Int {
                guard let e = end(of: terminator, from: j + opener) else {
                    out.append(contentsOf: Self.lessThan)
                    return j + 1
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[j..<e]))
                return e
            }
            var i = 0
            while i < n {
                i = copyPlain(buf, from: i, into: &out)
                guard i < n else { break }
                let b = buf[i]
                if b == UInt8(ascii: "&") {
                    i = entity(input, at: i, into: &out)
                } else if b != UInt8(ascii: "<") {
                    out.append(contentsOf: Self.replacement) // a control character XML forbids
                    i += 1
                } else if i + 1 < n, buf[i + 1] == UInt8(ascii: "/") || isNameStart(buf[i + 1]) {
                    // A tag (the common case first: a name cannot start a `<!` or `<?` construct).
                    i = copyTag(input, buf, from: i, into: &out)
                } else if starts("<![CDATA[", at: i) {
                    i = copyConstruct(from: i, through: "]]>", skipping: 9)
                } else if starts("<!--", at: i) {
                    i = copyConstruct(from: i, through: "-->", skipping: 4)
                } else if starts("<?", at: i) {
                    i = copyConstruct(from: i, through: "?>", skipping: 2)
                } else if isDoctype(buf, at: i) {
                    i = skipDoctype(buf, from: i + 9)
                } else {
                    out.append(contentsOf: Self.lessThan) // `<!ENTITY …` outside a DTD, `a < b`, …
                    i += 1
                }
            }
        }
        return out
    }

    private static let lessThan = Array("&lt;".utf8)
    private static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    /// Copies the run from `i` of bytes that need nothing; returns where it stopped.
    private static func copyPlain(_ buf: UnsafeBufferPointer<UInt8>, from i: Int, into out: inout [UInt8]) -> Int {
        var k = i
        while k < buf.count {
            let b = buf[k]
            if b == UInt8(ascii: "<") || b == UInt8(ascii: "&") || (b < 0x20 && b != 0x09 && b != 0x0A && b != 0x0D) {
                break
            }
            k += 1
        }
        if k > i { out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[i..<k])) }
        return k
    }

    /// `<!DOCTYPE` in any letter case (XML takes only upper case; a lower-case one goes too).
    private static func isDoctype(_ buf: UnsafeBufferPointer<UInt8>, at i: Int) -> Bool {
        let word = Array("<!DOCTYPE".utf8)
        guard i + word.count <= buf.count else { return false }
        for (k, c) in word.enumerated() where buf[i + k] != c && buf[i + k] != (c | 0x20) { return false }
        return true
    }

    /// Skips a DOCTYPE from just past `<!DOCTYPE` to just past its closing `>`: quoted literals,
    /// and in the internal subset comments and PIs too, may hold `>`, `[` and `]`. An unclosed one
    /// runs to the end of the document.
    private static func skipDoctype(_ buf: UnsafeBufferPointer<UInt8>, from j: Int) -> Int {
        let n = buf.count
        var k = j
        var inSubset = false
        func past(_ terminator: [UInt8], from start: Int) -> Int {
            var m = start
            while m + terminator.count <= n {
                if buf[m] == terminator[0], (0..<terminator.count).allSatisfy({ buf[m + $0] == terminator[$0] }) {
                    return m + terminator.count
                }
                m += 1
            }
            return n
        }
        while k < n {
            let c = buf[k]
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                k = past([c], from: k + 1)
            } else if inSubset, c == UInt8(ascii: "<"), k + 3 < n, buf[k + 1] == UInt8(ascii: "!"),
                buf[k + 2] == UInt8(ascii: "-"), buf[k + 3] == UInt8(ascii: "-")
            {
                k = past(Array("-->".utf8), from: k + 4)
            } else if inSubset, c == UInt8(ascii: "<"), k + 1 < n, buf[k + 1] == UInt8(ascii: "?") {
                k = past(Array("?>".utf8), from: k + 2)
            } else if c == UInt8(ascii: "[") {
                inSubset = true
                k += 1
            } else if c == UInt8(ascii: "]") {
                inSubset = false
                k += 1
            } else if c == UInt8(ascii: ">") && !inSubset {
                return k + 1
            } else {
                k += 1
            }
        }
        return n
    }

    /// Copies a start or end tag from its `<` to its `>`. In a quoted attribute value, a `<`
    /// becomes `&lt;` and references are handled as in text; outside the quotes a stray `<` is
    /// escaped too, so a malformed tag cannot hide markup from this scan. Returns where to go on.
    private static func copyTag(
        _ input: [UInt8], _ buf: UnsafeBufferPointer<UInt8>, from i: Int, into out: inout [UInt8]
    ) -> Int {
        out.append(UInt8(ascii: "<"))
        var k = i + 1
        var quote: UInt8? = nil
        while k < buf.count {
            // Copy the run of bytes that mean nothing here in one go.
            var m = k
            while m < buf.count {
                let c = buf[m]
                if c == UInt8(ascii: "&") || c == UInt8(ascii: "<") || c == UInt8(ascii: ">") || c == UInt8(ascii: "\"")
                    || c == UInt8(ascii: "'") || (c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D)
                {
                    break
                }
                m += 1
            }
            if m > k { out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[k..<m])) }
            k = m
            guard k < buf.count else { break }
            let c = buf[k]
            if c == UInt8(ascii: "&") {
                k = entity(input, at: k, into: &out)
                continue
            }
            if c == UInt8(ascii: "<") {
                out.append(contentsOf: lessThan)
            } else if c < 0x20 {
                out.append(contentsOf: replacement)
            } else {
                out.append(c)
                if let q = quote {
                    if c == q { quote = nil }
                } else if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                    quote = c
                } else if c == UInt8(ascii: ">") {
                    return k + 1
                }
            }
            k += 1
        }
        return k
    }

    private static func isNameStart(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || b == UInt8(ascii: "_") || b == UInt8(ascii: ":")
            || b >= 0x80
    }

    /// Handles the `&` at `i`; returns where to go on.
    private static func entity(_ input: [UInt8], at i: Int, into out: inout [UInt8]) -> Int {
        let n = input.count
        var j = i + 1
        if j < n, input[j] == UInt8(ascii: "#") {
            // A numeric reference passes when well formed and a legal XML character.
            j += 1
            let hex = j < n && (input[j] == UInt8(ascii: "x") || input[j] == UInt8(ascii: "X"))
            if hex { j += 1 }
            let start = j
            while j < n, j - start < 8, hex ? isHex(input[j]) : isDigit(input[j]) { j += 1 }
            if j > start, j < n, input[j] == UInt8(ascii: ";"),
                let v = UInt32(String(decoding: input[start..<j], as: UTF8.self), radix: hex ? 16 : 10), isXMLChar(v)
            {
                out.append(contentsOf: input[i...j])
                return j + 1
            }
            if j > start, j < n, input[j] == UInt8(ascii: ";") {
                out.append(contentsOf: [0xEF, 0xBF, 0xBD]) // &#0; and friends: replacement character
                return j + 1
            }
            out.append(contentsOf: Array("&amp;".utf8))
            return i + 1
        }
        let start = j
        while j < n, j - start < 40, isNameByte(input[j]) { j += 1 }
        if j > start, j < n, input[j] == UInt8(ascii: ";") {
            let name = String(decoding: input[start..<j], as: UTF8.self)
            switch name {
            case "amp", "lt", "gt", "quot", "apos":
                out.append(contentsOf: input[i...j])
            default:
                if let cps = HTMLEntities.table[name] {
                    for cp in cps { out.append(contentsOf: Array("&#\(cp);".utf8)) }
                } else {
                    out.append(contentsOf: Array("&amp;".utf8))
                    return i + 1
                }
            }
            return j + 1
        }
        out.append(contentsOf: Array("&amp;".utf8))
        return i + 1
    }

    private static func isHex(_ b: UInt8) -> Bool { isDigit(b) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46) }
    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    private static func isNameByte(_ b: UInt8) -> Bool {
        isDigit(b) || (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A)
    }
    private static func isXMLChar(_ v: UInt32) -> Bool {
        v == 0x9 || v == 0xA || v == 0xD || (0x20...0xD7FF).contains(v) || (0xE000...0xFFFD).contains(v)
            || (0x10000...0x10FFFF).contains(v)
    }
}
