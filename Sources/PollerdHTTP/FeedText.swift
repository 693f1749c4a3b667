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
    /// CDATA sections and comments pass through untouched.
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
            func copyThrough(_ terminator: StaticString, from j: Int) -> Int {
                // Copies input[j...] up to and including the terminator (or to the end).
                var k = j
                while k < n {
                    if buf[k] == terminator.utf8Start.pointee, starts(terminator, at: k) {
                        let end = k + terminator.utf8CodeUnitCount
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[j..<end]))
                        return end
                    }
                    k += 1
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[j..<n]))
                return n
            }
            var i = 0
            while i < n {
                // Copy the run of bytes that need nothing in one go.
                var k = i
                while k < n {
                    let b = buf[k]
                    if b == UInt8(ascii: "<") || b == UInt8(ascii: "&")
                        || (b < 0x20 && b != 0x09 && b != 0x0A && b != 0x0D)
                    {
                        break
                    }
                    k += 1
                }
                if k > i { out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[i..<k])) }
                i = k
                guard i < n else { break }
                let b = buf[i]
                if b == UInt8(ascii: "<") {
                    if starts("<![CDATA[", at: i) {
                        i = copyThrough("]]>", from: i)
                        continue
                    }
                    if starts("<!--", at: i) {
                        i = copyThrough("-->", from: i)
                        continue
                    }
                    if starts("<!DOCTYPE", at: i) || starts("<!doctype", at: i) {
                        // Skip to the '>' that closes it, past any internal subset in brackets.
                        var k = i + 9
                        var depth = 0
                        while k < n {
                            let c = buf[k]
                            if c == UInt8(ascii: "[") {
                                depth += 1
                            } else if c == UInt8(ascii: "]") {
                                depth -= 1
                            } else if c == UInt8(ascii: ">") && depth <= 0 {
                                break
                            }
                            k += 1
                        }
                        i = min(k + 1, n)
                        continue
                    }
                    out.append(b)
                    i += 1
                    continue
                }
                if b == UInt8(ascii: "&") {
                    i = entity(input, at: i, into: &out)
                    continue
                }
                out.append(contentsOf: [0xEF, 0xBF, 0xBD]) // a control character XML forbids
                i += 1
            }
        }
        return out
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
