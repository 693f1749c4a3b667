public import PollerdConfig
public import PollerdCore

/// One line of "every job": the job file merged with the store.
public struct JobListing: Sendable {
    public var id: String
    public var kind: String?
    /// The stored state (nil: the job never ran, or never registered).
    public var row: JobStateRow?
    /// In this job file (valid or not).
    public var inFile: Bool
    /// The job file's error for it, when it is invalid.
    public var error: String?
    /// Not in this file and run by no live daemon.
    public var removed: Bool { !inFile && row?.definitionFingerprint == nil }

    public init(id: String, kind: String?, row: JobStateRow?, inFile: Bool, error: String?) {
        self.id = id; self.kind = kind; self.row = row; self.inFile = inFile; self.error = error
    }

    /// What the dashboard, the API and `jobs list` show as the job's status: `invalid`,
    /// `removed`, `elsewhere` (another daemon's job file has it), else its health
    /// (`JobHealth`: ok, failing, paused, …, `never_ran`).
    public func status(breakerThreshold: Int) -> String {
        if error != nil { return "invalid" }
        if !inFile { return removed ? "removed" : "elsewhere" }
        guard let row else { return JobHealth.neverRan.rawValue }
        return JobHealth.of(row, breakerThreshold: breakerThreshold).rawValue
    }
}

extension Operator {
    /// The job file's jobs (valid ones, and invalid ones with their located error), then the
    /// store's jobs the file does not have (run by another daemon's file, or removed).
    public func listing(file: JobFile) async throws -> [JobListing] {
        let rows = try await jobs(includeInactive: true)
        var byID: [String: JobStateRow] = [:]
        for r in rows { byID[r.jobID] = r }
        var out: [JobListing] = []
        var listed = Set<String>()
        for job in file.jobs where listed.insert(job.id).inserted {
            out.append(JobListing(id: job.id, kind: job.kind, row: byID[job.id], inFile: true, error: nil))
        }
        for e in file.errors {
            guard let id = e.jobID, listed.insert(id).inserted else { continue }
            out.append(JobListing(id: id, kind: byID[id]?.kind, row: byID[id], inFile: true, error: e.description))
        }
        for r in rows where listed.insert(r.jobID).inserted {
            out.append(JobListing(id: r.jobID, kind: r.kind, row: r, inFile: false, error: nil))
        }
        return out
    }

    /// One job as `listing(file:)` would list it, from its own row alone; nil when neither the
    /// file nor the store has it.
    public func listing(file: JobFile, jobID: String) async throws -> JobListing? {
        let row = try await store.state(jobID: jobID)
        if let spec = file.jobs.first(where: { $0.id == jobID }) {
            return JobListing(id: jobID, kind: spec.kind, row: row, inFile: true, error: nil)
        }
        if let e = file.errors.first(where: { $0.jobID == jobID }) {
            return JobListing(id: jobID, kind: row?.kind, row: row, inFile: true, error: e.description)
        }
        return row.map { JobListing(id: jobID, kind: $0.kind, row: $0, inFile: false, error: nil) }
    }
}
