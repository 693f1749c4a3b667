import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Threads for blocking work (a plugin exchange in `poll(2)`), kept for reuse: a job runs on an
/// idle worker or on a new one, never waits behind another job (a hanging plugin must not hold
/// up the next), and a worker idle for `idleSecs` ends.
///
/// It is also a task executor: an ephemeral plugin's ticks start here (the poller's
/// `preferredExecutor`), and a tick already on a worker runs its exchange in place
/// (`isCurrent`) instead of handing it to another thread and waiting to be resumed. The worker is
/// busy meanwhile, so other jobs go to other workers, as for any blocking job.
final class BlockingWorkers: TaskExecutor, @unchecked Sendable {
    // @unchecked: every field is guarded by `condition`; `marker` is written once in init.
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var idle = 0
    private let idleSecs: TimeInterval
    /// Set (to the pool's address) while a worker runs a task's job for this executor: `isCurrent`.
    private let marker: pthread_key_t

    static let shared = BlockingWorkers(idleSecs: 10)

    init(idleSecs: TimeInterval) {
        self.idleSecs = idleSecs
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        marker = key
    }

    deinit { pthread_key_delete(marker) }

    func run(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        queue.append(job)
        let startNew = idle < queue.count
        condition.signal()
        condition.unlock()
        if startNew {
            let t = Thread { [self] in work() }
            t.name = "pollerd-plugin"
            t.start()
        }
    }

    /// Whether the calling thread is a worker running a task's job for this executor. Not on a
    /// worker running other blocking work (a long-lived plugin's reader, and the jobs its own
    /// executor runs there): an exchange in place would hold that up.
    var isCurrent: Bool { pthread_getspecific(marker) == Unmanaged.passUnretained(self).toOpaque() }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        run { [self] in
            pthread_setspecific(marker, Unmanaged.passUnretained(self).toOpaque())
            unowned.runSynchronously(on: asUnownedTaskExecutor())
            pthread_setspecific(marker, nil)
        }
    }

    private func work() {
        condition.lock()
        while true {
            if let job = queue.first {
                queue.removeFirst()
                condition.unlock()
                job()
                condition.lock()
                continue
            }
            idle += 1
            let woke = condition.wait(until: Date(timeIntervalSinceNow: idleSecs))
            idle -= 1
            if !woke && queue.isEmpty { break }
        }
        condition.unlock()
    }
}
