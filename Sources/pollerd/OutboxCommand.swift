import ArgumentParser
import Foundation
import PollerdCore
import PollerdDaemon

struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Inspect the outbox: items found by ticks and not yet acknowledged by their sinks.",
        subcommands: [Stats.self]
    )

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per job and sink: items waiting, retry state, age of the oldest, totals.")
        @OptionGroup var state: JobsCommand.StateOptions
        @Option(name: .long, help: "Only this job.") var job: String?

        func run() async throws {
            let now = Support.nowMs
            let query = job.map { "?job=\(PercentEncoding.component($0))" } ?? ""
            let lanesJSON = try await state.read("/admin/outbox" + query) {
                .object([
                    "lanes": .array(
                        try await $0.outboxStats().filter { job == nil || $0.jobID == job }.map(OperatorJSON.lane))
                ])
            }
            let deadJSON = try await state.read(
                "/admin/dlq?limit=10000" + (job.map { "&job=\(PercentEncoding.component($0))" } ?? "")
            ) {
                .object([
                    "dead_letters": .array(
                        try await $0.deadLetters(jobID: job, limit: 10_000).map {
                            OperatorJSON.deadLetter($0, envelope: false)
                        })
                ])
            }
            guard case .array(let lanes)? = lanesJSON["lanes"], case .array(let dead)? = deadJSON["dead_letters"] else {
                throw Exit.transient
            }
            var deadBy: [String: Int] = [:]
            for d in dead {
                deadBy["\(d["job_id"]?.stringValue ?? "")\u{0}\(d["sink"]?.stringValue ?? "")", default: 0] += 1
            }
            func key(_ l: JSONValue) -> String {
                "\(l["job_id"]?.stringValue ?? "")\u{0}\(l["sink"]?.stringValue ?? "")"
            }
            func ageMs(_ l: JSONValue) -> Int64? {
                l["oldest_found_at"]?.stringValue.flatMap(RFC3339.parse).map { max(0, now - $0) }
            }
            if state.json {
                let rows: [JSONValue] = lanes.map { l in
                    .object([
                        "job_id": l["job_id"] ?? .null, "sink": l["sink"] ?? .null, "pending": l["pending"] ?? .int(0),
                        "attempts": l["attempts"] ?? .int(0),
                        "next_attempt_at": l["next_attempt_at"] ?? .null, "last_error": l["last_error"] ?? .null,
                        "oldest_age_secs": ageMs(l).map { .double(Double($0) / 1000) } ?? .null,
                        "delivered_total": l["delivered"] ?? .int(0), "retried_total": l["retried"] ?? .int(0),
                        "dead_lettered_total": l["dead_lettered"] ?? .int(0),
                        "dead_letters": .int(Int64(deadBy[key(l)] ?? 0)),
                    ])
                }
                let total = lanes.reduce(Int64(0)) { $0 + ($1["pending"]?.intValue ?? 0) }
                let oldest = lanes.compactMap(ageMs).max()
                print(
                    Support.json(
                        .object([
                            "lanes": .array(rows), "pending": .int(total), "dead_letters": .int(Int64(dead.count)),
                            "oldest_age_secs": oldest.map { .double(Double($0) / 1000) } ?? .null,
                        ])))
                return
            }
            if lanes.isEmpty {
                print("outbox empty: no job has delivered items yet")
                return
            }
            var table = [["JOB", "SINK", "PENDING", "OLDEST", "DELIVERED", "RETRIED", "DEAD", "LAST ERROR"]]
            for l in lanes {
                let pending = l["pending"]?.intValue ?? 0
                table.append([
                    l["job_id"]?.stringValue ?? "", l["sink"]?.stringValue ?? "", String(pending),
                    ageMs(l).map(Self.age) ?? "-",
                    String(l["delivered"]?.intValue ?? 0), String(l["retried"]?.intValue ?? 0),
                    String(deadBy[key(l)] ?? 0),
                    pending > 0 ? (l["last_error"]?.stringValue ?? "") : "",
                ])
            }
            Support.printTable(table)
        }

        static func age(_ ms: Int64) -> String {
            let s = max(0, ms) / 1000
            if s < 120 { return "\(s)s" }
            if s < 7200 { return "\(s / 60)m" }
            return "\(s / 3600)h"
        }
    }
}

struct DLQCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Dead letters: items a sink refused, or that failed max_attempts times.",
        subcommands: [List.self, Show.self, Replay.self, Drop.self]
    )

    /// Runs a replay or drop (through the daemon when it answers) and reports how many it
    /// touched; naming ids none of which exist is exit 1.
    static func act(
        _ selection: Selection, _ state: JobsCommand.StateOptions, verb: String, route: String,
        _ op: @escaping (Operator, DeadLetterSelection) async throws -> Int
    ) async throws {
        let sel = try selection.resolve()
        let body: JSONValue
        switch sel {
        case .ids(let ids): body = .object(["ids": .array(ids.map(JSONValue.int))])
        case .job(let j): body = .object(["job": .string(j)])
        case .all: body = .object(["all": .bool(true)])
        }
        let v = try await state.act(daemonPath: "/admin/dlq/" + route, body: body, done: nil) {
            .object([verb: .int(Int64(try await op($0, sel)))])
        }
        let n = v[verb]?.intValue ?? 0
        if state.json { print(Support.json(.object([verb: .int(n)]))) } else { print("\(verb) \(n) dead letter(s)") }
        if n == 0, case .ids = sel { throw Exit.transient }
    }

    /// Which dead letters a replay or drop acts on: ids, `--job`, or `--all`.
    struct Selection: ParsableArguments {
        @Argument(help: "Dead letter ids.") var ids: [Int64] = []
        @Option(name: .long, help: "Every dead letter of this job.") var job: String?
        @Flag(name: .long, help: "Every dead letter.") var all = false

        func resolve() throws -> DeadLetterSelection {
            let chosen = [!ids.isEmpty, job != nil, all].filter { $0 }.count
            guard chosen == 1 else { throw ValidationError("give dead letter ids, --job ID, or --all (exactly one)") }
            if let job { return .job(job) }
            return all ? .all : .ids(ids)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters, newest first.")
        @OptionGroup var state: JobsCommand.StateOptions
        @Option(name: .long, help: "Only this job.") var job: String?
        @Option(name: .long, help: "At most this many.") var limit: Int = 100

        func run() async throws {
            let n = min(10_000, max(1, limit))
            let v = try await state.read(
                "/admin/dlq?limit=\(n)" + (job.map { "&job=\(PercentEncoding.component($0))" } ?? "")
            ) {
                .object([
                    "dead_letters": .array(
                        try await $0.deadLetters(jobID: job, limit: n).map {
                            OperatorJSON.deadLetter($0, envelope: false)
                        })
                ])
            }
            guard case .array(let rows)? = v["dead_letters"] else { throw Exit.transient }
            if state.json {
                print(Support.json(.array(rows)))
                return
            }
            if rows.isEmpty {
                print("no dead letters")
                return
            }
            var table = [["ID", "JOB", "SINK", "ATTEMPTS", "FAILED AT", "ERROR"]]
            for d in rows {
                table.append([
                    d["id"].map(JobsCommand.Show.text) ?? "", d["job_id"]?.stringValue ?? "",
                    d["sink"]?.stringValue ?? "",
                    d["attempts"].map(JobsCommand.Show.text) ?? "", d["failed_at"]?.stringValue ?? "",
                    d["last_error"]?.stringValue ?? "",
                ])
            }
            Support.printTable(table)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one dead letter with its envelope.")
        @Argument var id: Int64
        @OptionGroup var state: JobsCommand.StateOptions

        func run() async throws {
            let v = try await state.read("/admin/dlq/\(id)") { facade in
                guard let d = try await facade.deadLetter(id: id) else {
                    Support.printErr("error: no dead letter \(id)")
                    throw Exit.transient
                }
                return OperatorJSON.deadLetter(d, envelope: true)
            }
            if state.json {
                print(Support.json(v))
                return
            }
            if case .object(let o) = v {
                for k in o.keys.sorted() { print("\(k): \(o[k]!.stringValue ?? Support.json(o[k]!))") }
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue dead letters again at the end of their sink's queue, with fresh attempts.")
        @OptionGroup var selection: Selection
        @OptionGroup var state: JobsCommand.StateOptions

        func run() async throws {
            try await DLQCommand.act(selection, state, verb: "replayed", route: "replay") {
                try await $0.replayDeadLetters($1)
            }
        }
    }

    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete dead letters for good.")
        @OptionGroup var selection: Selection
        @OptionGroup var state: JobsCommand.StateOptions

        func run() async throws {
            try await DLQCommand.act(selection, state, verb: "dropped", route: "drop") {
                try await $0.dropDeadLetters($1)
            }
        }
    }
}
