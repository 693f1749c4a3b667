import Crypto
import Foundation

/// One item ready for the outbox: its idempotency key and the envelope sinks receive.
public struct OutboxEntry: Sendable, Equatable {
    /// Stable across re-deliveries: the job id with the item's own id, or with a hash of the item.
    public var key: String
    /// The envelope as canonical JSON text (sorted keys).
    public var envelope: String

    public init(key: String, envelope: String) {
        self.key = key
        self.envelope = envelope
    }
}

/// Builds the envelope `{ "id", "job_id", "kind", "agent", "found_at", "item" }` of an item.
public enum ItemEnvelope {
    /// Item ids longer than this are hashed into the key, so keys stay small.
    static let maxInlineID = 200

    /// The idempotency key of an item: `JOB:ID` when the item has a string or integer `id`,
    /// otherwise `JOB:sha256:HEX` over the item's canonical JSON.
    public static func key(jobID: String, item: JSONValue) -> String {
        let own: String? =
            switch item["id"] {
            case .string(let s)? where !s.isEmpty: s
            case .int(let i)?: String(i)
            default: nil
            }
        if let own, own.utf8.count <= maxInlineID, !own.hasPrefix("sha256:") {
            return "\(jobID):\(own)"
        }
        let basis = own.map { "id:\($0)" } ?? item.canonicalString
        return "\(jobID):sha256:\(Hex.encode(SHA256.hash(data: Data(basis.utf8))))"
    }

    /// Builds the envelopes of one tick's items: the parts they share are written once.
    /// The text is exactly the canonical JSON of the envelope object (keys sorted).
    public struct Builder: Sendable {
        let jobID: String
        let prefix: [UInt8]
        let suffix: [UInt8]

        public init(jobID: String, kind: String, agent: String, foundAtMs: Int64) {
            self.jobID = jobID
            var p = Array("{\"agent\":".utf8)
            JSONValue.writeString(agent, into: &p)
            p += ",\"found_at\":".utf8
            JSONValue.writeString(RFC3339.format(ms: foundAtMs), into: &p)
            p += ",\"id\":".utf8
            var s = Array(",\"job_id\":".utf8)
            JSONValue.writeString(jobID, into: &s)
            s += ",\"kind\":".utf8
            JSONValue.writeString(kind, into: &s)
            s += "}".utf8
            prefix = p
            suffix = s
        }

        public func entry(for item: JSONValue) -> OutboxEntry {
            let key = ItemEnvelope.key(jobID: jobID, item: item)
            var out = prefix
            out.reserveCapacity(prefix.count + suffix.count + key.utf8.count + 128)
            JSONValue.writeString(key, into: &out)
            out += ",\"item\":".utf8
            item.writeCanonical(into: &out)
            out += suffix
            return OutboxEntry(key: key, envelope: String(decoding: out, as: UTF8.self))
        }
    }
}
