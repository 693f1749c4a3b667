public import PollerdCore

/// Why a sink did not take an item.
public struct SinkFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// True for failures that may pass (timeouts, 5xx, 429, a full disk); false sends the item
    /// to the dead-letter table at once.
    public var retryable: Bool
    /// The delay the receiver asked for (`Retry-After`), if any.
    public var retryAfterMs: Int64?
    public var message: String

    public init(retryable: Bool, retryAfterMs: Int64? = nil, _ message: String) {
        self.retryable = retryable; self.retryAfterMs = retryAfterMs; self.message = message
    }

    public var description: String { message }
}

/// What a sink made of a lane's batch: how many items (a prefix) it acknowledged, and why it
/// stopped before the next one, if it did.
public struct SinkResult: Sendable, Equatable {
    public var acked: Int
    public var failure: SinkFailure?

    public init(acked: Int, failure: SinkFailure? = nil) {
        self.acked = acked; self.failure = failure
    }
}

/// A destination for items. It takes a lane's items in order and acknowledges a prefix of them;
/// an acknowledged item is safely with the receiver.
public protocol Sink: Sendable {
    func deliver(_ records: [OutboxRecord], jobID: String) async -> SinkResult
}
