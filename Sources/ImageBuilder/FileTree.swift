import Foundation

/// A directory tree on the build host that becomes a filesystem in the image.
public struct FileTree: Sendable {
    public var path: String

    public init(path: String) { self.path = path }

    /// One entry, named relative to the tree (no leading slash), in sorted walk order.
    public struct Entry: Sendable, Equatable {
        public enum Kind: Sendable, Equatable { case file, directory, symlink, other }
        public var relativePath: String
        public var kind: Kind
        public var size: UInt64
    }

    /// Every entry below the root (not the root itself), parents before children, names in byte order.
    public func entries() throws(ImageError) -> [Entry] {
        var result: [Entry] = []
        try walk(relative: "", into: &result)
        return result
    }

    private func walk(relative: String, into result: inout [Entry]) throws(ImageError) {
        let directory = relative.isEmpty ? path : path + "/" + relative
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .failure(directory, "cannot list the directory: \(error)")
        }
        for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            let child = relative.isEmpty ? name : relative + "/" + name
            var info = stat()
            guard lstat(path + "/" + child, &info) == 0 else { throw .failure(path + "/" + child, "cannot stat: \(errnoText())") }
            let kind: Entry.Kind
            switch info.st_mode & S_IFMT {
            case S_IFREG: kind = .file
            case S_IFDIR: kind = .directory
            case S_IFLNK: kind = .symlink
            default: kind = .other
            }
            result.append(Entry(relativePath: child, kind: kind, size: UInt64(max(0, info.st_size))))
            if kind == .directory { try walk(relative: child, into: &result) }
        }
    }

    /// Sets every access and modification time to the modification time clamped to `epoch` (symlinks
    /// themselves, not their targets), so the filesystems built from the tree carry no build-time clock.
    public func clampTimes(to epoch: Int64) throws(ImageError) {
        for entry in try entries() {
            try Self.clamp(path + "/" + entry.relativePath, epoch: epoch)
        }
        try Self.clamp(path, epoch: epoch)
    }

    static func clamp(_ file: String, epoch: Int64) throws(ImageError) {
        var info = stat()
        guard lstat(file, &info) == 0 else { throw .failure(file, "cannot stat: \(errnoText())") }
        let mtime = min(Int64(info.st_mtim.tv_sec), epoch)
        var times = [timespec(tv_sec: Int(mtime), tv_nsec: 0), timespec(tv_sec: Int(mtime), tv_nsec: 0)]
        guard utimensat(AT_FDCWD, file, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw .failure(file, "cannot set its times: \(errnoText())")
        }
    }

    /// A generous estimate of the bytes an ext4 filesystem with 4 KiB blocks needs for the tree's
    /// content (data blocks, directory blocks, long symlinks), without journal and inode tables.
    public static func ext4DataBytes(_ entries: [Entry]) -> (bytes: UInt64, inodes: UInt64) {
        let block: UInt64 = 4096
        var bytes: UInt64 = block  // the root directory
        var directoryEntryBytes: [String: UInt64] = [:]
        for entry in entries {
            let parent = (entry.relativePath as NSString).deletingLastPathComponent
            let name = (entry.relativePath as NSString).lastPathComponent
            directoryEntryBytes[parent, default: 0] += UInt64(8 + (name.utf8.count + 3) / 4 * 4)
            switch entry.kind {
            case .file:
                let blocks = (entry.size + block - 1) / block
                // Extent tree blocks for large, fragmented files: one per 340 extents, budget one per 128 MiB.
                bytes += blocks * block + (blocks / 32768) * block
            case .symlink:
                if entry.size >= 60 { bytes += block }
            case .directory, .other:
                break
            }
        }
        for (_, used) in directoryEntryBytes {
            // htree directories use about 75% of each block.
            bytes += max(block, (used * 4 / 3 + block - 1) / block * block)
        }
        return (bytes, UInt64(entries.count) + 1)
    }
}
