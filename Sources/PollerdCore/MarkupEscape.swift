/// Text made safe inside XML or HTML: `&`, `<` and `>` always; `"` inside a quoted attribute
/// (and in HTML text, where a template may quote it); `'` for HTML.
public enum MarkupEscape {
    public static func escape(_ s: String, quote: Bool, apostrophe: Bool) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"" where quote: out += "&quot;"
            case "'" where apostrophe: out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
