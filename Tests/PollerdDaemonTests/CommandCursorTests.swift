import Foundation
import Logging
import PollerdCore
import PollerdSQLite
import PollerdTestKit
import Testing

@testable import PollerdDaemon
@testable import PollerdPollers

/// A `command` job keeps its own cursor through `#pollerd` control lines.
@Suite struct CommandCursorTests {
    static var quiet: Logger {
        var l = Logger(label: "test")
        l.logLevel = .critical
        return l
    }

    /// Counts up from the cursor it was given, and hands the next count back.
    static let counter: JSONValue = .object([
        "argv": .array([
            .string("/bin/sh"), .string("-c"),
            .string(
                """
                n=${POLLERD_CURSOR_TEXT:-0}; n=$((n+1))
                echo "{\\"id\\":\\"item-$n\\"}"
                echo "#pollerd cursor-text $n"
                """),
        ])
    ])

    @Test func theCursorRoundTripsAcrossTicksAndRestarts() async throws {
        let path = tempDBPath()
        let job = JobSpec(
            id: "count", kind: "command", schedule: Schedule(.every(seconds: 60)), config: Self.counter,
            deliver: [SinkSpec(.stdout)])
        let clock = ManualClock(nowMs: t0)
        var seen: [String] = []
        for daemonLife in 0..<2 {
            // Each pass opens the database afresh: a restart.
            let store = try SQLiteBackend.open(path: path, synchronousFull: false)
            try await store.prepare()
            let facade = Operator(store: store, clock: clock)
            for _ in 0..<2 {
                let t = try await facade.tick(
                    job, registry: Builtins.registry(), holder: "life-\(daemonLife)", dryRun: false, logger: Self.quiet)
                #expect(t.status == "ok", "\(t.error ?? "")")
                seen += (t.report.ack?.items ?? []).compactMap { $0["id"]?.stringValue }
                clock.advance(byMs: 60_000)
            }
            #expect(try await store.state(jobID: "count")?.cursor == Data("\(2 * daemonLife + 2)".utf8))
        }
        #expect(seen == ["item-1", "item-2", "item-3", "item-4"])
    }

    @Test func aDryRunCommitsNothing() async throws {
        let store = try SQLiteBackend.open(path: tempDBPath(), synchronousFull: false)
        try await store.prepare()
        let job = JobSpec(
            id: "count", kind: "command", schedule: Schedule(.every(seconds: 60)), config: Self.counter,
            deliver: [SinkSpec(.stdout)])
        let facade = Operator(store: store, clock: ManualClock(nowMs: t0))
        let dry = try await facade.tick(
            job, registry: Builtins.registry(), holder: "cli", dryRun: true, logger: Self.quiet)
        #expect(dry.report.ack?.nextCursor == Data("1".utf8))
        #expect(try await store.state(jobID: "count")?.cursor == nil)
        #expect(try await store.outboxStats().allSatisfy { $0.pending == 0 })
        let real = try await facade.tick(
            job, registry: Builtins.registry(), holder: "cli", dryRun: false, logger: Self.quiet)
        #expect(real.report.ack?.items == [.object(["id": .string("item-1")])])
    }

    @Test func controlLinesAreNeverItems() throws {
        let out = try CommandPoller.parseOutput(
            Array(
                """
                {"id":"a"}
                #pollerd cursor \(Base64URL.encode(Data([0, 1, 2, 255])))
                #pollerd next-interval 90
                {"id":"b"}

                """.utf8))
        #expect(out.items.count == 2)
        #expect(out.cursor == Data([0, 1, 2, 255]))
        #expect(out.nextIntervalSecs == 90)
        #expect(out.failure == nil)
    }

    @Test(arguments: [
        ("#pollerd fail permanent the API key was revoked", ErrorClass.permanent, "the API key was revoked"),
        ("#pollerd fail config missing --region", .config, "missing --region"),
        ("#pollerd fail transient upstream 502", .transient, "upstream 502"),
    ])
    func aCommandCanFailWithAClass(_ line: String, _ cls: ErrorClass, _ message: String) throws {
        let out = try CommandPoller.parseOutput(Array("\(line)\n".utf8))
        #expect(out.failure?.errorClass == cls && out.failure?.message == message)
    }

    @Test(arguments: [
        "#pollerd frobnicate", "#pollerd cursor !!!not-base64", "#pollerd fail sometimes x",
        "#pollerd next-interval soon",
    ])
    func aBadControlLineIsABadOutput(_ line: String) {
        #expect(throws: PollerError.self) { try CommandPoller.parseOutput(Array("\(line)\n".utf8)) }
    }

    /// A `fail` line wins over the exit status, and a pipeline's silent failure can be reported.
    @Test func aFailLineFromARealCommand() async throws {
        let ctx = TickContext(
            jobID: "j", kind: "command", agent: "a",
            config: .object([
                "argv": .array([
                    .string("/bin/sh"), .string("-c"), .string("echo '#pollerd fail permanent gone for good'"),
                ])
            ]),
            cursor: Data("héllo".utf8), nowMs: t0, intervalHintSecs: 60, timeoutSecs: 10)
        do throws(PollerError) {
            _ = try await CommandPoller().tick(ctx)
            Issue.record("expected a failure")
        } catch {
            #expect(error.errorClass == .permanent && error.message == "gone for good")
        }
        let env = CommandPoller.environment(for: ctx, extra: [:], inherit: [], from: [:])
        #expect(env["POLLERD_CURSOR_TEXT"] == "héllo")
        #expect(env["POLLERD_CURSOR"] == Base64URL.encode(Data("héllo".utf8)))
    }

    /// More items than the job's dedup window: the tick says so.
    @Test func itemsPastTheDedupWindowAreReported() async throws {
        let store = try SQLiteBackend.open(path: tempDBPath(), synchronousFull: false)
        try await store.prepare()
        let argv: JSONValue = .array([
            .string("/bin/sh"), .string("-c"), .string("for i in 1 2 3; do echo \"{\\\"id\\\":$i}\"; done"),
        ])
        let job = JobSpec(
            id: "many", kind: "command", schedule: Schedule(.every(seconds: 60)), config: .object(["argv": argv]),
            deliver: [SinkSpec(.stdout)], dedupWindow: 2)
        let t = try await Operator(store: store, clock: ManualClock(nowMs: t0)).tick(
            job, registry: Builtins.registry(), holder: "cli", dryRun: true, logger: Self.quiet)
        #expect(t.report.warnings.count == 1)
        #expect(t.report.warnings.first?.contains("dedup window (2)") == true)
        let wide = JobSpec(
            id: "many", kind: "command", schedule: Schedule(.every(seconds: 60)), config: .object(["argv": argv]),
            deliver: [SinkSpec(.stdout)], dedupWindow: 3)
        let t2 = try await Operator(store: store, clock: ManualClock(nowMs: t0)).tick(
            wide, registry: Builtins.registry(), holder: "cli", dryRun: true, logger: Self.quiet)
        #expect(t2.report.warnings.isEmpty)
    }
}
