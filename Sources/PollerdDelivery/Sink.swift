public import PollerdCore

/// Why a sink did not take an item.
public struct SinkFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// True for failures that may pass (timeouts, 5xx, 429, a full disk); false sends the item
    /// to the dead-letter table at once.
    public var retryable: Bool
    /// The delay the receiver asked for (`Retry-After`), if any.
    public var retryAfterMs: Int64?
    public var message: String
    /// The receiver itself is unwell, not the item (a full disk, an I/O error): retried with
    /// backoff for as long as it takes, never dead-lettered after `max_attempts`.
    public var receiverFault: Bool

    public init(retryable: Bool, retryAfterMs: Int64? = nil, receiverFault: Bool = false, _ message: String) {
        self.retryable = retryable
        self.retryAfterMs = retryAfterMs
        self.receiverFault = receiverFault
        self.message = message
    }

    public var description: String { message }
}

/// What a sink made of a lane's batch: how many items (a prefix) it acknowledged, and why it
/// stopped before the next one, if it did.
public struct SinkResult: Sendable, Equatable {
    public var acked: Int
    public var failure: SinkFailure?

    public init(acked: Int, failure: SinkFailure? = nil) {
        self.acked = acked
        self.failure = failure
    }
}

/// A destination for items. It takes a lane's items in order and acknowledges a prefix of them;
/// an acknowledged item is safely with the receiver.
public protocol Sink: Sendable {
    func deliver(_ records: [OutboxRecord], jobID: String) async -> SinkResult
}
