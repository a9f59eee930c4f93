import Disks
import Foundation

/// The complete mount table. `String(contentsOfFile:)` stops after about 4 KiB of a /proc file (its size reads as 0),
/// which silently drops mounts on a busy machine; this reads /proc/self/mountinfo to its end.
///
/// Safety: before planning, every disk's mount state is re-derived from the complete table (`correct`), so a mounted
/// disk can never look unmounted to the planner, whatever the inventory scan read.
public enum FullMountTable {
    public static func read(path: String = "/proc/self/mountinfo") -> MountTable {
        guard let handle = FileHandle(forReadingAtPath: path) else { return MountTable(entries: []) }
        defer { try? handle.close() }
        let data = (try? handle.readToEnd()) ?? Data()
        return MountTable.parse(mountinfo: String(decoding: data, as: UTF8.self))
    }

    /// Mount points of `path` and everything under it, from the complete table.
    public static func isMountpoint(_ path: String) -> Bool {
        read().entries.contains { $0.mountpoint == path }
    }

    /// Adds every mount point of each disk, its partitions and the devices stacked on them (from sysfs device numbers)
    /// that the inventory missed, and marks disks backing /, /boot, /boot/efi or /usr as boot media. Never clears a
    /// flag the scan set.
    public static func correct(_ inventory: inout Inventory, sysfsRoot: String = "/sys") {
        let table = read()
        let rootDevices = table.devices(backing: ["/", "/boot", "/boot/efi", "/usr"])
        for index in inventory.disks.indices {
            let name = inventory.disks[index].name
            let base = "\(sysfsRoot)/block/\(name)"
            var devnums: [String] = []
            if let dev = sysfsValue(base + "/dev") { devnums.append(dev) }
            let children = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter {
                FileManager.default.fileExists(atPath: "\(base)/\($0)/partition")
            }
            for child in children { if let dev = sysfsValue("\(base)/\(child)/dev") { devnums.append(dev) } }
            var holders = (try? FileManager.default.contentsOfDirectory(atPath: base + "/holders")) ?? []
            for child in children { holders += (try? FileManager.default.contentsOfDirectory(atPath: "\(base)/\(child)/holders")) ?? [] }
            devnums += holders.compactMap { sysfsValue("\(sysfsRoot)/block/\($0)/dev") }
            let points = Set(devnums.flatMap { devnum in table.entries.filter { $0.devnum == devnum }.map(\.mountpoint) })
            let missing = points.subtracting(inventory.disks[index].mountpoints)
            if !missing.isEmpty {
                inventory.disks[index].mountpoints = (inventory.disks[index].mountpoints + missing).sorted()
            }
            if !inventory.disks[index].mountpoints.isEmpty { inventory.disks[index].mounted = true }
            if !rootDevices.isDisjoint(with: devnums) { inventory.disks[index].isBootMedia = true }
        }
    }

    static func sysfsValue(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path), let data = try? handle.readToEnd() else { return nil }
        try? handle.close()
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}
