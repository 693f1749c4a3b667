import Foundation
import Logging
import PollerdCore
import PollerdDelivery
import PollerdPostgres
import PollerdTestKit
import Testing

@testable import PollerdDaemon

/// On PostgreSQL a daemon hears another daemon's new items through `LISTEN/NOTIFY`: its
/// deliverer delivers them with no poll. Here its clock never moves, so its polling fallback (a
/// second in the daemon) never comes: only the notification can wake it.
@Suite(.enabled(if: PostgresTestServer.url != nil, "needs POLLERD_TEST_POSTGRES"))
struct PostgresWakeTests {
    @Test func notifyAloneWakesAnotherDaemonsDeliverer() async throws {
        let location = try await PostgresTestServer.makeDatabase()
        defer { Task { try? await PostgresTestServer.dropDatabase(location) } }
        let producer = try PostgresTestServer.open(location)
        let consumer = try PostgresTestServer.open(location)
        let clock = ManualClock(nowMs: t0)
        var log = Logger(label: "test")
        log.logLevel = .critical
        let broker = LocalBroker()
        let received = broker.subscribe("items.>")
        let source = ItemSource()
        let job = JobSpec(
            id: "j", kind: "source", schedule: Schedule(.every(seconds: 10)),
            deliver: [SinkSpec(.nats(subject: "items.j"))])
        let executor = TickExecutor(
            store: producer, registry: PollerRegistry([source]), clock: clock, holder: "A:1:a", logger: log)
        // The consumer's bell rings only from the store's notification (as the daemon wires it).
        let deliverer = Deliverer(
            store: consumer, clock: clock, holder: "B:2:b",
            sinks: SinkRegistry(broker: broker, client: testHTTPClient), logger: log)
        consumer.onWake { wake in if wake == .outbox { deliverer.bell.ring() } }
        deliverer.update(jobs: [job], tuning: DeliveryTuning())
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await producer.run(clock: clock) }
            group.addTask { try await consumer.run(clock: clock) }
            try await producer.prepare()
            try await consumer.prepare()
            _ = try await producer.register(
                [JobRegistration(jobID: "j", kind: "source", agent: "default", pausedOnBoot: false)], nowMs: clock.nowMs
            )
            group.addTask { await deliverer.run() }
            // The deliverer's first pass found nothing; now it waits on its bell alone.
            source.set([.object(["id": .string("x1")])])
            let report = await executor.execute(
                DueTick(jobID: "j", dueMs: clock.nowMs, spec: job, offsetMs: 0), settings: GlobalSettings(),
                manual: true)
            #expect(report.disposition == .ran(committed: true))
            // The item, or nothing after 30 s (a guard against a hang, not a wait: it comes in ms).
            let message = await withTaskGroup(of: LocalBroker.Message?.self) { race in
                race.addTask {
                    var it = received.makeAsyncIterator()
                    return await it.next()
                }
                race.addTask {
                    try? await Task.sleep(for: .seconds(30))
                    return nil
                }
                let first = await race.next() ?? nil
                race.cancelAll()
                return first
            }
            #expect(message?.subject == "items.j")
            let envelope = try JSONValue.parse(message?.payload ?? Data())
            #expect(envelope["item"]?["id"]?.stringValue == "x1")
            group.cancelAll()
        }
    }
}
