import Foundation
import SystemPackage

/// The one atomic write: a temporary file in the same directory, written in full, fsynced, renamed into place, the
/// directory fsynced; the temporary file removed on any failure; optionally never following links.
public enum AtomicFile {
    /// Replaces `name` in the open directory `directory` with `data`: a temporary file created there (never following a
    /// link, mode `mode`, owner and group kept from the file it replaces when `keepOwner`), written in full, fsynced,
    /// renamed over `name` (a link named `name` is replaced, its target untouched), and the directory fsynced.
    /// `shown` names the file in errors.
    public static func write(_ data: Data, named name: String, inDirectory directory: Int32, shown: String,
                             mode: mode_t = 0o644, keepOwner: Bool = false) throws(FileError) {
        let temporary = "." + name + ".tmp-\(getpid())"
        unlinkat(directory, temporary, 0)
        // openat has no swift-system form; the descriptor it returns is owned here as a `FileDescriptor`.
        let fd = FileDescriptor(rawValue: try system {
            openat(directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        }.get(shown, "create a temporary file for"))
        var closed = false
        defer { if !closed { try? fd.close() } }
        do throws(FileError) {
            try FileIO.writeAll(fd.rawValue, data, path: shown)
            // The mode asked for, whatever the umask; the owner of the file replaced (e.g. /etc/shadow's group).
            fchmod(fd.rawValue, mode)
            var existing = stat()
            if keepOwner, fstatat(directory, name, &existing, AT_SYMLINK_NOFOLLOW) == 0 {
                fchown(fd.rawValue, existing.st_uid, existing.st_gid)
            }
            try FileIO.sync(fd.rawValue, path: shown)
            closed = true
            do { try fd.close() } catch {
                throw FileError(path: shown, operation: "close", errno: error as? Errno ?? .ioError)
            }
            try system(retryOnInterrupt: false) { renameat(directory, temporary, directory, name) }
                .get(shown, "rename into place")
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
        let filePath = FilePath(path)
        let parentPath = filePath.removingLastComponent()
        let parent = parentPath.isEmpty ? "." : parentPath.string
        let name = filePath.lastComponent?.string ?? path
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw FileError(path: parent, operation: "create the directory", code: (error as NSError).code == 0 ? EIO : EACCES)
        }
        let directory: FileDescriptor
        do {
            directory = try FileDescriptor.open(FilePath(parent), .readOnly,
                                                options: noFollow ? [.directory, .closeOnExec, .noFollow] : [.directory, .closeOnExec])
        } catch {
            throw FileError(path: parent, operation: "open the directory", errno: error as? Errno ?? .ioError)
        }
        defer { try? directory.close() }
        try write(data, named: name, inDirectory: directory.rawValue, shown: path, mode: mode, keepOwner: keepOwner)
    }
}

extension AtomicFile {
    /// Puts `temporary`, a file another program wrote (ceph-authtool, monmaptool, `ceph auth get -o`), in place of
    /// `path` in the same directory: its mode set to `mode` (when given), fsynced, renamed over `path` and the directory
    /// fsynced; `temporary` is removed on any failure.
    public static func publish(_ temporary: String, to path: String, mode: mode_t? = nil) throws(FileError) {
        do throws(FileError) {
            let fd = try system { open(temporary, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }.get(temporary, "open")
            defer { close(fd) }
            if let mode { try system { fchmod(fd, mode) }.get(temporary, "set the mode of") }
            try FileIO.sync(fd, path: temporary)
            try system(retryOnInterrupt: false) { rename(temporary, path) }.get(path, "rename \(temporary) to")
        } catch {
            unlink(temporary)
            throw error
        }
        let parent = FilePath(path).removingLastComponent()
        if let directory = try? FileDescriptor.open(parent.isEmpty ? "." : parent, .readOnly,
                                                    options: [.directory, .closeOnExec]) {
            _ = fsync(directory.rawValue)
            try? directory.close()
        }
    }
}
