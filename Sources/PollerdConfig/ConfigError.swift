/// A problem in a job file, located: `FILE:LINE:COL: job 'ID': message`, or `FILE: message` for a
/// problem with the file as a whole (line 0: it cannot be read, or is too large).
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    /// The job the problem belongs to, if any.
    public var jobID: String?
    public var message: String

    public init(file: String, line: Int, column: Int, jobID: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.jobID = jobID
        self.message = message
    }

    public var description: String {
        let job = jobID.map { "job '\($0)': " } ?? ""
        guard line > 0 else { return "\(file): \(job)\(message)" }
        return "\(file):\(line):\(column): \(job)\(message)"
    }
}
