public import ArgumentParser
public import Logging

@main
struct Pollerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pollerd",
        abstract: "A polling daemon: scheduled jobs turn what is new into events, losing nothing.",
        discussion: """
            Exit codes: 0 success; 1 transient failure (or a job/state not found); 2 permanent failure \
            (or the job is paused); 3 configuration error; 64 usage error.
            """,
        subcommands: [RunCommand.self, ValidateCommand.self, TickCommand.self, ScheduleCommand.self, JobsCommand.self, PluginsCommand.self, OutboxCommand.self, DLQCommand.self, StateCommand.self]
    )
}

/// Options every command that reads the job file shares.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "The job file (default: $POLLERD_CONFIG or ./pollers.yaml).")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    var path: String {
        config ?? ProcessInfo.processInfo.environment["POLLERD_CONFIG"] ?? "pollers.yaml"
    }
}

import Foundation

/// `--log-level` takes swift-log's level names; any other word is a usage error (exit 64).
extension Logger.Level: @retroactive ExpressibleByArgument {}
