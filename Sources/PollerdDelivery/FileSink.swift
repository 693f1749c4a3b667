import Foundation
import NIOPosix
public import PollerdCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Appends envelopes as JSON lines to a file and fsyncs them before acknowledging.
/// Writes run on NIO's blocking-I/O thread pool, one batch per write and fsync, serialized per file.
public final class FileSink: Sink {
    public let path: String
    private struct State { var fd: Int32 = -1 }
    private let state = Mutex(State())

    public init(path: String) {
        self.path = path
    }

    deinit {
        state.withLock { s in if s.fd >= 0 { close(s.fd) } }
    }

    public func deliver(_ records: [OutboxRecord], jobID: String) async -> SinkResult {
        guard !records.isEmpty else { return SinkResult(acked: 0) }
        var bytes = [UInt8]()
        bytes.reserveCapacity(records.reduce(0) { $0 + $1.envelope.utf8.count + 1 })
        for r in records {
            bytes.append(contentsOf: r.envelope.utf8)
            bytes.append(0x0A)
        }
        let payload = bytes
        do {
            try await NIOThreadPool.singleton.runIfActive { try self.appendDurably(payload) }
            return SinkResult(acked: records.count)
        } catch let f as SinkFailure {
            return SinkResult(acked: 0, failure: f)
        } catch {
            return SinkResult(acked: 0, failure: SinkFailure(retryable: true, "file \(path): \(error)"))
        }
    }

    /// Writes the whole payload and fsyncs; on any failure the descriptor is dropped so the next
    /// attempt reopens the file (after a failed fsync the kernel may have discarded the pages).
    private func appendDurably(_ payload: [UInt8]) throws {
        try state.withLock { s in
            do {
                // A file moved away (log rotation) or deleted is reopened at its path.
                if s.fd >= 0, !stillAtPath(s.fd) { close(s.fd); s.fd = -1 }
                if s.fd < 0 { s.fd = try open() }
                try writeAll(s.fd, payload)
                guard fsync(s.fd) == 0 else { throw failure("fsync") }
            } catch {
                if s.fd >= 0 { close(s.fd); s.fd = -1 }
                throw error
            }
        }
    }

    /// True while `path` names the file the descriptor is open on.
    private func stillAtPath(_ fd: Int32) -> Bool {
        var open = stat(), named = stat()
        guard fstat(fd, &open) == 0, stat(path, &named) == 0 else { return false }
        return open.st_dev == named.st_dev && open.st_ino == named.st_ino
    }

    private func open() throws -> Int32 {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty, !FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw SinkFailure(retryable: true, "file \(path): cannot create the directory: \(error)")
            }
        }
        let existed = FileManager.default.fileExists(atPath: path)
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("open") }
        // A line torn by a power loss would glue onto the next one: end it first.
        var st = stat()
        if fstat(fd, &st) == 0, st.st_size > 0 {
            var last: UInt8 = 0
            let rfd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            if rfd >= 0 {
                if pread(rfd, &last, 1, off_t(st.st_size - 1)) == 1, last != 0x0A {
                    do { try writeAll(fd, [0x0A]) } catch { close(rfd); close(fd); throw error }
                }
                close(rfd)
            }
        }
        if !existed {
            // Make the new directory entry durable too.
            let dfd = Glibc.open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dfd >= 0 { _ = fsync(dfd); close(dfd) }
        }
        return fd
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, bytes.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("write")
            }
            off += n
        }
    }

    private func failure(_ op: String) -> SinkFailure {
        let e = errno
        return SinkFailure(retryable: true, "file \(path): \(op) failed: \(String(cString: strerror(e)))")
    }
}

/// Writes envelopes as JSON lines to the daemon's standard output.
public final class StdoutSink: Sink {
    private let lock = Mutex(())

    public init() {}

    public func deliver(_ records: [OutboxRecord], jobID: String) async -> SinkResult {
        var text = ""
        for r in records { text += r.envelope; text += "\n" }
        let bytes = Array(text.utf8)
        let ok: Bool = lock.withLock { _ in
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + off, bytes.count - off) }
                if n < 0 { if errno == EINTR { continue }; return false }
                off += n
            }
            return true
        }
        return ok ? SinkResult(acked: records.count) : SinkResult(acked: 0, failure: SinkFailure(retryable: true, "stdout: write failed: \(String(cString: strerror(errno)))"))
    }
}
