import Logging
import PollerdCore
import PollerdDaemon
import PollerdPlugins

/// A logger that says nothing (plugin starts and exits are logged at info).
let quietLogger: Logger = {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}()

/// Plugin processes supervised on the system clock, for tests of real child processes whose
/// timers are not under test.
func systemProcesses() -> PluginProcesses {
    PluginProcesses(clock: SystemWallClock(), logger: quietLogger)
}
