/// A problem in a job file, located: `FILE:LINE:COL: job 'ID': message`.
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
        return "\(file):\(line):\(column): \(job)\(message)"
    }
}
