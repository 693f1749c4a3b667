import CPollerdSpawn
import Foundation
import Glibc
import Testing

@testable import PollerdPlugins
@testable import PollerdPollers

/// What a plugin starts goes with it: the tree below a plugin is killed wherever it went (another
/// process group, another session), and a tree past the process cap is killed whole. The daemon
/// side (the subreaper and the sweep of escapees handed to it) runs in scripts/escape_test.py,
/// against the real binary: a test process must not adopt and kill other tests' children.
@Suite(.serialized) struct ProcessTreeTests {
    /// The pids whose command line holds `marker`, and that are not zombies.
    static func alive(_ marker: String) -> [pid_t] {
        ProcessTree.snapshot().filter { p in p.state != "Z" && cmdline(p.pid).contains(marker) }.map(\.pid)
    }

    /// `/proc/PID/cmdline` (its size reads as 0, so it is read to the end, not by its size).
    static func cmdline(_ pid: pid_t) -> String {
        let fd = open("/proc/\(pid)/cmdline", O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf.prefix(n)
        }
        return String(decoding: out.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }

    /// The lines the child prints up to its `ready` line: it prints the pids it started, then
    /// `ready` once they all exist (waits on the pipe; 10 s at most, in case the child never says).
    static func readyLines(_ child: DirectSpawn.Child) -> [String]? {
        var text = ""
        var buf = [UInt8](repeating: 0, count: 4096)
        while !text.hasSuffix("ready\n") {
            var p = pollfd(fd: child.stdout, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 10_000) == 1 else {
                Issue.record("the child never said ready: \(text)")
                return nil
            }
            let n = buf.withUnsafeMutableBytes { read(child.stdout, $0.baseAddress, $0.count) }
            if n <= 0 {
                Issue.record("the child closed its output: \(text)")
                return nil
            }
            text += String(decoding: buf.prefix(n), as: UTF8.self)
        }
        return text.split(separator: "\n").map(String.init).dropLast()
    }

    /// Waits for a process to exit, on a pidfd (readable at its exit, whoever its parent is);
    /// 10 s at most. A process already gone counts as exited.
    static func awaitExit(_ pid: pid_t) -> Bool {
        let fd = cpollerd_pidfd_open(pid)
        guard fd >= 0 else { return errno == ESRCH }
        defer { close(fd) }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 10_000) == 1
    }

    static func exists(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 }

    @Test func statLinesWithStrangeNamesParse() {
        let line = Array(
            "4242 (a) (b c) S 1 4242 4200 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615"
                .utf8)
        let p = ProcessTree.parse(line)
        #expect(
            p
                == ProcessTree.Proc(
                    pid: 4242, ppid: 1, pgid: 4242, sid: 4200, state: "S", startTicks: 987654, comm: "a) (b c"))
        #expect(ProcessTree.parse(Array("garbage".utf8)) == nil)
        #expect(ProcessTree.parse(Array("12 (x) S 1 2".utf8)) == nil)
        #expect(ProcessTree.read(getpid())?.pid == getpid())
    }

    @Test func killingAPluginKillsWhatLeftItsGroupAndSession() throws {
        // sleep's argument carries the marker: a number no other process has.
        let marker = "3000.\(UInt32.random(in: 10_000_000...99_999_999))"
        // The child starts a grandchild in a session of its own (setsid), then waits: a kill of
        // the child's group alone would leave it running. (A double fork hands the grandchild to
        // the daemon as subreaper: that case is scripts/escape_test.py's.) The grandchild says
        // its pid and "ready" itself, once it is in its own session: when the child said so, the
        // snapshot could still find it in the child's session (seen once in a full run).
        let script = "setsid sh -c 'echo $$; echo ready; exec sleep \(marker)1' & exec sleep \(marker)2"
        guard
            case .success(let child) = DirectSpawn.spawn(
                executable: "/bin/sh", args: ["-c", script], env: ["PATH": "/usr/bin:/bin"],
                workingDirectory: "/")
        else {
            Issue.record("spawn failed")
            return
        }
        defer {
            close(child.stdin)
            close(child.stdout)
            close(child.stderr)
        }
        #expect(ProcessTree.startedChildren[child.pid] != nil)
        guard let lines = Self.readyLines(child), let grandchild = lines.first.flatMap({ pid_t($0) }) else { return }
        #expect(Self.exists(child.pid) && Self.exists(grandchild), "two processes")
        let below = ProcessTree.descendants(of: child.pid, in: ProcessTree.snapshot())
        #expect(
            below.contains { $0.sid != child.pid && $0.sid == $0.pid }, "the setsid grandchild is found below the child"
        )
        ProcessTree.killTree(child.pid)
        var status: Int32 = 0
        _ = waitpid(child.pid, &status, 0)
        ProcessTree.reaped(child.pid)
        #expect(Self.awaitExit(grandchild))
        #expect(Self.alive(marker).isEmpty, "every process gone")
        #expect(ProcessTree.startedChildren[child.pid] == nil)
    }

    @Test func aTreePastTheCapIsKilledWhole() throws {
        let marker = "3000.\(UInt32.random(in: 10_000_000...99_999_999))"
        let script =
            "i=0; while [ $i -lt 40 ]; do sleep \(marker)1 & echo $!; i=$((i+1)); done; echo ready; exec sleep \(marker)2"
        guard
            case .success(let child) = DirectSpawn.spawn(
                executable: "/bin/sh", args: ["-c", script], env: ["PATH": "/usr/bin:/bin"],
                workingDirectory: "/")
        else {
            Issue.record("spawn failed")
            return
        }
        defer {
            close(child.stdin)
            close(child.stdout)
            close(child.stderr)
        }
        guard let lines = Self.readyLines(child) else { return }
        let children = lines.compactMap { pid_t($0) }
        #expect(children.count == 40 && children.allSatisfy(Self.exists), "41 processes")
        // Under the cap: nothing happens. Over it: the whole tree goes, and the sweep says which.
        #expect(ProcessTree.sweep(cap: 100, killEscapees: false).overCap.isEmpty)
        let swept = ProcessTree.sweep(cap: 10, killEscapees: false)
        let hit = swept.overCap.first { $0.pid == child.pid }
        #expect(hit?.processes == 40 && hit?.label == "sh")
        var status: Int32 = 0
        _ = waitpid(child.pid, &status, 0)
        ProcessTree.reaped(child.pid)
        #expect(status & 0x7f == SIGKILL)
        #expect(children.allSatisfy(Self.awaitExit))
        #expect(Self.alive(marker).isEmpty, "every process gone")
    }

    /// Where the daemon may make cgroups (root, or a subtree delegated by systemd), a plugin's
    /// cgroup holds everything it starts, however it forks, and one write kills it all.
    @Test(.enabled(if: getuid() == 0 && PluginCgroups.ownCgroup() != nil, "needs root and a cgroup v2 hierarchy"))
    func aPluginsCgroupHoldsAllItStartsAndKillsItAtOnce() throws {
        guard case .success(let cgroups) = PluginCgroups.setUp(maxProcesses: 64, memoryMaxBytes: nil) else {
            Issue.record("cannot set up cgroups as root")
            return
        }
        let marker = "3000.\(UInt32.random(in: 10_000_000...99_999_999))"
        // It waits for a line on stdin, so it is in its cgroup before it forks: a session of its
        // own, a double fork (its parent exits at once), then itself; it prints the two pids.
        let script =
            "read x; setsid sleep \(marker)1 & echo $!; (sleep \(marker)2 & echo $!) ; echo ready; exec sleep \(marker)3"
        guard
            case .success(let child) = DirectSpawn.spawn(
                executable: "/bin/sh", args: ["-c", script], env: ["PATH": "/usr/bin:/bin"],
                workingDirectory: "/")
        else {
            Issue.record("spawn failed")
            return
        }
        defer {
            close(child.stdout)
            close(child.stderr)
        }
        let path = try #require(cgroups.place(child.pid, label: "test plugin"))
        #expect(path.hasPrefix(cgroups.base + "/test_plugin@\(cgroups.owner)."))
        _ = write(child.stdin, "go\n", 3)
        close(child.stdin)
        guard let lines = Self.readyLines(child) else { return }
        let started = lines.compactMap { pid_t($0) }
        #expect(started.count == 2 && started.allSatisfy(Self.exists) && Self.exists(child.pid), "three processes")
        #expect(PluginCgroups.processes(path) == 3, "the double-forked and the setsid sleepers stay in the cgroup")
        PluginCgroups.kill(path)
        var status: Int32 = 0
        _ = waitpid(child.pid, &status, 0)
        ProcessTree.reaped(child.pid)
        #expect(started.allSatisfy(Self.awaitExit))
        #expect(Self.alive(marker).isEmpty, "every process gone")
        // A process leaves its cgroup before its exit is reported: the cgroup is empty now.
        #expect(PluginCgroups.remove(path), "the cgroup removed")
    }

    /// The nice value of a process, from `/proc/PID/stat` (the 19th field).
    static func nice(_ pid: pid_t) -> Int32? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 16 ? Int32(fields[16]) : nil
    }

    /// Plugins and commands run `plugin_nice` steps below the daemon's CPU priority: a plugin
    /// started by `cpollerd_spawn` (and what it forks) from before it runs, a command's child once
    /// it is registered.
    @Test func childrenRunBelowTheDaemonsPriority() throws {
        let own = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        ProcessTree.useNice(7)
        defer { ProcessTree.useNice(nil) }
        guard
            case .success(let child) = DirectSpawn.spawn(
                executable: "/bin/sh", args: ["-c", "sleep 30 & echo $!; echo ready; read x"],
                env: ["PATH": "/usr/bin:/bin"], workingDirectory: "/")
        else {
            Issue.record("spawn failed")
            return
        }
        defer {
            close(child.stdin)
            close(child.stdout)
            close(child.stderr)
            ProcessTree.killTree(child.pid)
            var status: Int32 = 0
            _ = waitpid(child.pid, &status, 0)
            ProcessTree.reaped(child.pid)
        }
        guard let lines = Self.readyLines(child), let grandchild = lines.first.flatMap({ pid_t($0) }) else { return }
        #expect(Self.nice(child.pid) == min(19, own + 7))
        #expect(Self.nice(grandchild) == min(19, own + 7), "what the plugin forks inherits it")

        let command = Process()
        command.executableURL = URL(fileURLWithPath: "/bin/sleep")
        command.arguments = ["30"]
        try command.run()
        defer { command.terminate() }
        ProcessTree.started(command.processIdentifier, label: "job j")
        defer { ProcessTree.reaped(command.processIdentifier) }
        #expect(Self.nice(command.processIdentifier) == min(19, own + 7))
    }
}
