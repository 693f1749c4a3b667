public import Foundation

/// What a successful tick reports.
public struct TickAck: Sendable, Equatable {
    /// The new cursor; nil keeps the old one.
    public var nextCursor: Data?
    /// Replaces the delay before the next tick, once.
    public var nextIntervalSecs: Int64?
    /// Items the source reported seeing.
    public var itemsSeen: Int64
    /// Items the poller dispatched itself.
    public var itemsDispatched: Int64
    /// New items found by this tick (JSON objects).
    public var items: [JSONValue]
    /// What the kind wants an operator to see of this tick (`tick --json` prints it as
    /// `details`): an HTTP kind's status and chosen delay, say. nil: nothing.
    public var details: JSONValue?

    public init(
        nextCursor: Data? = nil, nextIntervalSecs: Int64? = nil, itemsSeen: Int64? = nil, itemsDispatched: Int64 = 0,
        items: [JSONValue] = [], details: JSONValue? = nil
    ) {
        self.nextCursor = nextCursor
        self.nextIntervalSecs = nextIntervalSecs
        self.itemsSeen = itemsSeen ?? Int64(items.count)
        self.itemsDispatched = itemsDispatched
        self.items = items
        self.details = details
    }
}

/// Everything a poller gets for one tick.
public struct TickContext: Sendable {
    /// The job's id.
    public var jobID: String
    /// The job's kind.
    public var kind: String
    /// The job's owner label (`agent_id` on the plugin wire).
    public var agent: String
    /// The job's config as JSON.
    public var config: JSONValue
    /// The cursor stored by the last successful tick, if any.
    public var cursor: Data?
    /// The tick's start instant (ms since the epoch).
    public var nowMs: Int64
    /// The schedule's nominal interval in seconds.
    public var intervalHintSecs: Int64
    /// The tick's time budget in seconds.
    public var timeoutSecs: Int64
    /// The slot the tick is for: the instant its schedule made it due (ms since the epoch).
    public var slotMs: Int64?

    public init(
        jobID: String, kind: String, agent: String, config: JSONValue, cursor: Data?, nowMs: Int64,
        intervalHintSecs: Int64, timeoutSecs: Int64, slotMs: Int64? = nil
    ) {
        self.slotMs = slotMs
        self.jobID = jobID
        self.kind = kind
        self.agent = agent
        self.config = config
        self.cursor = cursor
        self.nowMs = nowMs
        self.intervalHintSecs = intervalHintSecs
        self.timeoutSecs = timeoutSecs
    }
}

/// A kind of job: given a context, poll the outside world once.
public protocol Poller: Sendable {
    /// The kind name jobs use.
    var kind: String { get }
    /// Checks a job's config; throws `ConfigIssue` naming the key at fault.
    func validate(config: JSONValue) throws(ConfigIssue)
    /// Runs one tick. Must honour task cancellation (the runner cancels on timeout).
    func tick(_ ctx: TickContext) async throws(PollerError) -> TickAck
    /// A bound on the tick's time set by the kind itself (a plugin's `tick_timeout_secs`); the
    /// job's `timeout_secs` applies when it is lower.
    var timeoutCapSecs: Int64? { get }
    /// Where the runner starts this kind's ticks (`Task(executorPreference:)`): a long-lived
    /// plugin's reader thread, so a tick resumes where its reply was read. nil: the global
    /// concurrent executor.
    var preferredExecutor: (any TaskExecutor)? { get }
    /// A bound on this kind's ticks in flight, shared by the kinds with the same group (a
    /// plugin's `max_concurrent_ticks`, shared by its kinds). The scheduler starts a tick of a
    /// full group only when one of the group's ticks ends, so waiting ticks hold no global slot
    /// and their timeout starts when they start. nil: no bound but the global one.
    var concurrencyLimit: ConcurrencyLimit? { get }
}

extension Poller {
    public var timeoutCapSecs: Int64? { nil }
    public var preferredExecutor: (any TaskExecutor)? { nil }
    public var concurrencyLimit: ConcurrencyLimit? { nil }
}

/// At most `limit` ticks in flight for the kinds of one group.
public struct ConcurrencyLimit: Sendable, Hashable {
    public var group: String
    public var limit: Int
    public init(group: String, limit: Int) {
        self.group = group
        self.limit = limit
    }
}

/// A problem in a job's `config`, with the path of keys that leads to it.
public struct ConfigIssue: Error, Sendable, Equatable, CustomStringConvertible {
    /// Keys from `config` down to the bad value (empty: the config as a whole).
    public var path: [String]
    /// What is wrong.
    public var message: String

    public init(path: [String] = [], _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String {
        path.isEmpty ? message : "config.\(path.joined(separator: ".")): \(message)"
    }
}

/// The kinds known to a daemon, by name.
public struct PollerRegistry: Sendable {
    private var byKind: [String: any Poller] = [:]

    public init(_ pollers: [any Poller] = []) {
        for p in pollers { byKind[p.kind] = p }
    }

    /// Adds a kind; false when the name is taken (kinds never shadow each other).
    @discardableResult
    public mutating func register(_ p: any Poller) -> Bool {
        guard byKind[p.kind] == nil else { return false }
        byKind[p.kind] = p
        return true
    }

    /// The poller for a kind.
    public func poller(for kind: String) -> (any Poller)? { byKind[kind] }

    /// All kind names, sorted.
    public var kinds: [String] { byKind.keys.sorted() }
}
