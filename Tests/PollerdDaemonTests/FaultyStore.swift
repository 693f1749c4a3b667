import Foundation
import PollerdCore
import Synchronization

/// A real store with a switch: while a fault is set, the calls a tick makes (lease, commit)
/// throw it; everything else passes through. `isDamage` is the real store's.
final class FaultyStore: StateStore {
    let inner: any StateStore
    private let fault = Mutex<(any Error)?>(nil)
    /// Only commits fail (leases are granted, and stay held by the failed commits).
    private let commitsOnly = Mutex(false)
    private let failed = Mutex(0)

    init(_ inner: any StateStore) { self.inner = inner }

    func set(_ error: (any Error)?, commitsOnly only: Bool = false) {
        commitsOnly.withLock { $0 = only }
        fault.withLock { $0 = error }
    }
    /// How many calls the fault failed.
    var failures: Int { failed.withLock { $0 } }

    private func check(commit: Bool = false) throws {
        if !commit && commitsOnly.withLock({ $0 }) { return }
        if let e = fault.withLock({ $0 }) {
            failed.withLock { $0 += 1 }
            throw e
        }
    }

    /// The register call (counted from 1) that waits for `registerGate` to open.
    private let registerGate = Mutex<(call: Int, gate: Gate)?>(nil)
    private let registers = Mutex(0)

    func holdRegister(call: Int, until gate: Gate) { registerGate.withLock { $0 = (call, gate) } }

    func register(_ jobs: [JobRegistration], nowMs: Int64) async throws -> [String: JobStateRow] {
        let n = registers.withLock {
            $0 += 1
            return $0
        }
        if let (call, gate) = registerGate.withLock({ $0 }), call == n { _ = await gate.pass() }
        return try await inner.register(jobs, nowMs: nowMs)
    }
    func acquireLeases(_ requests: [LeaseRequest], holder: String, nowMs: Int64) async throws -> [LeaseAcquisition] {
        try check()
        return try await inner.acquireLeases(requests, holder: holder, nowMs: nowMs)
    }
    func commit(_ ticks: [TickCommit], nowMs: Int64) async throws -> [Int64?] {
        try check(commit: true)
        return try await inner.commit(ticks, nowMs: nowMs)
    }
    func renewLease(_ lease: LeaseGrant, ttlMs: Int64, nowMs: Int64) async throws -> Bool {
        try await inner.renewLease(lease, ttlMs: ttlMs, nowMs: nowMs)
    }
    func releaseLease(_ lease: LeaseGrant) async throws { try await inner.releaseLease(lease) }
    func recordSchedules(_ records: [ScheduleRecord], nowMs: Int64) async throws {
        try await inner.recordSchedules(records, nowMs: nowMs)
    }
    func controlChanges(after cursor: ControlCursor) async throws -> ControlBatch {
        try await inner.controlChanges(after: cursor)
    }
    func controlCursor() async throws -> ControlCursor { try await inner.controlCursor() }
    func states(after jobID: String?, limit: Int) async throws -> [JobStateRow] {
        try await inner.states(after: jobID, limit: limit)
    }
    func jobHealth(_ query: JobHealthQuery) async throws -> JobHealthCounts { try await inner.jobHealth(query) }
    func state(jobID: String) async throws -> JobStateRow? { try await inner.state(jobID: jobID) }
    func lease(jobID: String) async throws -> LeaseRecord? { try await inner.lease(jobID: jobID) }
    func setPaused(jobID: String, paused: Bool, reason: String?, nowMs: Int64) async throws -> Bool {
        try await inner.setPaused(jobID: jobID, paused: paused, reason: reason, nowMs: nowMs)
    }
    func reset(jobID: String, nowMs: Int64) async throws -> Bool { try await inner.reset(jobID: jobID, nowMs: nowMs) }
    func tickHistory(jobID: String, limit: Int) async throws -> [TickRecord] {
        try await inner.tickHistory(jobID: jobID, limit: limit)
    }
    func recordSkip(_ record: TickRecord, historyLimit: Int) { inner.recordSkip(record, historyLimit: historyLimit) }
    func setCursor(jobID: String, cursor: Data?, audit: AuditEntry) async throws -> Bool {
        try await inner.setCursor(jobID: jobID, cursor: cursor, audit: audit)
    }
    func recordAudit(_ entry: AuditEntry) async throws { try await inner.recordAudit(entry) }
    func auditLog(jobID: String?, limit: Int) async throws -> [AuditEntry] {
        try await inner.auditLog(jobID: jobID, limit: limit)
    }
    func announce(_ daemon: DaemonAnnouncement, nowMs: Int64) async throws -> [String] {
        try await inner.announce(daemon, nowMs: nowMs)
    }
    func heartbeat(daemonID: String, ttlMs: Int64, nowMs: Int64) async throws -> Bool {
        try await inner.heartbeat(daemonID: daemonID, ttlMs: ttlMs, nowMs: nowMs)
    }
    func retire(daemonID: String, nowMs: Int64) async throws {
        try await inner.retire(daemonID: daemonID, nowMs: nowMs)
    }
    func liveDaemons(nowMs: Int64) async throws -> [DaemonRecord] { try await inner.liveDaemons(nowMs: nowMs) }
    func jobOwners(jobID: String, nowMs: Int64) async throws -> [String] {
        try await inner.jobOwners(jobID: jobID, nowMs: nowMs)
    }
    func liveDefinitions(jobIDs: [String], nowMs: Int64) async throws -> [String: [String: String]] {
        try await inner.liveDefinitions(jobIDs: jobIDs, nowMs: nowMs)
    }
    func divergentDefinitions(nowMs: Int64) async throws -> [String: [String: String]] {
        try await inner.divergentDefinitions(nowMs: nowMs)
    }
    func reclaimLeases(on host: HostProcesses, nowMs: Int64) async throws -> Int {
        try await inner.reclaimLeases(on: host, nowMs: nowMs)
    }
    func isDamage(_ error: any Error) -> Bool { inner.isDamage(error) }
    var time: StoreTime { inner.time }
}
