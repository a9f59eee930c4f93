import CArchive
import Foundation
import SystemErrors

/// A libarchive failure with `archive_error_string`'s text.
public struct ArchiveError: Error, CustomStringConvertible, Equatable, Sendable {
    public var operation: String
    public var path: String
    public var message: String

    public var description: String { "\(operation) \(path) failed: \(message)" }
}

/// Turns a libarchive status into an `ArchiveError` carrying the library's message.
/// Warnings are not failures.
private func check(_ archive: OpaquePointer, _ operation: String, _ path: String, _ status: Int32) throws(ArchiveError) {
    if status >= ARCHIVE_WARN { return }
    let message = optionalString(archive_error_string(archive)) ?? "libarchive status \(status)"
    throw ArchiveError(operation: operation, path: path, message: message)
}

public enum ArchiveCompression: String, Sendable, CaseIterable {
    case none, gzip, zstd
}

/// The single owner of a libarchive writer producing a tar (pax) file.
/// Call `finish()` to flush and learn about failures; `deinit` only frees.
public final class ArchiveWriter {
    private var archive: OpaquePointer?
    public let path: String

    public init(path: String, compression: ArchiveCompression = .zstd) throws(ArchiveError) {
        self.path = path
        guard let archive = archive_write_new() else {
            throw ArchiveError(operation: "archive_write_new for", path: path, message: "out of memory")
        }
        self.archive = archive
        try check(archive, "set tar format for", path, archive_write_set_format_pax_restricted(archive))
        switch compression {
        case .none: break
        case .gzip: try check(archive, "set gzip compression for", path, archive_write_add_filter_gzip(archive))
        case .zstd: try check(archive, "set zstd compression for", path, archive_write_add_filter_zstd(archive))
        }
        try check(archive, "create", path, archive_write_open_filename(archive, path))
    }

    deinit {
        if let archive { archive_write_free(archive) }
    }

    private func handle() throws(ArchiveError) -> OpaquePointer {
        guard let archive else { throw ArchiveError(operation: "write", path: path, message: "archive already finished") }
        return archive
    }

    /// Adds a regular file with the given contents.
    public func addFile(_ name: String, contents: [UInt8], mode: UInt32 = 0o644, modificationTime: Int = 0) throws(ArchiveError) {
        let archive = try handle()
        guard let entry = archive_entry_new() else { throw ArchiveError(operation: "archive_entry_new for", path: name, message: "out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, name)
        archive_entry_set_filetype(entry, 0o100000)
        archive_entry_set_perm(entry, mode_t(mode))
        archive_entry_set_size(entry, la_int64_t(contents.count))
        archive_entry_set_mtime(entry, time_t(modificationTime), 0)
        try check(archive, "write header of \(name) into", path, archive_write_header(archive, entry))
        if !contents.isEmpty {
            let written = contents.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
            if written < 0 { try check(archive, "write \(name) into", path, Int32(written)) }
        }
    }

    /// Adds every file under `directory` (owners, modes, links, device nodes and extended
    /// attributes preserved), named relative to it. Mount points below it are not crossed.
    public func addTree(_ directory: String) throws(ArchiveError) {
        let archive = try handle()
        guard let disk = archive_read_disk_new() else { throw ArchiveError(operation: "archive_read_disk_new for", path: directory, message: "out of memory") }
        defer { archive_read_free(disk) }
        try check(disk, "look up owners for", directory, archive_read_disk_set_standard_lookup(disk))
        try check(disk, "set traversal for", directory, archive_read_disk_set_behavior(disk, Int32(ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS)))
        let root = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        try check(disk, "open", directory, archive_read_disk_open(disk, root))
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            guard let entry = archive_entry_new() else { throw ArchiveError(operation: "archive_entry_new for", path: directory, message: "out of memory") }
            defer { archive_entry_free(entry) }
            let status = archive_read_next_header2(disk, entry)
            if status == ARCHIVE_EOF { break }
            try check(disk, "read", directory, status)
            archive_read_disk_descend(disk)
            let full = optionalString(archive_entry_pathname(entry)) ?? ""
            var relative = full.hasPrefix(root) ? String(full.dropFirst(root.count)) : full
            while relative.hasPrefix("/") { relative.removeFirst() }
            if relative.isEmpty { relative = "." } else { relative = "./" + relative }
            archive_entry_set_pathname(entry, relative)
            try check(archive, "write header of \(relative) into", path, archive_write_header(archive, entry))
            if archive_entry_size(entry) > 0 {
                while true {
                    let count = buffer.withUnsafeMutableBytes { archive_read_data(disk, $0.baseAddress, $0.count) }
                    if count == 0 { break }
                    if count < 0 { try check(disk, "read \(full) in", directory, Int32(count)) }
                    let written = buffer.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, count) }
                    if written < 0 { try check(archive, "write \(relative) into", path, Int32(written)) }
                }
            }
        }
    }

    /// Flushes and closes the archive file.
    public func finish() throws(ArchiveError) {
        let archive = try handle()
        let status = archive_write_close(archive)
        defer {
            archive_write_free(archive)
            self.archive = nil
        }
        try check(archive, "finish", path, status)
    }
}

/// One entry listed from an archive.
public struct ArchiveEntryInfo: Equatable, Sendable {
    public var path: String
    public var size: Int64
    public var mode: UInt32
    public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
    public var isRegularFile: Bool { mode & 0o170000 == 0o100000 }
}

/// The single owner of a libarchive reader over one archive file (any format and compression
/// libarchive recognises).
public final class ArchiveReader {
    private var archive: OpaquePointer?
    public let path: String

    public init(path: String) throws(ArchiveError) {
        self.path = path
        guard let archive = archive_read_new() else { throw ArchiveError(operation: "archive_read_new for", path: path, message: "out of memory") }
        self.archive = archive
        try check(archive, "enable formats for", path, archive_read_support_format_all(archive))
        try check(archive, "enable filters for", path, archive_read_support_filter_all(archive))
        try check(archive, "open", path, archive_read_open_filename(archive, path, 1 << 16))
    }

    deinit {
        if let archive { archive_read_free(archive) }
    }

    private func handle() throws(ArchiveError) -> OpaquePointer {
        guard let archive else { throw ArchiveError(operation: "read", path: path, message: "archive already closed") }
        return archive
    }

    /// The header of the archive's next entry; nil at its end.
    private func nextHeader(_ archive: OpaquePointer) throws(ArchiveError) -> OpaquePointer? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF { return nil }
        try check(archive, "read", path, status)
        return entry
    }

    /// Reads through the archive calling `body` with each entry and, for regular files, a function that
    /// returns its contents.
    public func forEach(_ body: (ArchiveEntryInfo, () throws(ArchiveError) -> [UInt8]) throws -> Void) throws {
        let archive = try handle()
        while let entry = try nextHeader(archive) {
            let info = ArchiveEntryInfo(path: optionalString(archive_entry_pathname(entry)) ?? "",
                                        size: Int64(archive_entry_size(entry)), mode: UInt32(archive_entry_mode(entry)))
            let archivePath = path
            try body(info) { () throws(ArchiveError) -> [UInt8] in
                var data: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let count = chunk.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
                    if count == 0 { break }
                    if count < 0 { try check(archive, "read \(info.path) from", archivePath, Int32(count)) }
                    data.append(contentsOf: chunk[0..<count])
                }
                return data
            }
        }
    }

    /// The entries of the archive.
    public func list() throws -> [ArchiveEntryInfo] {
        var entries: [ArchiveEntryInfo] = []
        try forEach { info, _ in entries.append(info) }
        return entries
    }

    /// Extracts everything into `directory`, preserving owners (when root), modes, times, ACLs
    /// and extended attributes; refuses paths that climb out of `directory`.
    public func extract(to directory: String) throws(ArchiveError) {
        let archive = try handle()
        guard let disk = archive_write_disk_new() else { throw ArchiveError(operation: "archive_write_disk_new for", path: directory, message: "out of memory") }
        defer { archive_write_free(disk) }
        let flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_ACL
            | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_FFLAGS | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS
        try check(disk, "set extract options for", directory, archive_write_disk_set_options(disk, Int32(flags)))
        try check(disk, "look up owners for", directory, archive_write_disk_set_standard_lookup(disk))
        while let entry = try nextHeader(archive) {
            let name = optionalString(archive_entry_pathname(entry)) ?? ""
            archive_entry_set_pathname(entry, directory + "/" + name)
            if let link = optionalString(archive_entry_hardlink(entry)) {
                archive_entry_set_hardlink(entry, directory + "/" + link)
            }
            try check(disk, "extract \(name) into", directory, archive_write_header(disk, entry))
            if archive_entry_size(entry) > 0 {
                try check(archive, "copy \(name) from", path, copyData(from: archive, to: disk))
            }
            try check(disk, "finish \(name) in", directory, archive_write_finish_entry(disk))
        }
        try check(disk, "close", directory, archive_write_close(disk))
    }

    private func copyData(from reader: OpaquePointer, to writer: OpaquePointer) -> Int32 {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        while true {
            let status = archive_read_data_block(reader, &block, &size, &offset)
            if status == ARCHIVE_EOF { return ARCHIVE_OK }
            if status < ARCHIVE_WARN { return status }
            let written = archive_write_data_block(writer, block, size, offset)
            if written < ARCHIVE_WARN { return Int32(written) }
        }
    }
}

/// The compressions `DecompressingReader` undoes: single streams, no container (libarchive's raw format).
public enum StreamCompression: String, Sendable, CaseIterable {
    case zstd, xz, gzip
}

/// The single owner of a libarchive reader that decompresses one zstd, xz or gzip stream (not an archive:
/// libarchive's "raw" format with exactly that filter). Reads are sequential; call `close()` to learn about
/// failures at the end of the stream, `deinit` only frees.
public final class DecompressingReader {
    private var archive: OpaquePointer?
    public let path: String
    public let compression: StreamCompression
    /// Decompressed bytes returned so far.
    public private(set) var position: UInt64 = 0
    private var ended = false

    public init(path: String, compression: StreamCompression) throws(ArchiveError) {
        self.path = path
        self.compression = compression
        guard let archive = archive_read_new() else { throw ArchiveError(operation: "archive_read_new for", path: path, message: "out of memory") }
        self.archive = archive
        try check(archive, "enable the raw format for", path, archive_read_support_format_raw(archive))
        switch compression {
        case .zstd: try check(archive, "enable zstd for", path, archive_read_support_filter_zstd(archive))
        case .xz: try check(archive, "enable xz for", path, archive_read_support_filter_xz(archive))
        case .gzip: try check(archive, "enable gzip for", path, archive_read_support_filter_gzip(archive))
        }
        try check(archive, "open", path, archive_read_open_filename(archive, path, 1 << 20))
        var entry: OpaquePointer?
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF {
            throw ArchiveError(operation: "decompress", path: path, message: "the \(compression.rawValue) stream holds no data")
        }
        try check(archive, "decompress", path, status)
        // The raw format accepts anything: make sure the filter really is the one asked for.
        let expected: Int32 = switch compression {
        case .zstd: ARCHIVE_FILTER_ZSTD
        case .xz: ARCHIVE_FILTER_XZ
        case .gzip: ARCHIVE_FILTER_GZIP
        }
        guard archive_filter_count(archive) > 1, archive_filter_code(archive, 0) == expected else {
            throw ArchiveError(operation: "decompress", path: path, message: "is not a \(compression.rawValue) stream")
        }
    }

    deinit {
        if let archive { archive_read_free(archive) }
    }

    /// Reads up to `buffer.count` decompressed bytes; 0 only at the end of the stream. A damaged or cut-off
    /// stream throws with libarchive's message.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(ArchiveError) -> Int {
        guard let archive else { throw ArchiveError(operation: "read", path: path, message: "stream already closed") }
        if ended || buffer.count == 0 { return 0 }
        let count = archive_read_data(archive, buffer.baseAddress, buffer.count)
        if count < 0 {
            let message = optionalString(archive_error_string(archive)) ?? "libarchive status \(count)"
            throw ArchiveError(operation: "decompress", path: path,
                               message: "\(message), after \(position) decompressed bytes")
        }
        if count == 0 { ended = true }
        position += UInt64(count)
        return count
    }

    /// Frees the reader, reporting a failure libarchive only notices at the end.
    public func close() throws(ArchiveError) {
        guard let archive else { return }
        let status = archive_read_close(archive)
        defer {
            archive_read_free(archive)
            self.archive = nil
        }
        try check(archive, "close", path, status)
    }
}
