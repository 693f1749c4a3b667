import Foundation

/// The JetStream calls a publisher needs, over the client's requests: publish with an ack (and
/// a `Nats-Msg-Id` for the server's deduplication), a window of publishes in flight, and the
/// stream lookups (which stream captures a subject, its duplicate window).
public struct NATSJetStream: Sendable {
    public let client: NATSClient
    /// `$JS.API`, or `$JS.<domain>.API` for a domain.
    public let apiPrefix: String
    /// How long an ack or an API answer may take.
    public var timeout: Duration

    public init(client: NATSClient, domain: String? = nil, timeout: Duration = .seconds(5)) {
        self.client = client
        self.apiPrefix = domain.map { "$JS.\($0).API" } ?? "$JS.API"
        self.timeout = timeout
    }

    /// The stream's answer to a publish.
    public struct PubAck: Sendable, Equatable, Decodable {
        public var stream: String
        public var seq: UInt64
        /// The server already had a message with this id within the duplicate window.
        public var duplicate: Bool?
        public var domain: String?

        public init(stream: String, seq: UInt64, duplicate: Bool? = nil, domain: String? = nil) {
            self.stream = stream
            self.seq = seq
            self.duplicate = duplicate
            self.domain = domain
        }

        /// The common answer, `{"stream":"S","seq":N}` with an optional `"duplicate":true` and
        /// `"domain"`, read without a JSONDecoder (one per publish is most of an ack's cost).
        /// Anything else (an error, escapes, a field it does not know) returns nil and is
        /// decoded in full.
        static func fastParse(_ b: [UInt8]) -> PubAck? {
            guard b.first == UInt8(ascii: "{"), b.last == UInt8(ascii: "}"), !b.contains(UInt8(ascii: "\\")) else {
                return nil
            }
            var ack = PubAck(stream: "", seq: 0)
            var sawSeq = false
            var i = 1
            func string() -> String? {
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }
                let start = i + 1
                guard let end = b[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                i = end + 1
                return String(decoding: b[start..<end], as: UTF8.self)
            }
            while i < b.count - 1 {
                guard let key = string(), i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
                i += 1
                switch key {
                case "stream", "domain":
                    guard let v = string() else { return nil }
                    if key == "stream" { ack.stream = v } else { ack.domain = v }
                case "seq":
                    var n: UInt64 = 0
                    let start = i
                    while i < b.count, b[i] >= 48, b[i] <= 57, i - start < 19 {
                        n = n * 10 + UInt64(b[i] - 48)
                        i += 1
                    }
                    guard i > start else { return nil }
                    ack.seq = n
                    sawSeq = true
                case "duplicate":
                    if b[i...].starts(with: Array("true".utf8)) {
                        ack.duplicate = true
                        i += 4
                    } else if b[i...].starts(with: Array("false".utf8)) {
                        ack.duplicate = false
                        i += 5
                    } else {
                        return nil
                    }
                default: return nil
                }
                if i < b.count, b[i] == UInt8(ascii: ",") { i += 1 }
            }
            return sawSeq && !ack.stream.isEmpty ? ack : nil
        }
    }

    /// An error JetStream answered with.
    public struct APIError: Sendable, Equatable, Decodable {
        public var code: Int
        public var errCode: Int?
        public var description: String?

        enum CodingKeys: String, CodingKey {
            case code, description
            case errCode = "err_code"
        }
    }

    private struct Answer<T: Decodable>: Decodable {
        var error: APIError?
        var value: T?

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Key.self)
            error = try c.decodeIfPresent(APIError.self, forKey: Key(stringValue: "error"))
            value = error == nil ? try T(from: decoder) : nil
        }

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ m: NATSMessage, what: String) throws -> T {
        let answer: Answer<T>
        do {
            answer = try JSONDecoder().decode(Answer<T>.self, from: Data(m.bytes))
        } catch {
            throw NATSError(
                .protocolViolation,
                "\(what): not the expected JSON: \(String(decoding: m.bytes.prefix(200), as: UTF8.self))")
        }
        if let e = answer.error {
            throw NATSError(
                .serverError, "\(what): JetStream error \(e.code)/\(e.errCode ?? 0): \(e.description ?? "")")
        }
        guard let v = answer.value else { throw NATSError(.protocolViolation, "\(what): an empty answer") }
        return v
    }

    /// Publishes to a subject a stream captures and waits for the stream's ack. With a
    /// `messageID`, a second publish with it inside the stream's duplicate window is acked as a
    /// duplicate and not stored again.
    public func publish(
        _ subject: String, payload: some Collection<UInt8> & Sendable, messageID: String? = nil,
        headers: NATSHeaders = NATSHeaders()
    ) async throws -> PubAck {
        var h = headers
        if let messageID { try h.append("Nats-Msg-Id", messageID) }
        let reply: NATSMessage
        do {
            reply = try await client.request(
                subject, payload: payload, headers: h.fields.isEmpty ? nil : h, timeout: timeout)
        } catch let e as NATSError where e.code == .noResponders {
            throw NATSError(.noResponders, "no stream captures '\(subject)' (or JetStream is not enabled)")
        }
        if let ack = PubAck.fastParse(reply.bytes) { return ack }
        return try decode(PubAck.self, reply, what: "publish to '\(subject)'")
    }

    /// One message of a windowed publish.
    public struct Message: Sendable {
        public var subject: String
        public var payload: [UInt8]
        public var messageID: String?
        public var headers: NATSHeaders

        public init(subject: String, payload: [UInt8], messageID: String?, headers: NATSHeaders = NATSHeaders()) {
            self.subject = subject
            self.payload = payload
            self.messageID = messageID
            self.headers = headers
        }
    }

    /// Publishes messages with up to `window` acks outstanding (not one round trip each), in
    /// order. Returns how many from the start were acked, and the first failure after them.
    public func publish(_ messages: [Message], window: Int) async -> (acked: Int, failure: (any Error)?) {
        guard !messages.isEmpty else { return (0, nil) }
        let window = max(1, window)
        return await withTaskGroup(of: (Int, (any Error)?).self) { group in
            var next = 0
            var results = [(any Error)??](repeating: nil, count: messages.count)
            func start() {
                let i = next
                next += 1
                let m = messages[i]
                group.addTask {
                    do {
                        _ = try await publish(m.subject, payload: m.payload, messageID: m.messageID, headers: m.headers)
                        return (i, nil)
                    } catch { return (i, error) }
                }
            }
            while next < min(window, messages.count) { start() }
            // The first failure ends the batch: no more are started; those in flight finish.
            var failed = false
            var prefix = 0
            while let (i, error) = await group.next() {
                results[i] = .some(error)
                if error != nil { failed = true }
                while prefix < messages.count, case .some(nil) = results[prefix] { prefix += 1 }
                if !failed, next < messages.count { start() }
            }
            let failure = results.lazy.compactMap { $0 ?? nil }.first
            return (prefix, prefix < messages.count ? failure : nil)
        }
    }

    /// The streams that capture a subject (empty: none).
    public func streamNames(capturing subject: String) async throws -> [String] {
        struct Names: Decodable { var streams: [String]? }
        let body = try JSONEncoder().encode(["subject": subject])
        let m = try await client.request("\(apiPrefix).STREAM.NAMES", payload: Array(body), timeout: timeout)
        return try decode(Names.self, m, what: "stream names").streams ?? []
    }

    /// A stream's configuration, as far as a publisher cares.
    public struct StreamConfig: Sendable, Equatable, Decodable {
        public var name: String
        public var subjects: [String]?
        /// Nanoseconds.
        public var duplicateWindow: Int64?
        public var maxAge: Int64?
        public var storage: String?

        enum CodingKeys: String, CodingKey {
            case name, subjects, storage
            case duplicateWindow = "duplicate_window"
            case maxAge = "max_age"
        }

        public init(name: String, subjects: [String], duplicateWindow: Duration? = nil, storage: String = "file") {
            self.name = name
            self.subjects = subjects
            self.duplicateWindow = duplicateWindow.map { Int64($0.components.seconds) * 1_000_000_000 }
            self.storage = storage
        }
    }

    public struct StreamState: Sendable, Equatable, Decodable {
        public var messages: UInt64
        public var lastSeq: UInt64?
        enum CodingKeys: String, CodingKey {
            case messages
            case lastSeq = "last_seq"
        }
    }

    public struct StreamInfo: Sendable, Equatable, Decodable {
        public var config: StreamConfig
        public var state: StreamState
    }

    /// A stream's configuration and state.
    public func streamInfo(_ name: String) async throws -> StreamInfo {
        let m = try await client.request("\(apiPrefix).STREAM.INFO.\(name)", payload: [UInt8](), timeout: timeout)
        return try decode(StreamInfo.self, m, what: "stream '\(name)'")
    }

    /// Creates a stream (tests and benchmarks make their own).
    public func addStream(_ config: StreamConfig) async throws {
        struct Body: Encodable {
            var name: String
            var subjects: [String]
            var storage: String
            var duplicateWindow: Int64?
            enum CodingKeys: String, CodingKey {
                case name, subjects, storage
                case duplicateWindow = "duplicate_window"
            }
        }
        let body = try JSONEncoder().encode(
            Body(
                name: config.name, subjects: config.subjects ?? [], storage: config.storage ?? "file",
                duplicateWindow: config.duplicateWindow))
        let m = try await client.request(
            "\(apiPrefix).STREAM.CREATE.\(config.name)", payload: Array(body), timeout: timeout)
        _ = try decode(StreamInfo.self, m, what: "create stream '\(config.name)'")
    }
}
