public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The processes below the daemon, read from `/proc`: what a plugin or a command started,
/// including what left its process group (a double fork, `setsid()`), so that killing a plugin
/// kills all of it.
///
/// The daemon is a child subreaper (`PR_SET_CHILD_SUBREAPER`): a process whose parent exits is
/// handed to the daemon, not to init. The processes the daemon started itself are registered
/// here (`started`/`reaped`); any other child of the daemon is an escapee of a plugin or a
/// command, and `sweep` kills and reaps it. This table is process-wide because children are:
/// the subreaper flag and the parent of an orphan are properties of the process, not of a
/// component.
public enum ProcessTree {
    /// One process, as `/proc/PID/stat` has it.
    public struct Proc: Sendable, Equatable {
        public var pid: pid_t
        public var ppid: pid_t
        public var pgid: pid_t
        public var sid: pid_t
        public var state: Character
        /// Clock ticks after boot.
        public var startTicks: UInt64
        public var comm: String
    }

    /// A child the daemon started: what it is (`plugin ID`, `job ID`) and its cgroup, if any
    /// (with its `cgroup.procs` descriptor when the cgroup can be reused).
    struct Entry: Sendable {
        var label: String
        var cgroup: String?
        var slot: PluginCgroups.Slot?
    }

    /// What the daemon started and has not reaped yet.
    static let registered = Mutex<[pid_t: Entry]>([:])
    /// The daemon's plugin cgroups, once it set them up (nil: none, as in tests and the CLI).
    static let cgroups = Mutex<PluginCgroups?>(nil)
    /// Cgroups of reaped children that still held killed processes when last tried.
    static let emptying = Mutex<Set<String>>([])

    /// From now on, every child started gets a cgroup of its own (the daemon calls this once);
    /// `nil` stops that and removes the cgroups kept for reuse.
    public static func use(_ c: PluginCgroups?) {
        let previous = cgroups.withLock { old in
            defer { old = c }
            return old
        }
        if c == nil { previous?.removeSpares() }
    }

    /// How many nice steps below the daemon's CPU priority its children run; nil: at the daemon's.
    static let childNice = Mutex<Int?>(nil)

    /// From now on, every child started runs `steps` nice steps below the daemon (the daemon
    /// calls this once; nil or 0: at the daemon's own priority).
    public static func useNice(_ steps: Int?) { childNice.withLock { $0 = steps == 0 ? nil : steps } }

    /// How many nice steps below the daemon children run, if any.
    public static var niceForChildren: Int? { childNice.withLock { $0 } }

    /// A cgroup for a child about to start, where the daemon has them (nil: none).
    public static func prepareCgroup(label: String) -> PluginCgroups.Slot? {
        cgroups.withLock { $0 }?.prepare(label: label)
    }

    /// Records a child the daemon started (right after the spawn returns), and moves it into a
    /// cgroup of its own where the daemon has them, and to the children's nice value.
    public static func started(_ pid: pid_t, label: String) {
        guard pid > 0 else { return }
        let path = cgroups.withLock { $0 }?.place(pid, label: label)
        if let steps = niceForChildren {
            let which = __priority_which_t(PRIO_PROCESS.rawValue)
            _ = setpriority(which, id_t(pid), min(19, getpriority(which, 0) + Int32(steps)))
        }
        registered.withLock { $0[pid] = Entry(label: label, cgroup: path) }
    }

    /// Records a child that `cpollerd_spawn` started already in its cgroup (`slot`, from
    /// `prepareCgroup`) and at the children's nice value.
    public static func started(_ pid: pid_t, label: String, in slot: PluginCgroups.Slot?) {
        guard pid > 0 else { return }
        registered.withLock { $0[pid] = Entry(label: label, cgroup: slot?.path, slot: slot) }
    }

    /// Forgets a child once its owner reaped it; whatever is left in its cgroup (what it
    /// started and left running) is killed, and the cgroup removed; an empty one is kept for the
    /// next child of the same label.
    public static func reaped(_ pid: pid_t) {
        guard let entry = registered.withLock({ $0.removeValue(forKey: pid) }), let path = entry.cgroup else { return }
        if let slot = entry.slot, let c = cgroups.withLock({ $0 }) {
            if c.release(slot, label: entry.label) { return }
        } else {
            if let slot = entry.slot { close(slot.procs) }
            PluginCgroups.kill(path)
        }
        if !PluginCgroups.remove(path) { _ = emptying.withLock { $0.insert(path) } }
    }

    public static var startedChildren: [pid_t: String] { registered.withLock { $0.mapValues(\.label) } }

    /// The cgroup a started child runs in, if any.
    public static func cgroup(of pid: pid_t) -> String? { registered.withLock { $0[pid]?.cgroup } }

    /// Makes this process a child subreaper. False where the kernel has no such thing.
    @discardableResult
    public static func becomeSubreaper() -> Bool {
        Subreaper.enable()
    }

    /// Every process `/proc` shows (those that vanish while being read are left out).
    public static func snapshot() -> [Proc] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var out: [Proc] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = pid_t(name), pid > 0, let p = read(pid) else { continue }
            out.append(p)
        }
        return out
    }

    /// One process's `/proc/PID/stat`, parsed; nil when it is gone.
    public static func read(_ pid: pid_t) -> Proc? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 1024)
        let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return parse(Array(buf.prefix(n)))
    }

    /// `pid (comm) S ppid pgrp session … starttime …`; the name may hold spaces and parens, so
    /// the fields are counted after the last ')'.
    static func parse(_ bytes: [UInt8]) -> Proc? {
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")), let close = bytes.lastIndex(of: UInt8(ascii: ")")),
            close > open,
            let pid = pid_t(String(decoding: bytes[..<open], as: UTF8.self).trimmingCharacters(in: .whitespaces))
        else { return nil }
        let comm = String(decoding: bytes[(open + 1)..<close], as: UTF8.self)
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " ")).map {
            String(decoding: $0, as: UTF8.self)
        }
        guard fields.count > 19, let state = fields[0].first, let ppid = pid_t(fields[1]), let pgid = pid_t(fields[2]),
            let sid = pid_t(fields[3]), let start = UInt64(fields[19])
        else { return nil }
        return Proc(pid: pid, ppid: ppid, pgid: pgid, sid: sid, state: state, startTicks: start, comm: comm)
    }

    /// The processes below `root` (children, theirs, …) and the members of its process group,
    /// `root` excluded.
    public static func descendants(of root: pid_t, in procs: [Proc]) -> [Proc] {
        var children: [pid_t: [Proc]] = [:]
        for p in procs { children[p.ppid, default: []].append(p) }
        var seen: Set<pid_t> = [root]
        var out: [Proc] = []
        var queue = children[root] ?? []
        queue += procs.filter { $0.pgid == root && $0.pid != root }
        while let p = queue.popLast() {
            guard seen.insert(p.pid).inserted else { continue }
            out.append(p)
            queue += children[p.pid] ?? []
        }
        return out
    }

    /// SIGKILLs `root`'s process group and everything below it, wherever it went (another
    /// group, another session). A gone root is fine.
    public static func killTree(_ root: pid_t) {
        guard root > 1 else { return }
        if let path = cgroup(of: root) { PluginCgroups.kill(path) }
        let below = descendants(of: root, in: snapshot())
        _ = kill(-root, SIGKILL)
        for p in below where p.pid > 1 && p.pid != getpid() {
            if p.pgid == p.pid && p.pgid != getpgrp() { _ = kill(-p.pid, SIGKILL) }
            _ = kill(p.pid, SIGKILL)
        }
    }

    /// What a sweep did.
    public struct Sweep: Sendable, Equatable {
        /// Children the daemon did not start, killed (pid and name).
        public var escapees: [(pid: pid_t, comm: String)] = []
        /// Started children whose trees grew past the cap, killed with everything below them.
        public var overCap: [(pid: pid_t, label: String, processes: Int)] = []
        /// Zombies reaped.
        public var reaped = 0

        public static func == (a: Sweep, b: Sweep) -> Bool {
            a.escapees.map(\.pid) == b.escapees.map(\.pid) && a.overCap.map(\.pid) == b.overCap.map(\.pid)
                && a.reaped == b.reaped
        }
    }

    /// Kills and reaps the children of `ownPid` it did not start (escapees handed over by the
    /// subreaper flag), once they are `minAgeMs` old (a child is registered just after its spawn
    /// returns, so a younger one may be the daemon's own); and kills the tree of every started
    /// child that has more than `cap` processes below it (a fork bomb).
    public static func sweep(
        ownPid: pid_t = getpid(), minAgeMs: Int64 = 1000, cap: Int?, killEscapees: Bool = true
    ) -> Sweep {
        var result = Sweep()
        let procs = snapshot()
        let started = startedChildren
        let hz = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
        let nowTicks = uptimeTicks(hz: hz)
        if killEscapees {
            for p in procs where p.ppid == ownPid && started[p.pid] == nil {
                let ageMs = nowTicks > p.startTicks ? Int64((nowTicks - p.startTicks) * 1000 / hz) : 0
                guard ageMs >= minAgeMs else { continue }
                if p.state == "Z" {
                    var status: Int32 = 0
                    if waitpid(p.pid, &status, WNOHANG) == p.pid { result.reaped += 1 }
                    continue
                }
                if p.pgid == p.pid { _ = kill(-p.pid, SIGKILL) }
                _ = kill(p.pid, SIGKILL)
                result.escapees.append((p.pid, p.comm))
            }
        }
        for path in emptying.withLock({ $0 }) where PluginCgroups.remove(path) {
            _ = emptying.withLock { $0.remove(path) }
        }
        if let cap {
            for (pid, label) in started {
                let below = descendants(of: pid, in: procs)
                if below.count > cap {
                    killTree(pid)
                    result.overCap.append((pid, label, below.count))
                }
            }
        }
        return result
    }

    static func uptimeTicks(hz: UInt64) -> UInt64 {
        guard let text = PluginCgroups.readFile("/proc/uptime"),
            let secs = Double(text.split(separator: " ").first ?? "")
        else { return 0 }
        return UInt64(secs * Double(hz))
    }
}
