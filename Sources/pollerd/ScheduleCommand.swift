import ArgumentParser
import Foundation
import PollerdCore
import PollerdDaemon

struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Inspect schedules.",
        subcommands: [Next.self]
    )

    struct Next: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "next",
            abstract:
                "Print the next firing instants strictly after --from, without jitter, one per line (RFC 3339 UTC)."
        )

        @Option(help: "A cron expression (5 or 6 fields, or a macro).") var cron: String?
        @Option(help: "The IANA time zone for --cron (default UTC).") var tz: String?
        @Option(name: .customLong("every-secs"), help: "A period in seconds.") var everySecs: Int64?
        @Option(help: "An RFC 3339 instant.") var at: String?
        @Option(help: "Start instant, RFC 3339 (default: now).") var from: String?
        @Option(help: "How many instants.") var count: Int = 5

        func validate() throws {
            let n = [cron != nil, everySecs != nil, at != nil].filter { $0 }.count
            guard n == 1 else { throw ValidationError("give exactly one of --cron, --every-secs or --at") }
            guard count >= 1, count <= 100_000 else { throw ValidationError("--count must be between 1 and 100000") }
            if tz != nil, cron == nil { throw ValidationError("--tz goes with --cron") }
            if let e = everySecs, e < 1 { throw ValidationError("--every-secs must be at least 1") }
        }

        func run() async throws {
            var start = SystemWallClock().nowMs
            if let from {
                guard let t = RFC3339.parse(from) else {
                    throw ValidationError("--from is not an RFC 3339 timestamp: \(from)")
                }
                start = t
            }
            let schedule: Schedule
            if let cron {
                let expr: CronExpression
                do { expr = try CronExpression(cron) } catch {
                    throw ValidationError("invalid cron expression: \(error)")
                }
                var zone = ZoneRules.utc
                if let tz {
                    guard let z = ZoneRules(identifier: tz) else { throw ValidationError("unknown time zone '\(tz)'") }
                    zone = z
                }
                schedule = Schedule(.cron(expr, zone))
            } else if let everySecs {
                schedule = Schedule(.every(seconds: everySecs))
            } else {
                guard let t = RFC3339.parse(at!) else {
                    throw ValidationError("--at is not an RFC 3339 timestamp: \(at!)")
                }
                schedule = Schedule(.at(t))
            }
            var t = start
            for _ in 0..<count {
                guard let n = schedule.nextSlot(afterMs: t) else { break }
                print(RFC3339.format(ms: n))
                t = n
            }
        }
    }
}
