import Disks
import Foundation
import Logging

/// Why a device must not be flashed. Each is a refusal (exit 3) naming the device.
public enum FlashRefusal: Sendable, Equatable, CustomStringConvertible {
    case partition(whole: String?)
    case runningSystem(mountpoints: [String])
    case mounted(mountpoints: [String])
    case held(by: [String])
    case busy
    case tooSmall(deviceBytes: UInt64, imageBytes: UInt64)
    case notRemovable(transport: String)
    case readOnly

    public var description: String {
        switch self {
        case .partition(let whole):
            "is a partition; flash the whole disk" + (whole.map { " (/dev/\($0))" } ?? "")
        case .runningSystem(let points):
            "holds the running system (mounted at \(points.joined(separator: ", "))); flashing it would destroy this machine"
        case .mounted(let points):
            "is mounted at \(points.joined(separator: ", ")); unmount it first"
        case .held(let holders):
            "is held by \(holders.joined(separator: ", ")) (device-mapper, RAID or LVM); release it first"
        case .busy:
            "is in use (the kernel refused exclusive access); close whatever uses it"
        case .tooSmall(let device, let image):
            "is smaller (\(device) bytes) than the image (\(image) bytes)"
        case .notRemovable(let transport):
            "is not a removable or USB disk (transport \(transport)); pass --yes-non-removable if you really mean this disk"
        case .readOnly:
            "is read-only"
        }
    }
}

/// Decides whether a device may be flashed. The decision is a pure function of the device's inventory
/// record so it can be tested on any machine; `inspect` gathers that record for a real device.
public enum DeviceSafety {
    /// The mount points whose disk is the running system.
    public static let systemMountpoints: Set<String> = ["/", "/boot", "/boot/efi", "/usr", "/var", "/home"]

    /// Every reason to refuse `disk`, most serious first (empty: flashing may go ahead).
    public static func refusals(for disk: Disk, imageBytes: UInt64, allowNonRemovable: Bool) -> [FlashRefusal] {
        var reasons: [FlashRefusal] = []
        // The usage rules are the one disk policy's (Disks.DiskPolicy), shared with FirstBoot and the Provisioner. A stick
        // that carries an Aquarium seed volume counts as boot media there but may be flashed again: only the running
        // system's disk is refused here.
        for refusal in DiskPolicy.usageRefusals(disk) {
            switch refusal {
            case .mounted(let points):
                let system = points.filter { systemMountpoints.contains($0) || $0 == "[SWAP]" }
                reasons.append(system.isEmpty ? .mounted(mountpoints: points) : .runningSystem(mountpoints: system))
            case .held(let holders): reasons.append(.held(by: holders))
            case .readOnly: reasons.append(.readOnly)
            case .cdrom, .bootMedia, .unreadable, .content, .unrecognisedData, .otherNode, .foreignOSD: break
            }
        }
        if disk.sizeBytes < imageBytes { reasons.append(.tooSmall(deviceBytes: disk.sizeBytes, imageBytes: imageBytes)) }
        if !allowNonRemovable && !(disk.removable || disk.transport == .usb) {
            reasons.append(.notRemovable(transport: disk.transport.rawValue))
        }
        return reasons
    }

    /// The kernel name of the block device at `path` and, for a partition, the name of its disk.
    public static func kernelName(of path: String) throws(ImageError) -> (name: String, parentDisk: String?) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .invalid(path, "cannot open the device: \(errnoText())") }
        guard info.st_mode & S_IFMT == S_IFBLK else { throw .invalid(path, "is not a block device") }
        let rdev = UInt64(info.st_rdev)
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~UInt64(0xfff))
        let minor = (rdev & 0xff) | ((rdev >> 12) & ~UInt64(0xff))
        let sys = "/sys/dev/block/\(major):\(minor)"
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: sys) else {
            throw .failure(path, "\(sys) is missing; is sysfs mounted?")
        }
        let name = (target as NSString).lastPathComponent
        if FileManager.default.fileExists(atPath: sys + "/partition") {
            let parent = ((target as NSString).deletingLastPathComponent as NSString).lastPathComponent
            return (name, parent)
        }
        return (name, nil)
    }

    /// The inventory record of the whole disk at `path`.
    public static func inspect(_ path: String, logger: Logger) throws(ImageError) -> Disk {
        let (name, parent) = try kernelName(of: path)
        if parent != nil { throw .refused(path, FlashRefusal.partition(whole: parent).description) }
        let inventory: Inventory
        do {
            inventory = try InventoryScanner(options: InventoryOptions(includeAll: true, onlyNames: [name]), logger: logger).scan()
        } catch {
            throw .failure(path, "cannot inspect the device: \(error)")
        }
        guard let disk = inventory.disks.first(where: { $0.name == name }) else {
            throw .invalid(path, "is not a disk this machine lists (kernel name \(name))")
        }
        return disk
    }
}
