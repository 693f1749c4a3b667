import Foundation
import PollerdCore
import Yams

/// Walks the YAML tree of a job file, validating as it goes and locating every problem.
struct JobFileValidator {
    let file: String
    var registry: PollerRegistry
    var kinds: JobFile.KindProvider?
    let environment: [String: String]
    let nowMs: Int64

    var settings = GlobalSettings()
    var jobs: [JobSpec] = []
    var errors: [ConfigError] = []
    var warnings: [ConfigError] = []
    var fatal = false

    init(file: String, registry: PollerRegistry, environment: [String: String], nowMs: Int64) {
        self.file = file
        self.registry = registry
        self.environment = environment
        self.nowMs = nowMs
    }

    /// Thrown to abandon the current job (or the file) after recording the error.
    struct Abandon: Error {}

    static let rootKeys: Set<String> = ["pollers", "schema_version"]
    static let pollerKeys: Set<String> = [
        "enabled", "state_db", "default_jitter_ms", "lease_ttl_factor", "failure_alert_cooldown_secs",
        "breaker_threshold", "plugin_dirs", "jobs", "max_concurrent_ticks", "shutdown_grace_secs", "state_sync",
        "deliver", "delivery", "admin_listen", "http", "admin", "alert_sinks", "tick_history", "tick_log_level",
        "max_plugin_processes", "plugin_memory_max_mb", "plugin_nice", "postgres", "broker",
    ]
    static let jobKeys: Set<String> = [
        "id", "kind", "agent", "schedule", "config", "failure_to", "paused_on_boot", "timeout_secs", "catch_up",
        "extra", "deliver", "dedup_window", "max_staleness_secs",
    ]
    static let scheduleKeys: Set<String> = ["every_secs", "cron", "tz", "at", "stagger_jitter_ms"]

    // MARK: errors

    mutating func fail(_ node: Node?, job: String? = nil, _ message: String) -> Abandon {
        let m = node?.mark
        errors.append(ConfigError(file: file, line: m?.line ?? 0, column: m?.column ?? 0, jobID: job, message: message))
        return Abandon()
    }

    mutating func warn(_ node: Node?, job: String? = nil, _ message: String) {
        let m = node?.mark
        warnings.append(
            ConfigError(file: file, line: m?.line ?? 0, column: m?.column ?? 0, jobID: job, message: message))
    }

    // MARK: entry

    mutating func run(_ text: String) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            fatal = true
            errors.append(Self.locate(e, file: file))
            return
        } catch {
            fatal = true
            errors.append(ConfigError(file: file, line: 0, column: 0, message: "YAML error: \(error)"))
            return
        }
        guard let root else {
            fatal = true
            _ = fail(nil, "the job file is empty; expected a top-level 'pollers:' mapping")
            return
        }
        // Aliases share their anchor's node, so a small file can stand for a huge tree
        // ("billion laughs"). Count the tree as it expands, up to a budget, before anything
        // walks or converts it: a file without aliases has fewer nodes than bytes.
        let budget = max(100_000, text.utf8.count)
        var seen = 0
        if let at = Self.overBudget(root, budget: budget, seen: &seen) {
            fatal = true
            _ = fail(
                at,
                "YAML aliases expand the job file past \(budget) nodes (an alias bomb?); write the values out or use fewer aliases"
            )
            return
        }
        do {
            let top = try mapping(root, job: nil, what: "the top level")
            try checkKeys(top, allowed: Self.rootKeys, job: nil, context: "top level")
            guard let pollers = value(top, "pollers") else {
                throw fail(root, "missing the top-level 'pollers:' key")
            }
            try readPollers(pollers)
        } catch {
            fatal = true
        }
    }

    /// Counts the nodes of `node` as aliases expand them, stopping as soon as `budget` is
    /// passed; returns the node where it was passed (nil: within the budget).
    static func overBudget(_ node: Node, budget: Int, seen: inout Int) -> Node? {
        seen += 1
        if seen > budget { return node }
        switch node {
        case .scalar, .alias: return nil
        case .mapping(let m):
            for (k, v) in m {
                if let at = overBudget(k, budget: budget, seen: &seen) ?? overBudget(v, budget: budget, seen: &seen) {
                    return at
                }
            }
            return nil
        case .sequence(let s):
            for v in s { if let at = overBudget(v, budget: budget, seen: &seen) { return at } }
            return nil
        }
    }

    static func locate(_ e: YamlError, file: String) -> ConfigError {
        switch e {
        case .scanner(let ctx, let problem, let mark, _), .parser(let ctx, let problem, let mark, _),
            .composer(let ctx, let problem, let mark, _):
            let c = ctx.map { "\($0.text) " } ?? ""
            return ConfigError(
                file: file, line: mark.line, column: mark.column, message: "YAML syntax error: \(c)\(problem)")
        case .duplicatedKeysInMapping(let dups, let ctx):
            return ConfigError(
                file: file, line: ctx.mark.line, column: ctx.mark.column,
                message: "duplicate key \(dups.sorted().map { "'\($0)'" }.joined(separator: ", ")) in a mapping")
        default:
            return ConfigError(file: file, line: 0, column: 0, message: "YAML error: \(e)")
        }
    }

    // MARK: the pollers section

    mutating func readPollers(_ node: Node) throws {
        let m = try mapping(node, job: nil, what: "'pollers'")
        try checkKeys(m, allowed: Self.pollerKeys, job: nil, context: "'pollers'")
        var s = GlobalSettings()
        if let n = value(m, "enabled") { s.enabled = try bool(n, job: nil, key: "enabled") }
        if let n = value(m, "state_db") {
            s.stateDB = try string(n, job: nil, key: "state_db")
            if s.stateDB.isEmpty { throw fail(n, "state_db must not be empty") }
            if PostgresURL.isPostgres(s.stateDB) {
                do { _ = try PostgresURL(parsing: s.stateDB) } catch { throw fail(n, "state_db: \(error)") }
            }
        }
        if let env = environment["POLLERD_STATE_DB"], !env.isEmpty {
            // The environment overrides the key (a password kept out of the file, a test database).
            if PostgresURL.isPostgres(env) {
                do { _ = try PostgresURL(parsing: env) } catch {
                    throw fail(node, "POLLERD_STATE_DB (which overrides state_db): \(error)")
                }
            }
            s.stateDB = env
        }
        if let n = value(m, "postgres") {
            let pm = try mapping(n, job: nil, what: "'postgres'")
            try checkKeys(pm, allowed: ["pool_size", "statement_timeout_ms"], job: nil, context: "'postgres'")
            if let v = value(pm, "pool_size") {
                s.postgres.poolSize = Int(try int(v, job: nil, key: "pool_size", range: 1...1000))
            }
            if let v = value(pm, "statement_timeout_ms") {
                s.postgres.statementTimeoutMs = Int(
                    try int(v, job: nil, key: "statement_timeout_ms", range: 0...3_600_000))
            }
        }
        if let n = value(m, "default_jitter_ms") {
            s.defaultJitterMs = try int(n, job: nil, key: "default_jitter_ms", range: 0...86_400_000)
        }
        if let n = value(m, "lease_ttl_factor") {
            s.leaseTTLFactor = try double(n, job: nil, key: "lease_ttl_factor")
            if !(1.0...100.0).contains(s.leaseTTLFactor) {
                throw fail(n, "lease_ttl_factor must be between 1.0 and 100.0")
            }
        }
        if let n = value(m, "failure_alert_cooldown_secs") {
            s.failureAlertCooldownSecs = try int(n, job: nil, key: "failure_alert_cooldown_secs", range: 0...31_536_000)
        }
        if let n = value(m, "breaker_threshold") {
            s.breakerThreshold = Int(try int(n, job: nil, key: "breaker_threshold", range: 1...1000))
        }
        if let n = value(m, "max_concurrent_ticks") {
            s.maxConcurrentTicks = Int(try int(n, job: nil, key: "max_concurrent_ticks", range: 1...100_000))
        }
        if let n = value(m, "shutdown_grace_secs") {
            s.shutdownGraceSecs = try int(n, job: nil, key: "shutdown_grace_secs", range: 0...3600)
        }
        if let n = value(m, "state_sync") {
            let v = try string(n, job: nil, key: "state_sync")
            guard v == "full" || v == "normal" else { throw fail(n, "state_sync must be 'full' or 'normal'") }
            s.stateSynchronousFull = v == "full"
        }
        if let n = value(m, "plugin_dirs") {
            guard case .sequence(let seq) = n else { throw fail(n, "plugin_dirs must be a list of directories") }
            s.pluginDirs = try seq.map { try string($0, job: nil, key: "plugin_dirs") }
        }
        if let n = value(m, "broker") {
            s.broker = try readBroker(n)
            settings.broker = s.broker // the sinks read below warn only without a broker
        }
        if let n = value(m, "delivery") { s.delivery = try readDelivery(n) }
        if let n = value(m, "deliver") { s.deliver = try readSinks(n, job: nil) }
        if let n = value(m, "http") { s.http = try readHTTP(n) }
        if let n = value(m, "alert_sinks") { s.alertSinks = try readSinks(n, job: nil) }
        if let n = value(m, "tick_log_level") {
            let v = try string(n, job: nil, key: "tick_log_level")
            guard ["trace", "debug", "info", "notice"].contains(v) else {
                throw fail(n, "tick_log_level must be trace, debug, info or notice, not '\(v)'")
            }
            s.tickLogLevel = v
        }
        if let n = value(m, "tick_history") {
            s.tickHistory = Int(try int(n, job: nil, key: "tick_history", range: 0...10_000))
        }
        if let n = value(m, "max_plugin_processes") {
            s.maxPluginProcesses = Int(try int(n, job: nil, key: "max_plugin_processes", range: 0...100_000))
        }
        if let n = value(m, "plugin_nice") {
            // 0 is the daemon's own priority; a negative value would raise plugins above it.
            s.pluginNice = Int(try int(n, job: nil, key: "plugin_nice", range: 0...19))
        }
        if let n = value(m, "plugin_memory_max_mb") {
            s.pluginMemoryMaxMB = Int(try int(n, job: nil, key: "plugin_memory_max_mb", range: 1...1_048_576))
        }
        if let n = value(m, "admin_listen") {
            s.adminListen = try listen(n, key: "admin_listen")
            s.admin.listenExplicit = true
        }
        if let n = value(m, "admin") { try readAdmin(n, into: &s) }
        settings = s
        if let kinds {
            let dir = (file as NSString).deletingLastPathComponent
            let found = kinds(s, dir.isEmpty ? "." : dir)
            registry = found.registry
            errors += found.errors
            warnings += found.warnings
        }
        guard let jobsNode = value(m, "jobs") else { return }
        if case .scalar(let sc) = jobsNode, Self.tagName(jobsNode) == .null || sc.string.isEmpty { return }
        guard case .sequence(let seq) = jobsNode else { throw fail(jobsNode, "jobs must be a list") }
        var seen: [String: Int] = [:]
        var duplicated = Set<String>()
        var parsed: [JobSpec] = []
        for item in seq {
            guard let job = try? readJob(item) else { continue }
            if let first = seen[job.id] {
                duplicated.insert(job.id)
                _ = fail(item, job: job.id, "duplicate job id (first defined at line \(first)); neither copy runs")
                continue
            }
            seen[job.id] = item.mark?.line ?? 0
            parsed.append(job)
        }
        jobs = parsed.filter { !duplicated.contains($0.id) }
    }

    // MARK: one job

    static func isValidJobID(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64
            && s.unicodeScalars.allSatisfy {
                $0.isASCII
                    && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "." || $0 == "-")
            }
    }

    mutating func readJob(_ node: Node) throws -> JobSpec {
        let m = try mapping(node, job: nil, what: "a job")
        // The id first, so every later error can name the job.
        guard let idNode = value(m, "id") else { throw fail(node, "job is missing 'id'") }
        let id = try string(idNode, job: nil, key: "id")
        guard Self.isValidJobID(id) else {
            throw fail(idNode, job: id, "invalid id: use 1 to 64 letters, digits, '_', '.' or '-'")
        }
        try checkKeys(m, allowed: Self.jobKeys, job: id, context: "a job")
        guard let kindNode = value(m, "kind") else {
            throw fail(node, job: id, "missing 'kind' (known kinds: \(registry.kinds.joined(separator: ", ")))")
        }
        let kind = try string(kindNode, job: id, key: "kind")
        guard let poller = registry.poller(for: kind) else {
            let hint = Suggest.closest(to: kind, in: registry.kinds).map { " (did you mean '\($0)'?)" } ?? ""
            throw fail(
                kindNode, job: id,
                "unknown kind '\(kind)'\(hint); known kinds: \(registry.kinds.joined(separator: ", "))")
        }
        // Every section is checked, so one run of `validate` reports all of a job's errors;
        // `fail` records each one as it is found.
        var bad = false
        var agent = "default"
        if let n = value(m, "agent") {
            do {
                agent = try string(n, job: id, key: "agent")
                if agent.isEmpty { throw fail(n, job: id, "agent must not be empty") }
            } catch { bad = true }
        }
        var schedule: Schedule?
        let schedNode = value(m, "schedule")
        if let schedNode {
            do { schedule = try readSchedule(schedNode, job: id) } catch { bad = true }
        } else {
            _ = fail(node, job: id, "missing 'schedule' (every_secs, cron or at)")
            bad = true
        }
        var config = JSONValue.object([:])
        let configNode = value(m, "config")
        do {
            if let configNode { config = try json(configNode, job: id) }
            if case .null = config { config = .object([:]) }
            do {
                try poller.validate(config: config)
            } catch {
                throw fail(
                    configNode.flatMap { locate(path: error.path, in: $0) } ?? configNode ?? node, job: id,
                    error.description)
            }
        } catch { bad = true }
        var failureTo: FailureTarget?
        if let n = value(m, "failure_to") {
            do {
                let fm = try mapping(n, job: id, what: "failure_to")
                try checkKeys(fm, allowed: ["channel", "to", "recipient"], job: id, context: "failure_to")
                guard let ch = value(fm, "channel") else { throw fail(n, job: id, "failure_to needs 'channel'") }
                guard let to = value(fm, "to") ?? value(fm, "recipient") else {
                    throw fail(n, job: id, "failure_to needs 'to'")
                }
                failureTo = FailureTarget(
                    channel: try string(ch, job: id, key: "channel"), to: try string(to, job: id, key: "to"))
                if let target = failureTo, !settings.alertSinks.contains(where: { $0.name == target.channel }) {
                    let known = settings.alertSinks.map(\.name)
                    warn(
                        ch, job: id,
                        "failure_to.channel '\(target.channel)' names no sink in pollers.alert_sinks"
                            + (known.isEmpty ? " (there are none)" : " (known: \(known.joined(separator: ", ")))")
                            + "; no failure alert will be sent")
                }
            } catch { bad = true }
        }
        var pausedOnBoot = false
        if let n = value(m, "paused_on_boot") {
            do { pausedOnBoot = try bool(n, job: id, key: "paused_on_boot") } catch { bad = true }
        }
        var timeout: Int64 = 60
        if let n = value(m, "timeout_secs") {
            do { timeout = try int(n, job: id, key: "timeout_secs", range: 1...86_400) } catch { bad = true }
        }
        var catchUp = CatchUp.once
        if let n = value(m, "catch_up") {
            do {
                let s = try string(n, job: id, key: "catch_up")
                guard let c = CatchUp(rawValue: s) else {
                    throw fail(n, job: id, "catch_up must be 'skip' or 'once', not '\(s)'")
                }
                catchUp = c
            } catch { bad = true }
        }
        if let n = value(m, "extra") { warn(n, job: id, "'extra' is accepted for nexo compatibility and ignored") }
        var deliver = settings.deliver
        if let n = value(m, "deliver") { do { deliver = try readSinks(n, job: id) } catch { bad = true } }
        var dedupWindow: Int?
        if let n = value(m, "dedup_window") {
            do { dedupWindow = Int(try int(n, job: id, key: "dedup_window", range: 0...1_000_000)) } catch {
                bad = true
            }
        }
        var maxStaleness: Int64?
        if let n = value(m, "max_staleness_secs") {
            do { maxStaleness = try int(n, job: id, key: "max_staleness_secs", range: 1...31_536_000) } catch {
                bad = true
            }
        }
        guard !bad, let schedule, let schedNode else { throw Abandon() }
        if case .at(let t) = schedule.spec, t <= nowMs {
            warn(
                schedNode, job: id,
                "'at' instant \(RFC3339.format(ms: t)) is in the past; the job will not fire unless it was due while the daemon was down"
            )
        }
        var spec = JobSpec(
            id: id, kind: kind, agent: agent, schedule: schedule, config: config, failureTo: failureTo,
            pausedOnBoot: pausedOnBoot, timeoutSecs: timeout, catchUp: catchUp, deliver: deliver,
            dedupWindow: dedupWindow)
        spec.maxStalenessSecs = maxStaleness
        if let target = failureTo, let sink = settings.alertSinks.first(where: { $0.name == target.channel }) {
            if let same = deliver.first(where: { $0.name == sink.name }), same != sink {
                throw fail(
                    value(m, "failure_to")!, job: id,
                    "failure_to.channel '\(sink.name)' names an alert sink, and this job has another sink of that name in deliver; rename one"
                )
            }
            spec.alertSinks = [sink]
        }
        return spec
    }

    mutating func readSchedule(_ node: Node, job: String) throws -> Schedule {
        let m = try mapping(node, job: job, what: "schedule")
        try checkKeys(m, allowed: Self.scheduleKeys, job: job, context: "schedule")
        let every = value(m, "every_secs")
        let cron = value(m, "cron")
        let at = value(m, "at")
        let tz = value(m, "tz")
        let count = [every, cron, at].compactMap { $0 }.count
        guard count == 1 else {
            throw fail(
                node, job: job,
                count == 0
                    ? "schedule needs one of every_secs, cron or at"
                    : "schedule takes only one of every_secs, cron or at")
        }
        if let tz, cron == nil { throw fail(tz, job: job, "'tz' only goes with 'cron'") }
        var jitter: Int64?
        if let n = value(m, "stagger_jitter_ms") {
            jitter = try int(n, job: job, key: "stagger_jitter_ms", range: 0...86_400_000)
        }
        if let every {
            let s = try int(every, job: job, key: "every_secs", range: 1...315_360_000)
            return Schedule(.every(seconds: s), jitterMs: jitter)
        }
        if let cron {
            let text = try string(cron, job: job, key: "cron")
            let expr: CronExpression
            do { expr = try CronExpression(text) } catch {
                throw fail(cron, job: job, "invalid cron expression \"\(text)\": \(error)")
            }
            var zone = ZoneRules.utc
            if let tz {
                let name = try string(tz, job: job, key: "tz")
                guard let z = ZoneRules(identifier: name) else {
                    throw fail(tz, job: job, "unknown time zone '\(name)' (use an IANA name such as Europe/Berlin)")
                }
                zone = z
            }
            guard expr.next(afterMs: nowMs, in: zone) != nil else {
                throw fail(cron, job: job, "cron expression \"\(text)\" never fires")
            }
            return Schedule(.cron(expr, zone), jitterMs: jitter)
        }
        let text = try string(at!, job: job, key: "at")
        guard let t = RFC3339.parse(text) else {
            throw fail(at, job: job, "'at' must be an RFC 3339 timestamp such as 2026-12-31T23:59:00Z, not '\(text)'")
        }
        return Schedule(.at(t), jitterMs: jitter)
    }

    // MARK: typed access

    static func tagName(_ node: Node) -> Tag.Name { Tag.Name(rawValue: node.tag.rawValue) }

    func value(_ m: Node.Mapping, _ key: String) -> Node? {
        for (k, v) in m where k.scalar?.string == key { return v }
        return nil
    }

    mutating func mapping(_ node: Node, job: String?, what: String) throws -> Node.Mapping {
        if case .alias = node { throw fail(node, job: job, "YAML aliases are not supported") }
        guard case .mapping(let m) = node else { throw fail(node, job: job, "\(what) must be a mapping") }
        var seen = Set<String>()
        for (k, _) in m {
            guard let key = k.scalar?.string else { throw fail(k, job: job, "keys in \(what) must be plain strings") }
            if !seen.insert(key).inserted { throw fail(k, job: job, "duplicate key '\(key)' in \(what)") }
        }
        return m
    }

    mutating func checkKeys(_ m: Node.Mapping, allowed: Set<String>, job: String?, context: String) throws {
        for (k, _) in m {
            let key = k.scalar?.string ?? ""
            if !allowed.contains(key) {
                let hint = Suggest.closest(to: key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                throw fail(k, job: job, "unknown key '\(key)' in \(context)\(hint)")
            }
        }
    }

    /// A scalar's text after `${VAR}` interpolation, with its tag re-resolved if it was plain.
    mutating func scalar(_ node: Node, job: String?, key: String) throws -> (text: String, tag: Tag.Name) {
        guard case .scalar(let s) = node else { throw fail(node, job: job, "'\(key)' must be a single value") }
        guard s.string.contains("$") else { return (s.string, Self.tagName(node)) }
        let expanded: String
        do { expanded = try EnvInterpolation.expand(s.string, environment: environment) } catch {
            throw fail(node, job: job, error.message)
        }
        if s.style == .plain {
            return (expanded, Self.tagName(Node(expanded, Tag(.implicit), .plain)))
        }
        return (expanded, .str)
    }

    mutating func string(_ node: Node, job: String?, key: String) throws -> String {
        let (t, tag) = try scalar(node, job: job, key: key)
        if tag == .null { throw fail(node, job: job, "'\(key)' must not be empty") }
        return t
    }

    mutating func int(_ node: Node, job: String?, key: String, range: ClosedRange<Int64>) throws -> Int64 {
        let (t, tag) = try scalar(node, job: job, key: key)
        // A quoted "${VAR}" counts as a number when it expands to one.
        let interpolatedNumber = tag == .str && node.scalar?.string.contains("${") == true && Int64(t) != nil
        guard tag == .int || interpolatedNumber, let v = Int64(t.replacingOccurrences(of: "_", with: "")) else {
            throw fail(node, job: job, "'\(key)' must be a whole number, not '\(t)'")
        }
        guard range.contains(v) else {
            throw fail(node, job: job, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound), not \(v)")
        }
        return v
    }

    mutating func double(_ node: Node, job: String?, key: String) throws -> Double {
        let (t, tag) = try scalar(node, job: job, key: key)
        guard tag == .int || tag == .float, let v = Double(t), v.isFinite else {
            throw fail(node, job: job, "'\(key)' must be a number, not '\(t)'")
        }
        return v
    }

    mutating func bool(_ node: Node, job: String?, key: String) throws -> Bool {
        let (t, tag) = try scalar(node, job: job, key: key)
        guard tag == .bool else { throw fail(node, job: job, "'\(key)' must be true or false, not '\(t)'") }
        return ["true", "yes", "on", "y"].contains(t.lowercased())
    }

    /// Converts a YAML subtree to JSON, interpolating strings.
    mutating func json(_ node: Node, job: String?) throws -> JSONValue {
        switch node {
        case .alias:
            throw fail(node, job: job, "YAML aliases are not supported")
        case .mapping(let m):
            _ = try mapping(node, job: job, what: "a mapping")
            var o: [String: JSONValue] = [:]
            for (k, v) in m { o[k.scalar!.string] = try json(v, job: job) }
            return .object(o)
        case .sequence(let s):
            return .array(try s.map { try json($0, job: job) })
        case .scalar:
            let (t, tag) = try scalar(node, job: job, key: "value")
            switch tag {
            case .null: return .null
            case .bool: return .bool(["true", "yes", "on", "y"].contains(t.lowercased()))
            case .int:
                if let i = Int64(t.replacingOccurrences(of: "_", with: "")) { return .int(i) }
                if let i = Node(t).int { return .int(Int64(i)) }
                return .string(t)
            case .float:
                if let d = Node(t).float, d.isFinite { return .double(d) }
                throw fail(node, job: job, "'\(t)' is not a finite number")
            default: return .string(t)
            }
        }
    }

    /// The node at a key path inside a config subtree, for locating a poller's complaint.
    func locate(path: [String], in node: Node) -> Node? {
        var cur = node
        for key in path {
            switch cur {
            case .mapping(let m):
                guard let next = value(m, key) else { return cur }
                cur = next
            case .sequence(let s):
                guard let i = Int(key), s.indices.contains(i) else { return cur }
                cur = s[i]
            default:
                return cur
            }
        }
        return cur
    }
}
