public import Foundation

/// URL-safe base64 without padding, the cursor encoding on the wire. Encoded and decoded by
/// hand, byte by byte: the cursor crosses this on every tick, and going through Foundation's
/// standard alphabet meant copying and rewriting the text each way.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    /// Each byte's 6-bit value, 0xFF for a byte outside the URL-safe alphabet.
    private static let sextets: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (k, c) in alphabet.enumerated() { t[Int(c)] = UInt8(k) }
        return t
    }()

    /// Encodes bytes as URL-safe base64 without padding.
    public static func encode(_ data: Data) -> String {
        var out: [UInt8] = []
        write(data, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `encode(data)`'s characters to `out` (a tick request carries its cursor this way,
    /// without a `String` in between; the alphabet needs no JSON escaping).
    public static func write(_ data: Data, into out: inout [UInt8]) {
        data.withUnsafeBytes { raw in
            let n = raw.count
            out.reserveCapacity(out.count + (n * 4 + 2) / 3)
            alphabet.withUnsafeBufferPointer { a in
                var k = 0
                while k + 3 <= n {
                    let w = UInt32(raw[k]) << 16 | UInt32(raw[k + 1]) << 8 | UInt32(raw[k + 2])
                    out.append(a[Int(w >> 18)])
                    out.append(a[Int(w >> 12 & 63)])
                    out.append(a[Int(w >> 6 & 63)])
                    out.append(a[Int(w & 63)])
                    k += 3
                }
                if n - k == 1 {
                    let w = UInt32(raw[k]) << 16
                    out.append(a[Int(w >> 18)])
                    out.append(a[Int(w >> 12 & 63)])
                } else if n - k == 2 {
                    let w = UInt32(raw[k]) << 16 | UInt32(raw[k + 1]) << 8
                    out.append(a[Int(w >> 18)])
                    out.append(a[Int(w >> 12 & 63)])
                    out.append(a[Int(w >> 6 & 63)])
                }
            }
        }
    }

    /// Decodes URL-safe base64; padding is accepted but not required. Nil if invalid.
    public static func decode(_ text: String) -> Data? {
        var text = text
        return text.withUTF8 { decode(bytes: $0) }
    }

    /// Decodes URL-safe base64 from its UTF-8 bytes, as `decode(_:)`. Trailing `=` are ignored;
    /// what remains must be in the URL-safe alphabet, and not one character past a multiple of
    /// four (that leaves no whole byte). Unused low bits of the last character are ignored, as
    /// Foundation's decoder does.
    public static func decode(bytes: UnsafeBufferPointer<UInt8>) -> Data? {
        var n = bytes.count
        while n > 0 && bytes[n - 1] == UInt8(ascii: "=") { n -= 1 }
        if n % 4 == 1 { return nil }
        // Every four characters make three bytes; two or three left over make one or two.
        var out = Data(count: n * 6 / 8)
        let ok = out.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) -> Bool in
            var acc: UInt32 = 0
            var bits: UInt32 = 0
            var o = 0
            for k in 0..<n {
                let v = sextets[Int(bytes[k])]
                if v == 0xFF { return false }
                acc = acc << 6 | UInt32(v)
                bits += 6
                if bits >= 8 {
                    bits -= 8
                    raw[o] = UInt8(truncatingIfNeeded: acc >> bits)
                    o += 1
                    acc &= (1 << bits) - 1
                }
            }
            return true
        }
        guard ok else { return nil }
        return out
    }
}
