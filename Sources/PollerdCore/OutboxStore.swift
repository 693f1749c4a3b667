/// The items a tick hands to the outbox, stored with its cursor in one transaction.
public struct OutboxBatch: Sendable, Equatable {
    /// The job's sink names: each entry is queued once per sink.
    public var sinks: [String]
    /// The fingerprint of each sink's definition (`SinkSpec.fingerprint`), in the order of
    /// `sinks`: a lane is delivered only by a deliverer whose job file defines its sink the same
    /// way. Empty: not known (the lane goes to any deliverer with a sink of that name).
    public var sinkFingerprints: [String]
    public var entries: [OutboxEntry]
    /// Keys the job remembers for dedup (0: no dedup).
    public var dedupWindow: Int
    public var foundAtMs: Int64

    public init(
        sinks: [String], sinkFingerprints: [String] = [], entries: [OutboxEntry], dedupWindow: Int, foundAtMs: Int64
    ) {
        self.sinks = sinks
        self.sinkFingerprints = sinkFingerprints
        self.entries = entries
        self.dedupWindow = dedupWindow
        self.foundAtMs = foundAtMs
    }

    /// The batch for `sinks`, with their names and fingerprints.
    public init(sinks: [SinkSpec], entries: [OutboxEntry], dedupWindow: Int, foundAtMs: Int64) {
        self.init(
            sinks: sinks.map(\.name), sinkFingerprints: sinks.map(\.fingerprint), entries: entries,
            dedupWindow: dedupWindow, foundAtMs: foundAtMs)
    }

    public static let empty = OutboxBatch(sinks: [String](), entries: [], dedupWindow: 0, foundAtMs: 0)
}

/// A (job, sink) lane a deliverer can deliver: its job file defines the sink, as the fingerprint
/// says (`SinkSpec.fingerprint`).
public struct ServedSink: Sendable, Hashable {
    public var jobID: String
    public var sink: String
    public var fingerprint: String

    public init(jobID: String, sink: String, fingerprint: String) {
        self.jobID = jobID
        self.sink = sink
        self.fingerprint = fingerprint
    }
}

/// One sink queue of one job, claimed by a deliverer.
public struct OutboxLane: Sendable, Hashable {
    public var jobID: String
    public var sink: String
    /// Fences the claim: settling with a stale token changes nothing.
    public var token: Int64
    /// Failed attempts of the lane's head item so far.
    public var attempts: Int

    public init(jobID: String, sink: String, token: Int64, attempts: Int) {
        self.jobID = jobID
        self.sink = sink
        self.token = token
        self.attempts = attempts
    }
}

/// A lane as a claim hands it out: with its first items, oldest first.
public struct ClaimedLane: Sendable, Equatable {
    public var lane: OutboxLane
    /// Up to the batch size the claim asked for, and at most `maxBatchBytes` of envelopes (at
    /// least one item, however large).
    public var items: [OutboxRecord]

    public init(lane: OutboxLane, items: [OutboxRecord]) {
        self.lane = lane
        self.items = items
    }

    /// Bytes of envelopes handed out with a lane at once: with items of up to a plugin's 4 MiB
    /// reply, a count alone would not bound the daemon's memory.
    public static let maxBatchBytes = 8 << 20
}

/// One lane's settlement in a batch.
public struct LaneSettle: Sendable, Equatable {
    public var lane: OutboxLane
    public var settlement: LaneSettlement

    public init(_ lane: OutboxLane, _ settlement: LaneSettlement) {
        self.lane = lane
        self.settlement = settlement
    }
}

/// An undelivered item of a lane, in production order.
public struct OutboxRecord: Sendable, Equatable {
    public var seq: Int64
    public var key: String
    public var envelope: String
    public var foundAtMs: Int64

    public init(seq: Int64, key: String, envelope: String, foundAtMs: Int64) {
        self.seq = seq
        self.key = key
        self.envelope = envelope
        self.foundAtMs = foundAtMs
    }
}

/// What a delivery attempt of a lane's items came to.
public struct LaneSettlement: Sendable, Equatable {
    public enum Failure: Sendable, Equatable {
        /// Try the head item again at the instant.
        case retry(atMs: Int64, error: String)
        /// The head item goes to the dead-letter table.
        case deadLetter(error: String)
        /// The lane cannot be delivered now (its sink is not configured); look again at the instant.
        case park(untilMs: Int64, reason: String)
    }
    /// The items the sink acknowledged, a prefix of those handed to it.
    public var acked: [Int64]
    /// Why the next item was not acknowledged, if one was not.
    public var failure: Failure?

    public init(acked: [Int64], failure: Failure?) {
        self.acked = acked
        self.failure = failure
    }
}

extension LaneSettlement {
    /// What a settlement does to its lane, the same on every store: the head's attempts, the next
    /// attempt, the lane's last error, whether it counts a retry, and whether the head goes to the
    /// dead letters (with the attempts it took).
    public struct Outcome: Sendable, Equatable {
        public var attempts: Int
        public var nextAttemptAtMs: Int64
        public var lastError: String?
        public var retried: Bool
        public var deadLetter: Bool
        /// The attempts a dead-lettered head took (this one included).
        public var deadLetterAttempts: Int
        /// Nothing was handed over although the lane counted items: the store counts its rows again.
        public var recount: Bool
    }

    /// The outcome for a lane whose head had `laneAttempts` failed attempts, settled at `nowMs`.
    public func outcome(laneAttempts: Int, nowMs: Int64) -> Outcome {
        var o = Outcome(
            attempts: acked.isEmpty ? laneAttempts : 0, nextAttemptAtMs: nowMs, lastError: nil, retried: false,
            deadLetter: false, deadLetterAttempts: 0, recount: acked.isEmpty && failure == nil)
        switch failure {
        case nil:
            o.attempts = 0
        case .retry(let at, let error)?:
            o.attempts += 1
            o.nextAttemptAtMs = at
            o.lastError = error
            o.retried = true
        case .park(let until, let reason)?:
            o.nextAttemptAtMs = until
            o.lastError = reason
        case .deadLetter(let error)?:
            o.deadLetter = true
            o.deadLetterAttempts = o.attempts + 1
            o.attempts = 0
            o.lastError = error
        }
        return o
    }
}

/// One lane as `pollerd outbox stats` shows it.
public struct OutboxLaneStats: Sendable, Equatable {
    public var jobID: String
    public var sink: String
    public var pending: Int64
    public var attempts: Int
    public var nextAttemptAtMs: Int64
    public var lastError: String?
    public var oldestFoundAtMs: Int64?
    public var delivered: Int64
    public var retried: Int64
    public var deadLettered: Int64

    public init(
        jobID: String, sink: String, pending: Int64, attempts: Int, nextAttemptAtMs: Int64, lastError: String?,
        oldestFoundAtMs: Int64?, delivered: Int64, retried: Int64, deadLettered: Int64
    ) {
        self.jobID = jobID
        self.sink = sink
        self.pending = pending
        self.attempts = attempts
        self.nextAttemptAtMs = nextAttemptAtMs
        self.lastError = lastError
        self.oldestFoundAtMs = oldestFoundAtMs
        self.delivered = delivered
        self.retried = retried
        self.deadLettered = deadLettered
    }
}

/// An item that a sink would not take after all its attempts.
public struct DeadLetter: Sendable, Equatable {
    public var id: Int64
    public var jobID: String
    public var sink: String
    public var key: String
    public var envelope: String
    public var attempts: Int
    public var lastError: String
    public var foundAtMs: Int64
    public var failedAtMs: Int64

    public init(
        id: Int64, jobID: String, sink: String, key: String, envelope: String, attempts: Int, lastError: String,
        foundAtMs: Int64, failedAtMs: Int64
    ) {
        self.id = id
        self.jobID = jobID
        self.sink = sink
        self.key = key
        self.envelope = envelope
        self.attempts = attempts
        self.lastError = lastError
        self.foundAtMs = foundAtMs
        self.failedAtMs = failedAtMs
    }
}

/// Which dead letters an operator command acts on.
public enum DeadLetterSelection: Sendable, Equatable {
    case ids([Int64])
    case job(String)
    case all
}

/// The outbox side of the store: lanes that deliverers claim, settle and report on, and the
/// dead-letter table. Items enter it through `StateStore.commit`.
public protocol OutboxStore: Sendable {
    /// Claims up to `limit` lanes whose head is due, that no live claim holds, and that `holder`
    /// serves (`serveSinks`): its sink by name, and by the fingerprint of the definition the
    /// lane's items were queued under where the lane records one. Two daemons with different job
    /// files on one store each deliver their own jobs' lanes, and never park the other's. A lane
    /// is due when its next attempt (an instant its last settle set, on the settling daemon's
    /// clock) is at or before `nowMs`; the claim runs `claimMs` from the store's now (`time`).
    /// Each lane comes with its first `batchSize` items: a lane costs one round trip to claim and
    /// read, whatever the number of lanes.
    func claimLanes(
        holder: String, nowMs: Int64, claimMs: Int64, limit: Int, batchSize: Int
    ) async throws -> [ClaimedLane]
    /// Sets the lanes `holder` serves (at boot and on reload), replacing what it served before.
    /// A holder that never called it claims nothing. What a store keeps of it lasts no longer
    /// than the holder's connection to it (SQLite: a temporary table of the writer's).
    func serveSinks(holder: String, _ sinks: [ServedSink]) async throws
    /// Records each lane's acks and failure and releases its claim, in one round trip for the
    /// batch; per lane, in order, false (nothing changed for it) when its claim was lost.
    func settle(_ batch: [LaneSettle], holder: String, nowMs: Int64) async throws -> [Bool]
    /// The earliest instant a lane with items is due, if any.
    func nextLaneDueMs() async throws -> Int64?
    /// Every lane that has items or history.
    func outboxStats() async throws -> [OutboxLaneStats]
    /// Dead letters, newest first.
    func deadLetters(jobID: String?, limit: Int) async throws -> [DeadLetter]
    /// Forgets the job's dedup window: items it saw before count as new again. Returns how many keys went.
    func forgetSeen(jobID: String) async throws -> Int
    /// One dead letter.
    func deadLetter(id: Int64) async throws -> DeadLetter?
    /// Puts dead letters back at the end of their lanes, with fresh attempts; returns how many.
    func replayDeadLetters(_ selection: DeadLetterSelection, nowMs: Int64) async throws -> Int
    /// Deletes dead letters; returns how many.
    func dropDeadLetters(_ selection: DeadLetterSelection) async throws -> Int
    /// Frees unexpired lane claims whose holder ran on `host` in a process that is no longer alive
    /// (a crashed daemon on this host), in one round trip; returns how many.
    func reclaimLaneClaims(on host: HostProcesses, nowMs: Int64) async throws -> Int
}

extension OutboxStore {
    /// Settles one lane: a batch of one.
    public func settle(
        _ lane: OutboxLane, holder: String, _ settlement: LaneSettlement, nowMs: Int64
    ) async throws -> Bool {
        let answers = try await settle([LaneSettle(lane, settlement)], holder: holder, nowMs: nowMs)
        guard answers.count == 1, let answer = answers.first else {
            throw StoreContractViolation(call: "settle", detail: "\(answers.count) answers to 1 settlement")
        }
        return answer
    }
}
