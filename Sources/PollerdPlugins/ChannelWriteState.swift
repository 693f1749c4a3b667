/// The write side of a plugin's stdin, as a plain value: what is queued, who writes it, when the
/// descriptor closes. Every event returns what to do; `PluginChannel` holds it in a `Mutex` and
/// does the writes, the flush task and the `close` outside the lock. Tested with no process.
///
/// Rules: one writer at a time (a sender writing at once, a scheduled flush, or the worker that
/// waits for room); frames sent meanwhile are queued and the writer takes them when its bytes
/// are out. Past `maxQueuedBytes` queued the plugin counts as hung. Stdin is closed exactly once:
/// by `closeInput` when nothing is being written or waits for a flush, else by whoever finishes
/// the last write or runs the pending flush.
struct ChannelWriteState: Sendable {
    let maxQueuedBytes: Int
    /// Bytes waiting, each frame followed by a newline.
    private(set) var queued: [UInt8] = []
    /// Frames in `queued`.
    private(set) var queuedFrames = 0
    /// Someone is writing: others only queue.
    private(set) var writing = false
    /// No more frames: input was closed, or the process ended.
    private(set) var closed = false
    /// What is queued is dropped: the process ended or a write failed.
    private(set) var abandoned = false
    /// A flush (a task, or the reader with `flushByReader`) will write what is queued.
    private(set) var flushScheduled = false
    /// The pending flush is the reader's (the frames were sent from its thread): no task comes.
    private(set) var flushByReader = false
    /// The descriptor was closed.
    private(set) var fdClosed = false

    init(maxQueuedBytes: Int) { self.maxQueuedBytes = maxQueuedBytes }

    enum SendAction: Equatable {
        /// Input is closed: the frame was not taken.
        case refused
        /// Queued: a writer or a pending flush takes it.
        case queued
        /// The caller writes these bytes now (it became the writer).
        case write([UInt8])
        /// The caller starts a flush task.
        case scheduleFlush
        /// Too much is queued: kill the plugin as hung (everything queued was dropped).
        case killAsHung
    }

    /// A frame to send. `now`: written at once by the caller if no one writes; otherwise left to
    /// a flush, the reader's (`readerFlushes`) or a task's.
    mutating func send(_ frame: [UInt8], now: Bool, readerFlushes: Bool) -> SendAction {
        if closed { return .refused }
        if queued.count + frame.count > maxQueuedBytes {
            closed = true
            abandoned = true
            drop()
            return .killAsHung
        }
        queued.append(contentsOf: frame)
        queued.append(0x0A)
        queuedFrames += 1
        if writing || flushScheduled { return .queued }
        if !now {
            flushScheduled = true
            if readerFlushes {
                flushByReader = true
                return .queued
            }
            return .scheduleFlush
        }
        writing = true
        return .write(take())
    }

    enum FlushAction: Equatable {
        case nothing
        /// The flush writes these bytes (it became the writer).
        case write([UInt8])
        /// Input was closed while the flush was pending and nothing is left: close the descriptor.
        case closeFD
    }

    /// The pending flush runs (its task, or the reader).
    mutating func runFlush() -> FlushAction {
        flushScheduled = false
        flushByReader = false
        // A write in progress takes what is queued (and closes stdin after, if asked).
        if writing { return .nothing }
        if queued.isEmpty || abandoned { return closeIfClosed() ? .closeFD : .nothing }
        writing = true
        return .write(take())
    }

    enum AfterWrite: Equatable {
        /// Write these too: they were queued meanwhile.
        case write([UInt8])
        /// Nothing left; the writer is done.
        case done
        /// Nothing left and input is closed: close the descriptor.
        case doneCloseFD
    }

    /// The writer's bytes are out (`failed`: the write failed, the plugin is gone).
    mutating func wrote(failed: Bool) -> AfterWrite {
        if failed {
            closed = true
            abandoned = true
            drop()
        }
        if queued.isEmpty || abandoned {
            writing = false
            drop()
            return closeIfClosed() ? .doneCloseFD : .done
        }
        return .write(take())
    }

    /// Refuses further frames. True: close the descriptor now (nothing is being written or waits
    /// for a flush; otherwise that writer or flush closes it).
    mutating func closeInput() -> Bool {
        closed = true
        guard !writing, !flushScheduled else { return false }
        return closeIfClosed()
    }

    /// The process ended: refuses further frames and drops what is queued. True: close the
    /// descriptor now (unless a writer is still in its write, which then closes it).
    mutating func abandon() -> Bool {
        closed = true
        abandoned = true
        drop()
        guard !writing else { return false }
        return closeIfClosed()
    }

    /// Frames held for the reader's flush (0 when the pending flush is a task's).
    var heldForReader: Int { flushScheduled && flushByReader ? queuedFrames : 0 }

    private mutating func take() -> [UInt8] {
        defer {
            queued = []
            queuedFrames = 0
        }
        return queued
    }

    private mutating func drop() {
        queued = []
        queuedFrames = 0
    }

    /// Closes (once) if input is closed.
    private mutating func closeIfClosed() -> Bool {
        guard closed, !fdClosed else { return false }
        fdClosed = true
        return true
    }
}
