#if canImport(Glibc)
import Glibc
#endif

/// A value inside a JSON text that was validated once, read in place: an object's members are
/// found by scanning its bytes, and only the values asked for are built.
///
/// Decoding a plugin's reply through `JSONValue` built a dictionary for the envelope, the
/// result and the metrics on every tick, hashed each key and freed it all again: with a
/// long-lived plugin that was a fifth of the daemon's CPU per tick. A view answers the same
/// questions (`member` keeps the last of repeated keys, as `JSONValue.parse` does) without it.
///
/// A view points into the bytes given to `JSONView.withRoot` and is valid only inside its body.
public struct JSONView {
    private let bytes: UnsafeBufferPointer<UInt8>
    /// The value's first byte (after any whitespace).
    private let start: Int
    /// Where each string and container ends, by the offset it starts at, as validation found
    /// it (`JSONParser.validate(_:ends:)`); nil: found by scanning.
    private let ends: UnsafePointer<Int32>?

    private init(_ bytes: UnsafeBufferPointer<UInt8>, at start: Int, ends: UnsafePointer<Int32>?) {
        self.bytes = bytes
        self.start = start
        self.ends = ends
    }

    /// Texts up to this size keep the ends validation found (4 bytes of scratch per byte of
    /// text): an object's members are then found without scanning its values again.
    @usableFromInline static let recordedEndsLimit = 1 << 20

    /// Validates `text` as strictly as `JSONValue.parse` does and hands its root value to
    /// `body`; nil (body not called) when it is not one JSON text.
    ///
    /// Inlinable so that it is specialized where it is called: generic across modules, it looked
    /// up type metadata on every call, more than the validation itself cost on a reply frame.
    @inlinable
    public static func withRoot<R>(_ text: [UInt8], _ body: (JSONView) -> R) -> R? {
        text.withUnsafeBufferPointer { buf -> R? in
            guard buf.count <= recordedEndsLimit, !buf.isEmpty else { return root(buf, ends: nil).map(body) }
            // A reply line is usually a few hundred bytes: its scratch is on the stack.
            if buf.count <= 2048 {
                return withUnsafeTemporaryAllocation(of: Int32.self, capacity: buf.count) {
                    root(buf, ends: $0.baseAddress!).map(body)
                }
            }
            let scratch = UnsafeMutablePointer<Int32>.allocate(capacity: buf.count)
            defer { scratch.deallocate() }
            return root(buf, ends: scratch).map(body)
        }
    }

    /// The root value of `buf` once validated (recording the ends into `ends`, if given), valid
    /// while `buf` and `ends` are; nil when `buf` is not one JSON text.
    @usableFromInline
    static func root(_ buf: UnsafeBufferPointer<UInt8>, ends: UnsafeMutablePointer<Int32>?) -> JSONView? {
        do throws(JSONParser.Failure) {
            if let ends { try JSONParser.validate(buf, ends: ends) } else { try JSONParser.validate(buf) }
        } catch { return nil }
        var p = JSONParser(buf)
        p.skipSpace()
        return JSONView(buf, at: p.i, ends: ends.map { UnsafePointer($0) })
    }

    public var isObject: Bool { bytes[start] == UInt8(ascii: "{") }
    public var isNull: Bool { bytes[start] == UInt8(ascii: "n") }

    /// The value, built. (It was validated: this cannot fail; `.null` stands in if it ever did.)
    public var value: JSONValue {
        var p = JSONParser(bytes, at: start)
        do throws(JSONParser.Failure) { return try p.value(depth: 0) } catch { return .null }
    }

    /// `value.intValue`, read in place for a plain integer (no fraction or exponent, at most 18
    /// digits); other numbers are built to decide, anything else is nil.
    public var intValue: Int64? {
        var i = start
        let negative = bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        guard i < bytes.count, bytes[i] &- UInt8(ascii: "0") < 10 else { return nil }
        var v: Int64 = 0
        let first = i
        while i < bytes.count, bytes[i] &- UInt8(ascii: "0") < 10, i - first < 18 {
            v = v &* 10 &+ Int64(bytes[i] &- UInt8(ascii: "0"))
            i += 1
        }
        if i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"):
                return value.intValue
            default: break
            }
        }
        return negative ? -v : v
    }

    /// Calls `body` with this string's UTF-8 bytes: in place when it has no escapes, else
    /// decoded. nil (body not called) when this is not a string.
    public func withStringBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        guard bytes[start] == UInt8(ascii: "\"") else { return nil }
        let end = stringEnd(from: start)
        let raw = UnsafeBufferPointer(rebasing: bytes[(start + 1)..<(end - 1)])
        if !raw.contains(UInt8(ascii: "\\")) { return body(raw) }
        guard case .string(var s) = value else { return nil }
        return s.withUTF8(body)
    }

    /// Calls `body` with each member of this object in order, repeated keys included (nothing
    /// when this is not an object). Nothing is allocated: callers keep what they want, and
    /// keeping the last of a repeated key matches `JSONValue.parse`.
    public func forEachMember(_ body: (Key, JSONView) -> Void) {
        guard isObject else { return }
        var i = start + 1
        while true {
            i = space(from: i)
            if bytes[i] == UInt8(ascii: "}") { return }
            let keyEnd = stringEnd(from: i)
            let key = Key(bytes: bytes, quote: i, end: keyEnd)
            i = space(from: keyEnd) + 1 // past ':'
            let valueStart = space(from: i)
            i = valueEnd(from: valueStart)
            body(key, JSONView(bytes, at: valueStart, ends: ends))
            i = space(from: i)
            if bytes[i] == UInt8(ascii: ",") { i += 1 }
        }
    }

    /// A member's key, compared without building a `String` unless it has escapes.
    public struct Key {
        fileprivate let bytes: UnsafeBufferPointer<UInt8>
        fileprivate let quote: Int
        fileprivate let end: Int

        /// The key, decoded.
        public var string: String {
            var p = JSONParser(bytes, at: quote)
            do throws(JSONParser.Failure) { return try p.string() } catch { return "" }
        }

        /// `name` is a plain key: no backslash or quote in it.
        public static func == (k: Key, name: StaticString) -> Bool {
            let want = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
            let raw = UnsafeBufferPointer(rebasing: k.bytes[(k.quote + 1)..<(k.end - 1)])
            // An escape makes the raw key longer than what it says: a key of the same length
            // compares byte for byte, a shorter one differs, and only a longer one may say
            // `name` with escapes.
            if raw.count == want.count {
                return want.isEmpty || memcmp(raw.baseAddress!, want.baseAddress!, want.count) == 0
            }
            if raw.count < want.count || !raw.contains(UInt8(ascii: "\\")) { return false }
            var p = JSONParser(k.bytes, at: k.quote)
            do throws(JSONParser.Failure) { return try p.string().utf8.elementsEqual(want) } catch { return false }
        }
    }

    // The scanning below trusts the bytes: they were validated.

    private func space(from i: Int) -> Int {
        var i = i
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        return i
    }

    /// Just past the string whose opening quote is at `i`.
    private func stringEnd(from i: Int) -> Int {
        if let ends { return Int(ends[i]) }
        var i = i + 1
        while bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
        return i + 1
    }

    /// Just past the value starting at `i`.
    private func valueEnd(from i: Int) -> Int {
        var i = i
        switch bytes[i] {
        case UInt8(ascii: "\""): return stringEnd(from: i)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            if let ends { return Int(ends[i]) }
            var depth = 0
            repeat {
                switch bytes[i] {
                case UInt8(ascii: "\""):
                    i = stringEnd(from: i)
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
                default: break
                }
                i += 1
            } while depth > 0
            return i
        default:
            // A number or a literal: up to the next delimiter.
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x0A, 0x0D, 0x09: return i
                default: i += 1
                }
            }
            return i
        }
    }
}
