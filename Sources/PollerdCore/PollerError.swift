/// How a failed tick is treated: retried with backoff, or the job paused until an operator acts.
public enum ErrorClass: String, Sendable, Hashable, Codable {
    /// Retry later with exponential backoff; counts towards the circuit breaker.
    case transient
    /// The job pauses with the reason stored, until `resume`.
    case permanent
    /// The job's configuration is wrong; it pauses like a permanent error.
    case config
}

/// A tick failure: a class, a stable code, a message for people and the underlying cause.
public struct PollerError: Error, Sendable, CustomStringConvertible {
    /// How the runner treats it.
    public var errorClass: ErrorClass
    /// A stable machine-readable code (`timeout`, `exit_status`, `bad_output`, …).
    public var code: String
    /// A message for people.
    public var message: String
    /// What caused it, when there is an underlying error.
    public var cause: (any Error)?

    public init(_ errorClass: ErrorClass, code: String, _ message: String, cause: (any Error)? = nil) {
        self.errorClass = errorClass
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// A transient error.
    public static func transient(_ code: String, _ message: String, cause: (any Error)? = nil) -> PollerError {
        PollerError(.transient, code: code, message, cause: cause)
    }
    /// A permanent error.
    public static func permanent(_ code: String, _ message: String, cause: (any Error)? = nil) -> PollerError {
        PollerError(.permanent, code: code, message, cause: cause)
    }
    /// A configuration error.
    public static func config(_ code: String, _ message: String, cause: (any Error)? = nil) -> PollerError {
        PollerError(.config, code: code, message, cause: cause)
    }

    public var description: String { "\(errorClass.rawValue): \(message)" }
}
