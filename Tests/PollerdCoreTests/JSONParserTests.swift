import Foundation
import Testing

@testable import PollerdCore

@Suite struct JSONParserTests {
    func decoder(_ s: String) -> JSONValue? { try? JSONDecoder().decode(JSONValue.self, from: Data(s.utf8)) }
    func parser(_ s: String) -> JSONValue? { try? JSONValue.parse(Data(s.utf8)) }

    /// Inputs on which the parser must agree with Foundation's JSONDecoder (value, or both refuse).
    static let agreed: [String] = [
        "{}", "[]", "null", "true", "false", "0", "-0", "42", "-9223372036854775808", "9223372036854775807",
        "1.5", "-2.25e-3", "1E-2", "\"\"", "\"plain\"", "\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t\"",
        "\"\\u00e9\\u4e2d\"",
        "\"\\ud83d\\ude00\"", "\"é中😀\"", " { \"a\" : [ 1 , 2 , { \"b\" : null } ] } ",
        "{\"result\":{\"next_cursor\":\"AAE\",\"items\":[{\"id\":\"x\"}]},\"id\":7,\"jsonrpc\":\"2.0\"}",
        // refused by both
        "", " ", "{", "{a:1}", "'x'", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "[1 2]",
        "\"unterminated", "\"bad \\x escape\"", "\"\\ud800\"", "\"\\udc00 lone\"", "\"tab\tinside\"", "NaN", "Infinity",
        "{\"a\":1} x", "[1]]", "1e400",
    ]

    @Test(arguments: agreed)
    func agreesWithJSONDecoder(_ input: String) {
        #expect(parser(input) == decoder(input), "input: \(input)")
    }

    /// Where the parser is stricter than JSONDecoder, as serde_json (nexo's side) is.
    @Test func trailingCommasAreRefused() {
        #expect(parser("[1,]") == nil && decoder("[1,]") != nil)
        #expect(parser("{\"a\":1,}") == nil && decoder("{\"a\":1,}") != nil)
    }

    /// A number with a fraction or exponent stays a double (JSONDecoder made `-2.25e3` an
    /// integer); `intValue` still reads integral doubles.
    @Test func numbersKeepTheirForm() {
        #expect(parser("-2.25e3") == .double(-2250) && parser("-2.25e3")?.intValue == -2250)
        #expect(parser("60.0")?.intValue == 60)
    }

    @Test func numbersBeyondInt64AreDoubles() {
        #expect(parser("9223372036854775808") == .double(9_223_372_036_854_775_808))
        #expect(parser("1.0") == .double(1.0))
        #expect(parser("-7") == .int(-7))
    }

    @Test func invalidUTF8AndDeepNestingAreRefused() {
        #expect((try? JSONValue.parse(Data([0x22, 0xFF, 0xFE, 0x22]))) == nil)
        #expect(parser(String(repeating: "[", count: 600) + String(repeating: "]", count: 600)) == nil)
        #expect(parser(String(repeating: "[", count: 500) + String(repeating: "]", count: 500)) != nil)
        #expect(parser(String(repeating: "{\"a\":", count: 100_000)) == nil) // no stack overflow
    }

    @Test func canonicalTextRoundTrips() {
        var rng = SystemRandomNumberGenerator()
        func random(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2: return .int(Int64.random(in: .min ... .max, using: &rng))
            case 3: return .double(Double.random(in: -1e9...1e9, using: &rng).rounded() + 0.5)
            case 4:
                let pool: [Character] = ["a", "é", "\"", "\\", "\n", "\u{01}", "😀", "中", " ", "/"]
                return .string(
                    String((0..<Int.random(in: 0...8, using: &rng)).map { _ in pool.randomElement(using: &rng)! }))
            case 5: return .array((0..<Int.random(in: 0...4, using: &rng)).map { _ in random(depth + 1) })
            default:
                var o: [String: JSONValue] = [:]
                for k in 0..<Int.random(in: 0...4, using: &rng) { o["k\(k)\u{e9}"] = random(depth + 1) }
                return .object(o)
            }
        }
        for _ in 0..<500 {
            let v = random(0)
            let text = v.canonicalString
            #expect(parser(text) == v, "\(text)")
            #expect(decoder(text) == v, "\(text)")
        }
    }

    // MARK: JSONView: validated once, read in place

    func viewValid(_ s: String) -> Bool { JSONView.withRoot(Array(s.utf8)) { _ in true } ?? false }

    @Test(arguments: agreed)
    func viewAcceptsWhatTheParserAccepts(_ input: String) {
        #expect(viewValid(input) == (parser(input) != nil), "input: \(input)")
    }

    @Test func viewRefusesWhatTheParserRefuses() {
        for bad in [
            "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{1:2}", "[\"\u{7}\"]", "{\"k\":\"\\q\"}", "[1e999]", "[-]", "[00]",
            "{\"a\":tru}",
        ] {
            #expect(!viewValid(bad) && parser(bad) == nil, "input: \(bad)")
        }
        #expect(JSONView.withRoot([0x22, 0xFF, 0xFE, 0x22]) { _ in true } == nil)
        #expect(JSONView.withRoot(Array(("{\"k\":\"" + "\u{e9}" + "\"}").utf8)) { _ in true } == true)
        #expect(!viewValid(String(repeating: "[", count: 600) + String(repeating: "]", count: 600)))
        #expect(viewValid(String(repeating: "[", count: 500) + String(repeating: "]", count: 500)))
        #expect(!viewValid(String(repeating: "{\"a\":", count: 100_000)))
    }

    /// `member` finds what the parsed dictionary holds: the last of repeated keys, keys written
    /// with escapes, values of every kind, and nothing inside nested values.
    @Test func viewMembersMatchTheParsedObject() {
        let text =
            #"{ "a" : 1 , "b":{"a":2,"x":[1,{"a":3}]}, "s":"q\"}", "a":[4, "}"], "\u0069d": 7, "n": null, "e": "\u00e9", "long_key_over_16_bytes": true }"#
        let parsed = parser(text)
        let got: [String: JSONValue?]? = JSONView.withRoot(Array(text.utf8)) { root in
            [
                "a": root.member("a")?.value, "b": root.member("b")?.value, "s": root.member("s")?.value,
                "id": root.member("id")?.value,
                "n": root.member("n")?.value, "e": root.member("e")?.value,
                "long_key_over_16_bytes": root.member("long_key_over_16_bytes")?.value,
                "x": root.member("x")?.value, "nested": root.member("b")?.member("a")?.value,
            ]
        }
        #expect(got?["a"] == parsed?["a"] && got?["a"] == .array([.int(4), .string("}")]))
        #expect(got?["b"] == parsed?["b"] && got?["s"] == parsed?["s"] && got?["id"] == .int(7))
        #expect(got?["n"] == .null && got?["e"] == .string("\u{e9}") && got?["long_key_over_16_bytes"] == .bool(true))
        #expect(got?["x"] == .some(nil) && got?["nested"] == .int(2))
        // Not an object: no members.
        #expect(JSONView.withRoot(Array("[1]".utf8)) { $0.member("a") == nil } == true)
    }

    @Test func viewAgreesWithTheParserOnRandomObjects() {
        var rng = SystemRandomNumberGenerator()
        let keys = ["a", "id", "é", "k\"q", "result"]
        for _ in 0..<300 {
            // Objects written by hand so that keys repeat (a dictionary cannot hold that).
            var parts: [String] = []
            for _ in 0..<Int.random(in: 0...6, using: &rng) {
                let k = keys.randomElement(using: &rng)!
                let v: JSONValue = [
                    .int(Int64.random(in: -5...5, using: &rng)), .string(k), .array([.null, .bool(true)]),
                    .object(["a": .double(1.5)]),
                ]
                .randomElement(using: &rng)!
                parts.append("\(JSONValue.string(k).canonicalString) : \(v.canonicalString)")
            }
            let text = "{" + parts.joined(separator: " , ") + "}"
            let parsed = parser(text)
            let viewed = JSONView.withRoot(Array(text.utf8)) { root in
                keys.map { k -> JSONValue? in
                    switch k {
                    case "a": root.member("a")?.value
                    case "id": root.member("id")?.value
                    case "é": root.member("é")?.value
                    case "k\"q": root.member("k\"q")?.value
                    default: root.member("result")?.value
                    }
                }
            }
            #expect(viewed == keys.map { parsed?[$0] }, "\(text)")
        }
    }

    /// Validation records where each string and container ends (`JSONParser.validate(_:ends:)`)
    /// and a view reads that instead of scanning; texts over `JSONView.recordedEndsLimit` are
    /// scanned. Both must find the same members: a value rebuilt through nested views (objects
    /// member by member, the rest built) equals the parsed text, on random documents written
    /// with and without whitespace, small (scratch on the stack), over 2 KiB (on the heap) and
    /// over the limit.
    @Test func viewsFindTheSameMembersWithRecordedEndsOrScanning() {
        var rng = SystemRandomNumberGenerator()
        func random(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &rng) {
            case 0: return .null
            case 1: return .int(Int64.random(in: -1000...1000, using: &rng))
            case 2:
                let pool: [Character] = ["a", "é", "\"", "\\", "\n", "}", "]", "{", ",", ":"]
                return .string(
                    String((0..<Int.random(in: 0...6, using: &rng)).map { _ in pool.randomElement(using: &rng)! }))
            case 3: return .double(1.5)
            case 4: return .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in random(depth + 1) })
            default:
                var o: [String: JSONValue] = [:]
                for k in 0..<Int.random(in: 0...4, using: &rng) {
                    o[["k\(k)", "a\"b", "é"].randomElement(using: &rng)!] = random(depth + 1)
                }
                return .object(o)
            }
        }
        func rebuilt(_ v: JSONView) -> JSONValue {
            guard v.isObject else { return v.value }
            var o: [String: JSONValue] = [:]
            v.forEachMember { k, m in o[k.string] = rebuilt(m) }
            return .object(o)
        }
        func spaced(_ text: String) -> String {
            // Whitespace after every structural character outside strings.
            var out = ""
            var inString = false
            var escaped = false
            for c in text {
                out.append(c)
                if inString {
                    if escaped {
                        escaped = false
                    } else if c == "\\" {
                        escaped = true
                    } else if c == "\"" {
                        inString = false
                    }
                    continue
                }
                if c == "\"" { inString = true } else if "{}[],:".contains(c) { out += " \n" }
            }
            return " " + out + "\t"
        }
        func check(_ text: String) {
            let want = parser(text)
            #expect(want != nil)
            #expect(JSONView.withRoot(Array(text.utf8)) { rebuilt($0) } == want, "\(text.prefix(300))")
        }
        for _ in 0..<300 {
            let v = JSONValue.object(["r": random(0), "s": random(1)])
            check(v.canonicalString)
            check(spaced(v.canonicalString))
        }
        // Over 2 KiB, and over the limit (scanned): members after a long string and a long array.
        for size in [3000, JSONView.recordedEndsLimit + 10] {
            let long = JSONValue.object([
                "pad": .string(String(repeating: "x", count: size)), "list": .array((0..<50).map { .int($0) }),
                "z": .object(["a": .object(["b": .string("}{")])]),
            ])
            check(long.canonicalString)
            check(spaced(long.canonicalString))
        }
    }

    /// A key compares by its bytes, escaped or not: the same length compares byte for byte, a
    /// shorter one differs, a longer one only says the name through escapes.
    @Test func viewKeysCompareEscapedOrNot() {
        let text = #"{"ab":1,"ac":2,"a":3,"abc":4,"a\u0062":5,"\u0061\u0062":6,"a\"":7}"#
        let seen = JSONView.withRoot(Array(text.utf8)) { root -> [Int64] in
            var hits: [Int64] = []
            root.forEachMember { k, v in if k == "ab" { hits.append(v.intValue ?? -1) } }
            return hits
        }
        #expect(parser(text) != nil, "\(text)")
        #expect(seen == [1, 5, 6])
        #expect(JSONView.withRoot(Array(text.utf8)) { $0.member("a")?.intValue } == 3)
    }

    /// Integers are written digit by digit: the edges of Int64 and the powers of ten.
    @Test func integersAreWrittenAsSwiftPrintsThem() {
        var values: [Int64] = [.min, .max, .min + 1, -1, 0, 9, 10, 11, 99, 100, -10, 1_000_000_000_000_000_000]
        for e in 0..<19 {
            let p = Int64(pow(10.0, Double(e)))
            values += [p, p - 1, -p, -p + 1]
        }
        for v in values {
            var out: [UInt8] = []
            JSONValue.writeInt(v, into: &out)
            #expect(String(decoding: out, as: UTF8.self) == String(v))
        }
    }

    /// `intValue` and `withStringBytes`, read in place, answer what the built value does: numbers
    /// at and past the 18-digit fast path and the Int64 range, fractions, exponents, other
    /// kinds; strings with and without escapes.
    @Test func viewScalarsAgreeWithTheBuiltValue() {
        var rng = SystemRandomNumberGenerator()
        var numbers = [
            "0", "-0", "7", "-7", "123456789012345678", "-123456789012345678", "1234567890123456789",
            "9223372036854775807",
            "-9223372036854775808", "9223372036854775808", "99999999999999999999", "7.0", "7.5", "-2e3", "1E2", "0.0",
            "1e400",
        ]
        for _ in 0..<500 {
            let digits = Int.random(in: 1...20, using: &rng)
            var n =
                String(Int.random(in: 1...9, using: &rng))
                + String((1..<digits).map { _ in Character(String(Int.random(in: 0...9, using: &rng))) })
            if Bool.random(using: &rng) { n = "-" + n }
            if Int.random(in: 0..<5, using: &rng) == 0 { n += [".0", ".25", "e2", "E-1"].randomElement(using: &rng)! }
            numbers.append(n)
        }
        for n in numbers + ["\"7\"", "true", "null", "[7]", "{\"a\":7}"] {
            let text = "{\"n\":\(n) }"
            guard let want = parser(text) else { continue } // 1e400: refused by both
            let got = JSONView.withRoot(Array(text.utf8)) { root in root.member("n")?.intValue }
            #expect(got == .some(want["n"]?.intValue), "\(n)")
        }
        for str in ["", "plain", "d29ybGQ", #"a\"b"#, #"\u00e9t\u00e9"#, #"tab\there"#, "\u{e9}t\u{e9}"] {
            let text = "{\"s\":\"\(str)\",\"n\":1}"
            let want = parser(text)?["s"]?.stringValue
            let got = JSONView.withRoot(Array(text.utf8)) { root in
                root.member("s")?.withStringBytes { String(decoding: $0, as: UTF8.self) }
            }
            #expect(got == .some(want), "\(str)")
            #expect(
                JSONView.withRoot(Array(text.utf8)) { root in root.member("n")?.withStringBytes { _ in true } }
                    == .some(nil))
        }
    }

    /// The hand-written URL-safe base64 agrees with Foundation's decoder (after the alphabet
    /// and padding are mapped) on valid and invalid text alike.
    @Test func base64URLAgreesWithFoundation() {
        var rng = SystemRandomNumberGenerator()
        let pool = Array("ABCxyz019-_+/=.!".utf8)
        func foundation(_ s: String) -> Data? {
            var b = Array(s.utf8)
            while b.last == UInt8(ascii: "=") { b.removeLast() }
            guard
                b.allSatisfy({
                    ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95
                }),
                b.count % 4 != 1
            else { return nil }
            b = b.map { $0 == 45 ? 43 : $0 == 95 ? 47 : $0 }
            while b.count % 4 != 0 { b.append(UInt8(ascii: "=")) }
            return Data(base64Encoded: Data(b))
        }
        for _ in 0..<2000 {
            let s = String(
                decoding: (0..<Int.random(in: 0...12, using: &rng)).map { _ in pool.randomElement(using: &rng)! },
                as: UTF8.self)
            #expect(Base64URL.decode(s) == foundation(s), "\(s)")
            let d = Data((0..<Int.random(in: 0...10, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            let e = Base64URL.encode(d)
            #expect(
                Base64URL.decode(e) == d && !e.contains("=")
                    && e
                        == d.base64EncodedString().replacingOccurrences(of: "=", with: "")
                        .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            )
        }
    }
}

extension JSONView {
    /// The value of the member named `key` (the last one, if the key repeats), through the
    /// decoder's own `forEachMember`.
    func member(_ key: StaticString) -> JSONView? {
        var found: JSONView?
        forEachMember { k, v in if k == key { found = v } }
        return found
    }
}
