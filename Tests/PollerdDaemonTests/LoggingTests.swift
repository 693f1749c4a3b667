import Foundation
import Logging
import PollerdCore
import PollerdTestKit
import Synchronization
import Testing

@testable import PollerdDaemon

/// Lines a test's log handler wrote.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ s: String) { lines.withLock { $0.append(s) } }
    var all: [JSONValue] { lines.withLock { $0 }.compactMap { try? JSONValue.parse(Data($0.utf8)) } }
}

@Suite struct LoggingTests {
    @Test func jsonLinesCarryTheMessageLevelAndMetadata() throws {
        let out = LogLines()
        var logger = Logger(label: "pollerd") { label in JSONLogHandler(label: label, level: .info, write: out.append) }
        logger[metadataKey: "pollerd.daemon"] = "d1"
        logger.info("tick", metadata: ["pollerd.job.id": "feed", "pollerd.note": "a \"quoted\"\nline"])
        logger.debug("hidden")
        let lines = out.all
        #expect(lines.count == 1)
        let l = try #require(lines.first)
        #expect(l["message"] == .string("tick") && l["level"] == .string("info") && l["label"] == .string("pollerd"))
        #expect(l["pollerd.job.id"] == .string("feed") && l["pollerd.daemon"] == .string("d1"))
        #expect(l["pollerd.note"] == .string("a \"quoted\"\nline"))
        #expect(l["ts"]?.stringValue.flatMap(RFC3339.parse) != nil)
    }

    /// Each tick logs one line at info with the job, status, duration, items found and new, and the next run.
    @Test func eachTickLogsOneLine() async throws {
        let out = LogLines()
        let logger = Logger(label: "pollerd") { label in JSONLogHandler(label: label, level: .info, write: out.append) }
        let h = try await Harness(
            jobs: [every("hb", 10, config: .object(["items": .int(2)]))], pollers: [], logger: logger)
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await h.log.waitForTicks(1)
        h.runner.beginShutdown()
        try await task.value
        let ticks = out.all.filter { $0["message"] == .string("tick") }
        #expect(ticks.count == 1)
        let t = try #require(ticks.first)
        #expect(
            t["pollerd.job.id"] == .string("hb") && t["pollerd.status"] == .string("ok")
                && t["level"] == .string("info"))
        #expect(t["pollerd.items.found"] == .string("2") && t["pollerd.items.new"] == .string("2"))
        #expect(t["pollerd.next_run"] == .string(RFC3339.format(ms: t0 + 20_000)))
        #expect(t["pollerd.duration_ms"] != nil)
    }

    @Test func tickLinesCanBeTurnedDownToDebug() async throws {
        let out = LogLines()
        let logger = Logger(label: "pollerd") { label in JSONLogHandler(label: label, level: .info, write: out.append) }
        var settings = GlobalSettings()
        settings.tickLogLevel = "debug"
        let h = try await Harness(jobs: [every("hb", 10)], settings: settings, pollers: [], logger: logger)
        let task = await h.start()
        h.clock.advance(toMs: t0 + 10_000)
        await h.log.waitForTicks(1)
        h.runner.beginShutdown()
        try await task.value
        #expect(!out.all.contains { $0["message"] == .string("tick") })
    }
}
