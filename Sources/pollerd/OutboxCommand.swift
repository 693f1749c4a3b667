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
        static let configuration = CommandConfiguration(abstract: "Per job and sink: items waiting, retry state, age of the oldest, totals.")
        @OptionGroup var state: JobsCommand.StateOptions
        @Option(name: .long, help: "Only this job.") var job: String?

        func run() async throws {
            let facade = try state.open()
            let now = Support.nowMs
            let lanes = try await facade.outboxStats().filter { job == nil || $0.jobID == job }
            let dead = try await facade.deadLetters(jobID: job, limit: 1_000_000)
            var deadBy: [String: Int] = [:]
            for d in dead { deadBy["\(d.jobID)\u{0}\(d.sink)", default: 0] += 1 }
            if state.json {
                let rows: [JSONValue] = lanes.map { l in
                    .object([
                        "job_id": .string(l.jobID), "sink": .string(l.sink), "pending": .int(l.pending), "attempts": .int(Int64(l.attempts)),
                        "next_attempt_at": l.pending > 0 ? .string(RFC3339.format(ms: l.nextAttemptAtMs)) : .null,
                        "last_error": l.lastError.json,
                        "oldest_age_secs": l.oldestFoundAtMs.map { .double(Double(max(0, now - $0)) / 1000) } ?? .null,
                        "delivered_total": .int(l.delivered), "retried_total": .int(l.retried), "dead_lettered_total": .int(l.deadLettered),
                        "dead_letters": .int(Int64(deadBy["\(l.jobID)\u{0}\(l.sink)"] ?? 0)),
                    ])
                }
                let total = lanes.reduce(Int64(0)) { $0 + $1.pending }
                let oldest = lanes.compactMap(\.oldestFoundAtMs).min()
                print(Support.json(.object([
                    "lanes": .array(rows), "pending": .int(total), "dead_letters": .int(Int64(dead.count)),
                    "oldest_age_secs": oldest.map { .double(Double(max(0, now - $0)) / 1000) } ?? .null,
                ])))
                return
            }
            if lanes.isEmpty { print("outbox empty: no job has delivered items yet"); return }
            var table = [["JOB", "SINK", "PENDING", "OLDEST", "DELIVERED", "RETRIED", "DEAD", "LAST ERROR"]]
            for l in lanes {
                let age = l.oldestFoundAtMs.map { Self.age(now - $0) } ?? "-"
                let err = l.pending > 0 ? (l.lastError ?? "") : ""
                table.append([l.jobID, l.sink, String(l.pending), age, String(l.delivered), String(l.retried),
                              String(deadBy["\(l.jobID)\u{0}\(l.sink)"] ?? 0), err])
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

    static func view(_ d: DeadLetter, envelope: Bool) -> JSONValue { OperatorJSON.deadLetter(d, envelope: envelope) }

    /// Runs a replay or drop and reports how many it touched; naming ids none of which exist is exit 1.
    static func act(_ selection: Selection, _ state: JobsCommand.StateOptions, verb: String,
                    _ op: (Operator, DeadLetterSelection) async throws -> Int) async throws {
        let sel = try selection.resolve()
        let n = try await op(try state.open(), sel)
        if state.json { print(Support.json(.object([verb: .int(Int64(n))]))) } else { print("\(verb) \(n) dead letter(s)") }
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
            let rows = try await state.open().deadLetters(jobID: job, limit: max(1, limit))
            if state.json { print(Support.json(.array(rows.map { DLQCommand.view($0, envelope: false) }))); return }
            if rows.isEmpty { print("no dead letters"); return }
            var table = [["ID", "JOB", "SINK", "ATTEMPTS", "FAILED AT", "ERROR"]]
            for d in rows { table.append([String(d.id), d.jobID, d.sink, String(d.attempts), RFC3339.format(ms: d.failedAtMs), d.lastError]) }
            Support.printTable(table)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one dead letter with its envelope.")
        @Argument var id: Int64
        @OptionGroup var state: JobsCommand.StateOptions

        func run() async throws {
            guard let d = try await state.open().deadLetter(id: id) else {
                Support.printErr("error: no dead letter \(id)")
                throw Exit.transient
            }
            let v = DLQCommand.view(d, envelope: true)
            if state.json { print(Support.json(v)); return }
            if case .object(let o) = v {
                for k in o.keys.sorted() { print("\(k): \(o[k]!.stringValue ?? Support.json(o[k]!))") }
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue dead letters again at the end of their sink's queue, with fresh attempts.")
        @OptionGroup var selection: Selection
        @OptionGroup var state: JobsCommand.StateOptions

        func run() async throws {
            try await DLQCommand.act(selection, state, verb: "replayed") { try await $0.replayDeadLetters($1) }
        }
    }

    struct Drop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete dead letters for good.")
        @OptionGroup var selection: Selection
        @OptionGroup var state: JobsCommand.StateOptions

        func run() async throws {
            try await DLQCommand.act(selection, state, verb: "dropped") { try await $0.dropDeadLetters($1) }
        }
    }
}
