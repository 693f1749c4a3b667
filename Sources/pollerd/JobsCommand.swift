import ArgumentParser
import Foundation
import PollerdConfig
import PollerdCore
import PollerdDaemon

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List and control jobs: actions go through the running daemon's admin API when it answers, else the state database (a daemon picks those up within a second).",
        subcommands: [List.self, Show.self, Explain.self, Pause.self, Resume.self, Reset.self, Cursor.self, Audit.self]
    )

    struct StateOptions: ParsableArguments {
        @OptionGroup var options: ConfigOptions
        @Option(name: .long, help: "The state database (default: state_db from the job file).") var state: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        /// The operator facade over the store the job file (or --state) names.
        func open() throws -> Operator {
            _ = Support.bootstrapLogging(level: options.logLevel, format: options.logFormat)
            let clock = SystemWallClock()
            guard state == nil else {
                let file = Support.load(options.path, printProblems: false)
                return Operator(store: try Support.openStore(file, override: state), clock: clock, settings: file.isFatal ? GlobalSettings() : file.settings)
            }
            let file = Support.load(options.path, printProblems: false)
            if file.isFatal {
                for e in file.errors { Support.printErr("error: \(e)") }
                throw Exit.config
            }
            guard FileManager.default.fileExists(atPath: file.stateDBPath) else {
                Support.printErr("error: no state database at \(file.stateDBPath) (has the daemon run?)")
                throw Exit.transient
            }
            return Operator(store: try Support.openStore(file), clock: clock, settings: file.settings)
        }

        /// An action: through the running daemon when it answers (its audit log then names the
        /// admin API), else through the state database. Prints which way it went.
        func act(_ method: String = "POST", daemonPath: String, body: JSONValue? = nil, done: String,
                 fallback: (Operator) async throws -> Void) async throws {
            let file = Support.load(options.path, printProblems: false)
            if state == nil, !file.isFatal, let client = DaemonClient.from(file), await client.isUp() {
                let answer = try await client.request(method, daemonPath, body: body)
                guard (200..<300).contains(answer.status) else {
                    Support.printErr("error: the daemon at \(client.base) answered \(answer.status): \(answer.errorMessage ?? "\(answer.body)")")
                    throw answer.status == 404 ? Exit.transient : answer.status == 401 || answer.status == 403 ? Exit.permanent : Exit.transient
                }
                print("\(done) (through the daemon at \(client.base))")
                return
            }
            try await perform { try await fallback($0) }
            print("\(done) (in the state database; a running daemon applies it within a second)")
        }

        /// Runs a facade call, turning an unknown job into exit 1 with a message.
        func perform<T>(_ body: (Operator) async throws -> T) async throws -> T {
            do {
                return try await body(try open())
            } catch let e as Operator.UnknownJob {
                Support.printErr("error: \(e)")
                throw Exit.transient
            }
        }
    }

    static func view(_ r: JobStateRow) -> JSONValue { OperatorJSON.job(r) }

    static func view(_ e: Explanation) -> JSONValue { OperatorJSON.explanation(e) }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs with their state.")
        @OptionGroup var state: StateOptions
        @Flag(name: .long, help: "Include jobs that neither this job file nor a running daemon has.") var all = false

        func run() async throws {
            // The job file merged with the store: jobs that never ran, invalid jobs with their
            // error, and (with --all) jobs no daemon runs any more.
            let file = Support.load(state.options.path, printProblems: false)
            let listing: [JobListing]
            if state.state == nil, !file.isFatal, !FileManager.default.fileExists(atPath: file.stateDBPath) {
                // Before the first run there is no state database: the file's jobs, none ran yet.
                listing = file.jobs.map { JobListing(id: $0.id, kind: $0.kind, row: nil, inFile: true, error: nil) }
                    + file.errors.compactMap { e in e.jobID.map { JobListing(id: $0, kind: nil, row: nil, inFile: true, error: e.description) } }
            } else {
                listing = try await state.open().listing(file: file).filter { all || $0.inFile || $0.row?.definitionFingerprint != nil }
            }
            if state.json {
                print(Support.json(.array(listing.map { l in
                    var o: [String: JSONValue] = ["id": .string(l.id), "in_file": .bool(l.inFile), "valid": .bool(l.error == nil),
                                                  "removed": .bool(l.removed), "error": l.error.map(JSONValue.string) ?? .null]
                    if case .object(let row)? = l.row.map(JobsCommand.view) { o.merge(row) { a, _ in a } } else { o["kind"] = l.kind.map(JSONValue.string) ?? .null }
                    return .object(o)
                })))
                return
            }
            var table = [["ID", "KIND", "STATUS", "ERRS", "BACKLOG", "NEXT RUN", "PAUSED"]]
            for l in listing {
                let r = l.row
                let status = l.error != nil ? "invalid" : l.removed ? "removed" : !l.inFile ? "elsewhere" : (r?.lastStatus ?? "never ran")
                table.append([l.id, l.kind ?? "-", status, r.map { String($0.consecutiveErrors) } ?? "-", r.map { String($0.outboxBacklog) } ?? "-",
                              r?.nextRunAtMs.map { RFC3339.format(ms: $0) } ?? "-",
                              r.map { $0.paused ? "yes: \($0.pausedReason ?? "")" : ($0.done ? "done" : "no") } ?? "-"])
            }
            Support.printTable(table)
            for l in listing { if let e = l.error { print("invalid: \(e)") } }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job's state and lease.")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            let d = try await state.perform { try await $0.job(jobID) }
            var o: [String: JSONValue] = [:]
            if case .object(let base) = JobsCommand.view(d.row) { o = base }
            if let l = d.lease {
                o["lease"] = .object(["holder": .string(l.holder), "token": .int(l.token),
                                      "until": l.untilMs > 0 ? .string(RFC3339.format(ms: l.untilMs)) : .null])
            }
            o["explain"] = JobsCommand.view(d.explanation)
            let ticks = try await state.perform { try await $0.history(jobID, limit: state.json ? 50 : 10) }
            o["ticks"] = .array(ticks.map(OperatorJSON.tick))
            if state.json {
                print(Support.json(.object(o)))
            } else {
                for k in o.keys.sorted() where k != "explain" && k != "ticks" {
                    let val = o[k]!
                    print("\(k): \(val.stringValue ?? Support.json(val))")
                }
                print("explain: \(d.explanation.text)")
                if !ticks.isEmpty {
                    print("last ticks:")
                    var table = [["TICK", "STARTED", "MS", "STATUS", "FOUND", "NEW", "DUPS", "ERROR"]]
                    for t in ticks {
                        table.append([String(t.seq), RFC3339.format(ms: t.startedAtMs), String(t.durationMs), t.status, String(t.itemsFound),
                                      String(t.itemsNew), String(t.duplicates), t.error ?? ""])
                    }
                    Support.printTable(table, indent: "  ")
                }
            }
        }
    }

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Why a job did or did not run at its last slot, and when it runs next (or why not).")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            let e = try await state.perform { try await $0.explain(jobID) }
            if state.json { print(Support.json(JobsCommand.view(e))) } else { print(e.text) }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a job (it survives restarts).")
        @Argument var jobID: String
        @Option(help: "Why (shown in jobs list/show).") var reason: String = "paused by operator"
        @OptionGroup var state: StateOptions

        func run() async throws {
            try await state.act(daemonPath: "/admin/jobs/\(jobID)/pause", body: .object(["note": .string(reason)]), done: "\(jobID): paused") {
                try await $0.pause(jobID, note: reason)
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused job.")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            try await state.act(daemonPath: "/admin/jobs/\(jobID)/resume", done: "\(jobID): resumed") { try await $0.resume(jobID) }
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear a job's cursor and error counters (a tick in flight is fenced off).")
        @Argument var jobID: String
        @Flag(name: .long, help: "Also clear the job's dedup window (items seen before count as new).") var forgetSeen = false
        @OptionGroup var state: StateOptions

        func run() async throws {
            try await state.act(daemonPath: "/admin/jobs/\(jobID)/reset", body: .object(["forget_seen": .bool(forgetSeen)]),
                                done: "\(jobID): reset" + (forgetSeen ? " (dedup window cleared)" : "")) {
                try await $0.reset(jobID, forgetSeen: forgetSeen)
            }
        }
    }

    struct Cursor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a job's cursor, its history, or set or rewind it (a tick in flight is fenced off; recorded in the audit log).")
        @Argument var jobID: String
        @Flag(name: .long, help: "The cursors the kept ticks committed, newest first.") var history = false
        @Option(name: .long, help: "Set the cursor to these bytes (base64url); an empty string clears it.") var set: String?
        @Option(name: .long, help: "Put back the cursor this tick committed (see --history).") var rewind: Int64?
        @OptionGroup var state: StateOptions

        func run() async throws {
            guard [history, set != nil, rewind != nil].filter({ $0 }).count <= 1 else {
                throw ValidationError("give at most one of --history, --set, --rewind")
            }
            if let set {
                var bytes: Data?
                if !set.isEmpty {
                    guard let d = Base64URL.decode(set) else { throw ValidationError("--set takes base64url") }
                    bytes = d
                }
                try await state.perform { try await $0.setCursor(jobID, to: bytes) }
                print("\(jobID): cursor " + (bytes.map { "set (\($0.count) bytes)" } ?? "cleared"))
                return
            }
            if let rewind {
                do {
                    let r = try await state.perform { try await $0.rewindCursor(jobID, toTick: rewind) }
                    print("\(jobID): cursor rewound to tick \(r.seq) of \(RFC3339.format(ms: r.startedAtMs))")
                } catch let e as Operator.NoSuchCursor {
                    Support.printErr("error: \(e)")
                    throw Exit.transient
                }
                return
            }
            if history {
                let h = try await state.perform { try await $0.cursorHistory(jobID) }
                if state.json { print(Support.json(.array(h.map(OperatorJSON.tick)))); return }
                var table = [["TICK", "STARTED", "STATUS", "NEW", "CURSOR"]]
                for t in h { table.append([String(t.seq), RFC3339.format(ms: t.startedAtMs), t.status, String(t.itemsNew), t.cursor.map(Base64URL.encode) ?? "-"]) }
                Support.printTable(table)
                return
            }
            let d = try await state.perform { try await $0.job(jobID) }
            let text = d.row.cursor.map(Base64URL.encode)
            if state.json {
                print(Support.json(.object(["id": .string(jobID), "cursor": text.map(JSONValue.string) ?? .null,
                                            "cursor_bytes": d.row.cursor.map { .int(Int64($0.count)) } ?? .null])))
            } else {
                print(text ?? "(no cursor)")
            }
        }
    }

    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Who paused, resumed, reset or moved the cursor of a job, and when.")
        @Argument var jobID: String?
        @OptionGroup var state: StateOptions

        func run() async throws {
            let entries = try await state.perform { try await $0.audit(jobID: jobID) }
            if state.json { print(Support.json(.array(entries.map(OperatorJSON.audit)))); return }
            var table = [["AT", "ACTOR", "ACTION", "JOB", "DETAIL"]]
            for a in entries { table.append([RFC3339.format(ms: a.atMs), a.actor, a.action, a.jobID ?? "-", a.detail ?? ""]) }
            Support.printTable(table)
        }
    }
}
