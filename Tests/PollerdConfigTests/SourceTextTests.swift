import Foundation
import PollerdCore
import Testing

@testable import PollerdConfig

/// Bad bytes in a job file or manifest are reported where they are, with the reason.
@Suite struct SourceTextTests {
    func write(_ bytes: [UInt8], name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-src-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func invalidUTF8InAJobFileGivesItsLineAndColumn() throws {
        let text = Array("pollers:\n  jobs:\n    - id: ok\n      kind: noé".utf8) + [0xFF] + Array("\n".utf8)
        let path = try write(text, name: "pollers.yaml")
        let f = JobFile.load(path: path, registry: PollerRegistry(), environment: [:], nowMs: 0)
        let e = try #require(f.errors.first)
        #expect(f.isFatal)
        #expect(e.line == 4 && e.column == 16, "\(e)")
        #expect(e.message.contains("not valid UTF-8: byte 0xFF"))
    }

    @Test func aNULByteInAManifestStringIsLocatedNotReadAsTheEnd() throws {
        let toml = Array("[plugin]\nid = \"a\"\nversion = \"1.0.0\"\nname = \"x".utf8) + [0] + Array("y\"\n".utf8)
        let path = try write(toml, name: "nexo-plugin.toml")
        let r = PluginManifestLoader.load(path: path)
        #expect(r.manifest == nil)
        let e = try #require(r.errors.first)
        #expect(e.line == 4 && e.column == 10, "\(e)")
        #expect(e.message.contains("contains a NUL byte"))
    }

    @Test(arguments: [
        ([0xC0, 0x80] as [UInt8], "overlong"), ([0xED, 0xA0, 0x80], "surrogate"),
        ([0xF4, 0x90, 0x80, 0x80], "past U+10FFFF"),
        ([0xE2, 0x82], "truncated"), ([0x80], "a lone continuation byte"),
    ])
    func everyInvalidFormIsCaught(bytes: [UInt8], form: String) {
        guard case .failure(let e) = SourceText.decode(Data(Array("ab\n".utf8) + bytes), path: "f", what: "x") else {
            Issue.record("\(form) accepted")
            return
        }
        #expect(e.line == 2 && e.column == 1)
    }

    @Test func validTextPassesUnchanged() throws {
        let s = "jobs: é ✓ 𝄞\n"
        #expect(try SourceText.decode(Data(s.utf8), path: "f", what: "x").get() == s)
    }

    @Test func anOversizeJobFileIsRefusedBeforeParsing() throws {
        let path = try write(Array(repeating: UInt8(ascii: "#"), count: JobFile.maxBytes + 1), name: "big.yaml")
        let f = JobFile.load(path: path, registry: PollerRegistry(), environment: [:], nowMs: 0)
        #expect(f.isFatal && f.errors.first?.message.contains("over the 33554432-byte limit") == true)
    }
}
