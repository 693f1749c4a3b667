import ArgumentParser
import Foundation
import Logging
import PollerdCore
import PollerdDaemon
import PollerdPlugins
import PollerdPollers
import Synchronization

/// Ticks through pollerd's real plugin transports, as fast as they go.
struct PluginBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin",
        abstract: "Ticks/s through EphemeralPluginPoller or LongLivedPlugin with K ticks in flight; one JSON line."
    )

    @Option(help: "ephemeral or long-lived.") var lifecycle: String = "ephemeral"
    @Option(help: "The plugin command.") var command: String
    @Option(name: .customLong("arg"), help: "An argument for the command (repeat; write --arg=-I for dashes).")
    var args: [String] = []
    @Option(help: "Working directory.") var dir: String = "/"
    @Option(name: .customLong("plugin-id"), help: "The id the plugin answers initialize with.") var pluginID: String =
        "cbench"
    @Option(help: "The kind to tick.") var kind: String = "cbench"
    @Option(help: "Ticks to measure.") var count: Int = 2000
    @Option(name: .customLong("in-flight"), help: "Ticks in flight (max_concurrent_ticks).") var inFlight: Int = 1
    @Option(help: "A label for the output.") var label: String = ""
    @Option(
        help: """
            Where the ticking tasks run. poller: on the poller's preferred executor (a long-lived plugin's \
            reader thread; an ephemeral plugin's blocking workers, which then run each exchange in place), \
            looping there. tick-task: each tick in a task of its own with that preference, \
            awaited from the global pool, as the runner starts ticks. tick-task-pool: the same without the \
            preference (the runner before it had one). pool: looping on the global pool, no preference.
            """) var callers: Callers = .poller

    @Flag(
        help: """
            Contain each plugin as the daemon does: a cgroup of its own (where this process may make             them: as root, or under a delegated subtree), the child subreaper, and plugin_nice 10.
            """) var containment = false

    enum Callers: String, ExpressibleByArgument {
        case poller
        case tickTask = "tick-task"
        case pool
        case tickTaskPool = "tick-task-pool"
    }

    func run() async throws {
        var contained = "none"
        if containment {
            ProcessTree.becomeSubreaper()
            ProcessTree.useNice(10)
            switch PluginCgroups.setUp(maxProcesses: 256, memoryMaxBytes: nil) {
            case .success(let c):
                ProcessTree.use(c)
                contained =
                    "cgroups (\(c.controllers.isEmpty ? "kill only" : c.controllers.sorted().joined(separator: ",")))"
            case .failure(let why):
                contained = "no cgroups (\(why))"
            }
        }
        defer { ProcessTree.use(nil) }
        let spec = PluginProcessSpec(
            pluginID: pluginID, command: command, args: args, workingDirectory: dir, tickTimeoutSecs: 60)
        let permits = AsyncSemaphore(permits: inFlight)
        let poller: any Poller
        var longLived: LongLivedPlugin?
        if lifecycle == "ephemeral" {
            poller = EphemeralPluginPoller(kind: kind, spec: spec, permits: permits, status: PluginStatus(tailLines: 4))
        } else {
            let p = LongLivedPlugin(
                spec: spec, policy: SupervisorPolicy(respawn: false, maxAttempts: 1, backoffMs: 100),
                status: PluginStatus(tailLines: 4), permits: permits, clock: SystemWallClock(),
                logger: {
                    var l = Logger(label: "bench")
                    l.logLevel = .error
                    return l
                }())
            longLived = p
            poller = LongLivedPluginPoller(kind: kind, plugin: p)
        }
        let ctx = TickContext(
            jobID: "bench", kind: kind, agent: "default", config: .object([:]), cursor: nil,
            nowMs: SystemWallClock().nowMs, intervalHintSecs: 60, timeoutSecs: 60)
        // Warm up (and start a long-lived plugin) outside the measurement.
        do throws(PollerError) { _ = try await poller.tick(ctx) } catch {
            throw ValidationError("warm-up tick failed: \(error)")
        }
        let failures = Counter()
        let cpuBefore = Self.cpuSeconds()
        let start = ContinuousClock.now
        await withTaskGroup(of: Void.self) { g in
            // K workers, each ticking until the shared count is used up.
            let remaining = Counter(count)
            let preferred = poller.preferredExecutor
            for _ in 0..<inFlight {
                switch callers {
                case .poller, .pool:
                    g.addTask(executorPreference: callers == .poller ? preferred : nil) {
                        while remaining.take() {
                            do throws(PollerError) { _ = try await poller.tick(ctx) } catch { _ = failures.add() }
                        }
                    }
                case .tickTask, .tickTaskPool:
                    let preferred = callers == .tickTask ? preferred : nil
                    g.addTask {
                        while remaining.take() {
                            let t = Task(executorPreference: preferred) { () throws(PollerError) -> TickAck in
                                try await poller.tick(ctx)
                            }
                            if case .failure = await t.result { _ = failures.add() }
                        }
                    }
                }
            }
        }
        let secs =
            Double((ContinuousClock.now - start).components.attoseconds) / 1e18
            + Double((ContinuousClock.now - start).components.seconds)
        let cpu = Self.cpuSeconds() - cpuBefore
        await longLived?.shutdown()
        let line: [String: Any] = [
            "system": "pollerd", "label": label, "lifecycle": lifecycle, "in_flight": inFlight, "count": count,
            "callers": callers.rawValue, "containment": contained,
            "per_sec": (Double(count) / secs * 10).rounded() / 10, "failures": failures.value,
            // The daemon's own CPU (all its threads, not the plugin's) per tick: steadier than the
            // rate on a noisy host.
            "cpu_us_per_tick": (cpu / Double(count) * 1e7).rounded() / 10,
        ]
        print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
    }
}

extension PluginBench {
    /// User plus system CPU time of this process so far (children not included).
    static func cpuSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }
}

final class Counter: Sendable {
    private let v: Mutex<Int>
    init(_ start: Int = 0) { v = Mutex(start) }
    /// Takes one from a countdown; false when none are left.
    func take() -> Bool {
        v.withLock {
            if $0 > 0 {
                $0 -= 1
                return true
            }
            return false
        }
    }
    func add() -> Int {
        v.withLock {
            $0 += 1
            return $0
        }
    }
    var value: Int { v.withLock { $0 } }
}
