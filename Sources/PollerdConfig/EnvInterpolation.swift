import Foundation
import PollerdCore

/// `${VAR}` and `${VAR:-default}` from the environment; `$$` is a literal `$`.
public enum EnvInterpolation {
    /// A missing variable or a malformed placeholder.
    public struct Failure: Error, Sendable, Equatable {
        public var message: String
    }

    /// Replaces placeholders in `text`.
    public static func expand(_ text: String, environment: [String: String]) throws(Failure) -> String {
        guard text.contains("$") else { return text }
        var out = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            guard c == "$" else {
                out.append(c)
                i = text.index(after: i)
                continue
            }
            let n = text.index(after: i)
            if n < text.endIndex, text[n] == "$" {
                out.append("$")
                i = text.index(after: n)
                continue
            }
            guard n < text.endIndex, text[n] == "{" else {
                out.append(c)
                i = n
                continue
            }
            guard let close = text[n...].firstIndex(of: "}") else {
                throw Failure(message: "unterminated '${' in \"\(text)\"")
            }
            let body = String(text[text.index(after: n)..<close])
            var name = body
            var fallback: String?
            if let r = body.range(of: ":-") {
                name = String(body[..<r.lowerBound])
                fallback = String(body[r.upperBound...])
            }
            guard EnvName.isValid(name) else {
                throw Failure(message: "'${\(body)}' is not a valid placeholder (use ${NAME} or ${NAME:-default})")
            }
            if let v = environment[name] {
                out += v
            } else if let fallback {
                out += fallback
            } else {
                throw Failure(
                    message: "environment variable '\(name)' is not set and has no default (write ${\(name):-default})")
            }
            i = text.index(after: close)
        }
        return out
    }
}
