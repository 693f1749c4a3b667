import ArgumentParser
import Foundation
import PollerdCore
import PollerdDaemon

struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract:
            "Ask the running daemon to reload its job file (through its admin API); --dry-run prints the plan only.",
        discussion:
            "The daemon validates the whole file first: a file with any error is rejected and the running jobs stay. Exit 1 when no daemon answers."
    )

    @OptionGroup var options: ConfigOptions
    @Flag(name: .long, help: "Print the plan {add, replace, remove, keep} without applying it.") var dryRun = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        _ = Support.bootstrapLogging(level: options.logLevel, format: options.logFormat)
        let file = Support.load(options.path, printProblems: false)
        guard let client = DaemonClient.from(file) else {
            Support.printErr(
                "error: the job file turns the admin API off (admin_listen: off); send the daemon SIGHUP instead")
            throw Exit.config
        }
        guard await client.isUp() else {
            Support.printErr("error: no daemon answered at \(client.base) (is it running? send it SIGHUP otherwise)")
            throw Exit.transient
        }
        let answer = try await client.request("POST", "/admin/reload" + (dryRun ? "?dry_run=1" : ""))
        guard (200..<300).contains(answer.status) else {
            Support.printErr(
                "error: the daemon refused the reload (\(answer.status)): \(answer.errorMessage ?? "\(answer.body)")")
            throw answer.status == 400 ? Exit.config : Exit.transient
        }
        if json {
            print(Support.json(answer.body))
            return
        }
        func ids(_ k: String) -> String {
            guard case .array(let a)? = answer.body[k], !a.isEmpty else { return "-" }
            return a.compactMap(\.stringValue).joined(separator: ", ")
        }
        print(dryRun ? "plan (not applied):" : "reloaded:")
        for k in ["add", "replace", "remove", "keep"] { print("  \(k): \(ids(k))") }
    }
}
