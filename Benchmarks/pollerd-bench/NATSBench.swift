import ArgumentParser
import Foundation
import Logging
import PollerdCore
import PollerdDelivery
import PollerdNATS

/// pollerd's NATS client and `nats` sink, measured beside nats.go and nats-py
/// (Benchmarks/run-nats-bench.sh runs all three against one nats-server).
struct NATSBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nats",
        abstract: "NATS client rates: req (round trips, K in flight), pub, pubflush, jspub, sink, stream-reset.")

    @Argument(help: "req | pub | pubflush | jspub | sink | stream-reset") var mode: String
    @Option var url = "nats://127.0.0.1:4222"
    @Option var subject = "bench.req"
    @Option var n = 20_000
    @Option(name: .customLong("in-flight")) var inFlight = 1
    @Option var size = 128
    @Option var window = 256

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let client = try NATSClient(options: try NATSClientOptions(urls: [url]), logger: logger)
        try await withNATSClient(client) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(10))
            let start = ContinuousClock.now
            var count = n
            switch mode {
            case "req":
                let payload = [UInt8](repeating: 0, count: 128)
                let per = n / inFlight
                count = per * inFlight
                try await withThrowingTaskGroup(of: Void.self) { g in
                    for _ in 0..<inFlight {
                        g.addTask { for _ in 0..<per { _ = try await nc.request(subject, payload: payload) } }
                    }
                    try await g.waitForAll()
                }
            case "pub", "pubflush":
                let payload = [UInt8](repeating: 0, count: size)
                for i in 0..<n {
                    try await nc.publish(subject, payload: payload)
                    if mode == "pubflush", i % 1000 == 999 { try await nc.flush() }
                }
                try await nc.flush(timeout: .seconds(60))
            case "jspub":
                let js = NATSJetStream(client: nc)
                let payload = [UInt8](repeating: 0, count: 256)
                var i = 0
                while i < n {
                    let batch = (i..<min(n, i + 10_000)).map {
                        NATSJetStream.Message(subject: subject, payload: payload, messageID: "k\($0)")
                    }
                    let r = await js.publish(batch, window: window)
                    if let f = r.failure { throw f }
                    i += batch.count
                }
            case "sink":
                // The sink itself, as the deliverer calls it: batches of 256 envelopes of a lane.
                var settings = BrokerSettings(urls: [url])
                settings.ackWindow = window
                let broker = try NATSBroker(settings: settings, logger: logger)
                try await withNATSClient(broker.client) { bc in
                    try await bc.waitUntilConnected(timeout: .seconds(10))
                    let sink = NATSSink(subject: subject, broker: broker, logger: logger)
                    let body = String(repeating: "x", count: 200)
                    let t0 = ContinuousClock.now
                    var seq = 0
                    while seq < n {
                        let records = (seq..<min(n, seq + 256)).map {
                            OutboxRecord(
                                seq: Int64($0), key: "bench:\($0)",
                                envelope: "{\"id\":\"bench:\($0)\",\"b\":\"\(body)\"}",
                                foundAtMs: 0)
                        }
                        let r = await sink.deliver(records, jobID: "bench")
                        guard r.acked == records.count else { throw NATSError(.timeout, "\(r)") }
                        seq += records.count
                    }
                    Self.report("sink", n, window, ContinuousClock.now - t0)
                }
                return
            case "stream-reset":
                let js = NATSJetStream(client: nc)
                _ = try? await nc.request("$JS.API.STREAM.DELETE.BENCH", payload: [UInt8]())
                try await js.addStream(
                    .init(name: "BENCH", subjects: ["bench.js.>"], duplicateWindow: .seconds(120), storage: "memory"))
                return
            default:
                throw ValidationError("unknown mode \(mode)")
            }
            Self.report(mode, count, mode == "req" ? inFlight : window, ContinuousClock.now - start)
        }
    }

    static func report(_ mode: String, _ n: Int, _ inFlight: Int, _ elapsed: Duration) {
        let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(
            "{\"client\":\"pollerd\",\"mode\":\"\(mode)\",\"n\":\(n),\"in_flight\":\(inFlight),\"secs\":\(String(format: "%.3f", secs)),\"rate\":\(Int(Double(n) / secs))}"
        )
    }
}
