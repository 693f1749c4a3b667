import ArgumentParser
import Foundation
import PollerdConfig
import PollerdCore
import PollerdPlugins
import PollerdPollers
import PollerdSQLite

struct TickCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tick",
        abstract: "Run one tick of a job now, through the scheduler's path (lease, timeout, classification, commit).",
        discussion: """
            --json prints {"job_id","kind","status","error","items_seen","items_dispatched","next_cursor",\
            "next_interval_secs","items","duration_ms"}. Exit codes: 0 ok, 1 transient (also: lease held \
            elsewhere), 2 permanent (also: the job is paused or a finished one-shot), 3 config, 64 usage.
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
        let logger = Support.bootstrapLogging(level: json ? "error" : options.logLevel)
        let file = Support.load(options.path, printProblems: false)
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
        let store = try Support.openStore(file)
        let clock = SystemWallClock()
        let now = clock.nowMs
        let rows = try await store.register([JobRegistration(jobID: job.id, kind: job.kind, agent: job.agent, pausedOnBoot: job.pausedOnBoot)], nowMs: now)
        _ = rows
        let executor = TickExecutor(store: store, registry: file.registry, clock: clock, holder: "cli-" + Support.holderID(), logger: logger)
        let offset = job.schedule.jitterOffsetMs(jobID: job.id, defaultJitterMs: file.settings.defaultJitterMs, nowMs: now)
        let report = await executor.execute(DueTick(jobID: job.id, dueMs: now, spec: job, offsetMs: offset), settings: file.settings, dryRun: dryRun, manual: true)
        await PluginProcesses.shared.shutdownAll()

        var status = report.status
        var error = report.error?.message
        var exit = Exit.ok
        switch report.disposition {
        case .ran, .cancelled:
            switch status {
            case "ok": exit = Exit.ok
            case "transient": exit = Exit.transient
            case "permanent": exit = Exit.permanent
            default: exit = Exit.config
            }
        case .skipped(let acq):
            switch acq {
            case .held(let by, let until):
                status = "transient"; exit = Exit.transient
                error = "lease held by \(by) until \(RFC3339.format(ms: until)); another tick of this job is running"
            case .paused(let reason):
                status = "permanent"; exit = Exit.permanent
                error = "job is paused\(reason.map { " (\($0))" } ?? ""); run `pollerd jobs resume \(job.id)` first"
            case .done:
                status = "permanent"; exit = Exit.permanent
                error = "one-shot job already ran; `pollerd jobs reset \(job.id)` allows it again"
            case .backlogged(let pending, let limit):
                status = "transient"; exit = Exit.transient
                error = "backpressure: \(pending) undelivered items (limit \(limit)); see `pollerd outbox stats`"
            case .granted, .notDue:
                break
            }
        }
        if json {
            let ack = report.ack
            let v: JSONValue = .object([
                "job_id": .string(job.id), "kind": .string(job.kind), "status": .string(status), "error": error.json,
                "items_seen": .int(ack?.itemsSeen ?? 0), "items_dispatched": .int(ack?.itemsDispatched ?? 0),
                "next_cursor": (ack?.nextCursor).map { .string(Base64URL.encode($0)) } ?? .null,
                "next_interval_secs": (ack?.nextIntervalSecs).json,
                "items": .array(ack?.items ?? []), "duration_ms": .int(report.durationMs),
            ])
            print(Support.json(v))
        } else {
            print("\(job.id): \(status)\(error.map { ": \($0)" } ?? "") (\(report.durationMs) ms, \(report.ack?.items.count ?? 0) item(s)\(dryRun ? ", dry run" : ""))")
            for item in report.ack?.items ?? [] { print(Support.json(item)) }
        }
        if exit != Exit.ok { throw exit }
    }
}
