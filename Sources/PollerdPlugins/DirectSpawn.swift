import CPollerdSpawn
import Foundation
import PollerdPollers
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One ephemeral plugin exchange done with `cpollerd_spawn` and a `poll(2)` loop on a thread of
/// its own: spawn in a new process group, write the request and close stdin, read stdout up to
/// the first newline (bounded), drain stderr, then end the group and reap the child.
///
/// Why not swift-subprocess here: its spawn-and-pipes path tops out at 77 % of a bare C loop on
/// this machine (see shared/reference/machine-limits.md, 1.36k vs 1.76k spawns/s), below the
/// 80 % the ephemeral lifecycle must reach. `spawn` also starts the long-lived lifecycle's
/// processes (`PluginChannel`); only the `command` poller still uses swift-subprocess.
/// Each exchange runs on a worker thread of its own (`BlockingWorkers`), in place when the tick
/// already runs on one: a hanging plugin holds up no other tick.
enum DirectSpawn {
    struct Outcome: Sendable {
        /// The reply line without its newline (or what came before EOF).
        var line: [UInt8] = []
        var sawNewline = false
        var overflow = false
        /// `exited with status N` or `was killed by signal N`.
        var how = ""
    }

    enum Failure: Error, Sendable {
        case notFound(String)
        case spawn(String)
    }

    /// Lets the async side stop a running exchange: SIGTERM to the group now, SIGKILL after the grace.
    final class Control: Sendable {
        private struct State {
            var pgid: pid_t = 0
            var cancelledAt: ContinuousClock.Instant?
        }
        private let state = Mutex(State())

        func started(pgid: pid_t) { state.withLock { $0.pgid = pgid } }

        func cancel() {
            let pgid: pid_t = state.withLock { s in
                if s.cancelledAt == nil { s.cancelledAt = .now }
                return s.pgid
            }
            if pgid > 1 { _ = kill(-pgid, SIGTERM) }
        }

        var cancelledAt: ContinuousClock.Instant? { state.withLock { $0.cancelledAt } }
    }

    /// Runs one exchange on a worker thread; resumes when the child is reaped and its group is gone.
    static func run(
        executable: String, args: [String], env: [String: String], workingDirectory: String, request: [UInt8],
        limit: Int, graceMs: Int64, onStderr: @escaping @Sendable ([UInt8]) -> Void
    ) async -> Result<Outcome, Failure> {
        let control = Control()
        return await withTaskCancellationHandler {
            // Already on a worker (the tick started on `BlockingWorkers.shared`): no hand-off.
            if BlockingWorkers.shared.isCurrent {
                return exchange(
                    executable: executable, args: args, env: env, workingDirectory: workingDirectory,
                    request: request, limit: limit, graceMs: graceMs, control: control, onStderr: onStderr)
            }
            return await withCheckedContinuation { (c: CheckedContinuation<Result<Outcome, Failure>, Never>) in
                BlockingWorkers.shared.run {
                    c.resume(
                        returning: exchange(
                            executable: executable, args: args, env: env, workingDirectory: workingDirectory,
                            request: request, limit: limit, graceMs: graceMs, control: control, onStderr: onStderr))
                }
            }
        } onCancel: {
            control.cancel()
        }
    }

    /// The executable: a path as given, or the first match on the child's PATH.
    static func resolve(_ command: String, path: String?) -> String? {
        if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
        for dir in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(command)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// A spawned child: its pid (also its process group) and our ends of its three pipes, each
    /// close-on-exec and non-blocking.
    struct Child: Sendable {
        var pid: pid_t
        var stdin: Int32
        var stdout: Int32
        var stderr: Int32
    }

    /// Spawns `executable` in a process group of its own with three pipes, the given environment
    /// and working directory, no inherited descriptor beyond 0–2, no blocked signals and default
    /// dispositions; and, set before it execs, a death signal (SIGKILL when the daemon dies, a
    /// SIGKILL of the daemon included), the children's nice value, and a cgroup of its own where
    /// the daemon has them (`cpollerd_spawn`, on the `SpawnThread`).
    ///
    /// The death signal fires when the spawning thread exits. A child that may outlive the call
    /// (a long-lived plugin) is spawned on the `SpawnThread`, which lives as long as the daemon;
    /// `inPlace` spawns from the calling thread instead, for a child that is reaped before that
    /// thread can end (an ephemeral exchange, run whole on its worker): no hop between threads.
    static func spawn(
        executable: String, args: [String], env: [String: String], workingDirectory: String, inPlace: Bool = false
    ) -> Result<Child, Failure> {
        guard let exe = resolve(executable, path: env["PATH"]) else { return .failure(.notFound(executable)) }
        var inPipe: [Int32] = [-1, -1]
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard cpollerd_pipe_cloexec(&inPipe) == 0 else {
            return .failure(.spawn("pipe: \(String(cString: strerror(errno)))"))
        }
        guard cpollerd_pipe_cloexec(&outPipe) == 0 else {
            closeAll(inPipe)
            return .failure(.spawn("pipe: \(String(cString: strerror(errno)))"))
        }
        guard cpollerd_pipe_cloexec(&errPipe) == 0 else {
            closeAll(inPipe + outPipe)
            return .failure(.spawn("pipe: \(String(cString: strerror(errno)))"))
        }

        let argv = ([exe] + args).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        let exePath = strdup(exe)
        let cwd = strdup(workingDirectory)
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
            free(exePath)
            free(cwd)
        }
        let label = (executable as NSString).lastPathComponent
        let slot = ProcessTree.prepareCgroup(label: label)
        let nice = ProcessTree.niceForChildren
        let daemon = getpid()
        let result = argv.withUnsafeBufferPointer { argvBuf in
            envp.withUnsafeBufferPointer { envpBuf in
                let request = SpawnRequest(
                    raw: cpollerd_spawn_request(
                        path: exePath, argv: argvBuf.baseAddress, envp: envpBuf.baseAddress, working_directory: cwd,
                        stdin_fd: inPipe[0], stdout_fd: outPipe[1], stderr_fd: errPipe[1],
                        cgroup_procs_fd: slot?.procs ?? -1, set_nice: nice == nil ? 0 : 1, nice: Int32(nice ?? 0),
                        death_signal: SIGKILL, parent_pid: daemon))
                return inPlace ? Self.start(request) : SpawnThread.shared.perform { Self.start(request) }
            }
        }
        close(inPipe[0])
        close(outPipe[1])
        close(errPipe[1])
        let pid: pid_t
        switch result {
        case .success(let p): pid = p
        case .failure(let e):
            if let slot {
                close(slot.procs)
                _ = rmdir(slot.path)
            }
            closeAll([inPipe[1], outPipe[0], errPipe[0]])
            return .failure(e.code == ENOENT ? .notFound(executable) : .spawn(String(cString: strerror(e.code))))
        }
        for fd in [inPipe[1], outPipe[0], errPipe[0]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        ProcessTree.started(pid, label: label, in: slot)
        return .success(Child(pid: pid, stdin: inPipe[1], stdout: outPipe[0], stderr: errPipe[0]))
    }

    /// The errno a spawn failed with.
    struct SpawnErrno: Error {
        let code: Int32
    }

    /// A spawn request's pointers, handed to the spawn thread while the caller waits on it.
    private struct SpawnRequest: @unchecked Sendable {
        var raw: cpollerd_spawn_request
    }

    /// Starts the child from the calling thread; retries while the executable is busy being written.
    private static func start(_ request: SpawnRequest) -> Result<pid_t, SpawnErrno> {
        var raw = request.raw
        var pid: Int32 = 0
        var rc = cpollerd_spawn(&raw, &pid)
        // ETXTBSY: the file was just written and some process forked meanwhile still holds a
        // write descriptor to it (a plugin being updated, or any fork racing a write). It passes.
        var retry: UInt32 = 1000
        while rc == ETXTBSY, retry <= 128_000 {
            usleep(retry)
            retry *= 2
            rc = cpollerd_spawn(&raw, &pid)
        }
        return rc == 0 ? .success(pid) : .failure(SpawnErrno(code: rc))
    }

    /// Waits up to `grace` for `pid` to exit by itself (on a pidfd where the kernel has them),
    /// else SIGKILLs its tree; `cut` says to stop waiting early. Then SIGKILLs what is left of its
    /// process group and reaps it. The group is killed before the reap, while the exited child
    /// still holds its pid: after the reap the id could name a new process's group. Returns the
    /// wait status.
    static func reap(_ pid: pid_t, grace: Duration, cut: () -> Bool = { false }) -> Int32 {
        var status: Int32 = 0
        let pidfd = cpollerd_pidfd_open(pid)
        var remaining = grace
        var pause: UInt32 = 20
        while cpollerd_has_exited(pid) == 0 {
            if cut() || remaining <= .zero {
                ProcessTree.killTree(pid)
                break
            }
            let started = ContinuousClock.now
            if pidfd >= 0 {
                var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
                _ = poll(&p, 1, Int32(min(50, max(1, remaining / .milliseconds(1)))))
            } else {
                usleep(pause)
                pause = min(pause * 2, 5000)
            }
            remaining -= ContinuousClock.now - started
        }
        if pidfd >= 0 { close(pidfd) }
        _ = kill(-pid, SIGKILL)
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        ProcessTree.reaped(pid)
        return status
    }

    /// `exited with status N` or `was killed by signal N`, from a wait status.
    static func describe(status: Int32) -> String {
        let sig = status & 0x7f
        return sig == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(sig)"
    }

    private static func exchange(
        executable: String, args: [String], env: [String: String], workingDirectory: String, request: [UInt8],
        limit: Int, graceMs: Int64, control: Control, onStderr: ([UInt8]) -> Void
    ) -> Result<Outcome, Failure> {
        let child: Child
        // In place: this worker runs the whole exchange and reaps the child before it can end.
        switch spawn(executable: executable, args: args, env: env, workingDirectory: workingDirectory, inPlace: true) {
        case .failure(let f): return .failure(f)
        case .success(let c): child = c
        }
        let pid = child.pid
        control.started(pgid: pid)
        if control.cancelledAt != nil { _ = kill(-pid, SIGTERM) } // cancelled while spawning

        var out = Outcome()
        var stdinFD = child.stdin
        var stdoutFD = child.stdout
        var stderrFD = child.stderr
        var written = 0
        var replyAt: ContinuousClock.Instant?
        var hardKilled = false
        let grace = Duration.milliseconds(graceMs)
        var buffer = [UInt8](repeating: 0, count: 65536)

        // SIGKILL takes everything below the plugin, wherever it went.
        func killGroup(_ sig: Int32) { if sig == SIGKILL { ProcessTree.killTree(pid) } else { _ = kill(-pid, sig) } }

        while stdoutFD >= 0 || stderrFD >= 0 {
            // Ends the group: after a reply, once the plugin had the grace to exit by itself;
            // after a cancellation (timeout or shutdown), once SIGTERM had the grace.
            let now = ContinuousClock.now
            if !hardKilled, let r = replyAt, now - r > grace {
                killGroup(SIGKILL)
                hardKilled = true
            }
            if !hardKilled, let c = control.cancelledAt, now - c > grace {
                killGroup(SIGKILL)
                hardKilled = true
            }
            if !hardKilled, out.overflow {
                killGroup(SIGKILL)
                hardKilled = true
            }

            var fds: [pollfd] = []
            if stdinFD >= 0 { fds.append(pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)) }
            if stdoutFD >= 0 { fds.append(pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)) }
            if stderrFD >= 0 { fds.append(pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), 50)
            if n < 0 { if errno == EINTR { continue } else { break } }
            for p in fds where p.revents != 0 {
                if p.fd == stdinFD {
                    let k = request.withUnsafeBytes {
                        write(stdinFD, $0.baseAddress! + written, request.count - written)
                    }
                    if k > 0 { written += k }
                    if (k < 0 && errno != EAGAIN && errno != EINTR) || written >= request.count
                        || p.revents & Int16(POLLERR | POLLHUP) != 0
                    {
                        close(stdinFD)
                        stdinFD = -1
                    }
                } else if p.fd == stdoutFD {
                    let k = read(stdoutFD, &buffer, buffer.count)
                    if k > 0 {
                        if !out.sawNewline && !out.overflow {
                            let chunk = buffer[0..<k]
                            if let nl = chunk.firstIndex(of: 10) {
                                out.line.append(contentsOf: chunk[..<nl])
                                out.sawNewline = true
                                replyAt = .now
                            } else {
                                out.line.append(contentsOf: chunk)
                            }
                            if out.line.count > limit { out.overflow = true }
                        }
                    } else if k == 0 || (errno != EAGAIN && errno != EINTR) {
                        close(stdoutFD)
                        stdoutFD = -1
                    }
                } else if p.fd == stderrFD {
                    let k = read(stderrFD, &buffer, buffer.count)
                    if k > 0 {
                        onStderr(Array(buffer[0..<k]))
                    } else if k == 0 || (errno != EAGAIN && errno != EINTR) {
                        close(stderrFD)
                        stderrFD = -1
                    }
                }
            }
            if stdinFD >= 0, written >= request.count {
                close(stdinFD)
                stdinFD = -1
            }
        }
        if stdinFD >= 0 { close(stdinFD) }
        if stdoutFD >= 0 { close(stdoutFD) }
        if stderrFD >= 0 { close(stderrFD) }

        // The child closed its output; it gets the grace to exit, then the group is killed.
        // Grandchildren go with the tick: `reap` kills the group and the cgroup. Once the plugin
        // has exited, what left its group was handed to the daemon (a subreaper), whose sweep
        // kills it; a scan of `/proc` here cost more than the spawn itself (issue 29, point 8).
        let status = reap(pid, grace: grace) { control.cancelledAt != nil && hardKilled }
        out.how = describe(status: status)
        return .success(out)
    }

    private static func closeAll(_ fds: [Int32]) {
        for fd in fds where fd >= 0 { close(fd) }
    }
}
