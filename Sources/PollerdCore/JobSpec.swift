/// What to do when a job's slot passed while the daemon was down.
public enum CatchUp: String, Sendable, Hashable {
    /// Do not run missed slots; wait for the next one.
    case skip
    /// Run once at start (spread by the job's jitter), however many slots were missed.
    case once
}

/// Where failure alerts for a job go (kept for nexo compatibility).
public struct FailureTarget: Sendable, Hashable {
    public var channel: String
    public var to: String
    public init(channel: String, to: String) {
        self.channel = channel
        self.to = to
    }
}

/// One validated job from the job file.
///
/// A value type whose fields live in one shared, copy-on-write box: the scheduler, the runner and
/// every due tick hold a copy of their job's spec, and a million jobs would otherwise hold a
/// million copies of ~280 bytes each, copied again for every tick. The fields are read and
/// written as if they were the spec's own (`spec.kind`, `spec.deliver = …`).
@dynamicMemberLookup
public struct JobSpec: Sendable, Hashable {
    /// What a job is.
    public struct Fields: Sendable, Hashable {
        public var id: String
        public var kind: String
        public var agent: String
        public var schedule: Schedule
        public var config: JSONValue
        public var failureTo: FailureTarget?
        public var pausedOnBoot: Bool
        public var timeoutSecs: Int64
        public var catchUp: CatchUp
        /// Where the job's items go (the job's `deliver:`, or the file's default sinks).
        public var deliver: [SinkSpec]
        /// How many item keys the job remembers for dedup; nil: the file's `delivery.dedup_window`.
        public var dedupWindow: Int?
        /// Where failure alerts go: the sink `failure_to.channel` names in `pollers.alert_sinks`.
        public var alertSinks: [SinkSpec] = []
        /// A job with no ok tick for longer than this is reported stale (API, metrics, `jobs list`).
        public var maxStalenessSecs: Int64?
    }

    /// The fields, shared by copies. Only ever mutated while uniquely referenced, so sharing it
    /// is safe. Inlinable, with the subscript: a key path applied across modules at run time was
    /// 4 % of the daemon's CPU at 50k ticks/s.
    @usableFromInline final class Box: @unchecked Sendable {
        @usableFromInline var fields: Fields
        @usableFromInline init(_ fields: Fields) { self.fields = fields }
    }

    @usableFromInline var box: Box

    @inlinable public subscript<T>(dynamicMember field: WritableKeyPath<Fields, T>) -> T {
        get { box.fields[keyPath: field] }
        set {
            if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
            box.fields[keyPath: field] = newValue
        }
    }

    public init(
        id: String, kind: String, agent: String = "default", schedule: Schedule, config: JSONValue = .object([:]),
        failureTo: FailureTarget? = nil, pausedOnBoot: Bool = false, timeoutSecs: Int64 = 60, catchUp: CatchUp = .once,
        deliver: [SinkSpec] = [], dedupWindow: Int? = nil
    ) {
        box = Box(
            Fields(
                id: id, kind: kind, agent: agent, schedule: schedule, config: config, failureTo: failureTo,
                pausedOnBoot: pausedOnBoot,
                timeoutSecs: timeoutSecs, catchUp: catchUp, deliver: deliver, dedupWindow: dedupWindow))
    }

    public static func == (a: JobSpec, b: JobSpec) -> Bool { a.box === b.box || a.box.fields == b.box.fields }

    public func hash(into h: inout Hasher) { h.combine(box.fields) }

    /// A stable fingerprint of the whole definition, stored so `validate --diff` can compare.
    public var fingerprint: String { String(fingerprintHash, radix: 16) }

    /// The fingerprint as a number (what the scheduler keeps of it per job).
    public var fingerprintHash: UInt64 {
        let f = box.fields
        let ft = f.failureTo.map { "\($0.channel)>\($0.to)" } ?? "-"
        let text =
            "\(f.kind)|\(f.agent)|\(f.schedule.fingerprint)|\(f.config.canonicalString)|\(ft)|\(f.pausedOnBoot)|\(f.timeoutSecs)|\(f.catchUp.rawValue)"
            + (f.deliver.isEmpty ? "" : "|" + f.deliver.map(\.fingerprint).joined(separator: ","))
            + (f.dedupWindow.map { "|dedup=\($0)" } ?? "")
            + (f.alertSinks.isEmpty ? "" : "|alerts=" + f.alertSinks.map(\.fingerprint).joined(separator: ","))
            + (f.maxStalenessSecs.map { "|stale=\($0)" } ?? "")
        return StableHash.fnv1a(text)
    }
}

/// How the daemon connects to PostgreSQL (`pollers.postgres`).
public struct PostgresSettings: Sendable, Hashable {
    /// The most connections the daemon opens (`pool_size`).
    public var poolSize = 10
    /// The server aborts a statement that runs longer (`statement_timeout_ms`; 0: no bound).
    public var statementTimeoutMs = 30_000
    public init(poolSize: Int = 10, statementTimeoutMs: Int = 30_000) {
        self.poolSize = poolSize
        self.statementTimeoutMs = statementTimeoutMs
    }
}

/// The NATS broker the `nats` sinks publish to (`pollers.broker`). Without it they publish on
/// the in-process broker.
public struct BrokerSettings: Sendable, Hashable {
    /// The servers (`url` and `urls`): `nats://[user:password@]host[:port]` or `tls://…`.
    public var urls: [String]
    public var user: String?
    public var password: String?
    public var token: String?
    /// The connection's name on the server (default `pollerd`).
    public var name: String?
    public var tls: BrokerTLS?
    /// JetStream acks a `nats` sink keeps outstanding (`ack_window`).
    public var ackWindow = 256
    /// Bytes of publishes the client holds while disconnected (`reconnect_buffer_bytes`).
    public var reconnectBufferBytes = 8 << 20

    public init(urls: [String]) {
        self.urls = urls
    }
}

/// TLS files for the broker (`pollers.broker.tls`), paths resolved from the job file's folder.
public struct BrokerTLS: Sendable, Hashable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }
}

/// The daemon-wide settings from the `pollers:` section.
public struct GlobalSettings: Sendable, Hashable {
    public var enabled = true
    public var stateDB = "./data/pollerd.db"
    public var defaultJitterMs: Int64 = 5000
    public var leaseTTLFactor: Double = 2.0
    public var failureAlertCooldownSecs: Int64 = 3600
    public var breakerThreshold: Int = 5
    public var pluginDirs: [String] = []
    public var maxConcurrentTicks: Int = 64
    public var shutdownGraceSecs: Int64 = 30
    /// `state_sync: full` (default) fsyncs every state commit; `normal` survives crashes but not power loss.
    public var stateSynchronousFull = true
    /// The connections to PostgreSQL, when `state_db` is a `postgres://` URL (`pollers.postgres`).
    public var postgres = PostgresSettings()
    /// The NATS broker of the `nats` sinks (`pollers.broker`); nil: the in-process broker.
    public var broker: BrokerSettings?
    /// Sinks for jobs that name none (`pollers.deliver`).
    public var deliver: [SinkSpec] = []
    /// Outbox behaviour (`pollers.delivery`).
    public var delivery = DeliveryTuning()
    /// Where the admin HTTP server listens (`admin.listen`, or nexo's `admin_listen`); nil:
    /// not started (`off`). Default 127.0.0.1:9091.
    public var adminListen: ListenAddress? = AdminSettings.defaultListen
    /// The admin API's tokens and probe setting (`pollers.admin`).
    public var admin = AdminSettings()
    /// The HTTP kinds' daemon-wide settings (`pollers.http`).
    public var http = HTTPSettings()
    /// Sinks that `failure_to.channel` may name (`pollers.alert_sinks`).
    public var alertSinks: [SinkSpec] = []
    /// Ticks per job the store keeps in its history (`tick_history`; 0: none).
    public var tickHistory = 100
    /// The most processes a plugin or command may have below it (`max_plugin_processes`): past
    /// it, the whole tree is killed and the kill reported. 0: no bound.
    public var maxPluginProcesses = 256
    /// `memory.max` of each plugin's and command's cgroup, in MiB (`plugin_memory_max_mb`),
    /// where the daemon runs them in cgroups with the memory controller; nil: no bound.
    public var pluginMemoryMaxMB: Int?
    /// How many nice steps below the daemon's CPU priority plugins and commands run
    /// (`plugin_nice`, 0–19; 0: at the daemon's), so that busy plugins do not starve the scheduler.
    public var pluginNice = 10
    /// The level of the line each tick logs (`tick_log_level`: `info`, or `debug` for large fleets).
    public var tickLogLevel = "info"

    public init() {}
}

/// `pollers.admin`: who may use the admin API.
public struct AdminSettings: Sendable, Hashable {
    public static let defaultListen = ListenAddress("127.0.0.1:9091")!
    /// True when the job file named the address (a bind failure then stops the daemon; on the
    /// default address it is logged and the daemon runs without the API).
    public var listenExplicit = false
    /// Bearer tokens and their roles; `POLLERD_ADMIN_TOKEN` and `POLLERD_READ_TOKEN` add to them.
    public var tokens: [AdminTokenSpec] = []
    /// `/healthz`, `/readyz` and `/metrics` answer without a token.
    public var openProbes = true
    /// A second listener that serves the probes alone (`admin.probe_listen`), with a connection
    /// backlog of its own: a flood of connections to the API's port cannot delay them.
    public var probeListen: ListenAddress?

    public init() {}
}

/// One admin token: `read` may use every GET; `admin` may also act.
public struct AdminTokenSpec: Sendable, Hashable {
    public var token: String
    public var role: String
    public init(token: String, role: String) {
        self.token = token
        self.role = role
    }
}

/// `pollers.http`: what the HTTP kinds (`rss`, `http_json`) share across jobs.
public struct HTTPSettings: Sendable, Hashable {
    /// Requests in flight to one host, across all jobs.
    public var perHostLimit = 2
    /// The `User-Agent` sent unless a job sets its own; nil: `pollerd/VERSION (+URL)`.
    public var userAgent: String?
    /// Non-public addresses every job may reach (a local feed proxy, say): `10.1.0.0/16`,
    /// `127.0.0.1/32:8080`, `[::1]/128:9000`.
    public var allowAddresses: [AddressRange] = []

    public init() {}
}

/// A job's health as an operator reads it, from its stored row.
public enum JobHealth: String, Sendable, CaseIterable {
    case ok, failing, paused
    case backingOff = "backing_off"
    case breakerOpen = "breaker_open"
    case backlogged, done
    case neverRan = "never_ran"

    /// The state of a job: paused and done first, then a full backlog, then failures (the breaker
    /// open at or past the threshold), then ok, or never ran.
    public static func of(_ row: JobStateRow, breakerThreshold: Int) -> JobHealth {
        if row.paused { return .paused }
        if row.done { return .done }
        if row.lastStatus == "backpressure" { return .backlogged }
        if row.consecutiveErrors >= max(1, breakerThreshold) { return .breakerOpen }
        if row.consecutiveErrors > 0 { return row.lastStatus == "transient" ? .backingOff : .failing }
        if row.lastRunAtMs == nil { return .neverRan }
        return .ok
    }

    /// True when the job has not ticked ok for longer than `maxStalenessSecs` (counted from its
    /// registration when it never did).
    public static func isStale(
        _ row: JobStateRow, maxStalenessSecs: Int64?, registeredAtMs: Int64? = nil, nowMs: Int64
    ) -> Bool {
        guard let limit = maxStalenessSecs, !row.paused, !row.done else { return false }
        guard let since = row.lastOkAtMs ?? registeredAtMs else { return false }
        return nowMs - since > limit * 1000
    }
}
