public import Foundation
public import PollerdCore
import Synchronization

/// The in-process broker: subjects with NATS-style wildcards (`*` one token, `>` the rest).
/// A publish reaches every matching subscriber or fails: a subscriber whose buffer is full makes
/// the publish fail (so the outbox retries) instead of dropping the message.
public final class LocalBroker: Sendable {
    public struct Message: Sendable, Equatable {
        public var subject: String
        public var payload: Data
    }

    private struct Subscriber {
        var pattern: [Substring]
        var continuation: AsyncStream<Message>.Continuation
    }

    private struct State {
        var next = 0
        var subscribers: [Int: Subscriber] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// Subscribes to a subject pattern; the stream ends when the subscription is cancelled.
    public func subscribe(_ pattern: String, capacity: Int = 10_000) -> AsyncStream<Message> {
        let (stream, cont) = AsyncStream<Message>.makeStream(bufferingPolicy: .bufferingOldest(capacity))
        let id = state.withLock { s in
            s.next += 1
            return s.next
        }
        cont.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) } }
        state.withLock {
            $0.subscribers[id] = Subscriber(
                pattern: pattern.split(separator: ".", omittingEmptySubsequences: false), continuation: cont)
        }
        return stream
    }

    /// Publishes; returns how many subscribers received it. Throws when a subscriber's buffer is full.
    @discardableResult
    public func publish(_ subject: String, _ payload: Data) throws -> Int {
        let tokens = subject.split(separator: ".", omittingEmptySubsequences: false)
        let matching = state.withLock { s in
            s.subscribers.values.filter { Self.matches($0.pattern, tokens) }.map(\.continuation)
        }
        for c in matching {
            switch c.yield(Message(subject: subject, payload: payload)) {
            case .enqueued, .terminated: continue
            case .dropped: throw BrokerFull(subject: subject)
            @unknown default: continue
            }
        }
        return matching.count
    }

    public struct BrokerFull: Error, CustomStringConvertible {
        public var subject: String
        public var description: String { "a subscriber of '\(subject)' is full" }
    }

    static func matches(_ pattern: [Substring], _ subject: [Substring]) -> Bool {
        var i = 0
        while i < pattern.count {
            if pattern[i] == ">" { return subject.count > i }
            guard i < subject.count, pattern[i] == "*" || pattern[i] == subject[i] else { return false }
            i += 1
        }
        return i == subject.count
    }
}

/// Publishes each envelope to a subject of the in-process broker (NATS later).
/// A publish that reaches no subscriber is not an ack: nothing in the process would see the
/// item, so it stays in the outbox (and backpressure pauses the job) instead of vanishing.
public final class BrokerSink: Sink {
    public let subject: String
    private let broker: LocalBroker

    public init(subject: String, broker: LocalBroker) {
        self.subject = subject
        self.broker = broker
    }

    public func deliver(_ records: [OutboxRecord], jobID: String) async -> SinkResult {
        for (i, r) in records.enumerated() {
            do {
                if try broker.publish(subject, Data(r.envelope.utf8)) == 0 {
                    return SinkResult(
                        acked: i,
                        failure: SinkFailure(
                            retryable: true,
                            "broker: no subscriber on '\(subject)' (in-process broker; NATS is not configured)"))
                }
            } catch {
                return SinkResult(acked: i, failure: SinkFailure(retryable: true, "broker: \(error)"))
            }
        }
        return SinkResult(acked: records.count)
    }
}
