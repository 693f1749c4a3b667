public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A cgroup v2 of its own for every plugin and command the daemon starts, where the daemon may
/// make cgroups (a subtree systemd delegated to it with `Delegate=yes`, or a root-owned
/// hierarchy). A process cannot leave its cgroup by forking or `setsid()`, so killing the cgroup
/// (`cgroup.kill`) ends everything the plugin started, at once. Where the hierarchy offers the
/// `pids` and `memory` controllers, each cgroup also gets `pids.max` (`max_plugin_processes`)
/// and `memory.max` (`plugin_memory_max_mb`): hard bounds, enforced by the kernel.
///
/// Layout under the daemon's own cgroup `C`: `C/pollerd.daemon` (the daemon moves there, since
/// a cgroup that hands controllers to its children may hold no process itself) and
/// `C/pollerd.plugins/NAME@DAEMONPID.DAEMONSTART.N` per child: the name says which daemon made
/// it, so a daemon that starts finds the cgroups of daemons that died (a SIGKILL leaves them
/// with their processes) and kills and removes them (`sweepStale`).
public struct PluginCgroups: Sendable {
    /// `C/pollerd.plugins`.
    public let base: String
    /// The controllers each plugin cgroup has (`pids`, `memory`, or none).
    public let controllers: Set<String>
    public let maxProcesses: Int?
    public let memoryMaxBytes: Int64?
    /// This daemon, as its cgroups' names carry it: `PID.STARTTICKS`.
    public let owner: String
    private static let sequence = Atomic<UInt64>(0)
    /// Emptied cgroups kept for the next child of the same label: making and removing a cgroup
    /// for every spawn cost ~90 µs of CPU (an ephemeral plugin at 71 % of the bare spawn loop
    /// instead of 90 %).
    private let spares = Spares()

    final class Spares: Sendable {
        /// At most this many kept per label, and in all.
        static let perLabel = 8
        static let total = 256
        let byLabel = Mutex<[String: [Slot]]>([:])

        func take(_ label: String) -> Slot? { byLabel.withLock { $0[label]?.popLast() } }

        func keep(_ slot: Slot, label: String) -> Bool {
            byLabel.withLock { all in
                guard (all[label]?.count ?? 0) < Self.perLabel, all.values.reduce(0, { $0 + $1.count }) < Self.total
                else { return false }
                all[label, default: []].append(slot)
                return true
            }
        }

        func drain() -> [Slot] {
            byLabel.withLock { all in
                defer { all = [:] }
                return all.values.flatMap { $0 }
            }
        }
    }

    init(base: String, controllers: Set<String>, maxProcesses: Int?, memoryMaxBytes: Int64?) {
        self.base = base
        self.controllers = controllers
        self.maxProcesses = maxProcesses
        self.memoryMaxBytes = memoryMaxBytes
        owner = "\(getpid()).\(ProcessTree.read(getpid())?.startTicks ?? 0)"
    }

    /// Where this process's cgroup v2 is, from `/proc/self/mountinfo` and `/proc/self/cgroup`.
    public static func ownCgroup() -> String? {
        guard let cg = readFile("/proc/self/cgroup"),
            let line = cg.split(separator: "\n").first(where: { $0.hasPrefix("0::") }),
            let info = readFile("/proc/self/mountinfo")
        else { return nil }
        let path = String(line.dropFirst(3))
        // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS … - FSTYPE SOURCE SUPER"
        for l in info.split(separator: "\n") {
            let halves = l.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            guard fields.count >= 5 else { continue }
            let mount = String(fields[4])
            return path == "/" ? mount : mount + path
        }
        return nil
    }

    /// Sets the cgroups up, or says why not (no cgroup v2, or not allowed to make cgroups).
    public static func setUp(maxProcesses: Int?, memoryMaxBytes: Int64?) -> Result<PluginCgroups, SetupFailure> {
        guard let own = ownCgroup() else { return .failure(SetupFailure("no cgroup v2 hierarchy is mounted")) }
        // The root cgroup has no cgroup.type, and may hold processes while it hands controllers down.
        let isRoot = !FileManager.default.fileExists(atPath: own + "/cgroup.type")
        let available = Set((readFile(own + "/cgroup.controllers") ?? "").split(separator: " ").map(String.init))
        let wanted = available.intersection(["pids", "memory"])
        let base = own + "/pollerd.plugins"
        guard mkdir(base, 0o755) == 0 || errno == EEXIST else {
            return .failure(
                SetupFailure(
                    "cannot make cgroups under \(own) (\(String(cString: strerror(errno)))); run under systemd with Delegate=yes"
                ))
        }
        var controllers: Set<String> = []
        if !wanted.isEmpty {
            // Controllers go to the children only from a cgroup without processes of its own:
            // the daemon moves to a leaf beside the plugins first (the root cgroup is exempt).
            if !isRoot {
                let leaf = own + "/pollerd.daemon"
                _ = mkdir(leaf, 0o755)
                _ = writeFile(leaf + "/cgroup.procs", "\(getpid())")
            }
            let plus = wanted.sorted().map { "+" + $0 }.joined(separator: " ")
            if writeFile(own + "/cgroup.subtree_control", plus), writeFile(base + "/cgroup.subtree_control", plus) {
                controllers = wanted
            }
        }
        return .success(
            PluginCgroups(
                base: base, controllers: controllers, maxProcesses: maxProcesses, memoryMaxBytes: memoryMaxBytes))
    }

    public struct SetupFailure: Error, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// A cgroup made for a child about to start, and its `cgroup.procs` open for writing (the
    /// child writes itself in before it execs: `cpollerd_spawn`). The descriptor stays open while
    /// the cgroup is in use or kept for reuse; `release` and `removeSpares` close it.
    public struct Slot: Sendable {
        public let path: String
        public let procs: Int32
    }

    /// A cgroup of its own with the bounds for a child about to start (a kept one of the same
    /// label, or a new one); nil when none could be made (the child then runs in the daemon's
    /// cgroup). Hand it back with `release` once the child is reaped.
    public func prepare(label: String) -> Slot? {
        if let slot = spares.take(label) { return slot }
        let name = label.unicodeScalars.map {
            CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_" ? Character($0) : "_"
        }
        let n = Self.sequence.add(1, ordering: .relaxed).newValue
        let path = base + "/" + String(String(name).prefix(40)) + "@\(owner).\(n)"
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { return nil }
        if controllers.contains("pids"), let n = maxProcesses { _ = Self.writeFile(path + "/pids.max", "\(n + 1)") }
        if controllers.contains("memory"), let m = memoryMaxBytes { _ = Self.writeFile(path + "/memory.max", "\(m)") }
        let fd = open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            _ = rmdir(path)
            return nil
        }
        return Slot(path: path, procs: fd)
    }

    /// Moves a just-started child into a cgroup of its own with the bounds; the cgroup's path,
    /// or nil when it could not be made (the child then runs in the daemon's cgroup). For
    /// children started by other means than `cpollerd_spawn` (a `command`'s, through
    /// swift-subprocess), which run a moment outside their cgroup.
    public func place(_ pid: pid_t, label: String) -> String? {
        guard let slot = prepare(label: label) else { return nil }
        defer { close(slot.procs) }
        let bytes = Array("\(pid)".utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(slot.procs, $0.baseAddress, $0.count) }) == bytes.count else {
            _ = rmdir(slot.path)
            return nil
        }
        return slot.path
    }

    /// Ends a reaped child's cgroup: an empty one is kept for the next child of the same label
    /// (`true`); one that still holds processes (what the child left running) is killed, and the
    /// caller removes it once it is empty (`false`).
    public func release(_ slot: Slot, label: String) -> Bool {
        if Self.processes(slot.path) == 0, spares.keep(slot, label: label) { return true }
        close(slot.procs)
        Self.kill(slot.path)
        return false
    }

    /// Removes the kept cgroups (at shutdown).
    public func removeSpares() {
        for slot in spares.drain() {
            close(slot.procs)
            _ = Self.remove(slot.path)
        }
    }

    /// What `sweepStale` found.
    public struct StaleSweep: Sendable, Equatable {
        /// Cgroups of dead daemons that still held processes, killed and removed.
        public var killed: [String] = []
        /// Empty cgroups of dead daemons, removed.
        public var removed = 0
    }

    /// Kills and removes the cgroups under `base` that daemons which are no longer running left
    /// behind (a SIGKILLed daemon's children live on in them). A cgroup's daemon is read from its
    /// name and judged by pid and start time (`isAlive`), never by a process name; a cgroup of the
    /// older `NAME-PID` layout is stale once its child `PID` is gone.
    public static func sweepStale(base: String, isAlive: (pid_t, UInt64?) -> Bool) -> StaleSweep {
        var out = StaleSweep()
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: base) else { return out }
        for name in names {
            let path = base + "/" + name
            guard FileManager.default.fileExists(atPath: path + "/cgroup.procs") else { continue }
            let stale: Bool
            if let at = name.lastIndex(of: "@") {
                let parts = name[name.index(after: at)...].split(separator: ".")
                guard parts.count == 3, let pid = pid_t(parts[0]), let start = UInt64(parts[1]) else { continue }
                stale = !isAlive(pid, start)
            } else if let dash = name.lastIndex(of: "-"), let pid = pid_t(name[name.index(after: dash)...]) {
                stale = !isAlive(pid, nil)
            } else {
                continue
            }
            guard stale else { continue }
            if processes(path) > 0 {
                kill(path)
                out.killed.append(name)
            } else {
                out.removed += 1
            }
            // Killed processes leave their cgroup a moment later: a few tries, then leave it.
            for _ in 0..<50 where !remove(path) { usleep(2000) }
        }
        return out
    }

    /// Kills every process in the cgroup (`cgroup.kill`, Linux 5.14+; else each pid in it).
    public static func kill(_ path: String) {
        if writeFile(path + "/cgroup.kill", "1") { return }
        for p in (readFile(path + "/cgroup.procs") ?? "").split(separator: "\n") {
            if let pid = pid_t(p) { _ = Glibc.kill(pid, SIGKILL) }
        }
    }

    /// Removes an empty cgroup; false while processes remain (killed ones take a moment).
    public static func remove(_ path: String) -> Bool {
        rmdir(path) == 0 || errno == ENOENT
    }

    /// How many processes the cgroup holds.
    public static func processes(_ path: String) -> Int {
        (readFile(path + "/cgroup.procs") ?? "").split(separator: "\n").count
    }

    /// A small kernel file read to its end (`/proc` and cgroup files report a size of 0).
    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf.prefix(n)
        }
        return String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @discardableResult
    static func writeFile(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }
}
