import Foundation
import Synchronization

/// A `nats-server` of the test's own on a free loopback port, JetStream on when asked, that a
/// test can stop, kill and start again on the same port and store. Without the binary the NATS
/// tests are left out with the reason printed; under `CI=true` its absence fails the run
/// (`NATSAvailabilityTests`).
public final class NATSTestServer: Sendable {
    /// The `nats-server` binary, if installed.
    public static let binary: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/bin", "/usr/local/bin"] {
            let p = dir + "/nats-server"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        print("NATS tests skipped: nats-server is not installed (.ci/run installs it)")
        return nil
    }()

    public let port: Int
    /// The directory of the server's JetStream store and log.
    public let directory: String
    public let jetstream: Bool
    /// Lines of a config file the server is started with (`max_payload: 1024`, `authorization {…}`).
    public let config: String
    private let process = Mutex<Process?>(nil)

    public var url: String { "nats://127.0.0.1:\(port)" }

    /// Starts a server. Throws when `nats-server` is missing or does not come up.
    public init(jetstream: Bool = false, config: String = "") throws {
        guard Self.binary != nil else { throw CancellationError() }
        port = try Self.freePort()
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "pollerd-nats-\(UUID().uuidString)"
            ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.jetstream = jetstream
        self.config = config
        try start()
    }

    /// Starts the server (again, on the same port and store).
    public func start() throws {
        guard let binary = Self.binary else { throw CancellationError() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        var args = ["-a", "127.0.0.1", "-p", "\(port)", "-l", directory + "/server.log"]
        if jetstream { args += ["-js", "-sd", directory + "/js"] }
        if !config.isEmpty {
            let file = directory + "/server.conf"
            try config.write(toFile: file, atomically: true, encoding: .utf8)
            args += ["-c", file]
        }
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process.withLock { $0 = p }
        // Wait for the port to accept (the server is another process: its readiness is polled).
        for _ in 0..<500 {
            if Self.accepts(port) {
                if jetstream { Thread.sleep(forTimeInterval: 0.05) }
                return
            }
            guard p.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
        throw NSError(
            domain: "NATSTestServer", code: 1,
            userInfo: [NSLocalizedDescriptionKey: "nats-server did not start: \(log)"])
    }

    /// Stops the server (SIGTERM) and waits for it to exit.
    public func stop() {
        let p = process.withLock { p in
            defer { p = nil }
            return p
        }
        guard let p, p.isRunning else { return }
        p.terminate()
        p.waitUntilExit()
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    public func kill() {
        let p = process.withLock { p in
            defer { p = nil }
            return p
        }
        guard let p, p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// Puts the server in lame duck mode (SIGUSR2).
    public func lameDuck() {
        guard let pid = process.withLock({ $0?.processIdentifier }) else { return }
        Foundation.kill(pid, SIGUSR2)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard ok else { throw NSError(domain: "NATSTestServer", code: 2) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
