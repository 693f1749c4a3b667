import Foundation
public import PollerdCore
import Subprocess
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// `command`: runs a configured argv per tick in its own process group. Each non-empty line on
/// stdout must be a JSON object and becomes an item, except control lines, which start with
/// `#pollerd ` (no JSON text starts with `#`, so no item is ever taken for one):
/// - `#pollerd cursor BASE64URL` / `#pollerd cursor-text TEXT`: the job's next cursor (the last
///   such line wins); without one the stored cursor stays.
/// - `#pollerd fail CLASS MESSAGE`: the tick fails as `transient`, `permanent` or `config`,
///   whatever the exit status.
/// - `#pollerd next-interval SECS`: the delay before the next tick, this once.
/// A non-zero exit is a transient error.
///
/// Config: `argv` (required), `cwd`, `env` (extra variables), `inherit_env` (names copied from the
/// daemon's environment), `max_output_bytes` (default 4 MiB), `kill_grace_ms` (default 2000).
/// The child gets only PATH, HOME, LANG and TZ from the daemon, plus `POLLERD_JOB_ID`,
/// `POLLERD_KIND`, `POLLERD_AGENT`, `POLLERD_NOW`, and the stored cursor as `POLLERD_CURSOR`
/// (base64url) and, when it is UTF-8 text without NUL, as `POLLERD_CURSOR_TEXT`.
public struct CommandPoller: Poller {
    public let kind = "command"
    /// Bytes of stderr kept for the error message.
    static let stderrTailBytes = 4096

    public init() {}

    public func validate(config: JSONValue) throws(ConfigIssue) {
        let c = try ConfigReader(config)
        try c.allowOnly(["argv", "cwd", "env", "inherit_env", "max_output_bytes", "kill_grace_ms"])
        guard let argv = try c.stringList("argv") else {
            throw ConfigIssue(path: ["argv"], "is required: the program and its arguments")
        }
        guard let first = argv.first, !first.isEmpty else { throw ConfigIssue(path: ["argv"], "must name a program") }
        _ = try c.string("cwd")
        if let env = try c.stringMap("env") {
            for k in env.keys where !EnvName.isValid(k) {
                throw ConfigIssue(path: ["env", k], "is not a valid environment variable name")
            }
        }
        for name in try c.stringList("inherit_env") ?? [] where !EnvName.isValid(name) {
            throw ConfigIssue(path: ["inherit_env"], "'\(name)' is not a valid environment variable name")
        }
        if let m = try c.int("max_output_bytes"), !(1...(256 << 20)).contains(m) {
            throw ConfigIssue(path: ["max_output_bytes"], "must be between 1 and 268435456")
        }
        if let g = try c.int("kill_grace_ms"), !(0...60_000).contains(g) {
            throw ConfigIssue(path: ["kill_grace_ms"], "must be between 0 and 60000")
        }
    }

    /// The environment a command gets: a minimal base, allowlisted names, the job's own variables.
    static func environment(
        for ctx: TickContext, extra: [String: String], inherit: [String], from parent: [String: String]
    ) -> [String: String] {
        var env = ProcessGroup.baseEnvironment(inherit: inherit, from: parent)
        for (k, v) in extra { env[k] = v }
        env["POLLERD_JOB_ID"] = ctx.jobID
        env["POLLERD_KIND"] = ctx.kind
        env["POLLERD_AGENT"] = ctx.agent
        env["POLLERD_NOW"] = RFC3339.format(ms: ctx.nowMs)
        if let c = ctx.cursor {
            env["POLLERD_CURSOR"] = Base64URL.encode(c)
            if !c.contains(0), let text = String(data: c, encoding: .utf8) { env["POLLERD_CURSOR_TEXT"] = text }
        }
        return env
    }

    private struct Collected: Sendable {
        var stdout: [UInt8] = []
        var stderrTail: [UInt8] = []
        var overflow = false
    }

    public func tick(_ ctx: TickContext) async throws(PollerError) -> TickAck {
        let c: ConfigReader
        let argv: [String]
        do {
            c = try ConfigReader(ctx.config)
            argv = try c.stringList("argv") ?? []
        } catch {
            throw .config(.badConfig, error.description)
        }
        guard let program = argv.first else { throw .config(.badConfig, "argv is empty") }
        let limit = Int((try? c.int("max_output_bytes")) ?? nil ?? 4 << 20)
        let grace = (try? c.int("kill_grace_ms")) ?? nil ?? 2000
        let env = Self.environment(
            for: ctx, extra: ((try? c.stringMap("env")) ?? nil) ?? [:],
            inherit: ((try? c.stringList("inherit_env")) ?? nil) ?? [],
            from: ProcessInfo.processInfo.environment)
        var envKeys: [Environment.Key: String] = [:]
        for (k, v) in env { if let key = Environment.Key(rawValue: k) { envKeys[key] = v } }

        var options = PlatformOptions()
        options.processGroupID = 0
        options.teardownSequence = [
            .gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: .milliseconds(grace))
        ]
        let pgid = Mutex<pid_t?>(nil)
        let executable: Executable = program.contains("/") ? .path(.init(program)) : .name(program)
        let cwd = (try? c.string("cwd")) ?? nil

        let result: ExecutionResult<Collected, SequenceOutput, SequenceOutput>
        do {
            result = try await run(
                executable, arguments: Arguments(Array(argv.dropFirst())), environment: .custom(envKeys),
                workingDirectory: cwd.map { .init($0) }, platformOptions: options,
                input: .none, output: .sequence, error: .sequence
            ) { execution in
                let pid = execution.processIdentifier.value
                pgid.withLock { $0 = pid }
                ProcessTree.started(pid, label: "job \(ctx.jobID)")
                return try await withThrowingTaskGroup(of: Collected.self) { group in
                    group.addTask {
                        var out = Collected()
                        for try await chunk in execution.standardOutput {
                            chunk.withUnsafeBytes { out.stdout.append(contentsOf: $0) }
                            if out.stdout.count > limit {
                                out.overflow = true
                                try? execution.send(signal: .kill, toProcessGroup: true)
                                break
                            }
                        }
                        return out
                    }
                    group.addTask {
                        // Always drain stderr, keeping only a tail, so a chatty child never blocks.
                        var tail = Collected()
                        for try await chunk in execution.standardError {
                            chunk.withUnsafeBytes { tail.stderrTail.append(contentsOf: $0) }
                            if tail.stderrTail.count > 2 * Self.stderrTailBytes {
                                tail.stderrTail.removeFirst(tail.stderrTail.count - Self.stderrTailBytes)
                            }
                        }
                        return tail
                    }
                    var merged = Collected()
                    for try await part in group {
                        if !part.stdout.isEmpty || part.overflow {
                            merged.stdout = part.stdout
                            merged.overflow = part.overflow
                        }
                        if !part.stderrTail.isEmpty {
                            merged.stderrTail = Array(part.stderrTail.suffix(Self.stderrTailBytes))
                        }
                    }
                    return merged
                }
            }
        } catch {
            // Cut short (timeout, shutdown): everything below the command goes, wherever it went.
            if let pid = pgid.withLock({ $0 }) {
                ProcessTree.killTree(pid)
                ProcessTree.reaped(pid)
            }
            if Task.isCancelled { throw .transient(.cancelled, "command cancelled") }
            if let se = error as? SubprocessError, se.code == .executableNotFound {
                throw .config(.spawnFailed, "cannot start '\(program)': \(se)")
            }
            throw .transient(.spawnFailed, "cannot run '\(program)': \(error)")
        }
        // Grandchildren may still hold the group; it goes with the tick. (Those that left it
        // are the daemon's to sweep once their parent is gone: ProcessTree.)
        ProcessGroup.kill(pgid.withLock { $0 })
        if let pid = pgid.withLock({ $0 }) { ProcessTree.reaped(pid) }
        let out = result.closureResult
        let stderrText = String(decoding: out.stderrTail, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let stderrHint =
            stderrText.isEmpty
            ? "" : "; stderr: \(stderrText.split(separator: "\n").suffix(3).joined(separator: " | "))"
        if out.overflow {
            throw .transient(.outputTooLarge, "stdout exceeded max_output_bytes (\(limit))")
        }
        let output = try Self.parseOutput(out.stdout)
        if let fail = output.failure { throw fail }
        switch result.terminationStatus {
        case .exited(0): break
        case .exited(let code):
            throw .transient(.exitStatus, "'\(program)' exited with status \(code)\(stderrHint)")
        case .signaled(let sig):
            throw .transient(.signaled, "'\(program)' was killed by signal \(sig)\(stderrHint)")
        }
        return TickAck(nextCursor: output.cursor, nextIntervalSecs: output.nextIntervalSecs, items: output.items)
    }

    /// What a command printed: its items and its control lines.
    struct Output {
        var items: [JSONValue] = []
        var cursor: Data?
        var failure: PollerError?
        var nextIntervalSecs: Int64?
    }

    static let controlPrefix = Array("#pollerd ".utf8)

    /// Reads stdout: JSON object lines are items, `#pollerd ` lines are control lines.
    static func parseOutput(_ stdout: [UInt8]) throws(PollerError) -> Output {
        var out = Output()
        var lineNo = 0
        for line in stdout.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNo += 1
            if line.allSatisfy(Self.isBlank) { continue }
            if line.starts(with: controlPrefix) {
                try control(line.dropFirst(controlPrefix.count), lineNo: lineNo, into: &out)
                continue
            }
            guard let v = try? JSONValue.parse(Data(line)), case .object = v else {
                throw .transient(
                    .badOutput, "stdout line \(lineNo) is not a JSON object (nor a '#pollerd ' control line)")
            }
            out.items.append(v)
        }
        return out
    }

    private static func control(_ rest: ArraySlice<UInt8>, lineNo: Int, into out: inout Output) throws(PollerError) {
        var text = String(decoding: rest, as: UTF8.self)
        if text.hasSuffix("\r") { text.removeLast() }
        let verb = text.prefix { $0 != " " }
        let arg = text.dropFirst(verb.count).drop { $0 == " " }
        switch verb {
        case "cursor":
            guard let bytes = Base64URL.decode(String(arg)) else {
                throw .transient(
                    .badOutput,
                    "stdout line \(lineNo): '#pollerd cursor' takes base64url (use cursor-text for plain text)")
            }
            out.cursor = bytes
        case "cursor-text":
            out.cursor = Data(arg.utf8)
        case "fail":
            let cls = arg.prefix { $0 != " " }
            let message = arg.dropFirst(cls.count).trimmingCharacters(in: .whitespaces)
            let said = message.isEmpty ? "the command reported a failure" : message
            switch cls {
            case "transient": out.failure = .transient(.sourceFailed, said)
            case "permanent": out.failure = .permanent(.sourceFailed, said)
            case "config": out.failure = .config(.badConfig, said)
            default:
                throw .transient(
                    .badOutput,
                    "stdout line \(lineNo): '#pollerd fail' takes transient, permanent or config, not '\(cls)'")
            }
        case "next-interval":
            guard let secs = Int64(arg), (1...31_536_000).contains(secs) else {
                throw .transient(
                    .badOutput,
                    "stdout line \(lineNo): '#pollerd next-interval' takes a number of seconds (1 to 31536000)")
            }
            out.nextIntervalSecs = secs
        default:
            throw .transient(
                .badOutput,
                "stdout line \(lineNo): unknown control line '#pollerd \(verb)' (known: cursor, cursor-text, fail, next-interval)"
            )
        }
    }

    static func isBlank(_ b: UInt8) -> Bool { b == 32 || b == 9 || b == 13 }

}
