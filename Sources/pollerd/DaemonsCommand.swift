import ArgumentParser
import Foundation
import PollerdConfig
import PollerdCore
import PollerdDaemon

/// `pollerd daemons`: every live daemon on the state store, with its host and its heartbeat.
struct DaemonsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemons",
        abstract: "List the daemons alive on the state store: host, pid, job file, jobs, and their last heartbeat.")

    @OptionGroup var options: ConfigOptions
    @Option(name: .long, help: "The state database: a path or a postgres:// URL (default: state_db).") var state:
        String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        _ = Support.bootstrapLogging(level: options.logLevel, format: options.logFormat)
        let file = Support.load(options.path, printProblems: false)
        let clock = SystemWallClock()
        let daemons = try await Support.withStore(file, override: state) { store in
            try await Operator(store: store, clock: clock, settings: file.settings).daemons()
        }
        let now = clock.nowMs
        let rows: [JSONValue] = daemons.map { d in
            let parts = d.daemonID.split(separator: ":", omittingEmptySubsequences: false)
            return .object([
                "id": .string(d.daemonID), "host": .string(parts.first.map(String.init) ?? "?"),
                "pid": parts.count == 3 ? Int64(parts[1]).map(JSONValue.int) ?? .null : .null,
                "job_file": .string(d.jobFile), "jobs": .int(Int64(d.jobs)),
                "started_at": .string(RFC3339.format(ms: d.startedAtMs)),
                "alive_until": .string(RFC3339.format(ms: d.aliveUntilMs)),
            ])
        }
        if json {
            print(Support.json(.array(rows)))
            return
        }
        if daemons.isEmpty {
            print("no live daemon on \(state.map(Support.shown) ?? file.stateDBPath)")
            return
        }
        var table = [["HOST", "PID", "JOBS", "JOB FILE", "STARTED", "ALIVE FOR"]]
        for (d, r) in zip(daemons, rows) {
            table.append([
                r["host"]?.stringValue ?? "?", r["pid"]?.intValue.map(String.init) ?? "-", "\(d.jobs)", d.jobFile,
                RFC3339.format(ms: d.startedAtMs), "\(max(0, d.aliveUntilMs - now) / 1000) s more without a heartbeat",
            ])
        }
        Support.printTable(table)
    }
}
