import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A small tmpfs for full-disk tests. Mounting needs root (CI runs as root); where it cannot be
/// had, `available` is false and the tests that need it are skipped, saying why.
public enum SmallDisk {
    /// Mounts a tmpfs of `bytes` at `dir` (created if needed); false when it cannot.
    public static func mount(_ dir: String, bytes: Int) -> Bool {
        guard getuid() == 0 else { return false }
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return run(["/bin/mount", "-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", dir])
    }

    /// Detaches the tmpfs at once (`umount -l`): a test's store or sink may still hold a file
    /// there, and a plain unmount would fail busy and leave the mount behind.
    public static func unmount(_ dir: String) { _ = run(["/bin/umount", "-l", dir]) }

    /// True when this process can mount a tmpfs; prints why not, once, when it cannot.
    public static let available: Bool = {
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("pollerd-tmpfs-probe-\(getpid())")
            .path
        defer {
            unmount(probe)
            try? FileManager.default.removeItem(atPath: probe)
        }
        let ok = mount(probe, bytes: 65536)
        if !ok { print("full-disk tests skipped: mounting a tmpfs needs root (.ci/run runs as root)") }
        return ok
    }()

    private static func run(_ argv: [String]) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}
