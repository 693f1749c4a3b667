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
        self.id = id
        self.kind = kind
        self.row = row
        self.inFile = inFile
        self.error = error
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
        let specs = Dictionary(file.jobs.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let errors = Self.errorsByJob(file)
        var listed = Set<String>()
        let ids = file.jobs.map(\.id) + file.errors.compactMap(\.jobID) + rows.map(\.jobID)
        return ids.filter { listed.insert($0).inserted }.compactMap { id in
            Self.entry(id, spec: specs[id], error: errors[id], row: byID[id])
        }
    }

    /// One job as `listing(file:)` would list it, from its own row alone; nil when neither the
    /// file nor the store has it.
    public func listing(file: JobFile, jobID: String) async throws -> JobListing? {
        Self.entry(
            jobID, spec: file.jobs.first { $0.id == jobID },
            error: file.errors.first { $0.jobID == jobID }?.description,
            row: try await store.state(jobID: jobID))
    }

    /// The file's first error of each invalid job.
    private static func errorsByJob(_ file: JobFile) -> [String: String] {
        var out: [String: String] = [:]
        for e in file.errors { if let id = e.jobID, out[id] == nil { out[id] = e.description } }
        return out
    }

    /// The listing of one id: in the file (valid, or invalid with its error), else the store's
    /// row (another daemon's job, or a removed one).
    private static func entry(_ id: String, spec: JobSpec?, error: String?, row: JobStateRow?) -> JobListing? {
        if let spec { return JobListing(id: id, kind: spec.kind, row: row, inFile: true, error: nil) }
        if let error { return JobListing(id: id, kind: row?.kind, row: row, inFile: true, error: error) }
        return row.map { JobListing(id: id, kind: $0.kind, row: $0, inFile: false, error: nil) }
    }
}
