import Foundation
import Logging
import PollerdTestKit
import Testing

@testable import PollerdNATS

/// JetStream publishes against a real `nats-server -js`: acks, deduplication by message id,
/// a window of acks in flight, and the stream lookups.
@Suite(.enabled(if: NATSTestServer.binary != nil, "nats-server is not installed"))
struct NATSJetStreamTests {
    static func client(_ server: NATSTestServer) throws -> NATSClient {
        var logger = Logger(label: "nats.test")
        logger.logLevel = .critical
        var o = try NATSClientOptions(urls: [server.url])
        o.connectTimeout = .seconds(20)
        return try NATSClient(options: o, logger: logger)
    }

    @Test func acksDeduplicatesAndWindows() async throws {
        let server = try NATSTestServer(jetstream: true)
        try await withNATSClient(try Self.client(server)) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            let js = NATSJetStream(client: nc)
            try await js.addStream(.init(name: "ITEMS", subjects: ["items.>"], duplicateWindow: .seconds(600)))
            #expect(try await js.streamNames(capturing: "items.a") == ["ITEMS"])
            #expect(try await js.streamNames(capturing: "other.a") == [])
            let info = try await js.streamInfo("ITEMS")
            #expect(info.config.duplicateWindow == 600_000_000_000)

            let first = try await js.publish("items.a", payload: Array("one".utf8), messageID: "k1")
            #expect(first.stream == "ITEMS" && first.seq == 1 && first.duplicate != true)
            let again = try await js.publish("items.a", payload: Array("one".utf8), messageID: "k1")
            #expect(again.duplicate == true && again.seq == 1)

            let batch = (0..<1000).map {
                NATSJetStream.Message(subject: "items.b", payload: Array("\($0)".utf8), messageID: "b\($0)")
            }
            let r = await js.publish(batch, window: 64)
            #expect(r.acked == 1000 && r.failure == nil)
            // Sent again, whole: every one is a duplicate, nothing is stored twice.
            let r2 = await js.publish(batch, window: 64)
            #expect(r2.acked == 1000)
            #expect(try await js.streamInfo("ITEMS").state.messages == 1001)

            // A subject no stream captures: the 503 answers at once.
            await #expect(throws: NATSError.self) {
                _ = try await js.publish("nostream.x", payload: [UInt8](), messageID: "z")
            }
            let partial = await js.publish(
                [
                    .init(subject: "items.c", payload: [1], messageID: "c1"),
                    .init(subject: "nostream.x", payload: [2], messageID: "c2"),
                    .init(subject: "items.c", payload: [3], messageID: "c3"),
                ], window: 1)
            #expect(partial.acked == 1 && partial.failure != nil)
        }
    }

    @Test func withoutJetStreamTheLookupSaysNoResponders() async throws {
        let server = try NATSTestServer()
        try await withNATSClient(try Self.client(server)) { nc in
            try await nc.waitUntilConnected(timeout: .seconds(30))
            await #expect(throws: NATSError.self) {
                _ = try await NATSJetStream(client: nc).streamNames(capturing: "x")
            }
        }
    }
}

/// The PubAck read without a JSONDecoder agrees with the decoder, and gives up on anything else.
@Suite struct PubAckParseTests {
    @Test(arguments: [
        #"{"stream":"ITEMS","seq":1}"#, #"{"stream":"ITEMS","seq":18446744073709551,"duplicate":true}"#,
        #"{"stream":"S","domain":"hub","seq":7,"duplicate":false}"#,
    ])
    func agreesWithTheDecoder(text: String) throws {
        let fast = NATSJetStream.PubAck.fastParse(Array(text.utf8))
        let full = try JSONDecoder().decode(NATSJetStream.PubAck.self, from: Data(text.utf8))
        #expect(fast == full)
    }

    @Test(arguments: [
        #"{"error":{"code":503,"description":"x"}}"#, #"{"stream":"A\"B","seq":1}"#, #"{ "stream":"S","seq":1}"#,
        #"{"stream":"S"}"#, #"{"seq":1}"#, #"{"stream":"S","seq":x}"#, "", "{", #"{"stream":"S","seq":1,"other":2}"#,
    ])
    func givesUpOnAnythingElse(text: String) {
        #expect(NATSJetStream.PubAck.fastParse(Array(text.utf8)) == nil)
    }
}
