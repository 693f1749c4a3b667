import Foundation
import PollerdCore
import PollerdTestKit
import Testing

@testable import PollerdDaemon
@testable import PollerdDelivery

#if canImport(Glibc)
import Glibc
#endif

@Suite struct DiskFullTests {
    /// The file sink on a full disk: the failed write leaves no torn line, the item is retried
    /// (never dead-lettered, whatever `max_attempts` says), and it is delivered once space returns.
    @Test(.enabled(if: SmallDisk.available, "needs root to mount a small tmpfs"))
    func aFullDiskRetriesWithoutTornLinesOrDeadLetters() async throws {
        var tuning = DeliveryTuning()
        tuning.maxAttempts = 1
        let f = try await Fixture(tuning: tuning)
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
        #expect(
            lane.pending == 1 && lane.lastError?.contains("No space left on device") == true,
            "\(String(describing: lane.lastError))")
        // No torn line: the file holds exactly the first item.
        #expect(try jsonLines(path).compactMap { $0["id"]?.stringValue } == ["j:n0"])
        // Space returns: the item goes out.
        try FileManager.default.removeItem(atPath: filler)
        #expect(try await f.deliverer.pass().map(\.delivered) == [1])
        #expect(try jsonLines(path).compactMap { $0["id"]?.stringValue } == ["j:n0", "j:big"])
    }
}
