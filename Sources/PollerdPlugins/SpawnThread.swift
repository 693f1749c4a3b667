import CPollerdSpawn
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The one thread that starts the daemon's plugin processes. A child's death signal
/// (`PR_SET_PDEATHSIG`) fires when the *thread* that spawned it exits, not the process: spawned
/// from a pool thread or a blocking worker, which come and go, a long-lived plugin would be
/// killed when its spawner idled out. This thread lives as long as the process, so a child dies
/// with the daemon (a SIGKILL included) and only then.
///
/// Process-wide, as `ProcessTree` is, and for the same reason: a death signal is bound to a
/// thread of the process, not to a component that could have one of its own.
final class SpawnThread: Sendable {
    /// The process's spawn thread, started on first use.
    static let shared = SpawnThread()

    private let work = Mutex<[@Sendable () -> Void]>([])
    private let wake = DispatchSemaphore(value: 0)

    private init() {
        let thread = Thread { [self] in self.serve() }
        thread.name = "pollerd-spawn"
        thread.start()
    }

    private func serve() {
        while true {
            wake.wait()
            let next = work.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            next?()
        }
    }

    /// Runs `body` on the spawn thread and returns its result; the caller's thread blocks
    /// meanwhile (a spawn takes a fraction of a millisecond).
    func perform<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<T?>(nil)
        work.withLock {
            $0.append {
                let value = body()
                result.withLock { $0 = value }
                done.signal()
            }
        }
        wake.signal()
        done.wait()
        return result.withLock { $0! }
    }
}
