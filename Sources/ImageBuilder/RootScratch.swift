import Disks
import Exec
import Foundation
import Logging

/// Where the build extracts and customises the root tree: a tmpfs of its own when the machine has the memory for it
/// (the tree is written once, read once by mke2fs and thrown away, so it never needs to reach a disk: extracting,
/// reading and removing 17,000 files cost the disk's writeback and journal, not the tool), else the output directory
/// on disk as before. `--keep-root` always uses the disk, so the tree outlives the build.
struct RootScratch {
    let path: String
    /// True when `path` is a tmpfs this build mounted.
    let inMemory: Bool
    let logger: Logger

    /// Prepares `path` (a stale tree or mount of a crashed build removed first): a tmpfs when `MemAvailable` holds
    /// `neededBytes` with room to spare and `allowMemory`, else an empty directory.
    static func prepare(_ path: String, neededBytes: UInt64, allowMemory: Bool, logger: Logger,
                        meminfo: String = "/proc/meminfo") throws(ImageError) -> RootScratch {
        release(path, logger: logger)
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .failure(path, "cannot create the directory for the root tree: \(error)")
        }
        guard allowMemory, let available = availableBytes(meminfo: meminfo), available >= neededBytes * 2 else {
            return RootScratch(path: path, inMemory: false, logger: logger)
        }
        // The size is a limit, not an allocation: pages are taken as files are written (and can be swapped).
        let size = min(available * 3 / 4, max(neededBytes * 2, 2 << 30))
        do {
            try Command("mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0755", "aquarium-root", path]).run()
        } catch {
            logger.info("the root tree goes to disk: no tmpfs at \(path) (\(error))")
            return RootScratch(path: path, inMemory: false, logger: logger)
        }
        return RootScratch(path: path, inMemory: true, logger: logger)
    }

    /// Unmounts the tmpfs (its tree goes with it) or removes the tree from disk.
    func remove() {
        Self.release(path, logger: logger)
    }

    /// Whatever a build left at `path`: the chroot's mounts, a tmpfs, the tree.
    static func release(_ path: String, logger: Logger) {
        for point in ["/proc", "/sys", "/dev"] { _ = try? Command("umount", ["--lazy", path + point]).run(acceptedStatuses: Set(0...255)) }
        if isMountPoint(path) {
            if (try? Command("umount", [path]).run()) == nil {
                logger.warning("\(path) is busy; detaching it lazily")
                _ = try? Command("umount", ["--lazy", path]).run(acceptedStatuses: Set(0...255))
            }
        }
        if FileManager.default.fileExists(atPath: path) {
            _ = try? Command("rm", ["-rf", "--one-file-system", path]).run(acceptedStatuses: Set(0...255))
        }
    }

    /// `path` is a mount point: its device differs from its parent's.
    static func isMountPoint(_ path: String) -> Bool {
        var own = stat()
        var parent = stat()
        guard lstat(path, &own) == 0, lstat(path + "/..", &parent) == 0 else { return false }
        return own.st_dev != parent.st_dev
    }

    /// `MemAvailable` of /proc/meminfo in bytes.
    static func availableBytes(meminfo: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: meminfo, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }) else { return nil }
        let words = line.split(whereSeparator: \.isWhitespace)
        guard words.count >= 2, let kib = UInt64(words[1]) else { return nil }
        return kib * 1024
    }
}
