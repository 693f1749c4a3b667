import Foundation

/// Threads for blocking work (a plugin exchange in `poll(2)`), kept for reuse: a job runs on an
/// idle worker or on a new one, never waits behind another job (a hanging plugin must not hold
/// up the next), and a worker idle for `idleSecs` ends.
final class BlockingWorkers: @unchecked Sendable {
    // @unchecked: every field is guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var idle = 0
    private let idleSecs: TimeInterval

    static let shared = BlockingWorkers(idleSecs: 10)

    init(idleSecs: TimeInterval) { self.idleSecs = idleSecs }

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
