import Foundation
import PollerdCore

#if canImport(Glibc)
import Glibc
#endif

/// Reads a job file or manifest as text, bounded and checked before any parser sees it, so that
/// a bad byte is reported where it is (`FILE:LINE:COL`) rather than as a parser's end of file.
enum SourceText {
    /// Decodes `data` as UTF-8 text. Refuses, with the line and column of the first offending
    /// byte: invalid UTF-8 and a NUL byte (which YAML and TOML parsers read as the end).
    static func decode(_ data: Data, path: String, what: String) -> Result<String, ConfigError> {
        let bytes = [UInt8](data)
        var i = 0
        var line = 1
        var lineStart = 0
        func located(_ message: String) -> Result<String, ConfigError> {
            // Columns count characters: the bytes since the line start that begin a character.
            let column = bytes[lineStart..<i].filter { $0 & 0xC0 != 0x80 }.count + 1
            return .failure(ConfigError(file: path, line: line, column: column, message: message))
        }
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x0A {
                line += 1
                lineStart = i + 1
                i += 1
                continue
            }
            if b == 0 { return located("\(what) contains a NUL byte; text files may not") }
            if b < 0x80 {
                i += 1
                continue
            }
            let n = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 && b < 0xE0 ? 2 : 0
            var ok = n > 0 && i + n <= bytes.count
            if ok {
                for k in 1..<n where bytes[i + k] & 0xC0 != 0x80 { ok = false }
            }
            if ok {
                // Overlong, surrogate and out-of-range forms.
                let c1 = bytes[i + 1]
                if (b == 0xE0 && c1 < 0xA0) || (b == 0xED && c1 >= 0xA0) || (b == 0xF0 && c1 < 0x90)
                    || (b == 0xF4 && c1 >= 0x90)
                {
                    ok = false
                }
            }
            guard ok else {
                return located(
                    "\(what) is not valid UTF-8: byte 0x\(String(b, radix: 16, uppercase: true)) does not start a valid sequence"
                )
            }
            i += n
        }
        return .success(String(decoding: bytes, as: UTF8.self))
    }

    /// Reads a file of at most `maxBytes`; the error says which limit or failure stopped it.
    static func read(path: String, what: String, maxBytes: Int) -> Result<String, ConfigError> {
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > maxBytes {
            return .failure(
                ConfigError(
                    file: path, line: 0, column: 0,
                    message: "the \(what) is \(size) bytes, over the \(maxBytes)-byte limit"))
        }
        switch readAll(path: path, maxBytes: maxBytes) {
        case .success(let data): return decode(data, path: path, what: "the \(what)")
        case .failure(let code):
            return .failure(
                ConfigError(file: path, line: 0, column: 0, message: "cannot read the \(what): \(describe(code))"))
        }
    }

    /// The file's bytes (at most `maxBytes` + 1, so that a file that grew is still refused by
    /// `decode`'s caller), or the `errno` that stopped the read.
    private static func readAll(path: String, maxBytes: Int) -> Result<Data, Errno> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Errno(errno)) }
        defer { close(fd) }
        var data = Data()
        var buf = [UInt8](repeating: 0, count: 64 << 10)
        while data.count <= maxBytes {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Errno(errno))
            }
            if n == 0 { break }
            data.append(contentsOf: buf.prefix(n))
        }
        return .success(data)
    }

    struct Errno: Error {
        let code: Int32
        init(_ code: Int32) { self.code = code }
    }

    /// "No such file or directory (ENOENT)": the system's words, and the name to search for.
    static func describe(_ e: Errno) -> String {
        let names: [Int32: String] = [
            ENOENT: "ENOENT", EACCES: "EACCES", EPERM: "EPERM", EISDIR: "EISDIR", ENOTDIR: "ENOTDIR",
            ELOOP: "ELOOP", ENAMETOOLONG: "ENAMETOOLONG", EIO: "EIO", EMFILE: "EMFILE", ENFILE: "ENFILE",
        ]
        let text = String(cString: strerror(e.code))
        return names[e.code].map { "\(text) (\($0))" } ?? "\(text) (errno \(e.code))"
    }
}
