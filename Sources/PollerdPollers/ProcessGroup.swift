#if canImport(Glibc)
public import Glibc
#endif

/// Helpers for children that run in their own process group.
public enum ProcessGroup {
    /// SIGKILLs a whole process group (grandchildren included); a gone group is fine.
    public static func kill(_ pgid: pid_t?) {
        guard let pgid, pgid > 1 else { return }
        _ = Glibc.kill(-pgid, SIGKILL)
    }

    /// The environment every child starts from: PATH, HOME, LANG and TZ from the daemon, plus the
    /// names allowlisted in `inherit`. Nothing else leaks (tokens, passwords, cloud credentials).
    public static func baseEnvironment(inherit: [String], from parent: [String: String]) -> [String: String] {
        var env: [String: String] = [:]
        for name in ["PATH", "HOME", "LANG", "TZ"] + inherit {
            if let v = parent[name] { env[name] = v }
        }
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        return env
    }

    /// Writing to a child that exited must be an error, not a SIGPIPE that kills the daemon.
    public static func ignoreSIGPIPE() {
        _ = signal(SIGPIPE, SIG_IGN)
    }
}
