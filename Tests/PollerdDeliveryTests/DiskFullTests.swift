import Foundation
import PollerdCore
@testable import PollerdDaemon
@testable import PollerdDelivery
import PollerdTestKit
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A small tmpfs for a full disk: mounting needs root (CI runs as root). Elsewhere the test is
/// skipped and says why.
enum SmallDisk {
    static func mount(_ dir: String, bytes: Int) -> Bool {
        guard getuid() == 0 else { return false }
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/mount")
        p.arguments = ["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", dir]
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    static func unmount(_ dir: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/umount")
        p.arguments = [dir]
        try? p.run()
        p.waitUntilExit()
    }

    static let available: Bool = {
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-tmpfs-probe-\(getpid())").path
        defer { unmount(probe); try? FileManager.default.removeItem(atPath: probe) }
        let ok = mount(probe, bytes: 65536)
        if !ok { print("DiskFullTests skipped: mounting a tmpfs needs root (run by .ci/run as root)") }
        return ok
    }()
}

@Suite struct DiskFullTests {
    /// The file sink on a full disk: the failed write leaves no torn line, the item is retried
    /// (never dead-lettered, whatever `max_attempts` says), and it is delivered once space returns.
    @Test(.enabled(if: SmallDisk.available, "needs root to mount a small tmpfs"))
    func aFullDiskRetriesWithoutTornLinesOrDeadLetters() async throws {
        var tuning = DeliveryTuning()
        tuning.maxAttempts = 1
        let f = try Fixture(tuning: tuning)
        let disk = f.dir.appendingPathComponent("disk").path
        #expect(SmallDisk.mount(disk, bytes: 64 << 10))
        defer { SmallDisk.unmount(disk) }
        let path = (disk as NSString).appendingPathComponent("items.jsonl")
        let job = f.job([SinkSpec(.file(path: path))])
        try await f.register([job])
        // One item delivered, then fill the disk but for a few bytes.
        await f.tick(job, items: numbered(0..<1))
        #expect(try await f.deliverer.pass().map(\.delivered) == [1])
        let filler = (disk as NSString).appendingPathComponent("filler")
        let fd = open(filler, O_WRONLY | O_CREAT, 0o644)
        let block = [UInt8](repeating: 0x41, count: 1024)
        while write(fd, block, block.count) > 0 {}
        close(fd)
        let big: [JSONValue] = [.object(["id": .string("big"), "pad": .string(String(repeating: "x", count: 8000))])]
        await f.tick(job, items: big)
        for _ in 0..<3 {
            let r = try await f.deliverer.pass()
            #expect(r.map(\.deadLettered) == [false] && r.map(\.retried) == [true])
            f.clock.advance(byMs: 3_600_000)
        }
        #expect(try await f.store.deadLetters(jobID: "j", limit: 10).isEmpty)
        let lane = try #require(try await f.lane("j", "file:\(path)"))
        #expect(lane.pending == 1 && lane.lastError?.contains("No space left on device") == true, "\(String(describing: lane.lastError))")
        // No torn line: the file holds exactly the first item.
        #expect(try jsonLines(path).compactMap { $0["id"]?.stringValue } == ["j:n0"])
        // Space returns: the item goes out.
        try FileManager.default.removeItem(atPath: filler)
        #expect(try await f.deliverer.pass().map(\.delivered) == [1])
        #expect(try jsonLines(path).compactMap { $0["id"]?.stringValue } == ["j:n0", "j:big"])
    }
}
