import Testing

@testable import PollerdPlugins

/// The write side of a plugin's stdin as a state machine: no process, no pipe.
@Suite struct ChannelWriteStateTests {
    func bytes(_ frames: String...) -> [UInt8] { Array(frames.map { $0 + "\n" }.joined().utf8) }
    func f(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func oneWriterAtATimeTakesWhatWasQueuedMeanwhile() {
        var w = ChannelWriteState(maxQueuedBytes: 1024)
        do {
            let r = w.send(f("a"), now: true, readerFlushes: false)
            #expect(r == .write(bytes("a")))
        }
        // While "a" is being written, others queue, in order.
        do {
            let r = w.send(f("b"), now: true, readerFlushes: false)
            #expect(r == .queued)
        }
        do {
            let r = w.send(f("c"), now: false, readerFlushes: false)
            #expect(r == .queued)
        }
        #expect(w.queuedFrames == 2)
        do {
            let r = w.wrote(failed: false)
            #expect(r == .write(bytes("b", "c")))
        }
        do {
            let r = w.wrote(failed: false)
            #expect(r == .done)
        }
        #expect(!w.writing && w.queued.isEmpty)
        // Idle again: the next sender writes at once.
        do {
            let r = w.send(f("d"), now: true, readerFlushes: false)
            #expect(r == .write(bytes("d")))
        }
    }

    @Test func aDeferredSendSchedulesOneFlushForEveryFrameBeforeIt() {
        var w = ChannelWriteState(maxQueuedBytes: 1024)
        do {
            let r = w.send(f("a"), now: false, readerFlushes: false)
            #expect(r == .scheduleFlush)
        }
        do {
            let r = w.send(f("b"), now: false, readerFlushes: false)
            #expect(r == .queued)
        }
        do {
            let r = w.send(f("c"), now: true, readerFlushes: false)
            #expect(r == .queued)
        } // the flush takes it too
        #expect(w.heldForReader == 0) // a task's flush, not the reader's
        do {
            let r = w.runFlush()
            #expect(r == .write(bytes("a", "b", "c")))
        }
        do {
            let r = w.wrote(failed: false)
            #expect(r == .done)
        }
        // A flush that finds a writer at work leaves the queue to it.
        do {
            let r = w.send(f("d"), now: false, readerFlushes: false)
            #expect(r == .scheduleFlush)
        }
        _ = w.runFlush()
        do {
            let r = w.send(f("e"), now: false, readerFlushes: false)
            #expect(r == .queued)
        }
        do {
            let r = w.runFlush()
            #expect(r == .nothing)
        }
        do {
            let r = w.wrote(failed: false)
            #expect(r == .write(bytes("e")))
        }
    }

    @Test func framesSentFromTheReaderWaitForItsFlush() {
        var w = ChannelWriteState(maxQueuedBytes: 1024)
        do {
            let r = w.send(f("a"), now: false, readerFlushes: true)
            #expect(r == .queued)
        }
        do {
            let r = w.send(f("b"), now: false, readerFlushes: true)
            #expect(r == .queued)
        }
        #expect(w.heldForReader == 2)
        do {
            let r = w.runFlush()
            #expect(r == .write(bytes("a", "b")))
        }
        #expect(w.heldForReader == 0)
    }

    @Test func pastTheBoundThePluginIsHungAndNothingIsTakenAfter() {
        var w = ChannelWriteState(maxQueuedBytes: 10)
        do {
            let r = w.send(f("12345"), now: true, readerFlushes: false)
            #expect(r == .write(bytes("12345")))
        }
        do {
            let r = w.send(f("1234"), now: true, readerFlushes: false)
            #expect(r == .queued)
        } // 5 bytes queued
        do {
            let r = w.send(f("123456"), now: true, readerFlushes: false)
            #expect(r == .killAsHung)
        } // 5 + 6 > 10
        #expect(w.queued.isEmpty && w.closed && w.abandoned)
        do {
            let r = w.send(f("x"), now: true, readerFlushes: false)
            #expect(r == .refused)
        }
        // The writer in its write finds nothing to add and closes stdin.
        do {
            let r = w.wrote(failed: false)
            #expect(r == .doneCloseFD)
        }
    }

    @Test func stdinClosesOnceAfterWhatWasQueued() {
        // Idle: closes now, once.
        var idle = ChannelWriteState(maxQueuedBytes: 1024)
        do {
            let r = idle.closeInput()
            #expect(r)
        }
        do {
            let r = idle.closeInput()
            #expect(!r)
        }
        do {
            let r = idle.send(f("a"), now: true, readerFlushes: false)
            #expect(r == .refused)
        }

        // A write in progress: its frames go out, then it closes.
        var busy = ChannelWriteState(maxQueuedBytes: 1024)
        _ = busy.send(f("a"), now: true, readerFlushes: false)
        _ = busy.send(f("b"), now: true, readerFlushes: false)
        do {
            let r = busy.closeInput()
            #expect(!r)
        }
        do {
            let r = busy.wrote(failed: false)
            #expect(r == .write(bytes("b")))
        }
        do {
            let r = busy.wrote(failed: false)
            #expect(r == .doneCloseFD)
        }

        // A flush pending: it writes the queued frames, and the write closes after them.
        var pending = ChannelWriteState(maxQueuedBytes: 1024)
        _ = pending.send(f("a"), now: false, readerFlushes: false)
        do {
            let r = pending.closeInput()
            #expect(!r)
        }
        do {
            let r = pending.runFlush()
            #expect(r == .write(bytes("a")))
        }
        do {
            let r = pending.wrote(failed: false)
            #expect(r == .doneCloseFD)
        }

        // A flush pending with nothing left to write closes by itself.
        var empty = ChannelWriteState(maxQueuedBytes: 1024)
        _ = empty.send(f("a"), now: false, readerFlushes: false)
        do {
            let r = empty.abandon()
            #expect(r == true)
        } // the process ended: dropped, closed now
        do {
            let r = empty.runFlush()
            #expect(r == .nothing)
        } // already closed: not twice
    }

    @Test func aFailedWriteDropsTheQueueAndRefusesMore() {
        var w = ChannelWriteState(maxQueuedBytes: 1024)
        _ = w.send(f("a"), now: true, readerFlushes: false)
        _ = w.send(f("b"), now: true, readerFlushes: false)
        do {
            let r = w.wrote(failed: true)
            #expect(r == .doneCloseFD)
        }
        #expect(w.abandoned && w.queued.isEmpty && !w.writing)
        do {
            let r = w.send(f("c"), now: true, readerFlushes: false)
            #expect(r == .refused)
        }
        do {
            let r = w.abandon()
            #expect(!r)
        } // closed already
    }

    @Test func theProcessEndingWhileAWriterWaitsLeavesTheCloseToIt() {
        var w = ChannelWriteState(maxQueuedBytes: 1024)
        _ = w.send(f("a"), now: true, readerFlushes: false)
        _ = w.send(f("b"), now: true, readerFlushes: false)
        do {
            let r = w.abandon()
            #expect(!r)
        } // the writer (maybe waiting for room) closes
        #expect(w.abandoned) // which ends its wait for room
        do {
            let r = w.wrote(failed: false)
            #expect(r == .doneCloseFD)
        }
        do {
            let r = w.closeInput()
            #expect(!r)
        }
    }
}
