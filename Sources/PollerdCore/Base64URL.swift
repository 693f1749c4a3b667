public import Foundation

/// URL-safe base64 without padding, the cursor encoding on the wire.
public enum Base64URL {
    /// Encodes bytes as URL-safe base64 without padding.
    public static func encode(_ data: Data) -> String {
        var s = data.base64EncodedString()
        s = s.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        while s.hasSuffix("=") { s.removeLast() }
        return s
    }

    /// Decodes URL-safe base64; padding is accepted but not required. Nil if invalid.
    public static func decode(_ text: String) -> Data? {
        var s = text
        while s.hasSuffix("=") { s.removeLast() }
        guard s.utf8.allSatisfy({ ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }) else {
            return nil
        }
        if s.count % 4 == 1 { return nil }
        s = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s.append("=") }
        return Data(base64Encoded: s)
    }
}
