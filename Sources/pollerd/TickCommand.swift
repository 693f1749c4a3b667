import ArgumentParser
import Logging
import PollerdConfig
import PollerdCore
import PollerdDaemon
import PollerdHTTP
import PollerdPlugins

struct TickCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tick",
        abstract: "Run one tick of a job now, through the scheduler's path (lease, timeout, classification, commit).",
        discussion: """
            --json prints {"job_id","kind","status","error","items_seen","items_dispatched","next_cursor",\
            "next_interval_secs","items","duration_ms","details","warnings","dry_run","items_found","items_new",\
            "duplicates_dropped"}: items_new counts what was queued for delivery (found minus the duplicates the \
            dedup window dropped; null in a dry run); items_dispatched is a plugin's own figure of what it sent \
            itself (built-in kinds send nothing themselves: 0); details is what the kind \
            reports of the tick (an HTTP kind's status, cache use and chosen delay with its reason), warnings \
            what an operator should know (items past the dedup window). Exit codes: 0 ok, 1 transient (also: lease held \
            elsewhere, or the tick was cancelled), 2 permanent (also: the job is paused or a finished \
            one-shot), 3 config, 64 usage.
            """
    )

    @Argument(help: "The job's id.")
    var jobID: String

    @OptionGroup var options: ConfigOptions

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Flag(name: .long, help: "Tick for real but commit nothing (the lease is released).")
    var dryRun = false

    func run() async throws {
        let logger = Support.bootstrapLogging(level: json ? .error : options.logLevel, format: options.logFormat)
        let processes = Support.processes()
        let file = Support.load(options.path, processes: processes, printProblems: false)
        if file.isFatal {
            for e in file.errors { Support.printErr("error: \(e)") }
            throw Exit.config
        }
        guard let job = file.jobs.first(where: { $0.id == jobID }) else {
            let mine = file.errors.filter { $0.jobID == jobID }
            if mine.isEmpty {
                Support.printErr("error: no job '\(jobID)' in \(options.path)")
                throw ExitCode.validationFailure
            }
            for e in mine { Support.printErr("error: \(e)") }
            throw Exit.config
        }
        let result = try await Support.withStore(file) { store in
            try await Operator(store: store, clock: SystemWallClock(), settings: file.settings).tick(
                job, registry: file.registry, holder: "cli-" + HolderIdentity.make(), dryRun: dryRun, logger: logger)
        }
        await processes.shutdownAll()
        await Support.fetcher.shutdown()
        let report = result.report
        if json {
            let ack = report.ack
            let v: JSONValue = .object([
                "job_id": .string(job.id), "kind": .string(job.kind), "status": .string(result.status),
                "error": result.error.json,
                "items_seen": .int(ack?.itemsSeen ?? 0), "items_dispatched": .int(ack?.itemsDispatched ?? 0),
                "next_cursor": (ack?.nextCursor).map { .string(Base64URL.encode($0)) } ?? .null,
                "next_interval_secs": (ack?.nextIntervalSecs).json,
                "items": .array(ack?.items ?? []), "duration_ms": .int(report.durationMs),
                "details": ack?.details ?? .null, "warnings": .array(report.warnings.map(JSONValue.string)),
                "dry_run": .bool(dryRun),
                "items_found": .int(Int64(ack?.items.count ?? 0)),
                "items_new": result.record.map { .int($0.itemsNew) } ?? .null,
                "duplicates_dropped": result.record.map { .int($0.duplicates) } ?? .null,
            ])
            print(Support.json(v))
        } else {
            for w in report.warnings { Support.printErr("warning: \(w)") }
            print(
                "\(job.id): \(result.status)\(result.error.map { ": \($0)" } ?? "") (\(report.durationMs) ms, \(report.ack?.items.count ?? 0) item(s)\(dryRun ? ", dry run" : ""))"
            )
            for item in report.ack?.items ?? [] { print(Support.json(item)) }
        }
        let exit = Exit.code(result.outcome)
        if exit != Exit.ok { throw exit }
    }
}
