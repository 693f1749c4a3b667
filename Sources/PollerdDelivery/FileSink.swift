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
    /// A write that fails part-way (a full disk) is cut back to where it started, so the file
    /// never keeps a torn line.
    private func appendDurably(_ payload: [UInt8]) throws {
        try state.withLock { s in
            do {
                // A file moved away (log rotation), deleted, or replaced (by a symlink, say) is
                // opened again at its path, with the same checks as the first time.
                if s.fd >= 0, !stillAtPath(s.fd) {
                    close(s.fd)
                    s.fd = -1
                }
                if s.fd < 0 { s.fd = try open() }
                var st = stat()
                let before = fstat(s.fd, &st) == 0 ? st.st_size : -1
                do {
                    try writeAll(s.fd, payload)
                } catch {
                    if before >= 0 { _ = ftruncate(s.fd, before) }
                    throw error
                }
                guard fsync(s.fd) == 0 else { throw failure("fsync") }
            } catch {
                if s.fd >= 0 {
                    close(s.fd)
                    s.fd = -1
                }
                throw error
            }
        }
    }

    /// True while `path` itself (not what a symlink there points to) is the file the descriptor
    /// is open on.
    private func stillAtPath(_ fd: Int32) -> Bool {
        var open = stat()
        var named = stat()
        guard fstat(fd, &open) == 0, lstat(path, &named) == 0 else { return false }
        return open.st_dev == named.st_dev && open.st_ino == named.st_ino
    }

    private func open() throws -> Int32 {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty, !FileManager.default.fileExists(atPath: dir) {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw SinkFailure(retryable: true, "file \(path): cannot create the directory: \(error)")
            }
        }
        var seen = stat()
        let existed = lstat(path, &seen) == 0
        // O_NOFOLLOW: a symlink at the path is refused, never followed to another file;
        // O_NONBLOCK: a FIFO there cannot hang the open.
        let fd = Glibc.open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard fd >= 0 else {
            if errno == ELOOP {
                throw SinkFailure(
                    retryable: true,
                    "file \(path): is a symbolic link; the file sink writes only to a regular file it opens itself")
            }
            throw failure("open")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw SinkFailure(
                retryable: true,
                "file \(path): is not a regular file (a directory, FIFO, socket or device); give the file sink a path to a regular file"
            )
        }
        // Back to blocking writes for a regular file (O_NONBLOCK only guarded the open).
        _ = fcntl(fd, F_SETFL, O_APPEND)
        // A line torn by a power loss would glue onto the next one: end it first.
        if st.st_size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, off_t(st.st_size - 1)) == 1, last != 0x0A {
                do { try writeAll(fd, [0x0A]) } catch {
                    close(fd)
                    throw error
                }
            }
        }
        if !existed {
            // Make the new directory entry durable too.
            let dfd = Glibc.open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dfd >= 0 {
                _ = fsync(dfd)
                close(dfd)
            }
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
        // A full disk, a quota or an I/O error is the file system's fault, not the item's: it
        // must never send items to the dead-letter table.
        let storage = [ENOSPC, EDQUOT, EIO, EROFS].contains(e)
        return SinkFailure(
            retryable: true, receiverFault: storage, "file \(path): \(op) failed: \(String(cString: strerror(e)))")
    }
}

/// Writes envelopes as JSON lines to the daemon's standard output.
public final class StdoutSink: Sink {
    private let lock = Mutex(())

    public init() {}

    public func deliver(_ records: [OutboxRecord], jobID: String) async -> SinkResult {
        var text = ""
        for r in records {
            text += r.envelope
            text += "\n"
        }
        let bytes = Array(text.utf8)
        let ok: Bool = lock.withLock { _ in
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + off, bytes.count - off) }
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                off += n
            }
            return true
        }
        return ok
            ? SinkResult(acked: records.count)
            : SinkResult(
                acked: 0,
                failure: SinkFailure(retryable: true, "stdout: write failed: \(String(cString: strerror(errno)))"))
    }
}
