import Exec
import Foundation

/// systemd's block device locking protocol: a BSD lock (`LOCK_EX`) on a whole disk's node. udev re-reads a disk's
/// partition table (BLKRRPART) after every close of a descriptor that had it open for writing, and only when it can
/// take this lock; it also postpones probing the disk and its partitions while the lock is held. Between the writes
/// of partitioning (libparted, the GPT identities, the step journal) and `mkfs`/`mount`, such a re-read removes the
/// partition node for a moment, and `mkfs` then fails with "/dev/sda1 does not exist" (seen on a CI boot). Hold this
/// lock from after the table is committed until the partition is mounted, and run nothing that waits for udev
/// (`udevadm settle`, as Debian's libparted does when it commits a table) while holding it: udev's postponed work on
/// the disk would keep its queue from emptying. It does not conflict with `O_EXCL` opens.
public final class BlockDeviceLock {
    public let path: String
    private var fd: Int32

    /// Waits for udev's queue to drain (when udev runs), then locks `path`, waiting up to `timeout` seconds for
    /// others (a udev worker holds a shared lock while it probes the disk).
    public init(path: String, timeout: Double = 30) throws(DiskClaimError) {
        self.path = path
        Self.settleUdev()
        var descriptor: Int32
        repeat {
            descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        } while descriptor < 0 && errno == EINTR
        guard descriptor >= 0 else {
            throw DiskClaimError(kind: .failed, message: "cannot open \(path) to lock it: \(String(cString: strerror(errno)))")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            guard code == EINTR || code == EWOULDBLOCK, Date() < deadline else {
                _ = Foundation.close(descriptor)
                throw DiskClaimError(kind: code == EWOULDBLOCK ? .busy : .failed,
                                     message: code == EWOULDBLOCK
                                        ? "\(path) stayed locked by another program (flock) for \(Int(timeout)) s; "
                                            + "find it with `lslocks`, then run again"
                                        : "cannot lock \(path): \(String(cString: strerror(code)))")
            }
            usleep(20_000)
        }
        fd = descriptor
    }

    /// Lets udev see the disk again. First drops the whole disk's cached pages (BLKFLSBUF, as `blockdev --flushbufs`):
    /// `mkfs` wrote through the partition's node, whose cache is separate, and while this descriptor kept the disk open
    /// (and then the mount did) the kernel kept what was read through the disk before, so the next inventory in the
    /// same boot saw no filesystem on the state partition.
    public func release() {
        guard fd >= 0 else { return }
        _ = ioctl(fd, 0x1261)  // BLKFLSBUF
        _ = Foundation.close(fd)
        fd = -1
    }

    deinit { release() }

    /// `udevadm settle` when udev is running (its control socket exists): events already queued for the disk (the
    /// re-read after libparted closed it, say) finish before the lock is taken, not while we hold it.
    public static func settleUdev(timeout: Int = 10) {
        guard FileManager.default.fileExists(atPath: "/run/udev/control") else { return }
        _ = try? Command("udevadm", ["settle", "--timeout=\(timeout)"]).run(acceptedStatuses: [0, 1])
    }
}
