import Foundation
import PollerdCore
import Testing

@Suite struct JSONParserTests {
    func decoder(_ s: String) -> JSONValue? { try? JSONDecoder().decode(JSONValue.self, from: Data(s.utf8)) }
    func parser(_ s: String) -> JSONValue? { try? JSONValue.parse(Data(s.utf8)) }

    /// Inputs on which the parser must agree with Foundation's JSONDecoder (value, or both refuse).
    static let agreed: [String] = [
        "{}", "[]", "null", "true", "false", "0", "-0", "42", "-9223372036854775808", "9223372036854775807",
        "1.5", "-2.25e-3", "1E-2", "\"\"", "\"plain\"", "\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", "\"\\u00e9\\u4e2d\"",
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
        #expect(parser("9223372036854775808") == .double(9223372036854775808))
        #expect(parser("1.0") == .double(1.0))
        #expect(parser("-7") == .int(-7))
    }

    @Test func invalidUTF8AndDeepNestingAreRefused() {
        #expect((try? JSONValue.parse(Data([0x22, 0xFF, 0xFE, 0x22]))) == nil)
        #expect(parser(String(repeating: "[", count: 600) + String(repeating: "]", count: 600)) == nil)
        #expect(parser(String(repeating: "[", count: 500) + String(repeating: "]", count: 500)) != nil)
        #expect(parser(String(repeating: "{\"a\":", count: 100_000)) == nil)       // no stack overflow
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
                return .string(String((0..<Int.random(in: 0...8, using: &rng)).map { _ in pool.randomElement(using: &rng)! }))
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
}
