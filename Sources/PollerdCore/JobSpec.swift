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
    public init(channel: String, to: String) { self.channel = channel; self.to = to }
}

/// One validated job from the job file.
///
/// A value type whose fields live in one shared, copy-on-write box: the scheduler, the runner and
/// every due tick hold a copy of their job's spec, and a million jobs would otherwise hold a
/// million copies of ~280 bytes each, copied again for every tick.
public struct JobSpec: Sendable, Hashable {
    /// The fields. Only ever mutated while uniquely referenced (`edit`), so sharing it is safe.
    private final class Box: @unchecked Sendable {
        var id: String
        var kind: String
        var agent: String
        var schedule: Schedule
        var config: JSONValue
        var failureTo: FailureTarget?
        var pausedOnBoot: Bool
        var timeoutSecs: Int64
        var catchUp: CatchUp
        var deliver: [SinkSpec]
        var dedupWindow: Int?
        var alertSinks: [SinkSpec]
        var maxStalenessSecs: Int64?

        init(id: String, kind: String, agent: String, schedule: Schedule, config: JSONValue, failureTo: FailureTarget?, pausedOnBoot: Bool,
             timeoutSecs: Int64, catchUp: CatchUp, deliver: [SinkSpec], dedupWindow: Int?, alertSinks: [SinkSpec], maxStalenessSecs: Int64?) {
            self.id = id
            self.kind = kind
            self.agent = agent
            self.schedule = schedule
            self.config = config
            self.failureTo = failureTo
            self.pausedOnBoot = pausedOnBoot
            self.timeoutSecs = timeoutSecs
            self.catchUp = catchUp
            self.deliver = deliver
            self.dedupWindow = dedupWindow
            self.alertSinks = alertSinks
            self.maxStalenessSecs = maxStalenessSecs
        }

        func copy() -> Box {
            Box(id: id, kind: kind, agent: agent, schedule: schedule, config: config, failureTo: failureTo, pausedOnBoot: pausedOnBoot,
                timeoutSecs: timeoutSecs, catchUp: catchUp, deliver: deliver, dedupWindow: dedupWindow, alertSinks: alertSinks, maxStalenessSecs: maxStalenessSecs)
        }
    }

    private var box: Box

    /// Mutates the fields, copying them first unless this value is their only holder.
    private mutating func edit(_ body: (Box) -> Void) {
        if !isKnownUniquelyReferenced(&box) { box = box.copy() }
        body(box)
    }

    public var id: String {
        get { box.id }
        set { edit { $0.id = newValue } }
    }
    public var kind: String {
        get { box.kind }
        set { edit { $0.kind = newValue } }
    }
    public var agent: String {
        get { box.agent }
        set { edit { $0.agent = newValue } }
    }
    public var schedule: Schedule {
        get { box.schedule }
        set { edit { $0.schedule = newValue } }
    }
    public var config: JSONValue {
        get { box.config }
        set { edit { $0.config = newValue } }
    }
    public var failureTo: FailureTarget? {
        get { box.failureTo }
        set { edit { $0.failureTo = newValue } }
    }
    public var pausedOnBoot: Bool {
        get { box.pausedOnBoot }
        set { edit { $0.pausedOnBoot = newValue } }
    }
    public var timeoutSecs: Int64 {
        get { box.timeoutSecs }
        set { edit { $0.timeoutSecs = newValue } }
    }
    public var catchUp: CatchUp {
        get { box.catchUp }
        set { edit { $0.catchUp = newValue } }
    }
    /// Where the job's items go (the job's `deliver:`, or the file's default sinks).
    public var deliver: [SinkSpec] {
        get { box.deliver }
        set { edit { $0.deliver = newValue } }
    }
    /// How many item keys the job remembers for dedup; nil: the file's `delivery.dedup_window`.
    public var dedupWindow: Int? {
        get { box.dedupWindow }
        set { edit { $0.dedupWindow = newValue } }
    }
    /// Where failure alerts go: the sink `failure_to.channel` names in `pollers.alert_sinks`.
    public var alertSinks: [SinkSpec] {
        get { box.alertSinks }
        set { edit { $0.alertSinks = newValue } }
    }
    /// A job with no ok tick for longer than this is reported stale (API, metrics, `jobs list`).
    public var maxStalenessSecs: Int64? {
        get { box.maxStalenessSecs }
        set { edit { $0.maxStalenessSecs = newValue } }
    }

    public init(id: String, kind: String, agent: String = "default", schedule: Schedule, config: JSONValue = .object([:]), failureTo: FailureTarget? = nil, pausedOnBoot: Bool = false, timeoutSecs: Int64 = 60, catchUp: CatchUp = .once, deliver: [SinkSpec] = [], dedupWindow: Int? = nil) {
        box = Box(id: id, kind: kind, agent: agent, schedule: schedule, config: config, failureTo: failureTo, pausedOnBoot: pausedOnBoot,
                  timeoutSecs: timeoutSecs, catchUp: catchUp, deliver: deliver, dedupWindow: dedupWindow, alertSinks: [], maxStalenessSecs: nil)
    }

    public static func == (a: JobSpec, b: JobSpec) -> Bool {
        if a.box === b.box { return true }
        return a.id == b.id && a.kind == b.kind && a.agent == b.agent && a.schedule == b.schedule && a.config == b.config && a.failureTo == b.failureTo && a.pausedOnBoot == b.pausedOnBoot && a.timeoutSecs == b.timeoutSecs && a.catchUp == b.catchUp && a.deliver == b.deliver && a.dedupWindow == b.dedupWindow && a.alertSinks == b.alertSinks && a.maxStalenessSecs == b.maxStalenessSecs
    }

    public func hash(into h: inout Hasher) {
        h.combine(id)
        h.combine(kind)
        h.combine(agent)
        h.combine(schedule)
        h.combine(config)
        h.combine(failureTo)
        h.combine(pausedOnBoot)
        h.combine(timeoutSecs)
        h.combine(catchUp)
        h.combine(deliver)
        h.combine(dedupWindow)
        h.combine(alertSinks)
        h.combine(maxStalenessSecs)
    }

    /// A stable fingerprint of the whole definition, stored so `validate --diff` can compare.
    public var fingerprint: String { String(fingerprintHash, radix: 16) }

    /// The fingerprint as a number (what the scheduler keeps of it per job).
    public var fingerprintHash: UInt64 {
        let ft = failureTo.map { "\($0.channel)>\($0.to)" } ?? "-"
        let text = "\(kind)|\(agent)|\(schedule.fingerprint)|\(config.canonicalString)|\(ft)|\(pausedOnBoot)|\(timeoutSecs)|\(catchUp.rawValue)" + (deliver.isEmpty ? "" : "|" + deliver.map(\.fingerprint).joined(separator: ","))
            + (dedupWindow.map { "|dedup=\($0)" } ?? "")
            + (alertSinks.isEmpty ? "" : "|alerts=" + alertSinks.map(\.fingerprint).joined(separator: ","))
            + (maxStalenessSecs.map { "|stale=\($0)" } ?? "")
        return StableHash.fnv1a(text)
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

    public init() {}
}

/// One admin token: `read` may use every GET; `admin` may also act.
public struct AdminTokenSpec: Sendable, Hashable {
    public var token: String
    public var role: String
    public init(token: String, role: String) { self.token = token; self.role = role }
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
    case ok, failing, paused, backingOff = "backing_off", breakerOpen = "breaker_open", backlogged, done, neverRan = "never_ran"

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
    public static func isStale(_ row: JobStateRow, maxStalenessSecs: Int64?, registeredAtMs: Int64? = nil, nowMs: Int64) -> Bool {
        guard let limit = maxStalenessSecs, !row.paused, !row.done else { return false }
        guard let since = row.lastOkAtMs ?? registeredAtMs else { return false }
        return nowMs - since > limit * 1000
    }
}
