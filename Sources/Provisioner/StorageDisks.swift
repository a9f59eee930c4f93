import Disks
import Exec
import Foundation
import Seed

/// A storage disk from the node record, found on this machine.
public struct ResolvedDisk: Equatable, Sendable {
    /// The name used in the state and messages (the first by-id link, else the path).
    public var key: String
    /// What the OSD's `block` link points to: the by-id link when there is one (stable across boots), else the path.
    public var stablePath: String
    /// The kernel device (`/dev/loop3`, `/dev/sdb`).
    public var device: String
}

/// Finds the node record's storage disks and refuses anything that is not safe to turn into an OSD.
public enum StorageDiskCheck {
    /// Resolves `disk` to a block device; errors (exit 2) when it cannot be found or its names disagree.
    public static func resolve(_ disk: NodeRecord.DiskRef) throws(ProvisionError) -> ResolvedDisk {
        var candidates: [(String, String)] = []  // (name used, real device)
        for link in disk.byId where Files.exists(link) {
            candidates.append((link, realPath(link)))
        }
        if let path = disk.path, Files.exists(path) { candidates.append((path, realPath(path))) }
        guard let first = candidates.first else {
            throw .invalidInput("the storage disk \(disk.displayName) from the node record does not exist on this "
                + "machine; check the node record (FirstBoot's node.json) against `aquarium-firstboot inventory`")
        }
        if let other = candidates.first(where: { $0.1 != first.1 }) {
            throw .refused("the storage disk \(disk.displayName) is ambiguous: \(first.0) is \(first.1) but \(other.0) "
                + "is \(other.1); the node record is stale, rerun FirstBoot")
        }
        var info = stat()
        guard stat(first.1, &info) == 0, (info.st_mode & S_IFMT) == S_IFBLK else {
            throw .invalidInput("the storage disk \(disk.displayName) (\(first.1)) is not a block device")
        }
        if let serial = disk.serial, !serial.isEmpty, let actual = sysfsValue(first.1, "device/serial"), !actual.isEmpty, actual != serial {
            throw .refused("the storage disk \(first.1) has serial \(actual), the node record says \(serial); "
                + "the node record is stale, rerun FirstBoot")
        }
        return ResolvedDisk(key: disk.stateKey, stablePath: first.0, device: first.1)
    }

    /// Refuses (exit 3) a disk that is the system disk or boot media, is mounted, used as swap or held by another
    /// device (LVM, MD, dm-crypt).
    public static func checkNotInUse(_ disk: ResolvedDisk, record: NodeRecord) throws(ProvisionError) {
        let whole = wholeDisk(disk.device)
        for (role, reference) in [("system disk", record.systemDisk), ("boot media", record.bootMedia)] {
            guard let reference, let resolved = try? resolve(reference) else { continue }
            if wholeDisk(resolved.device) == whole {
                throw .refused("the storage disk \(disk.key) (\(disk.device)) is the node's \(role) "
                    + "(\(reference.displayName)); the Provisioner never touches it. Fix the node record.")
            }
        }
        let name = (whole as NSString).lastPathComponent
        let holders = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/block/\(name)/holders")) ?? []
        if !holders.isEmpty {
            throw .refused("the storage disk \(disk.key) (\(disk.device)) is in use by \(holders.joined(separator: ", ")) "
                + "(LVM, MD or dm-crypt); release it first")
        }
        let table = MountTable.current()
        for devnum in devnums(whole) {
            let points = table.mountpoints(devnum: devnum)
            if !points.isEmpty {
                throw .refused("the storage disk \(disk.key) (\(disk.device)) is mounted on \(points.joined(separator: ", ")); "
                    + "unmount it first")
            }
            if table.swapDevnums.contains(devnum) {
                throw .refused("the storage disk \(disk.key) (\(disk.device)) is used as swap; swapoff it first")
            }
        }
    }

    /// What is on the disk, as far as the Provisioner cares.
    public enum Content: Equatable, Sendable {
        case empty
        case bluestore(BluestoreLabel)
        /// Anything else libblkid recognises (a partition table, a filesystem, LVM).
        case other(String)
    }

    public static func probe(_ device: String) throws(ProvisionError) -> Content {
        let result: CommandResult
        do {
            result = try Command("blkid", ["-p", "-o", "export", device]).run(acceptedStatuses: [0, 2])
        } catch {
            throw .failed("cannot probe \(device) with blkid: \(error)")
        }
        if result.status == 2 {
            // blkid does not know every bluestore label version; ask Ceph too.
            if let label = BluestoreLabel.read(device: device) { return .bluestore(label) }
            return .empty
        }
        let fields = Dictionary(result.output.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: "=", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }, uniquingKeysWith: { first, _ in first })
        if fields["TYPE"] == "ceph_bluestore", let label = BluestoreLabel.read(device: device) { return .bluestore(label) }
        let what = fields["TYPE"].map { "a \($0) signature" } ?? fields["PTTYPE"].map { "a \($0) partition table" }
            ?? "data libblkid recognises"
        return .other(what)
    }

    /// Erases signatures and the first 16 MiB (where bluestore keeps its label).
    public static func wipe(_ device: String) throws(ProvisionError) {
        do {
            try Command("wipefs", ["--all", "--force", device]).run()
            try Command("dd", ["if=/dev/zero", "of=\(device)", "bs=1M", "count=16", "conv=fsync,notrunc", "status=none"]).run()
        } catch {
            throw .failed("cannot wipe \(device): \(error)")
        }
    }

    static func realPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The whole disk a partition belongs to (`/dev/sda1` -> `/dev/sda`), else the device itself.
    static func wholeDisk(_ device: String) -> String {
        let name = (device as NSString).lastPathComponent
        guard Files.exists("/sys/class/block/\(name)/partition") else { return device }
        let parent = (realPath("/sys/class/block/\(name)") as NSString).deletingLastPathComponent
        return "/dev/" + (parent as NSString).lastPathComponent
    }

    /// `major:minor` of the disk and of each of its partitions.
    static func devnums(_ whole: String) -> [String] {
        let name = (whole as NSString).lastPathComponent
        var values: [String] = []
        if let own = Files.read("/sys/class/block/\(name)/dev") { values.append(own.trimmingCharacters(in: .whitespacesAndNewlines)) }
        let children = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/block/\(name)")) ?? []
        for child in children where child.hasPrefix(name) {
            if let devnum = Files.read("/sys/class/block/\(name)/\(child)/dev") {
                values.append(devnum.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        return values
    }

    static func sysfsValue(_ device: String, _ attribute: String) -> String? {
        let name = (device as NSString).lastPathComponent
        return Files.read("/sys/class/block/\(name)/\(attribute)")?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
