import Foundation
import Logging
import PollerdCore
import PollerdDelivery
import PollerdPollers
import PollerdSQLite
import PollerdTestKit
import Testing

@testable import PollerdDaemon

/// `failure_to`: a job that pauses, or whose breaker opens, sends one alert through the sink
/// `failure_to.channel` names, at most once per `failure_alert_cooldown_secs`.
@Suite(.serialized) struct AlertTests {
    struct Rig {
        let store: any PollerdStore
        let clock = ManualClock(nowMs: t0)
        let executor: TickExecutor
        let deliverer: Deliverer
        var settings = GlobalSettings()

        init(server: TestHTTPServer) async throws {
            store = try SQLiteBackend.open(
                path: FileManager.default.temporaryDirectory.appendingPathComponent(
                    "pollerd-alert-\(UUID().uuidString)/s.db"
                ).path)
            try await store.prepare()
            var log = Logger(label: "test")
            log.logLevel = .critical
            executor = TickExecutor(
                store: store, registry: Builtins.registry(), clock: clock, holder: "test:1:a", logger: log)
            deliverer = Deliverer(
                store: store, clock: clock, holder: "test:1:a",
                sinks: SinkRegistry(broker: LocalBroker(), client: testHTTPClient),
                bell: executor.outboxBell, logger: log)
        }

        func job(_ fail: String, server: TestHTTPServer) -> JobSpec {
            var j = JobSpec(
                id: "feed", kind: "noop", schedule: Schedule(.every(seconds: 60)),
                config: .object(["fail": .string(fail)]),
                failureTo: FailureTarget(channel: "ops", to: "#alerts"))
            j.alertSinks = [
                SinkSpec(
                    name: "ops",
                    target: .webhook(WebhookTarget(url: server.url, headers: [:], secret: nil, timeoutSecs: 5)))
            ]
            return j
        }

        @discardableResult
        func tick(_ job: JobSpec) async -> TickReport {
            await executor.execute(
                DueTick(jobID: job.id, dueMs: clock.nowMs, spec: job, offsetMs: 0), settings: settings, manual: true)
        }
    }

    static func alerts(_ server: TestHTTPServer) throws -> [JSONValue] {
        try server.received.map { try JSONValue.parse($0.body)["item"] ?? .null }
    }

    @Test func aPausedJobSendsOneAlertAndTheCooldownHoldsTheNext() async throws {
        try await TestHTTPServer.with { server in
            let rig = try await Rig(server: server)
            let job = rig.job("permanent", server: server)
            _ = try await rig.store.register(
                [JobRegistration(jobID: job.id, kind: job.kind, agent: job.agent, pausedOnBoot: false)],
                nowMs: rig.clock.nowMs)
            rig.deliverer.update(jobs: [job], tuning: rig.settings.delivery)

            let first = await rig.tick(job)
            #expect(first.status == "permanent" && first.plan?.pause == true)
            _ = try await rig.deliverer.pass()
            let sent = try Self.alerts(server)
            #expect(sent.count == 1)
            #expect(sent.first?["type"] == .string("pollerd.alert") && sent.first?["reason"] == .string("paused"))
            #expect(sent.first?["to"] == .string("#alerts") && sent.first?["job_id"] == .string("feed"))
            #expect(sent.first?["text"]?.stringValue?.contains("is paused after a permanent error") == true)
            #expect(try await rig.store.state(jobID: "feed")?.lastAlertAtMs == rig.clock.nowMs)

            // Resumed, it fails again a minute later: within the cooldown, no second alert.
            _ = try await rig.store.setPaused(jobID: "feed", paused: false, reason: nil, nowMs: rig.clock.nowMs)
            rig.clock.advance(byMs: 60_000)
            #expect(await rig.tick(job).status == "permanent")
            _ = try await rig.deliverer.pass()
            #expect(try Self.alerts(server).count == 1)

            // After the cooldown (an hour by default), the next pause alerts again.
            _ = try await rig.store.setPaused(jobID: "feed", paused: false, reason: nil, nowMs: rig.clock.nowMs)
            rig.clock.advance(byMs: 3_600_000)
            #expect(await rig.tick(job).status == "permanent")
            _ = try await rig.deliverer.pass()
            #expect(try Self.alerts(server).count == 2)
        }
    }

    @Test func anOpenBreakerAlerts() async throws {
        try await TestHTTPServer.with { server in
            var rig = try await Rig(server: server)
            rig.settings.breakerThreshold = 2
            let job = rig.job("transient", server: server)
            _ = try await rig.store.register(
                [JobRegistration(jobID: job.id, kind: job.kind, agent: job.agent, pausedOnBoot: false)],
                nowMs: rig.clock.nowMs)
            rig.deliverer.update(jobs: [job], tuning: rig.settings.delivery)
            await rig.tick(job)
            _ = try await rig.deliverer.pass()
            #expect(server.received.isEmpty)
            rig.clock.advance(byMs: 60_000)
            await rig.tick(job)
            _ = try await rig.deliverer.pass()
            let sent = try Self.alerts(server)
            #expect(sent.count == 1 && sent.first?["reason"] == .string("breaker_open"))
            #expect(sent.first?["consecutive_errors"] == .int(2))
        }
    }
}
