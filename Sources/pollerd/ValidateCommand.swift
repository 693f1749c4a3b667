import ArgumentParser
import Foundation
import PollerdConfig
import PollerdCore
import PollerdDaemon
import PollerdPollers

struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check the job file; exit 3 if anything in it is invalid.",
        discussion:
            "With --diff, print the reload plan {add, replace, remove, keep} against the jobs recorded in the state database, without applying it."
    )

    @OptionGroup var options: ConfigOptions

    @Flag(name: .long, help: "Print the plan a reload would apply.")
    var diff = false

    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        _ = Support.bootstrapLogging(level: options.logLevel, format: options.logFormat)
        let file = Support.load(options.path)
        var divergent: [String] = []
        if !file.isFatal, file.stateMayExist {
            do {
                divergent = try await Support.withStore(file, reportFailure: file.postgresURL == nil) { store in
                    try await Operator(store: store, clock: SystemWallClock(), settings: file.settings)
                        .definitionWarnings(file.jobs)
                }
            } catch  where file.postgresURL != nil {
                // The file is checked whether or not its database answers now.
                divergent = [
                    "the state database \(file.stateDBPath) did not answer (\(error)): the jobs' definitions "
                        + "were not compared with those of other daemons"
                ]
            }
            if !json { for w in divergent { Support.printErr("warning: \(w)") } }
        }
        if diff && !file.isFatal {
            var current: [String: String] = [:]
            if file.stateMayExist {
                let rows = try await Support.withStore(file) { store in
                    try await Operator(store: store, clock: SystemWallClock(), settings: file.settings)
                        .jobs(includeInactive: true)
                }
                for row in rows {
                    if let fp = row.definitionFingerprint { current[row.jobID] = fp }
                }
            }
            let jobs = file.settings.enabled ? file.jobs : []
            let plan = ReloadPlan.between(current: current, next: jobs.map { ($0.id, $0.fingerprint) })
            if json {
                let v: JSONValue = .object([
                    "add": .array(plan.add.map { .string($0) }), "replace": .array(plan.replace.map { .string($0) }),
                    "remove": .array(plan.remove.map { .string($0) }), "keep": .array(plan.keep.map { .string($0) }),
                    "errors": .array(file.errors.map { .string($0.description) }),
                ])
                print(Support.json(v))
            } else {
                print("add:     \(plan.add.joined(separator: " "))")
                print("replace: \(plan.replace.joined(separator: " "))")
                print("remove:  \(plan.remove.joined(separator: " "))")
                print("keep:    \(plan.keep.joined(separator: " "))")
            }
        } else if json {
            print(
                Support.json(
                    .object([
                        "valid": .bool(file.errors.isEmpty), "jobs": .int(Int64(file.jobs.count)),
                        "errors": .array(file.errors.map { .string($0.description) }),
                        "warnings": .array(
                            file.warnings.map { .string($0.description) } + divergent.map { .string($0) }),
                    ])))
        }
        if !file.errors.isEmpty {
            throw Exit.config
        }
        if !json && !diff { print("\(options.path): ok, \(file.jobs.count) job(s)") }
    }
}
