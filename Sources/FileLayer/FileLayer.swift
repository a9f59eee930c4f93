import Foundation

// The one file layer under the tools: positional reads and writes that retry EINTR and finish short transfers, and
// one atomic write (a temporary file in the same directory, written in full, fsynced, renamed into place, the
// directory fsynced; the temporary file removed on any failure), optionally never following links.

/// A failed file operation: what was attempted on which path, and the errno that says why.
public struct FileError: Error, CustomStringConvertible, Sendable, Equatable {
    public var path: String
    public var operation: String
    public var code: Int32

    public init(path: String, operation: String, code: Int32) {
        self.path = path
        self.operation = operation
        self.code = code
    }

    public var description: String { "cannot \(operation) \(path): \(String(cString: strerror(code)))" }

    /// The current errno, captured at once.
    static func current(_ path: String, _ operation: String) -> FileError {
        FileError(path: path, operation: operation, code: errno)
    }
}

public enum FileIO {
    /// Writes all of `bytes` at `offset` (pwrite), retrying EINTR and continuing after short writes.
    public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, path: String) throws(FileError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw n == 0 ? FileError(path: path, operation: "write at byte \(offset + UInt64(done)) of", code: EIO)
                    : .current(path, "write at byte \(offset + UInt64(done)) of")
            }
            done += n
        }
    }

    public static func write(_ fd: Int32, _ bytes: [UInt8], at offset: UInt64, path: String) throws(FileError) {
        let failure: FileError? = bytes.withUnsafeBytes { (buffer) -> FileError? in
            do throws(FileError) { try write(fd, buffer, at: offset, path: path) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    /// Reads into `buffer` from `offset` (pread) until it is full or the file ends; returns the number of bytes read.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64,
                            path: String) throws(FileError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw .current(path, "read at byte \(offset + UInt64(done)) of") }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `data` to `fd` from its current position.
    public static func writeAll(_ fd: Int32, _ data: Data, path: String) throws(FileError) {
        let failure: FileError? = data.withUnsafeBytes { buffer -> FileError? in
            var done = 0
            while done < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return n == 0 ? FileError(path: path, operation: "write", code: EIO) : .current(path, "write") }
                done += n
            }
            return nil
        }
        if let failure { throw failure }
    }

    public static func sync(_ fd: Int32, path: String) throws(FileError) {
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw .current(path, "flush (fsync)")
        }
    }
}

public enum AtomicFile {
    /// Replaces `name` in the open directory `directory` with `data`: a temporary file created there (never following a
    /// link, mode `mode`, owner and group kept from the file it replaces when `keepOwner`), written in full, fsynced,
    /// renamed over `name` (a link named `name` is replaced, its target untouched), and the directory fsynced.
    /// `shown` names the file in errors.
    public static func write(_ data: Data, named name: String, inDirectory directory: Int32, shown: String,
                             mode: mode_t = 0o644, keepOwner: Bool = false) throws(FileError) {
        let temporary = "." + name + ".tmp-\(getpid())"
        unlinkat(directory, temporary, 0)
        let fd = openat(directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .current(shown, "create a temporary file for") }
        var closed = false
        defer { if !closed { close(fd) } }
        do throws(FileError) {
            try FileIO.writeAll(fd, data, path: shown)
            // The mode asked for, whatever the umask; the owner of the file replaced (e.g. /etc/shadow's group).
            fchmod(fd, mode)
            var existing = stat()
            if keepOwner, fstatat(directory, name, &existing, AT_SYMLINK_NOFOLLOW) == 0 {
                fchown(fd, existing.st_uid, existing.st_gid)
            }
            try FileIO.sync(fd, path: shown)
            close(fd)
            closed = true
            guard renameat(directory, temporary, directory, name) == 0 else { throw .current(shown, "rename into place") }
        } catch {
            unlinkat(directory, temporary, 0)
            throw error
        }
        _ = fsync(directory)
    }

    /// Replaces the file at `path` with `data` (see the directory form); the parent directory is created when missing.
    /// With `noFollow`, the parent directory itself must not be a symbolic link.
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o644, keepOwner: Bool = false,
                             noFollow: Bool = false) throws(FileError) {
        let parent = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: parent.isEmpty ? "." : parent, withIntermediateDirectories: true)
        } catch {
            throw FileError(path: parent, operation: "create the directory", code: (error as NSError).code == 0 ? EIO : EACCES)
        }
        let directory = open(parent.isEmpty ? "." : parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (noFollow ? O_NOFOLLOW : 0))
        guard directory >= 0 else { throw .current(parent, "open the directory") }
        defer { close(directory) }
        try write(data, named: name, inDirectory: directory, shown: path, mode: mode, keepOwner: keepOwner)
    }
}
