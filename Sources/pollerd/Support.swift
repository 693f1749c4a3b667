import ArgumentParser
import Foundation
import Logging
import PollerdConfig
import PollerdCore
import PollerdPlugins
import PollerdPollers
import PollerdSQLite
#if canImport(Glibc)
import Glibc
#endif

/// Process exit codes (documented in `pollerd --help` and the README).
enum Exit {
    static let ok = ExitCode(0)
    static let transient = ExitCode(1)
    static let permanent = ExitCode(2)
    static let config = ExitCode(3)
}

enum Support {
    nonisolated(unsafe) static var bootstrapped = false

    static func bootstrapLogging(level: String) -> Logger {
        if !bootstrapped {
            bootstrapped = true
            let lvl = Logger.Level(rawValue: level.lowercased()) ?? .info
            LoggingSystem.bootstrap { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = lvl
                return h
            }
        }
        return Logger(label: "pollerd")
    }

    static var nowMs: Int64 { SystemWallClock().nowMs }

    /// Loads the job file, with the plugins its `plugin_dirs` hold, and prints its problems.
    static func load(_ path: String, printProblems: Bool = true) -> JobFile {
        let file = JobFile.load(path: path, kinds: PluginSet.kindProvider(builtins: Builtins.registry()), nowMs: nowMs)
        if printProblems {
            for e in file.errors { printErr("error: \(e)") }
            for w in file.warnings { printErr("warning: \(w)") }
        }
        return file
    }

    static func printErr(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    static var hostname: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count)
        let name = String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name.replacingOccurrences(of: ":", with: "_")
    }

    /// A lease holder id: `host:pid:nonce`, new on every start.
    static func holderID() -> String {
        "\(hostname):\(getpid()):\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
    }

    /// True for a holder that ran on this host in a process that no longer exists.
    @Sendable static func isAbandoned(_ holder: String) -> Bool {
        let parts = holder.split(separator: ":")
        guard parts.count == 3, String(parts[0]) == hostname, let pid = pid_t(parts[1]), pid != getpid(), pid > 1 else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    static func openStore(_ file: JobFile, override: String? = nil) throws -> SQLiteStateStore {
        try SQLiteStateStore(path: override ?? file.stateDBPath, synchronousFull: file.settings.stateSynchronousFull)
    }

    static func json(_ v: JSONValue) -> String { v.canonicalString }

}

extension Optional where Wrapped == Int64 {
    var json: JSONValue { map { .int($0) } ?? .null }
}

extension Optional where Wrapped == String {
    var json: JSONValue { map { .string($0) } ?? .null }
}
