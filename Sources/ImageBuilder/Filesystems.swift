import Exec
import Foundation
import Logging
import Seed

/// Runs `command`, turning a failure into an `ImageError` that names `subject`.
@discardableResult
func runTool(_ command: Command, subject: String, what: String, logger: Logger, input: Data? = nil,
             onLine: ((OutputChannel, String) -> Void)? = nil) throws(ImageError) -> CommandResult {
    logger.debug("running \(command)")
    do {
        return try command.run(input: input, onLine: onLine)
    } catch {
        throw .failure(subject, "\(what) failed: \(error)")
    }
}

/// A FAT filesystem at a byte offset inside an image file or device, written with dosfstools and
/// mtools (`-i FILE@@OFFSET`): no loop device, no mount.
public struct FATVolume: Sendable {
    public var image: String
    public var offsetBytes: UInt64
    public var sizeBytes: UInt64
    public var environment: [String: String]

    public init(image: String, offsetBytes: UInt64, sizeBytes: UInt64, environment: [String: String] = [:]) {
        self.image = image
        self.offsetBytes = offsetBytes
        self.sizeBytes = sizeBytes
        self.environment = environment
    }

    /// mtools' drive specification for this volume.
    public var drive: String { "\(image)@@\(offsetBytes)" }

    var mtoolsEnvironment: [String: String] {
        // No user configuration may change how names or geometry are handled.
        environment.merging(["MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1"]) { _, new in new }
    }

    /// The smallest FAT32 volume `mkfs.vfat -s 1` accepts (65525 clusters of 512 bytes plus FATs).
    public static let minimumFAT32Bytes: UInt64 = 36 << 20

    /// Formats the volume. FAT32 with one sector per cluster (with `--offset`, mkfs.vfat otherwise picks
    /// clusters too large for FAT32); volumes below 36 MiB get FAT12/16. The label is written with `mlabel`,
    /// which honours SOURCE_DATE_EPOCH, where mkfs.vfat 4.2 stamps the wall clock.
    public func format(label: String, volumeID: String, logger: Logger) throws(ImageError) {
        guard offsetBytes % 512 == 0, sizeBytes % 1024 == 0 else {
            throw .invalid(image, "a FAT volume must start on a 512-byte sector and be a whole number of KiB")
        }
        let sector = offsetBytes / 512
        var arguments = ["--offset=\(sector)", "-h", String(sector), "-i", volumeID]
        if sizeBytes >= Self.minimumFAT32Bytes {
            arguments += ["-F", "32", "-s", "1"]
        }  // else mkfs.vfat picks FAT12/FAT16 and their cluster size itself
        arguments += [image, String(sizeBytes / 1024)]
        try runTool(Command("mkfs.vfat", arguments, environment: environment), subject: image,
                    what: "creating the FAT filesystem at byte \(offsetBytes)", logger: logger)
        try runTool(Command("mlabel", ["-i", drive, "::" + label], environment: mtoolsEnvironment), subject: image,
                    what: "labelling the FAT filesystem at byte \(offsetBytes)", logger: logger)
    }

    /// Copies the tree into the volume: directories first (parents before children), then the files of
    /// each directory in one `mcopy`, all in sorted order so the directory entries are reproducible.
    public func copy(tree: FileTree, logger: Logger) throws(ImageError) {
        let entries = try tree.entries()
        if let odd = entries.first(where: { $0.kind == .symlink || $0.kind == .other }) {
            throw .invalid(tree.path + "/" + odd.relativePath, "FAT cannot hold symlinks or special files; copy the target instead")
        }
        let directories = entries.filter { $0.kind == .directory }.map { "::/" + $0.relativePath }
        if !directories.isEmpty {
            try runTool(Command("mmd", ["-i", drive] + directories, environment: mtoolsEnvironment), subject: image,
                        what: "creating directories in the FAT filesystem at byte \(offsetBytes)", logger: logger)
        }
        var byParent: [(String, [String])] = []
        for entry in entries where entry.kind == .file {
            let parent = (entry.relativePath as NSString).deletingLastPathComponent
            if byParent.last?.0 == parent {
                byParent[byParent.count - 1].1.append(tree.path + "/" + entry.relativePath)
            } else {
                byParent.append((parent, [tree.path + "/" + entry.relativePath]))
            }
        }
        for (parent, files) in byParent {
            try put(files, into: parent, logger: logger)
        }
    }

    /// Copies host files into directory `directory` ("" for the root) of the volume, replacing same-named files.
    public func put(_ files: [String], into directory: String, logger: Logger) throws(ImageError) {
        let target = "::/" + directory + (directory.isEmpty ? "" : "/")
        try runTool(Command("mcopy", ["-i", drive, "-o", "-Q"] + files + [target], environment: mtoolsEnvironment),
                    subject: image, what: "copying \(files.count) file(s) into \(target) of the FAT filesystem at byte \(offsetBytes)",
                    logger: logger)
    }

    /// Creates `directory` (and its parents) unless it exists.
    public func makeDirectory(_ directory: String, logger: Logger) throws(ImageError) {
        var path = ""
        for component in directory.split(separator: "/") {
            path += "/" + component
            let exists = (try? Command("mdir", ["-i", drive, "-b", "::" + path], environment: mtoolsEnvironment).run()) != nil
            if !exists {
                try runTool(Command("mmd", ["-i", drive, "::" + path], environment: mtoolsEnvironment), subject: image,
                            what: "creating \(path) in the FAT filesystem at byte \(offsetBytes)", logger: logger)
            }
        }
    }

    /// Reads a file out of the volume, never more than `maximumBytes` (the seed size limit by default): a larger
    /// file is refused (exit 2) after reading one byte past the limit.
    public func read(_ file: String, maximumBytes: Int = SeedLoader.maximumFileSize, logger: Logger) throws(ImageError) -> Data {
        let command = Command("mtype", ["-i", drive, "::/" + file], environment: mtoolsEnvironment)
        let what = "reading \(file) from the FAT filesystem at byte \(offsetBytes)"
        logger.debug("running \(command) (at most \(maximumBytes) bytes)")
        let result: CommandResult
        do {
            result = try command.run(outputLimit: maximumBytes)
        } catch {
            throw .failure(image, "\(what) failed: \(error)")
        }
        guard !result.outputLimitExceeded else {
            throw .invalid(image, "\(file) in the FAT filesystem at byte \(offsetBytes) is larger than \(maximumBytes / 1024) KiB, "
                           + "the most a seed or report may be; replace it with a valid seed (`aquarium-image seed check`)")
        }
        return result.standardOutput
    }
}

/// An ext4 filesystem filled from a directory tree with `mke2fs -d` at a byte offset in the image.
public struct Ext4Volume: Sendable {
    public var image: String
    public var offsetBytes: UInt64
    public var sizeBytes: UInt64
    public var environment: [String: String] = [:]

    /// The e2fsprogs spelling of "this file at that offset".
    public var device: String { "\(image)?offset=\(offsetBytes)" }

    /// How large the filesystem for `entries` must be: content, inode tables, journal, headroom; whole MiB.
    public static func size(for entries: [FileTree.Entry], headroomBytes: UInt64, minimumBytes: UInt64) -> (bytes: UInt64, inodes: UInt64) {
        let (data, used) = FileTree.ext4DataBytes(entries)
        let inodes = used + used / 4 + 1024
        var bytes = data + data / 20 + inodes * 256 + (8 << 20)
        bytes += journalBytes(for: bytes)
        bytes += headroomBytes
        bytes = max(bytes, minimumBytes)
        return (((bytes + (1 << 20) - 1) >> 20) << 20, inodes)
    }

    /// mke2fs's default journal size for a filesystem of `bytes` (4 KiB blocks).
    static func journalBytes(for bytes: UInt64) -> UInt64 {
        let blocks = bytes / 4096
        switch blocks {
        case ..<32768: return 4 << 20
        case ..<(256 * 1024): return 16 << 20
        case ..<(512 * 1024): return 32 << 20
        case ..<(4096 * 1024): return 64 << 20
        default: return 256 << 20
        }
    }

    /// Creates the filesystem from `tree`, then stamps every inode's change and access time with the
    /// epoch (mke2fs 1.47.0 copies them from the build host's files).
    public func create(from tree: FileTree, label: String, uuid: UUID, hashSeed: UUID, inodes: UInt64, epoch: Int64,
                       logger: Logger) throws(ImageError) {
        guard !image.contains("?") else { throw .invalid(image, "the image path must not contain '?' (e2fsprogs reads options after it)") }
        let options = "offset=\(offsetBytes),root_owner=0:0,hash_seed=\(hashSeed.uuidString.lowercased())"
        let arguments = ["-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-N", String(inodes), "-m", "0",
                         "-L", label, "-U", uuid.uuidString.lowercased(), "-E", options, "-d", tree.path,
                         image, "\(sizeBytes / 1024)k"]
        try runTool(Command("mke2fs", arguments, environment: environment), subject: image,
                    what: "creating the ext4 filesystem from \(tree.path) (\(sizeBytes >> 20) MiB at byte \(offsetBytes))", logger: logger)
        try stampTimes(epoch: epoch, logger: logger)
    }

    func stampTimes(epoch: Int64, logger: Logger) throws(ImageError) {
        let dump = try runTool(Command("dumpe2fs", [device], environment: environment), subject: image,
                               what: "reading the ext4 group descriptors", logger: logger).output
        let used = try Self.usedInodes(dumpe2fs: dump, subject: image)
        var script = ""
        for inode in used where inode == 2 || inode >= 11 {
            script += "sif <\(inode)> ctime @\(epoch)\nsif <\(inode)> atime @\(epoch)\n"
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("aquarium-debugfs-\(UUID().uuidString)").path
        guard FileManager.default.createFile(atPath: file, contents: Data(script.utf8)) else {
            throw .failure(file, "cannot write the debugfs command file")
        }
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try runTool(Command("debugfs", ["-w", "-f", file, device], environment: environment), subject: image,
                                 what: "stamping inode times", logger: logger)
        // debugfs exits 0 even when a command fails; its complaints go to standard error.
        let complaints = result.errorOutput.split(separator: "\n").filter { !$0.hasPrefix("debugfs ") }
        if !complaints.isEmpty {
            throw .failure(image, "debugfs could not stamp inode times: \(complaints.prefix(3).joined(separator: "; "))")
        }
    }

    /// The inode numbers in use, from `dumpe2fs` output (every group's "Free inodes:" list).
    static func usedInodes(dumpe2fs: String, subject: String) throws(ImageError) -> [UInt64] {
        var perGroup: UInt64?
        var count: UInt64?
        var free = Set<UInt64>()
        for line in dumpe2fs.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("Inodes per group:") {
                perGroup = UInt64(trimmed.dropFirst("Inodes per group:".count).trimmingCharacters(in: .whitespaces))
            } else if trimmed.hasPrefix("Inode count:") {
                count = UInt64(trimmed.dropFirst("Inode count:".count).trimmingCharacters(in: .whitespaces))
            } else if line.hasPrefix("  Free inodes:") {
                for part in trimmed.dropFirst("Free inodes:".count).split(separator: ",") {
                    let bounds = part.trimmingCharacters(in: .whitespaces).split(separator: "-").compactMap { UInt64($0) }
                    if bounds.count == 1 { free.insert(bounds[0]) }
                    if bounds.count == 2, bounds[0] <= bounds[1] { for n in bounds[0]...bounds[1] { free.insert(n) } }
                }
            }
        }
        guard let count, perGroup != nil, count > 0 else {
            throw .failure(subject, "dumpe2fs did not report the inode count")
        }
        return (1...count).filter { !free.contains($0) }
    }
}

