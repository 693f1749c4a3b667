import Foundation
import PollerdPollers
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A long-lived plugin process and its pipes, on plain non-blocking descriptors.
///
/// Writes: a frame sent `now` is written by its sender, right away (a pipe with room takes it
/// without blocking). Otherwise a flush task, or the reader thread when the sender runs on it,
/// writes everything queued in one `write` (see `send`); frames sent during a write go out in the
/// writer's next one. When the pipe is full (the plugin is not reading), the rest moves to a
/// worker thread that waits for room, so no task ever blocks on the pipe.
///
/// Reads: `serve` runs on a thread of its own for the life of the process, `poll(2)`ing stdout
/// and stderr. Each stdout line goes to the caller as it arrives (its reply is routed from that
/// thread); stderr is always drained. No task hop sits between the pipe and the waiting tick;
/// with a `ReaderExecutor`, the waiting tick runs on this thread too.
///
/// Why not swift-subprocess (which the plugins used before): its async writes register the
/// descriptor with its event loop on each call and its reads hop through dispatch; with 16 ticks
/// in flight that was more than half of the daemon's CPU per round trip (BENCHMARKS.md).
final class PluginChannel: Sendable {
    let pid: pid_t
    private let stdinFD: Int32
    private let stdoutFD: Int32
    private let stderrFD: Int32

    private let output: Mutex<ChannelWriteState>
    /// Set when the child is reaped: from then on its pid (and group id) may name another
    /// process, so nothing signals it any more.
    private let reapedFlag = Mutex(false)

    init(_ child: DirectSpawn.Child, maxQueuedBytes: Int = defaultMaxQueuedBytes) {
        self.maxQueuedBytes = maxQueuedBytes
        output = Mutex(ChannelWriteState(maxQueuedBytes: maxQueuedBytes))
        // A write to a plugin that died must fail with EPIPE, not end the daemon.
        ProcessGroup.ignoreSIGPIPE()
        pid = child.pid
        stdinFD = child.stdin
        stdoutFD = child.stdout
        stderrFD = child.stderr
    }

    // MARK: writing

    /// Frames waiting for a plugin that does not read its stdin are bounded: past this many
    /// bytes the plugin counts as hung and is killed (the supervisor restarts it).
    static let defaultMaxQueuedBytes = 16 << 20
    let maxQueuedBytes: Int

    /// Queues `frame` and a newline for the plugin's stdin; false once input is closed. A plugin
    /// with more than `maxQueuedBytes` waiting is killed as hung.
    ///
    /// `now`: the frame is written at once, by the caller (`LongLivedPlugin.writeAtOnce` says
    /// when). Otherwise the write is left to a flush task, which runs after the tasks already
    /// queued on the executor, typically the other ticks that the same reply batch resumed:
    /// their frames go out together, in one `write` and one wake-up of the plugin.
    /// `readerFlushes`: the caller runs on the reader thread serving this channel with a
    /// `ReaderExecutor`; the reader writes the held frames itself once it has run its queued
    /// jobs, with no flush task.
    @discardableResult
    func send(_ frame: [UInt8], now: Bool = true, readerFlushes: Bool = false) -> Bool {
        let next = output.withLock { $0.send(frame, now: now, readerFlushes: readerFlushes) }
        switch next {
        case .refused: return false
        case .queued: return true
        case .write(let bytes):
            flush(bytes, waiting: false)
            return true
        case .scheduleFlush:
            // Unstructured on purpose: it must run after the tasks already enqueued (see above),
            // and nobody waits for it; the ticks wait for their replies.
            Task { self.scheduledFlush() }
            return true
        case .killAsHung:
            // Its reader sees stdout end and fails what is in flight; the supervisor restarts it.
            hung.withLock { $0 = true }
            killGroup()
            return false
        }
    }

    private func scheduledFlush() {
        switch output.withLock({ $0.runFlush() }) {
        case .nothing: break
        case .write(let bytes): flush(bytes, waiting: false)
        case .closeFD: close(stdinFD)
        }
    }

    /// Whether the plugin was killed for not reading its stdin.
    var killedAsHung: Bool { hung.withLock { $0 } }
    private let hung = Mutex(false)

    /// Writes `bytes`, then whatever was queued meanwhile, until the queue is empty. Without
    /// `waiting`, a full pipe hands the rest to a worker thread that waits for room.
    private func flush(_ first: [UInt8], waiting: Bool) {
        var bytes = first
        var offset = 0
        while true {
            var failed = false
            while offset < bytes.count {
                let k = bytes.withUnsafeBytes { write(stdinFD, $0.baseAddress! + offset, bytes.count - offset) }
                if k > 0 {
                    offset += k
                    continue
                }
                if k < 0 && errno == EINTR { continue }
                if k < 0 && errno == EAGAIN {
                    if !waiting {
                        let rest = Array(bytes[offset...])
                        BlockingWorkers.shared.run { self.flush(rest, waiting: true) }
                        return
                    }
                    if !waitForRoom() { break }
                    continue
                }
                // EPIPE and the like: the plugin is gone; the reader sees it end.
                failed = true
                break
            }
            switch output.withLock({ $0.wrote(failed: failed) }) {
            case .write(let more):
                bytes = more
                offset = 0
            case .done:
                return
            case .doneCloseFD:
                close(stdinFD)
                return
            }
        }
    }

    /// Waits until the pipe has room; false when the process ended meanwhile.
    private func waitForRoom() -> Bool {
        while !output.withLock({ $0.abandoned }) {
            var p = pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)
            let n = poll(&p, 1, 100)
            if n > 0 { return true } // room, or an error the next write reports
        }
        return false
    }

    /// Refuses further frames; stdin is closed (EOF for the plugin) once what is queued is written:
    /// now if nothing is, else by the write in progress or the pending flush.
    func closeInput() {
        if output.withLock({ $0.closeInput() }) { close(stdinFD) }
    }

    /// Refuses further frames and drops what is queued: the process ended.
    private func abandonInput() {
        if output.withLock({ $0.abandon() }) { close(stdinFD) }
    }

    // MARK: reading

    /// Reads the plugin's stdout line by line (each line without its newline goes to `onLine`)
    /// and drains its stderr, until stdout ends. A line longer than `limit` is dropped without
    /// being kept: `onOversize` hears of it once, with the frame's top-level id
    /// (`PluginWire.FrameIDScanner`) as soon as it is seen, or with nil when the line ends
    /// without one. Then the group is killed, stderr read to its end (at most `grace` longer),
    /// input dropped and the child reaped. Returns how the process ended.
    ///
    /// With an `executor`, the calling thread runs the tasks that prefer it while it serves (it
    /// attaches now and detaches when stdout is done, before the reap): before each `poll` it runs the jobs queued (the ticks its last read resumed),
    /// then writes the frames they held back for batching, in one `write` (unless `holdFrames`,
    /// asked with their number, says they may wait for the next round), and polls the
    /// executor's eventfd with the pipes.
    /// Blocks: run it on a thread of its own.
    func serve(
        limit: Int, grace: Duration, executor: ReaderExecutor? = nil, holdFrames: ((Int) -> Bool)? = nil,
        onLine: ([UInt8]) -> Void, onOversize: (Int64?) -> Void, onStderr: ([UInt8]) -> Void
    ) -> String {
        var line: [UInt8] = []
        /// Set while a line over the limit is being dropped, to its end.
        var dropping: PluginWire.FrameIDScanner?
        var droppingReported = false
        /// Feeds a dropped line's bytes; reports its id once seen, or nil at its end.
        func drop(_ bytes: ArraySlice<UInt8>, ends: Bool) {
            if !droppingReported {
                dropping!.feed(bytes)
                if let id = dropping!.id {
                    onOversize(id)
                    droppingReported = true
                } else if ends {
                    onOversize(nil)
                    droppingReported = true
                }
            }
            if ends { dropping = nil }
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var outFD = stdoutFD
        var errFD = stderrFD
        var stdoutEndedAt: ContinuousClock.Instant?
        var lastExitCheck = ContinuousClock.now
        executor?.attach()
        while outFD >= 0 || errFD >= 0 {
            if let ended = stdoutEndedAt, ContinuousClock.now - ended > grace { break }
            // stderr first: what the plugin wrote there before a reply is in the tail by the
            // time the reply is routed, so the tick's error carries it.
            var fds: [pollfd] = []
            if errFD >= 0 { fds.append(pollfd(fd: errFD, events: Int16(POLLIN), revents: 0)) }
            if outFD >= 0 { fds.append(pollfd(fd: outFD, events: Int16(POLLIN), revents: 0)) }
            let idleTimeout: Int32 = stdoutEndedAt == nil ? 1000 : 50
            var timeout = idleTimeout
            if let executor {
                executor.runQueued()
                let (held, closing) = output.withLock { o in (o.heldForReader, o.closed) }
                if held > 0 {
                    // Held frames wait while the plugin has plenty to answer (`holdFrames`): they go
                    // out together later, one wake-up of the plugin for several. The reader then
                    // looks again within a millisecond even if no reply comes. Once input is
                    // closed (shutdown) they go now, and stdin closes after them.
                    if !closing && holdFrames?(held) == true { timeout = 1 } else { scheduledFlush() }
                }
                if !executor.prepareToSleep() { timeout = 0 }
                fds.append(pollfd(fd: executor.wakeFD, events: Int16(POLLIN), revents: 0))
            }
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if let executor { executor.awoke(signalled: fds.removeLast().revents != 0) }
            if n < 0 { if errno == EINTR { continue } else { break } }
            // Checked when a poll times out, and at least once a second when jobs keep waking it.
            if stdoutEndedAt == nil
                && ((n == 0 && timeout == idleTimeout) || ContinuousClock.now - lastExitCheck > .seconds(1))
            {
                lastExitCheck = .now
                if exited() {
                    // The child is gone but something it started (outside its group) holds stdout
                    // open: the plugin is over all the same.
                    killGroup()
                    stdoutEndedAt = .now
                }
            }
            for p in fds where p.revents != 0 {
                let k = read(p.fd, &buffer, buffer.count)
                if k < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                if k <= 0 {
                    if p.fd == outFD {
                        close(outFD)
                        outFD = -1
                        // The plugin closed its stdout: it is ending, or broken. Either way it
                        // serves no more ticks; its group goes now.
                        killGroup()
                        stdoutEndedAt = .now
                    } else {
                        close(errFD)
                        errFD = -1
                    }
                    continue
                }
                if p.fd == errFD {
                    onStderr(Array(buffer[0..<k]))
                    continue
                }
                var from = 0
                while let nl = buffer[from..<k].firstIndex(of: 10) {
                    if dropping != nil {
                        drop(buffer[from..<nl], ends: true)
                    } else if line.isEmpty && nl - from <= limit {
                        onLine(Array(buffer[from..<nl]))
                    } else {
                        line.append(contentsOf: buffer[from..<nl])
                        if line.count > limit {
                            dropping = PluginWire.FrameIDScanner()
                            droppingReported = false
                            drop(line[...], ends: true)
                        } else {
                            onLine(line)
                        }
                    }
                    line.removeAll(keepingCapacity: line.count <= 65536)
                    from = nl + 1
                }
                if from < k && dropping != nil {
                    drop(buffer[from..<k], ends: false)
                } else if from < k {
                    line.append(contentsOf: buffer[from..<k])
                    if line.count > limit {
                        dropping = PluginWire.FrameIDScanner()
                        droppingReported = false
                        drop(line[...], ends: false)
                        line = []
                    }
                }
            }
        }
        // Jobs queued now, and from now on, run on the global executor while the child is reaped.
        executor?.detach()
        if outFD >= 0 { close(outFD) }
        if errFD >= 0 { close(errFD) }
        abandonInput()
        killGroup()
        // Wait for the exit without reaping, then reap under the flag `killGroup` checks.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        let status: Int32 = reapedFlag.withLock { r in
            var st: Int32 = 0
            _ = waitpid(pid, &st, 0)
            ProcessTree.reaped(pid)
            r = true
            return st
        }
        return DirectSpawn.describe(status: status)
    }

    /// Whether the child has exited (without reaping it).
    private func exited() -> Bool {
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else { return false }
        return info._sifields._kill.si_pid != 0
    }

    /// SIGKILLs the plugin's process group, unless the child was already reaped.
    func killGroup() {
        reapedFlag.withLock { r in if !r { ProcessTree.killTree(pid) } }
    }

    /// Whether the child has exited and was reaped.
    var reaped: Bool { reapedFlag.withLock { $0 } }
}
