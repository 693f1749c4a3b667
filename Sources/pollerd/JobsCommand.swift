import ArgumentParser
import Foundation
import PollerdConfig
import PollerdCore
import PollerdPollers
import PollerdSQLite

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List and control jobs through the state database (a running daemon picks controls up within a second).",
        subcommands: [List.self, Show.self, Pause.self, Resume.self, Reset.self]
    )

    struct StateOptions: ParsableArguments {
        @OptionGroup var options: ConfigOptions
        @Option(name: .long, help: "The state database (default: state_db from the job file).") var state: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func open() throws -> SQLiteStateStore {
            _ = Support.bootstrapLogging(level: options.logLevel)
            if let state { return try SQLiteStateStore(path: state) }
            let file = Support.load(options.path, printProblems: false)
            if file.isFatal {
                for e in file.errors { Support.printErr("error: \(e)") }
                throw Exit.config
            }
            guard FileManager.default.fileExists(atPath: file.stateDBPath) else {
                Support.printErr("error: no state database at \(file.stateDBPath) (has the daemon run?)")
                throw Exit.transient
            }
            return try Support.openStore(file)
        }
    }

    static func view(_ r: JobStateRow) -> JSONValue {
        .object([
            "id": .string(r.jobID), "kind": .string(r.kind), "agent": .string(r.agent),
            "active": .bool(r.definitionFingerprint != nil),
            "cursor": r.cursor.map { .string(Base64URL.encode($0)) } ?? .null,
            "last_run_at": r.lastRunAtMs.map { .string(RFC3339.format(ms: $0)) } ?? .null,
            "next_run_at": r.nextRunAtMs.map { .string(RFC3339.format(ms: $0)) } ?? .null,
            "last_status": r.lastStatus.json, "last_error": r.lastError.json, "last_duration_ms": r.lastDurationMs.json,
            "consecutive_errors": .int(Int64(r.consecutiveErrors)), "ticks_total": .int(r.ticksTotal),
            "items_seen_total": .int(r.itemsSeenTotal), "items_dispatched_total": .int(r.itemsDispatchedTotal),
            "paused": .bool(r.paused), "paused_reason": r.pausedReason.json, "done": .bool(r.done),
            "outbox_backlog": .int(r.outboxBacklog),
        ])
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs with their state.")
        @OptionGroup var state: StateOptions
        @Flag(name: .long, help: "Include jobs no longer in the job file.") var all = false

        func run() async throws {
            let store = try state.open()
            let rows = try await store.allStates().filter { all || $0.definitionFingerprint != nil }
            if state.json {
                print(Support.json(.array(rows.map(JobsCommand.view))))
                return
            }
            print("ID".padding(toLength: 28, withPad: " ", startingAt: 0) + "KIND".padding(toLength: 10, withPad: " ", startingAt: 0)
                  + "STATUS".padding(toLength: 13, withPad: " ", startingAt: 0) + "ERRS  BACKLOG  NEXT RUN                  PAUSED")
            for r in rows {
                let next = r.nextRunAtMs.map { RFC3339.format(ms: $0) } ?? "-"
                print(r.jobID.padding(toLength: 28, withPad: " ", startingAt: 0) + r.kind.padding(toLength: 10, withPad: " ", startingAt: 0)
                      + (r.lastStatus ?? "-").padding(toLength: 13, withPad: " ", startingAt: 0)
                      + String(r.consecutiveErrors).padding(toLength: 6, withPad: " ", startingAt: 0)
                      + String(r.outboxBacklog).padding(toLength: 9, withPad: " ", startingAt: 0)
                      + next.padding(toLength: 26, withPad: " ", startingAt: 0) + (r.paused ? "yes: \(r.pausedReason ?? "")" : (r.done ? "done" : "no")))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job's state and lease.")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            let store = try state.open()
            guard let r = try await store.state(jobID: jobID) else {
                Support.printErr("error: no job '\(jobID)' in the state database")
                throw Exit.transient
            }
            var v = JobsCommand.view(r)
            if case .object(var o) = v, let l = try await store.lease(jobID: jobID) {
                o["lease"] = .object(["holder": .string(l.holder), "token": .int(l.token),
                                      "until": l.untilMs > 0 ? .string(RFC3339.format(ms: l.untilMs)) : .null])
                v = .object(o)
            }
            if state.json {
                print(Support.json(v))
            } else if case .object(let o) = v {
                for k in o.keys.sorted() {
                    let val = o[k]!
                    print("\(k): \(val.stringValue ?? Support.json(val))")
                }
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a job (it survives restarts).")
        @Argument var jobID: String
        @Option(help: "Why (shown in jobs list/show).") var reason: String = "paused by operator"
        @OptionGroup var state: StateOptions

        func run() async throws {
            let store = try state.open()
            guard try await store.setPaused(jobID: jobID, paused: true, reason: reason, nowMs: Support.nowMs) else {
                Support.printErr("error: no job '\(jobID)' in the state database")
                throw Exit.transient
            }
            print("\(jobID): paused")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused job.")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            let store = try state.open()
            guard try await store.setPaused(jobID: jobID, paused: false, reason: nil, nowMs: Support.nowMs) else {
                Support.printErr("error: no job '\(jobID)' in the state database")
                throw Exit.transient
            }
            print("\(jobID): resumed")
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear a job's cursor and error counters (a tick in flight is fenced off).")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            let store = try state.open()
            guard try await store.reset(jobID: jobID, nowMs: Support.nowMs) else {
                Support.printErr("error: no job '\(jobID)' in the state database")
                throw Exit.transient
            }
            print("\(jobID): reset")
        }
    }
}
