import ArgumentParser
import Foundation
import PollerdConfig
import PollerdCore
import PollerdDaemon

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract:
            "List and control jobs: actions go through the running daemon's admin API when it answers, else the state database (a daemon picks those up within a second).",
        subcommands: [List.self, Show.self, Explain.self, Pause.self, Resume.self, Reset.self, Cursor.self, Audit.self]
    )

    struct StateOptions: ParsableArguments {
        @OptionGroup var options: ConfigOptions
        @Option(name: .long, help: "The state database (default: state_db from the job file).") var state: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        /// Runs `body` on the operator facade over the store the job file (or --state) names, for
        /// as long as the body runs.
        func withOperator<T>(_ body: (Operator) async throws -> T) async throws -> T {
            _ = Support.bootstrapLogging(level: options.logLevel, format: options.logFormat)
            let clock = SystemWallClock()
            let file = Support.load(options.path, printProblems: false)
            guard state == nil else {
                return try await Support.withStore(file, override: state) { store in
                    try await body(
                        Operator(store: store, clock: clock, settings: file.isFatal ? GlobalSettings() : file.settings))
                }
            }
            if file.isFatal {
                for e in file.errors { Support.printErr("error: \(e)") }
                throw Exit.config
            }
            guard file.stateMayExist else {
                Support.printErr("error: no state database at \(file.stateDBPath) (has the daemon run?)")
                throw Exit.transient
            }
            return try await Support.withStore(file) { store in
                try await body(Operator(store: store, clock: clock, settings: file.settings))
            }
        }

        /// The running daemon's admin API, when the job file names one and it answers (and no
        /// `--state` points elsewhere).
        func daemon() async -> DaemonClient? {
            guard state == nil else { return nil }
            let file = Support.load(options.path, printProblems: false)
            guard !file.isFatal, let client = DaemonClient.from(file), await client.isUp() else { return nil }
            return client
        }

        /// A read: the running daemon's answer when it is up, else the same JSON built from the
        /// state database (both are the admin API's shapes). Says on stderr where it came from.
        func read(_ daemonPath: String, fallback: (Operator) async throws -> JSONValue) async throws -> JSONValue {
            if let client = await daemon() {
                let answer = try await client.request("GET", daemonPath)
                try Self.check(answer, client)
                if !json { Support.printErr("(from the daemon at \(client.base))") }
                return answer.body
            }
            let v = try await perform { try await fallback($0) }
            if !json { Support.printErr("(from the state database; no daemon answers)") }
            return v
        }

        /// An action: through the running daemon when it answers (its audit log then names the
        /// admin API), else through the state database. Prints which way it went; returns the
        /// daemon's answer or the fallback's.
        @discardableResult
        func act(
            _ method: String = "POST", daemonPath: String, body: JSONValue? = nil, done: String?,
            fallback: (Operator) async throws -> JSONValue
        ) async throws -> JSONValue {
            if let client = await daemon() {
                let answer = try await client.request(method, daemonPath, body: body)
                try Self.check(answer, client)
                if let done { print("\(done) (through the daemon at \(client.base))") }
                return answer.body
            }
            let v = try await perform { try await fallback($0) }
            if let done { print("\(done) (in the state database; a running daemon applies it within a second)") }
            return v
        }

        /// A daemon's refusal as an error line and the exit class.
        static func check(_ answer: DaemonClient.Answer, _ client: DaemonClient) throws {
            guard !(200..<300).contains(answer.status) else { return }
            Support.printErr(
                "error: the daemon at \(client.base) answered \(answer.status): \(answer.errorMessage ?? "\(answer.body)")"
            )
            if answer.status == 401 || answer.status == 403 {
                Support.printErr(
                    "hint: set POLLERD_ADMIN_TOKEN (or POLLERD_READ_TOKEN for reads) to one of the daemon's admin.tokens"
                )
            }
            throw answer.status == 401 || answer.status == 403
                ? Exit.permanent : answer.status == 400 ? Exit.config : Exit.transient
        }

        /// Runs a facade call, turning an unknown job into exit 1 with a message.
        func perform<T>(_ body: (Operator) async throws -> T) async throws -> T {
            do {
                return try await withOperator(body)
            } catch let e as Operator.UnknownJob {
                Support.printErr("error: \(e)")
                throw Exit.transient
            } catch let e as Operator.NoSuchCursor {
                Support.printErr("error: \(e)")
                throw Exit.transient
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs with their state.")
        @OptionGroup var state: StateOptions
        @Flag(name: .long, help: "Include jobs that neither this job file nor a running daemon has.") var all = false

        func run() async throws {
            // The job file merged with the store: jobs that never ran, invalid jobs with their
            // error, and (with --all) jobs no daemon runs any more.
            let file = Support.load(state.options.path, printProblems: false)
            let answer: JSONValue
            if state.state == nil, !file.isFatal, !file.stateMayExist,
                await state.daemon() == nil
            {
                // Before the first run there is no state database: the file's jobs, none ran yet.
                let listing =
                    file.jobs.map { JobListing(id: $0.id, kind: $0.kind, row: nil, inFile: true, error: nil) }
                    + file.errors.compactMap { e in
                        e.jobID.map { JobListing(id: $0, kind: nil, row: nil, inFile: true, error: e.description) }
                    }
                answer = OperatorJSON.listing(listing, file: file, registeredAtMs: nil, nowMs: Support.nowMs)
            } else {
                answer = try await state.read("/admin/jobs") {
                    try await $0.listingJSON(file: file, registeredAtMs: nil)
                }
            }
            guard case .array(let all)? = answer["jobs"] else { throw Exit.transient }
            if answer["store"]?["ok"] == .bool(false) {
                Support.printErr(
                    "warning: the daemon's state store is failing (\(answer["store"]?["error"]?.stringValue ?? "?")): "
                        + "no tick commits until it recovers; the states below are the last committed")
            }
            let jobs = all.filter { self.all || $0["removed"]?.boolValue != true }
            if state.json {
                print(Support.json(.array(jobs)))
                return
            }
            var table = [["ID", "KIND", "STATUS", "ERRS", "BACKLOG", "NEXT RUN", "PAUSED", "DAEMON"]]
            let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
            for j in jobs {
                let status =
                    (j["status"]?.stringValue ?? "?").replacingOccurrences(of: "_", with: " ")
                    + (j["stale"]?.boolValue == true ? " (stale)" : "")
                let ran = j["never_ran"]?.boolValue != true
                let paused =
                    !ran
                    ? "-"
                    : j["paused"]?.boolValue == true
                        ? "yes: \(j["paused_reason"]?.stringValue ?? "")" : j["done"]?.boolValue == true ? "done" : "no"
                table.append([
                    j["id"]?.stringValue ?? "?", j["kind"]?.stringValue ?? "-", status,
                    ran ? "\(j["consecutive_errors"]?.intValue ?? 0)" : "-",
                    ran ? "\(j["outbox_backlog"]?.intValue ?? 0)" : "-",
                    j["next_run_at"]?.stringValue ?? "-", paused, JobsCommand.daemon(j, nowMs: nowMs),
                ])
            }
            Support.printTable(table)
            for j in jobs { if let e = j["error"]?.stringValue { print("invalid: \(e)") } }
        }
    }

    /// The daemon that holds a job's lease (`host:pid, ticking`) or ran it last (`host:pid`).
    static func daemon(_ j: JSONValue, nowMs: Int64) -> String {
        guard let holder = j["lease_holder"]?.stringValue else { return "-" }
        let parts = holder.split(separator: ":", omittingEmptySubsequences: false)
        let short = parts.count == 3 ? "\(parts[0]):\(parts[1])" : holder
        let until = j["lease_until"]?.stringValue.flatMap(RFC3339.parse) ?? 0
        return until > nowMs ? "\(short), ticking" : short
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job's state and lease.")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            let file = Support.load(state.options.path, printProblems: false)
            let n = state.json ? 50 : 10
            let v = try await state.read("/admin/jobs/\(PercentEncoding.component(jobID))?ticks=\(n)") {
                try await $0.jobJSON(jobID, file: file, ticks: n, registeredAtMs: nil)
            }
            if state.json {
                print(Support.json(v))
                return
            }
            guard case .object(let o) = v else { throw Exit.transient }
            for k in o.keys.sorted() where k != "explain" && k != "ticks" {
                let val = o[k]!
                print("\(k): \(val.stringValue ?? Support.json(val))")
            }
            print("explain: \(v["explain"]?["text"]?.stringValue ?? "-")")
            if case .array(let ticks)? = v["ticks"], !ticks.isEmpty {
                print("last ticks:")
                var table = [["TICK", "STARTED", "MS", "STATUS", "FOUND", "NEW", "DUPS", "ERROR"]]
                for t in ticks {
                    table.append([
                        t["tick"].map(Self.text) ?? "", t["started_at"].map(Self.text) ?? "",
                        t["duration_ms"].map(Self.text) ?? "",
                        t["status"].map(Self.text) ?? "", t["items_found"].map(Self.text) ?? "",
                        t["items_new"].map(Self.text) ?? "",
                        t["duplicates_dropped"].map(Self.text) ?? "", t["error"]?.stringValue ?? "",
                    ])
                }
                Support.printTable(table, indent: "  ")
            }
        }

        static func text(_ v: JSONValue) -> String { v.stringValue ?? (v == .null ? "" : Support.json(v)) }
    }

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Why a job did or did not run at its last slot, and when it runs next (or why not).")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            let e = try await state.read("/admin/jobs/\(PercentEncoding.component(jobID))/explain") {
                OperatorJSON.explanation(try await $0.explain(jobID))
            }
            if state.json { print(Support.json(e)) } else { print(e["text"]?.stringValue ?? "-") }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a job (it survives restarts).")
        @Argument var jobID: String
        @Option(help: "Why (shown in jobs list/show).") var reason: String = "paused by operator"
        @OptionGroup var state: StateOptions

        func run() async throws {
            try await state.act(
                daemonPath: "/admin/jobs/\(PercentEncoding.component(jobID))/pause",
                body: .object(["note": .string(reason)]), done: "\(jobID): paused"
            ) {
                try await $0.pause(jobID, note: reason)
                return .null
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused job.")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            try await state.act(
                daemonPath: "/admin/jobs/\(PercentEncoding.component(jobID))/resume", done: "\(jobID): resumed"
            ) {
                try await $0.resume(jobID)
                return .null
            }
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Clear a job's cursor and error counters (a tick in flight is fenced off).")
        @Argument var jobID: String
        @Flag(name: .long, help: "Also clear the job's dedup window (items seen before count as new).") var forgetSeen =
            false
        @OptionGroup var state: StateOptions

        func run() async throws {
            try await state.act(
                daemonPath: "/admin/jobs/\(PercentEncoding.component(jobID))/reset",
                body: .object(["forget_seen": .bool(forgetSeen)]),
                done: "\(jobID): reset" + (forgetSeen ? " (dedup window cleared)" : "")
            ) {
                try await $0.reset(jobID, forgetSeen: forgetSeen)
                return .null
            }
        }
    }

    struct Cursor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Show a job's cursor, its history, or set or rewind it (a tick in flight is fenced off; recorded in the audit log)."
        )
        @Argument var jobID: String
        @Flag(name: .long, help: "The cursors the kept ticks committed, newest first.") var history = false
        @Option(name: .long, help: "Set the cursor to these bytes (base64url); an empty string clears it.") var set:
            String?
        @Option(name: .long, help: "Put back the cursor this tick committed (see --history).") var rewind: Int64?
        @OptionGroup var state: StateOptions

        func run() async throws {
            guard [history, set != nil, rewind != nil].filter({ $0 }).count <= 1 else {
                throw ValidationError("give at most one of --history, --set, --rewind")
            }
            let path = "/admin/jobs/\(PercentEncoding.component(jobID))"
            if let set {
                var bytes: Data?
                if !set.isEmpty {
                    guard let d = Base64URL.decode(set) else { throw ValidationError("--set takes base64url") }
                    bytes = d
                }
                try await state.act(
                    daemonPath: path + "/cursor",
                    body: .object(["cursor": bytes.map { .string(Base64URL.encode($0)) } ?? .null]),
                    done: "\(jobID): cursor " + (bytes.map { "set (\($0.count) bytes)" } ?? "cleared")
                ) {
                    try await $0.setCursor(jobID, to: bytes)
                    return .null
                }
                return
            }
            if let rewind {
                let v = try await state.act(
                    daemonPath: path + "/cursor", body: .object(["rewind_to_tick": .int(rewind)]), done: nil
                ) {
                    .object(["rewound_to": OperatorJSON.tick(try await $0.rewindCursor(jobID, toTick: rewind))])
                }
                print(
                    "\(jobID): cursor rewound to tick \(rewind) of \(v["rewound_to"]?["started_at"]?.stringValue ?? "?")"
                )
                return
            }
            if history {
                let v = try await state.read(path + "/cursors?limit=10000") {
                    .object(["cursors": .array(try await $0.cursorHistory(jobID, limit: 10_000).map(OperatorJSON.tick))]
                    )
                }
                guard case .array(let h)? = v["cursors"] else { throw Exit.transient }
                if state.json {
                    print(Support.json(.array(h)))
                    return
                }
                var table = [["TICK", "STARTED", "STATUS", "NEW", "CURSOR"]]
                for t in h {
                    table.append([
                        t["tick"].map(Show.text) ?? "", t["started_at"]?.stringValue ?? "",
                        t["status"]?.stringValue ?? "",
                        t["items_new"].map(Show.text) ?? "", t["cursor"]?.stringValue ?? "-",
                    ])
                }
                Support.printTable(table)
                return
            }
            let file = Support.load(state.options.path, printProblems: false)
            let v = try await state.read(path + "?ticks=1") {
                try await $0.jobJSON(jobID, file: file, ticks: 1, registeredAtMs: nil)
            }
            let text = v["cursor"]?.stringValue
            if state.json {
                print(
                    Support.json(
                        .object([
                            "id": .string(jobID), "cursor": text.map(JSONValue.string) ?? .null,
                            "cursor_bytes": v["cursor_bytes"] ?? .null,
                        ])))
            } else {
                print(text ?? "(no cursor)")
            }
        }
    }

    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Who paused, resumed, reset or moved the cursor of a job, and when.")
        @Argument var jobID: String?
        @OptionGroup var state: StateOptions

        func run() async throws {
            let query = jobID.map { "?job=\(PercentEncoding.component($0))" } ?? ""
            let v = try await state.read("/admin/audit" + query) {
                .object(["audit": .array(try await $0.audit(jobID: jobID).map(OperatorJSON.audit))])
            }
            guard case .array(let entries)? = v["audit"] else { throw Exit.transient }
            if state.json {
                print(Support.json(.array(entries)))
                return
            }
            var table = [["AT", "ACTOR", "ACTION", "JOB", "DETAIL"]]
            for a in entries {
                table.append([
                    a["at"]?.stringValue ?? "", a["actor"]?.stringValue ?? "", a["action"]?.stringValue ?? "",
                    a["job_id"]?.stringValue ?? "-",
                    a["detail"]?.stringValue ?? "",
                ])
            }
            Support.printTable(table)
        }
    }
}
