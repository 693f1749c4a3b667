import CPollerdSpawn
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A task executor that runs jobs on a long-lived plugin's reader thread while that thread
/// serves the plugin's process, and on the global concurrent executor otherwise.
///
/// Tasks that prefer it (`LongLivedPlugin.executor`; the runner starts a tick with its poller's
/// `preferredExecutor`) resume on the thread that read their reply: routing a reply enqueues the
/// waiting tick here without waking any other thread, the reader runs it between two reads
/// (decode the reply; the caller's next request is encoded and written from there as well), and
/// frames held back for batching are written by the reader once it has run what it had
/// (`PluginChannel.serve`). With many ticks in flight this replaces a wake-up of a pool thread per
/// reply batch and a flush task per request batch with none: the daemon side of a plugin runs on
/// one thread, like a hand-written event loop.
///
/// Jobs enqueued from other threads wake the reader through an eventfd it polls with the
/// plugin's pipes. The reader runs the jobs queued when it starts a round and then reads again, so
/// a task that keeps re-enqueueing itself cannot hold the plugin's output up. When no process is
/// served (before the first start, while backing off, after shutdown), jobs go to the global
/// executor, so nothing preferring this executor ever waits for a thread that is not there.
public final class ReaderExecutor: TaskExecutor, Sendable {
    private struct State {
        var jobs: [UnownedJob] = []
        /// A reader thread runs the jobs (between `attach` and `detach`).
        var attached = false
        /// The reader is (about to be) blocked in `poll`: an enqueue must signal the eventfd.
        var sleeping = false
        var thread: pthread_t?
    }
    private let state = Mutex(State())
    /// Polled by the reader with the plugin's pipes; written to wake it.
    let wakeFD: Int32

    init() {
        wakeFD = cpollerd_eventfd()
    }

    deinit {
        if wakeFD >= 0 { close(wakeFD) }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        enum Next { case queued, wake, global }
        let next: Next = state.withLock { s in
            guard s.attached else { return .global }
            s.jobs.append(unowned)
            if s.sleeping {
                s.sleeping = false
                return .wake
            }
            return .queued
        }
        switch next {
        case .queued: break
        case .wake:
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        case .global:
            globalConcurrentExecutor.enqueue(ExecutorJob(unowned))
        }
    }

    /// Whether the calling thread is the reader running this executor's jobs.
    public var isCurrent: Bool {
        state.withLock { s in s.thread.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }

    // MARK: the reader's side (`PluginChannel.serve`)

    /// The calling thread (a plugin's reader) runs the jobs from now on.
    func attach() {
        state.withLock { s in
            s.attached = true
            s.thread = pthread_self()
        }
    }

    /// The reader stops; jobs it did not run, and jobs from now on, go to the global executor.
    func detach() {
        let left = state.withLock { s -> [UnownedJob] in
            s.attached = false
            s.sleeping = false
            s.thread = nil
            defer { s.jobs = [] }
            return s.jobs
        }
        for job in left { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }

    /// Runs the jobs queued now, on the calling thread (the attached reader); jobs they enqueue
    /// wait for the next round.
    func runQueued() {
        let jobs = state.withLock { s -> [UnownedJob] in
            defer { s.jobs = [] }
            return s.jobs
        }
        let me = asUnownedTaskExecutor()
        for job in jobs { job.runSynchronously(on: me) }
    }

    /// Called before the reader blocks: true when it may (nothing queued; an enqueue from now on
    /// signals the eventfd), false when there are jobs to run first.
    func prepareToSleep() -> Bool {
        state.withLock { s in
            if !s.jobs.isEmpty { return false }
            s.sleeping = true
            return true
        }
    }

    /// Called after the reader's `poll` returned; `signalled`: the eventfd was readable.
    func awoke(signalled: Bool) {
        state.withLock { $0.sleeping = false }
        if signalled {
            var count: UInt64 = 0
            _ = read(wakeFD, &count, 8)
        }
    }
}
