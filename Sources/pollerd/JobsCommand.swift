import ArgumentParser
import Foundation
import PollerdConfig
import PollerdCore
import PollerdDaemon

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List and control jobs through the state database (a running daemon picks controls up within a second).",
        subcommands: [List.self, Show.self, Explain.self, Pause.self, Resume.self, Reset.self]
    )

    struct StateOptions: ParsableArguments {
        @OptionGroup var options: ConfigOptions
        @Option(name: .long, help: "The state database (default: state_db from the job file).") var state: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        /// The operator facade over the store the job file (or --state) names.
        func open() throws -> Operator {
            _ = Support.bootstrapLogging(level: options.logLevel)
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
            // Jobs a live daemon runs, and those of this job file even while no daemon runs.
            let inFile = Set(Support.load(state.options.path, printProblems: false).jobs.map(\.id))
            let rows = try await state.open().jobs(includeInactive: true).filter { all || $0.definitionFingerprint != nil || inFile.contains($0.jobID) }
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
            let d = try await state.perform { try await $0.job(jobID) }
            var o: [String: JSONValue] = [:]
            if case .object(let base) = JobsCommand.view(d.row) { o = base }
            if let l = d.lease {
                o["lease"] = .object(["holder": .string(l.holder), "token": .int(l.token),
                                      "until": l.untilMs > 0 ? .string(RFC3339.format(ms: l.untilMs)) : .null])
            }
            o["explain"] = JobsCommand.view(d.explanation)
            if state.json {
                print(Support.json(.object(o)))
            } else {
                for k in o.keys.sorted() where k != "explain" {
                    let val = o[k]!
                    print("\(k): \(val.stringValue ?? Support.json(val))")
                }
                print("explain: \(d.explanation.text)")
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
            try await state.perform { try await $0.pause(jobID, note: reason) }
            print("\(jobID): paused")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused job.")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            try await state.perform { try await $0.resume(jobID) }
            print("\(jobID): resumed")
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear a job's cursor and error counters (a tick in flight is fenced off).")
        @Argument var jobID: String
        @OptionGroup var state: StateOptions

        func run() async throws {
            try await state.perform { try await $0.reset(jobID) }
            print("\(jobID): reset")
        }
    }
}
