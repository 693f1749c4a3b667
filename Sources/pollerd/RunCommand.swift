import ArgumentParser
import PollerdConfig
import PollerdCore
import PollerdDaemon
import PollerdPlugins
import PollerdSQLite

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: schedule every valid job until SIGTERM or SIGINT.",
        discussion: """
            Invalid jobs are reported and left out; the valid ones run. SIGHUP reloads the job file \
            (validated as a whole first; a file with any error is rejected and the running jobs stay). \
            With --watch, a change to the file reloads it too. On SIGTERM/SIGINT no new tick starts, \
            ticks in flight get shutdown_grace_secs, then are cancelled; the exit code is 0.
            """
    )

    @OptionGroup var options: ConfigOptions

    @Flag(name: .long, help: "Reload when the job file changes.")
    var watch = false

    func run() async throws {
        let logger = Support.bootstrapLogging(level: options.logLevel, format: options.logFormat)
        let processes = Support.processes()
        let file = Support.load(options.path, processes: processes)
        if file.isFatal {
            Support.printErr("error: \(options.path) cannot be used; nothing runs")
            throw Exit.config
        }
        let daemon: Daemon
        do {
            daemon = Daemon(
                configPath: options.path, store: try Support.openStore(file, logger: logger),
                storeLocation: file.stateDBPath,
                processes: processes, fetcher: Support.fetcher, watch: watch, logger: logger)
        } catch let e as SQLiteBackend.Corrupt {
            Support.printErr("error: \(e)")
            throw Exit.config
        } catch {
            Support.printErr("error: cannot open the state database \(file.stateDBPath): \(error)")
            throw Exit.config
        }
        do {
            try await daemon.run(file: file)
        } catch let e as Runner.StoreDamaged {
            Support.printErr("error: pollerd stopped: \(e)")
            throw Exit.config
        } catch let e as StoreService.NotPrepared {
            // Damaged, written by a newer pollerd, or not writable: as when it cannot be opened.
            Support.printErr("error: pollerd did not start: \(e)")
            throw Exit.config
        } catch {
            // A service failed (the admin server could not bind, say): the others were stopped.
            let hint =
                "\(error)".contains("bind") ? file.settings.adminListen.map { " (admin_listen: \($0))" } ?? "" : ""
            Support.printErr("error: pollerd stopped: \(error)\(hint)")
            throw Exit.transient
        }
    }
}
