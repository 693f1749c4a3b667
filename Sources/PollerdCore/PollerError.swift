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
    /// A stable machine-readable code.
    public var code: Code
    /// A message for people.
    public var message: String
    /// What caused it, when there is an underlying error.
    public var cause: (any Error)?
    /// For a transient error: the delay the source asked for (an HTTP `Retry-After`), used as
    /// the next delay instead of the backoff.
    public var retryAfterSecs: Int64?

    public init(_ errorClass: ErrorClass, code: Code, _ message: String, cause: (any Error)? = nil) {
        self.errorClass = errorClass
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// A transient error.
    public static func transient(_ code: Code, _ message: String, cause: (any Error)? = nil) -> PollerError {
        PollerError(.transient, code: code, message, cause: cause)
    }
    /// A permanent error.
    public static func permanent(_ code: Code, _ message: String, cause: (any Error)? = nil) -> PollerError {
        PollerError(.permanent, code: code, message, cause: cause)
    }
    /// A configuration error.
    public static func config(_ code: Code, _ message: String, cause: (any Error)? = nil) -> PollerError {
        PollerError(.config, code: code, message, cause: cause)
    }

    /// The same error with the delay the source asked for.
    public func retrying(afterSecs secs: Int64?) -> PollerError {
        var e = self
        e.retryAfterSecs = secs
        return e
    }

    public var description: String { "\(errorClass.rawValue): \(message)" }
}

extension PollerError {
    /// A stable, machine-readable error code (`timeout`, `exit_status`, `bad_reply`, ...). A struct
    /// over a private enum, as swift-service-lifecycle's `ServiceGroupError.Code`: the set can
    /// grow without breaking callers, and a misspelt code does not compile.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable, CaseIterable {
            case badConfig = "bad_config"
            case badCursor = "bad_cursor"
            case badOutput = "bad_output"
            case badReply = "bad_reply"
            case badResponse = "bad_response"
            case blockedAddress = "blocked_address"
            case credentials = "credentials"
            case cancelled = "cancelled"
            case emptyReply = "empty_reply"
            case exitStatus = "exit_status"
            case handshake = "handshake"
            case handshakeTimeout = "handshake_timeout"
            case httpStatus = "http_status"
            case leaseLost = "lease_lost"
            case network = "network"
            case noReply = "no_reply"
            case noopFail = "noop_fail"
            case outputTooLarge = "output_too_large"
            case pluginCrashed = "plugin_crashed"
            case pluginDown = "plugin_down"
            case pluginError = "plugin_error"
            case pluginExited = "plugin_exited"
            case pluginFailed = "plugin_failed"
            case pluginRestarting = "plugin_restarting"
            case rateLimited = "rate_limited"
            case replyTooLarge = "reply_too_large"
            case signaled = "signaled"
            case sourceFailed = "source_failed"
            case spawnFailed = "spawn_failed"
            case store = "store"
            case timeout = "timeout"
            case unknownKind = "unknown_kind"
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The code as it appears in logs, JSON and the store (`snake_case`).
        public var description: String { value.rawValue }

        /// Every code, for documentation and tests.
        public static var all: [Code] { Value.allCases.map(Code.init) }

        public static let badConfig = Code(.badConfig)
        public static let badCursor = Code(.badCursor)
        public static let badOutput = Code(.badOutput)
        public static let badReply = Code(.badReply)
        public static let badResponse = Code(.badResponse)
        public static let blockedAddress = Code(.blockedAddress)
        public static let credentials = Code(.credentials)
        public static let cancelled = Code(.cancelled)
        public static let emptyReply = Code(.emptyReply)
        public static let exitStatus = Code(.exitStatus)
        public static let handshake = Code(.handshake)
        public static let handshakeTimeout = Code(.handshakeTimeout)
        public static let httpStatus = Code(.httpStatus)
        public static let leaseLost = Code(.leaseLost)
        public static let network = Code(.network)
        public static let noReply = Code(.noReply)
        public static let noopFail = Code(.noopFail)
        public static let outputTooLarge = Code(.outputTooLarge)
        public static let pluginCrashed = Code(.pluginCrashed)
        public static let pluginDown = Code(.pluginDown)
        public static let pluginError = Code(.pluginError)
        public static let pluginExited = Code(.pluginExited)
        public static let pluginFailed = Code(.pluginFailed)
        public static let pluginRestarting = Code(.pluginRestarting)
        public static let rateLimited = Code(.rateLimited)
        public static let replyTooLarge = Code(.replyTooLarge)
        public static let signaled = Code(.signaled)
        public static let sourceFailed = Code(.sourceFailed)
        public static let spawnFailed = Code(.spawnFailed)
        public static let store = Code(.store)
        public static let timeout = Code(.timeout)
        public static let unknownKind = Code(.unknownKind)
    }
}
