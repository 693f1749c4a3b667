import HeapModule

/// One job as the scheduler sees it.
public struct JobRuntime: Sendable {
    public var spec: JobSpec
    public var offsetMs: Int64
    public var nextDueMs: Int64?
    public var paused: Bool
    public var pausedReason: String?
    public var done: Bool
    public var consecutiveErrors: Int
    public var inFlight: Bool
    public var removed: Bool = false
    /// The concurrency group its tick in flight counts against.
    var inFlightGroup: String?
    var generation: UInt64 = 0
    /// Cached: computing it means encoding the config as canonical JSON. Kept as a number (8
    /// bytes, not a 16-character string on the heap per job).
    var definitionHash: UInt64 = 0
    public var definitionFingerprint: String { String(definitionHash, radix: 16) }
    /// One string per distinct schedule, shared by the jobs that have it (`SchedulerCore.intern`).
    public internal(set) var scheduleFingerprint: String = ""
}

/// A due job handed out to run.
public struct DueTick: Sendable, Equatable {
    public var jobID: String
    public var dueMs: Int64
    public var spec: JobSpec
    public var offsetMs: Int64

    public init(jobID: String, dueMs: Int64, spec: JobSpec, offsetMs: Int64) {
        self.jobID = jobID
        self.dueMs = dueMs
        self.spec = spec
        self.offsetMs = offsetMs
    }
}

/// The scheduler's state machine: one min-heap of due times for every job, a cap on ticks in
/// flight, and the rules for what happens when ticks end. No I/O and no clock: every call takes `now`.
public struct SchedulerCore: Sendable {
    struct Entry: Comparable {
        var due: Int64
        var seq: UInt64
        var jobID: String
        var generation: UInt64
        static func < (a: Entry, b: Entry) -> Bool { a.due != b.due ? a.due < b.due : a.seq < b.seq }
        static func == (a: Entry, b: Entry) -> Bool { a.due == b.due && a.seq == b.seq }
    }

    public private(set) var settings: GlobalSettings
    public private(set) var jobs: [String: JobRuntime] = [:]
    private var heap = Heap<Entry>()
    private var seq: UInt64 = 0
    public private(set) var inFlightCount = 0
    /// Concurrency groups by kind, with their bounds (plugins' `max_concurrent_ticks`).
    public private(set) var limits: [String: ConcurrencyLimit] = [:]
    /// Ticks in flight per group.
    public private(set) var inFlightByGroup: [String: Int] = [:]
    /// Due jobs of a full group, oldest first: they go back on the heap one by one as the
    /// group's ticks end, so they hold no global slot while they wait.
    private var parked: [String: [Entry]] = [:]

    /// Due jobs waiting for their group to have room.
    public var parkedCount: Int { parked.values.reduce(0) { $0 + $1.count } }

    public init(settings: GlobalSettings) {
        self.settings = settings
    }

    /// The distinct schedule fingerprints: a million jobs on a few schedules share a few strings.
    private var schedules: Set<String> = []

    private mutating func intern(_ text: String) -> String {
        if let i = schedules.firstIndex(of: text) { return schedules[i] }
        schedules.insert(text)
        return text
    }

    /// Adds or replaces a job, scheduling it from its stored row (catch-up rules apply).
    /// Returns the schedule to record in the store. A `held` job has its first run planned but
    /// is not taken until `release` (boot records the plan in the store first, so no claim can
    /// race the record).
    @discardableResult
    public mutating func load(_ spec: JobSpec, row: JobStateRow?, nowMs: Int64, held: Bool = false) -> ScheduleRecord {
        let offset = spec.schedule.jitterOffsetMs(
            jobID: spec.id, defaultJitterMs: settings.defaultJitterMs, nowMs: nowMs)
        let (due, markDone) = TickPlanner.initialDue(job: spec, row: row, offsetMs: offset, nowMs: nowMs)
        var rt = JobRuntime(
            spec: spec, offsetMs: offset, nextDueMs: nil, paused: row?.paused ?? spec.pausedOnBoot,
            pausedReason: row?.pausedReason, done: (row?.done ?? false) || markDone,
            consecutiveErrors: row?.consecutiveErrors ?? 0, inFlight: false)
        rt.definitionHash = spec.fingerprintHash
        rt.scheduleFingerprint = intern(spec.schedule.fingerprint)
        if let old = jobs[spec.id] {
            rt.inFlight = old.inFlight
            rt.generation = old.generation &+ 1
        }
        if held {
            rt.nextDueMs = (rt.paused || rt.done) ? nil : due
            jobs[spec.id] = rt
        } else {
            jobs[spec.id] = rt
            if !rt.paused, !rt.done, let due { schedule(spec.id, at: due) }
        }
        return record(spec.id)
    }

    /// Lets held jobs be taken at their planned run.
    public mutating func release(_ jobIDs: some Sequence<String>) {
        for id in jobIDs {
            guard let rt = jobs[id], !rt.inFlight, let due = rt.nextDueMs else { continue }
            schedule(id, at: due)
        }
    }

    /// Updates a kept or replaced job's definition. A changed schedule is re-planned from now
    /// (never a surprise run); otherwise the job keeps its clock.
    @discardableResult
    public mutating func update(_ spec: JobSpec, nowMs: Int64) -> ScheduleRecord? {
        guard var rt = jobs[spec.id] else { return nil }
        let scheduleChanged = rt.spec.schedule != spec.schedule
        rt.spec = spec
        rt.definitionHash = spec.fingerprintHash
        rt.scheduleFingerprint = intern(spec.schedule.fingerprint)
        rt.offsetMs = spec.schedule.jitterOffsetMs(
            jobID: spec.id, defaultJitterMs: settings.defaultJitterMs, nowMs: nowMs)
        jobs[spec.id] = rt
        if scheduleChanged, !rt.inFlight, !rt.paused, !rt.done {
            schedule(spec.id, at: spec.schedule.nextFire(afterMs: nowMs, offsetMs: rt.offsetMs))
        }
        return record(spec.id)
    }

    /// Replaces the global settings (kept jobs take them from their next slot on).
    public mutating func updateSettings(_ s: GlobalSettings, nowMs: Int64) {
        settings = s
        for id in jobs.keys {
            guard var rt = jobs[id] else { continue }
            rt.offsetMs = rt.spec.schedule.jitterOffsetMs(jobID: id, defaultJitterMs: s.defaultJitterMs, nowMs: nowMs)
            jobs[id] = rt
        }
    }

    /// Forgets a job. A tick in flight finishes, but the job is not scheduled again.
    public mutating func remove(_ jobID: String) {
        guard var rt = jobs[jobID] else { return }
        if rt.inFlight {
            rt.removed = true
            rt.nextDueMs = nil
            rt.generation &+= 1
            jobs[jobID] = rt
        } else {
            jobs[jobID] = nil
        }
    }

    private mutating func schedule(_ jobID: String, at due: Int64?) {
        guard let i = jobs.index(forKey: jobID) else { return }
        schedule(at: i, due)
    }

    /// By the job's index: the tick path changes its entry in place (a lookup and a copy of
    /// the whole entry per change cost more than the change).
    private mutating func schedule(at i: [String: JobRuntime].Index, _ due: Int64?) {
        jobs.values[i].generation &+= 1
        jobs.values[i].nextDueMs = due
        if let due {
            seq &+= 1
            heap.insert(Entry(due: due, seq: seq, jobID: jobs.keys[i], generation: jobs.values[i].generation))
        }
    }

    private func record(_ jobID: String) -> ScheduleRecord {
        record(at: jobs.index(forKey: jobID)!)
    }

    private func record(at i: [String: JobRuntime].Index) -> ScheduleRecord {
        let rt = jobs.values[i]
        return ScheduleRecord(
            jobID: jobs.keys[i], nextRunAtMs: rt.nextDueMs, scheduleFingerprint: rt.scheduleFingerprint,
            definitionFingerprint: rt.definitionFingerprint)
    }

    /// The earliest due time of a job that is waiting, if any.
    public mutating func nextDueMs() -> Int64? {
        dropStale()
        return heap.min?.due
    }

    private mutating func dropStale() {
        while let top = heap.min {
            if let i = jobs.index(forKey: top.jobID), jobs.values[i].generation == top.generation,
                jobs.values[i].nextDueMs == top.due, !jobs.values[i].inFlight
            {
                return
            }
            _ = heap.popMin()
        }
    }

    /// Sets the concurrency groups of the kinds (at boot and on reload). Jobs parked for a
    /// group that is gone or grew go back on the heap.
    public mutating func setLimits(_ byKind: [String: ConcurrencyLimit]) {
        limits = byKind
        for (group, entries) in parked {
            let bound = byKind.values.first { $0.group == group }?.limit
            let room = bound.map { max(0, $0 - (inFlightByGroup[group] ?? 0)) } ?? entries.count
            let back = entries.prefix(room)
            for e in back { heap.insert(e) }
            parked[group] = Array(entries.dropFirst(back.count))
            if parked[group]?.isEmpty == true { parked[group] = nil }
        }
    }

    /// Hands out due jobs, up to the free concurrency slots, and marks them in flight. A due
    /// job whose group is full is parked (it takes no slot) until one of the group's ticks ends.
    public mutating func takeDue(nowMs: Int64, limit: Int = .max) -> [DueTick] {
        var out: [DueTick] = []
        let cap = max(1, settings.maxConcurrentTicks)
        let groupCeiling = Self.groupCeiling(cap: cap)
        while inFlightCount < cap, out.count < limit {
            dropStale()
            guard let top = heap.min, top.due <= nowMs else { break }
            _ = heap.popMin()
            guard let i = jobs.index(forKey: top.jobID) else { continue }
            var group: String?
            if !limits.isEmpty, let l = limits[jobs.values[i].spec.kind] {
                if (inFlightByGroup[l.group] ?? 0) >= min(max(1, l.limit), groupCeiling) {
                    parked[l.group, default: []].append(top)
                    continue
                }
                group = l.group
                inFlightByGroup[l.group, default: 0] += 1
            }
            jobs.values[i].inFlight = true
            jobs.values[i].inFlightGroup = group
            jobs.values[i].nextDueMs = nil
            inFlightCount += 1
            out.append(
                DueTick(jobID: top.jobID, dueMs: top.due, spec: jobs.values[i].spec, offsetMs: jobs.values[i].offsetMs))
        }
        return out
    }

    /// The most slots one group (a plugin's kinds) may hold, whatever its own limit: an eighth of
    /// the slots (at least one) stays for the other kinds, so that a plugin whose
    /// `max_concurrent_ticks` reaches `max_concurrent_ticks` of the daemon cannot hold every slot
    /// while its ticks run long (a canary beside 300 CPU-bound plugin jobs ran 3 s late, every
    /// slot of 64 held by them).
    public static func groupCeiling(cap: Int) -> Int { cap > 1 ? cap - max(1, cap / 8) : 1 }

    /// The job's tick attempt ended (ran or skipped): its slot, and its group's, are free, and
    /// the group's oldest parked job may go.
    private mutating func endTick(at i: [String: JobRuntime].Index) {
        if jobs.values[i].inFlight { inFlightCount -= 1 }
        jobs.values[i].inFlight = false
        guard let g = jobs.values[i].inFlightGroup else { return }
        jobs.values[i].inFlightGroup = nil
        inFlightByGroup[g, default: 1] -= 1
        if inFlightByGroup[g] == 0 { inFlightByGroup[g] = nil }
        if var waiting = parked[g], !waiting.isEmpty {
            heap.insert(waiting.removeFirst())
            parked[g] = waiting.isEmpty ? nil : waiting
        }
    }

    /// True when a job is due but waits for a free slot.
    public mutating func hasBacklog(nowMs: Int64) -> Bool {
        guard let d = nextDueMs() else { return false }
        return d <= nowMs && inFlightCount >= max(1, settings.maxConcurrentTicks)
    }

    /// How many slots a backlog waits to be free before the loop takes more: an eighth of
    /// `max_concurrent_ticks`, at most 128, at least 1.
    public var refillSlots: Int { max(1, min(128, max(1, settings.maxConcurrentTicks) / 8)) }

    /// Whether a tick's end should wake the scheduling loop, which sleeps until `loopWakeMs`
    /// (nil: until woken). A job due now wakes it once `refillSlots` slots are free, or when
    /// the loop would otherwise sleep longer than `pollMs`; a job due later, when it is due
    /// before the loop's wake-up. Waking at every freed slot of a backlog cost a loop round, a
    /// task and a claim of its own per tick: at 50k ticks/s a daemon that fell behind ran a
    /// fifth slower than one that kept up, and never caught up.
    public mutating func shouldWakeLoop(sleepingUntil loopWakeMs: Int64?, nowMs: Int64, pollMs: Int64) -> Bool {
        guard let next = nextDueMs() else { return false }
        let wake = loopWakeMs ?? .max
        if next <= nowMs {
            return max(1, settings.maxConcurrentTicks) - inFlightCount >= refillSlots || wake > nowMs + pollMs
        }
        return next < wake
    }

    /// A tick ended with a plan (committed or not): schedule the next run.
    public mutating func finish(_ jobID: String, plan: TickPlan) -> ScheduleRecord? {
        guard let i = jobs.index(forKey: jobID) else { return nil }
        endTick(at: i)
        if !plan.keepsErrorCount { jobs.values[i].consecutiveErrors = plan.consecutiveErrors }
        if plan.pause {
            jobs.values[i].paused = true
            jobs.values[i].pausedReason = plan.pausedReason
        }
        if plan.done { jobs.values[i].done = true }
        if jobs.values[i].removed {
            jobs.remove(at: i)
            return nil
        }
        schedule(at: i, (jobs.values[i].paused || jobs.values[i].done) ? nil : plan.nextRunAtMs)
        return record(at: i)
    }

    /// A tick did not run (lease held elsewhere, the store said paused or done, or its row was busy).
    public mutating func skipped(_ jobID: String, because acq: LeaseAcquisition, nowMs: Int64) -> ScheduleRecord? {
        guard let i = jobs.index(forKey: jobID) else { return nil }
        endTick(at: i)
        var rt = jobs.values[i]
        var planned: Int64?
        switch acq {
        case .paused(let reason):
            rt.paused = true
            rt.pausedReason = reason
        case .done: rt.done = true
        case .notDue(let until): planned = until
        // The row was locked for a moment: the store decided nothing; ask again soon (the retry's
        // slot is later than the stored plan, so the store still refuses it if the slot ran).
        case .busy: planned = nowMs + LeaseAcquisition.busyRetryMs
        case .held, .granted, .backlogged: break
        }
        jobs[jobID] = rt
        if rt.removed {
            jobs[jobID] = nil
            return nil
        }
        if let planned {
            // The store's plan is authoritative; nothing to write back.
            schedule(jobID, at: max(planned, nowMs))
            return nil
        }
        let next = (rt.paused || rt.done) ? nil : rt.spec.schedule.nextFire(afterMs: nowMs, offsetMs: rt.offsetMs)
        schedule(jobID, at: next)
        return record(jobID)
    }

    /// Applies an operator's pause, resume or reset seen in the store.
    public mutating func control(
        _ action: ControlChange.Action, jobID: String, row: JobStateRow?, nowMs: Int64
    ) -> ScheduleRecord? {
        guard var rt = jobs[jobID] else { return nil }
        switch action {
        case .pause:
            rt.paused = true
            rt.pausedReason = row?.pausedReason
            jobs[jobID] = rt
            schedule(jobID, at: nil)
        case .resume, .reset:
            rt.paused = row?.paused ?? false
            rt.pausedReason = row?.pausedReason
            rt.consecutiveErrors = row?.consecutiveErrors ?? 0
            rt.done = row?.done ?? rt.done
            jobs[jobID] = rt
            if !rt.paused, !rt.done, !rt.inFlight, rt.nextDueMs == nil {
                schedule(jobID, at: rt.spec.schedule.nextFire(afterMs: nowMs, offsetMs: rt.offsetMs))
            }
        }
        return record(jobID)
    }
}
