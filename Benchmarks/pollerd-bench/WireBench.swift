import ArgumentParser
import Foundation
import PollerdCore
import PollerdDaemon
import PollerdPlugins

/// The daemon's CPU floor for one long-lived round trip without any I/O: encoding a
/// `poll_tick` request as the plugin transport does and decoding the C bench plugin's reply,
/// each timed on its own over many iterations.
struct WireBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wire",
        abstract: "ns per poll_tick request encoded and per reply decoded; one JSON line."
    )

    @Option(help: "Iterations of each.") var count: Int = 1_000_000

    func run() throws {
        let reply = Array(
            #"{"jsonrpc":"2.0","id":123456,"result":{"next_cursor":"d29ybGQ","metrics":{"items_seen":1,"items_dispatched":0}}}"#
                .utf8)
        let nowMs = SystemWallClock().nowMs
        let cursor = Data("world".utf8)
        var sink = 0
        func ns(_ body: () -> Void) -> Double {
            let start = ContinuousClock.now
            body()
            let d = ContinuousClock.now - start
            return (Double(d.components.seconds) * 1e18 + Double(d.components.attoseconds)) / 1e9 / Double(count)
        }
        let encode = ns {
            for i in 0..<count {
                var out: [UInt8] = []
                out.reserveCapacity(256)
                PluginWire.writeTickParams(
                    kind: "cbench", jobID: "bench", agentID: "default", cursor: cursor, config: .object([:]),
                    nowMs: nowMs + Int64(i), intervalHintSecs: 60, into: &out)
                sink &+= out.count
            }
        }
        let decode = ns {
            for _ in 0..<count {
                if case .success(let ack) = PluginWire.decodeReply(reply, allowBare: true, id: 123456) {
                    sink &+= Int(ack.itemsSeen)
                }
            }
        }
        let line: [String: Any] = [
            "encode_ns": (encode * 10).rounded() / 10,
            "decode_ns": (decode * 10).rounded() / 10, "count": count, "sink": sink % 2,
        ]
        print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
    }
}
