import Foundation
import SystemPackage

// The one file layer under the tools, on swift-system: positional reads and writes that retry EINTR and finish short
// transfers (FileIO), and one atomic write (AtomicFile).

public enum FileIO {
    /// O_DIRECT (not exported by Swift's Glibc module): reads and writes that bypass the page cache; buffers, offsets
    /// and lengths aligned to the logical sector size (4096 covers every disk).
    public static var directFlag: Int32 {
        #if arch(x86_64) || arch(i386)
        return 0o40000
        #else
        return 0o200000
        #endif
    }

    /// Writes all of `bytes` at `offset` (pwrite), retrying EINTR and continuing after short writes.
    public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, path: String) throws(FileError) {
        let descriptor = FileDescriptor(rawValue: fd)
        var done = 0
        while done < bytes.count {
            let position = offset + UInt64(done)
            let rest = UnsafeRawBufferPointer(rebasing: bytes[done...])
            let written: Int
            do {
                written = try descriptor.write(toAbsoluteOffset: Int64(position), rest, retryOnInterrupt: true)
            } catch {
                throw FileError(path: path, operation: "write at byte \(position) of", errno: error as? Errno ?? .ioError,
                                offset: position)
            }
            // A write that makes no progress would loop forever: report it as an I/O error.
            guard written > 0 else {
                throw FileError(path: path, operation: "write at byte \(position) of", errno: .ioError, offset: position)
            }
            done += written
        }
    }

    /// Writes the first `count` bytes of `bytes` (all of them by default) at `offset`.
    public static func write(_ fd: Int32, _ bytes: [UInt8], count: Int? = nil, at offset: UInt64,
                             path: String) throws(FileError) {
        let failure: FileError? = bytes.withUnsafeBytes { (buffer) -> FileError? in
            let prefix = UnsafeRawBufferPointer(rebasing: buffer[0..<min(count ?? buffer.count, buffer.count)])
            do throws(FileError) { try write(fd, prefix, at: offset, path: path) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    /// Reads into the first `count` bytes of `bytes` (all of them by default) from `offset` until they are full or the
    /// file ends; returns the number of bytes read.
    public static func read(_ fd: Int32, into bytes: inout [UInt8], count: Int? = nil, at offset: UInt64,
                            path: String) throws(FileError) -> Int {
        let limit = min(count ?? bytes.count, bytes.count)
        let result: Result<Int, FileError> = bytes.withUnsafeMutableBytes { buffer in
            do throws(FileError) {
                return .success(try read(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<limit]), at: offset,
                                         path: path))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Reads into `buffer` from `offset` (pread) until it is full or the file ends; returns the number of bytes read.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64,
                            path: String) throws(FileError) -> Int {
        let descriptor = FileDescriptor(rawValue: fd)
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let read: Int
            do {
                read = try descriptor.read(fromAbsoluteOffset: Int64(position),
                                           into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]),
                                           retryOnInterrupt: true)
            } catch {
                throw FileError(path: path, operation: "read at byte \(position) of", errno: error as? Errno ?? .ioError,
                                offset: position)
            }
            if read == 0 { break }
            done += read
        }
        return done
    }

    /// Writes all of `data` to `fd` from its current position, retrying EINTR and continuing after short writes.
    public static func writeAll(_ fd: Int32, _ data: Data, path: String) throws(FileError) {
        let descriptor = FileDescriptor(rawValue: fd)
        let failure: FileError? = data.withUnsafeBytes { buffer -> FileError? in
            var done = 0
            while done < buffer.count {
                do {
                    let written = try descriptor.write(UnsafeRawBufferPointer(rebasing: buffer[done...]),
                                                       retryOnInterrupt: true)
                    guard written > 0 else { return FileError(path: path, operation: "write", errno: .ioError) }
                    done += written
                } catch {
                    return FileError(path: path, operation: "write", errno: error as? Errno ?? .ioError)
                }
            }
            return nil
        }
        if let failure { throw failure }
    }

    /// Flushes `fd` to stable storage (fsync; swift-system has no form of it), retrying EINTR.
    public static func sync(_ fd: Int32, path: String) throws(FileError) {
        try system { fsync(fd) }.get(path, "flush (fsync)")
    }
}
