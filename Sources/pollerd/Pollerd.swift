public import ArgumentParser
import Foundation
public import Logging
import PollerdCore

@main
struct Pollerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pollerd",
        abstract: "A polling daemon: scheduled jobs turn what is new into events, losing nothing.",
        discussion: """
            Exit codes: 0 success; 1 transient failure (or a job/state not found); 2 permanent failure \
            (or the job is paused); 3 configuration error; 64 usage error.
            """,
        version: PollerdVersion.string,
        subcommands: [
            RunCommand.self, ValidateCommand.self, TickCommand.self, ScheduleCommand.self, JobsCommand.self,
            PluginsCommand.self, OutboxCommand.self, DLQCommand.self, StateCommand.self, ReloadCommand.self,
            DaemonsCommand.self,
        ]
    )
}

/// Options every command that reads the job file shares.
struct ConfigOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "The job file (default: $POLLERD_CONFIG, then ./pollers.yaml, then /etc/pollerd/pollers.yaml).")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(
        name: .long, help: "Log format: text, or json (one object per line). Default: $POLLERD_LOG_FORMAT, else text.")
    var logFormat: LogFormat?

    var path: String { Self.search(config: config, environment: ProcessInfo.processInfo.environment) }

    /// `--config`, then `$POLLERD_CONFIG`, then `./pollers.yaml`, then `/etc/pollerd/pollers.yaml`
    /// (the first that exists of the last two; `./pollers.yaml` when neither does, for the error).
    static func search(
        config: String?, environment: [String: String],
        exists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }
    ) -> String {
        if let config { return config }
        if let env = environment["POLLERD_CONFIG"], !env.isEmpty { return env }
        for candidate in ["pollers.yaml", "/etc/pollerd/pollers.yaml"] where exists(candidate) { return candidate }
        return "pollers.yaml"
    }
}

/// `--log-level` takes swift-log's level names; any other word is a usage error (exit 64).
// swift-format-ignore: AvoidRetroactiveConformances
// Neither swift-log nor ArgumentParser can declare this, and only the executable parses levels.
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// How logs are written.
enum LogFormat: String, ExpressibleByArgument, Sendable {
    case text, json
}
