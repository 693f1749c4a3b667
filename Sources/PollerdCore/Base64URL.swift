public import Foundation

/// URL-safe base64 without padding, the cursor encoding on the wire.
public enum Base64URL {
    /// Encodes bytes as URL-safe base64 without padding.
    public static func encode(_ data: Data) -> String {
        // Byte-wise: `replacingOccurrences` goes through NSString and costs microseconds a call.
        var bytes = Array(data.base64EncodedString().utf8)
        while bytes.last == UInt8(ascii: "=") { bytes.removeLast() }
        for k in bytes.indices {
            if bytes[k] == UInt8(ascii: "+") { bytes[k] = UInt8(ascii: "-") } else if bytes[k] == UInt8(ascii: "/") { bytes[k] = UInt8(ascii: "_") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Decodes URL-safe base64; padding is accepted but not required. Nil if invalid.
    public static func decode(_ text: String) -> Data? {
        var bytes = Array(text.utf8)
        while bytes.last == UInt8(ascii: "=") { bytes.removeLast() }
        for k in bytes.indices {
            switch bytes[k] {
            case 65...90, 97...122, 48...57: continue
            case UInt8(ascii: "-"): bytes[k] = UInt8(ascii: "+")
            case UInt8(ascii: "_"): bytes[k] = UInt8(ascii: "/")
            default: return nil
            }
        }
        if bytes.count % 4 == 1 { return nil }
        while bytes.count % 4 != 0 { bytes.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(bytes))
    }
}
