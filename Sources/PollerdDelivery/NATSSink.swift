import Crypto
import Foundation
public import Logging
public import PollerdCore
import PollerdNATS
import Synchronization

/// Publishes each envelope to a subject on the NATS broker.
///
/// - When a JetStream stream captures the subject, each item is published with its idempotency
///   key as `Nats-Msg-Id` and is acknowledged only when the stream's PubAck comes back, with a
///   window of acks outstanding. The stream drops a second publish of a key inside its
///   `duplicate_window`, so the redeliveries at-least-once makes are not stored twice.
/// - Otherwise the batch is published plainly, then flushed (a PING answered): the server has
///   it, and its subscribers at that moment get it. Duplicates can reach them after a retry;
///   the `Nats-Msg-Id` header lets them drop those.
///
/// Which of the two is looked up from the server (`$JS.API.STREAM.NAMES`), kept for a minute,
/// and looked up again after a failure. While the broker is down nothing is published: the
/// items wait in the outbox, retried as a receiver fault (never dead-lettered for it).
public final class NATSSink: Sink {
    public let subject: String
    private let broker: NATSBroker
    private let logger: Logger
    private let mode = Mutex<(Mode, at: ContinuousClock.Instant)?>(nil)
    /// Streams whose short duplicate window was already warned about.
    private let warned = Mutex<Set<String>>([])

    enum Mode: Equatable {
        case jetstream(stream: String)
        case core
    }

    /// How long a lookup of the subject's stream is trusted.
    static let modeTTL: Duration = .seconds(60)

    public init(subject: String, broker: NATSBroker, logger: Logger) {
        self.subject = subject
        self.broker = broker
        self.logger = logger
    }

    public func deliver(_ records: [OutboxRecord], jobID: String) async -> SinkResult {
        guard !records.isEmpty else { return SinkResult(acked: 0) }
        if let problem = broker.problem { return Self.brokerDown("broker: \(problem)") }
        let mode: Mode
        do {
            mode = try await resolveMode()
        } catch {
            return Self.brokerDown("broker: looking up the JetStream stream of '\(subject)': \(error)")
        }
        let jobHeader = Self.headerValue(jobID)
        switch mode {
        case .jetstream(let stream):
            let messages = records.map { r in
                var h = NATSHeaders()
                try? h.append("Pollerd-Job", jobHeader)
                return NATSJetStream.Message(
                    subject: subject, payload: Array(r.envelope.utf8), messageID: Self.headerValue(r.key), headers: h)
            }
            let js = NATSJetStream(client: broker.client, timeout: .seconds(10))
            let result = await js.publish(messages, window: broker.settings.ackWindow)
            guard let failure = result.failure else { return SinkResult(acked: result.acked) }
            if let e = failure as? NATSError, e.code == .payloadTooLarge {
                return SinkResult(
                    acked: result.acked, failure: SinkFailure(retryable: false, "broker: \(e.message)"))
            }
            self.mode.withLock { $0 = nil } // the stream may have gone: look again next time
            if let e = failure as? NATSError, e.code == .serverError {
                // The stream refused the item (too large, a limit reached): the item's fault
                // until proven otherwise, so it counts towards max_attempts.
                return SinkResult(
                    acked: result.acked,
                    failure: SinkFailure(retryable: true, "broker: stream \(stream) refused an item: \(e.message)"))
            }
            return SinkResult(
                acked: result.acked,
                failure: SinkFailure(
                    retryable: true, receiverFault: true, "broker: no ack from stream \(stream): \(failure)"))
        case .core:
            do {
                for r in records {
                    var h = NATSHeaders()
                    try h.append("Nats-Msg-Id", Self.headerValue(r.key))
                    try h.append("Pollerd-Job", jobHeader)
                    try await broker.client.publish(subject, payload: Array(r.envelope.utf8), headers: h)
                }
                try await broker.client.flush(timeout: .seconds(10))
                return SinkResult(acked: records.count)
            } catch let e as NATSError where e.code == .payloadTooLarge {
                return SinkResult(acked: 0, failure: SinkFailure(retryable: false, "broker: \(e.message)"))
            } catch {
                return Self.brokerDown("broker: publishing to '\(subject)': \(error)")
            }
        }
    }

    private static func brokerDown(_ message: String) -> SinkResult {
        SinkResult(acked: 0, failure: SinkFailure(retryable: true, receiverFault: true, message))
    }

    /// JetStream when a stream captures the subject; core NATS when none does or JetStream is
    /// off (no responders). Any other failure of the lookup is thrown: the items wait.
    func resolveMode() async throws -> Mode {
        let now = ContinuousClock.now
        if let (m, at) = mode.withLock({ $0 }), now - at < Self.modeTTL { return m }
        let js = NATSJetStream(client: broker.client, timeout: .seconds(5))
        let m: Mode
        do {
            let names = try await js.streamNames(capturing: subject)
            m = names.first.map { .jetstream(stream: $0) } ?? .core
        } catch let e as NATSError where e.code == .noResponders {
            m = .core
        }
        if case .jetstream(let stream) = m { await checkDuplicateWindow(stream, js: js) }
        mode.withLock { $0 = (m, now) }
        return m
    }

    /// Warns once per stream when its duplicate window is shorter than the delivery's retry
    /// horizon: a retry later than the window could be stored twice.
    private func checkDuplicateWindow(_ stream: String, js: NATSJetStream) async {
        guard !warned.withLock({ $0.contains(stream) }), let info = try? await js.streamInfo(stream) else { return }
        let windowMs = (info.config.duplicateWindow ?? 120_000_000_000) / 1_000_000
        let horizon = broker.retryHorizonMs
        guard windowMs < horizon else { return }
        warned.withLock { _ = $0.insert(stream) }
        logger.warning(
            "a JetStream stream's duplicate window is shorter than the sink's retry horizon: a late retry may be stored twice",
            metadata: [
                "pollerd.stream": "\(stream)", "pollerd.subject": "\(subject)",
                "pollerd.duplicate_window_secs": "\(windowMs / 1000)",
                "pollerd.retry_horizon_secs": "\(horizon / 1000)",
            ])
    }

    /// A value safe in a header line: as is when printable, otherwise its SHA-256.
    static func headerValue(_ s: String) -> String {
        if !s.isEmpty, s.utf8.count <= 512, s.utf8.allSatisfy({ $0 >= 32 && $0 != 127 }) { return s }
        return "sha256:" + Hex.encode(SHA256.hash(data: Data(s.utf8)))
    }
}
