import Blkid
import FileLayer
import Foundation
import Logging
import SystemErrors
import Udev

/// Options for a scan of this machine's disks.
public struct InventoryOptions: Sendable {
    /// Also list CD-ROMs, device-mapper and MD devices.
    public var includeAll: Bool
    /// The filesystem label of the Aquarium seed volume; a disk carrying it is boot media.
    public var seedLabel: String
    /// Only these kernel names (nil: every disk). Used by tests to look at their own loop devices.
    public var onlyNames: Set<String>?
    /// Where sysfs and /proc are (for tests; "/" on a real machine).
    public var sysfsRoot: String

    public init(includeAll: Bool = false, seedLabel: String = "AQUASEED", onlyNames: Set<String>? = nil, sysfsRoot: String = "/sys") {
        self.includeAll = includeAll
        self.seedLabel = seedLabel
        self.onlyNames = onlyNames
        self.sysfsRoot = sysfsRoot
    }
}

/// Builds the inventory of this machine's whole disks from libudev (properties and links, when
/// udevd runs), sysfs (sizes, sector sizes, flags, holders) and libblkid (what is on each disk).
public struct InventoryScanner: Sendable {
    public var options: InventoryOptions
    public var logger: Logger

    public init(options: InventoryOptions = InventoryOptions(), logger: Logger = Logger(label: "aquarium.inventory")) {
        self.options = options
        self.logger = logger
    }

    public func scan() throws -> Inventory {
        let udev = try Udev()
        let udevDatabase = Udev.isDaemonDatabaseAvailable
        if !udevDatabase {
            logger.info("udevd database not found (/run/udev/data): by-id/by-path links and udev properties are unavailable")
        }
        let mounts = MountTable.current()
        let rootDevices = mounts.devices(backing: ["/", "/boot", "/boot/efi", "/usr"])
        var described: [(disk: Disk, partitionNames: [String])] = []
        for device in try udev.devices(subsystem: "block", devtype: "disk") {
            let name = device.sysname
            if let only = options.onlyNames, !only.contains(name) { continue }
            guard let found = describe(device, udevDatabase: udevDatabase, mounts: mounts, rootDevices: rootDevices) else { continue }
            described.append(found)
        }
        // What is on the disks, a batch at a time: every disk of a batch is opened and the kernel is asked at once for
        // the areas libblkid reads most (the first and last MiB, where superblocks, partition tables and RAID labels
        // are), so those reads are queued together instead of one small synchronous read after another; each disk is
        // then probed through that descriptor, kept open so the kernel keeps what it read until the batch is done.
        var disks: [Disk] = []
        var start = 0
        while start < described.count {
            let batch = described[start..<min(start + Self.probeBatch, described.count)]
            let entries = Array(batch)
            let descriptors = entries.map { Self.openForProbe($0.disk) }
            defer { for fd in descriptors where fd >= 0 { close(fd) } }
            // Two probes at a time (libblkid probes are independent of each other): while one waits for the kernel,
            // the other runs.
            let probed = ProbeResults(entries.map(\.disk))
            DispatchQueue.concurrentPerform(iterations: entries.count) { index in
                var disk = entries[index].disk
                probe(&disk, partitionNames: entries[index].partitionNames, descriptor: descriptors[index])
                if disk.partitions.contains(where: { $0.fsLabel == options.seedLabel })
                    || disk.signatures.contains(where: { $0.label == options.seedLabel }) {
                    disk.isBootMedia = true
                }
                probed.set(index, disk)
            }
            disks += probed.all
            start += Self.probeBatch
        }
        return Inventory(disks: disks.sorted { $0.name.localizedStandardCompare($1.name) == .orderedAscending },
                         machine: MachineResources.current())
    }

    /// How many disks are open at once while probing.
    static let probeBatch = 32
    /// How much of each end of a disk is looked at for data no signature explains.
    static let edgeBytes: UInt64 = 1 << 20
    /// How much of each end of a disk or partition is read ahead before probing.
    static let readAheadBytes: UInt64 = 1 << 20

    /// Opens a disk read-only for probing and asks the kernel to read its first and last MiB now (`POSIX_FADV_WILLNEED`
    /// does not wait). -1 with `errno` when it cannot be opened.
    static func openForProbe(_ disk: Disk) -> Int32 {
        let fd = open(disk.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return -1 }
        readAhead(fd, start: 0, size: disk.sizeBytes)
        return fd
    }

    /// Asks the kernel to read the first and last `edgeBytes` of `start..<start+size` now, without waiting.
    static func readAhead(_ fd: Int32, start: UInt64, size: UInt64) {
        guard readAheadBytes > 0 else { return }
        _ = posix_fadvise(fd, off_t(start), off_t(min(size, readAheadBytes)), POSIX_FADV_WILLNEED)
        if size > readAheadBytes {
            let tail = max(readAheadBytes, size - readAheadBytes)
            _ = posix_fadvise(fd, off_t(start + tail), off_t(size - tail), POSIX_FADV_WILLNEED)
        }
    }

    /// A sysfs attribute of a block device, trimmed; nil when the file is missing or empty. Read with one `read`
    /// (sysfs attributes are at most a page).
    private func sysfs(_ name: String, _ attribute: String) -> String? {
        let fd = open("\(options.sysfsRoot)/block/\(name)/\(attribute)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let trimmed = String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    private func listing(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    /// Whether a disk is listed at all, from its kernel name and a few sysfs facts.
    static func isListed(name: String, sizeBytes: UInt64, backingFile: String?, isCdrom: Bool, includeAll: Bool) -> Bool {
        if name.hasPrefix("zram") || name.hasPrefix("ram") { return false }
        if name.hasPrefix("loop") { return backingFile != nil }
        if isCdrom { return includeAll }
        if name.hasPrefix("dm-") || name.hasPrefix("md") { return includeAll }
        return sizeBytes > 0
    }

    /// A listed disk from udev and sysfs, without what is on it (`probe`), and the kernel names of its partitions.
    func describe(_ device: UdevDevice, udevDatabase: Bool, mounts: MountTable,
                  rootDevices: Set<String>) -> (disk: Disk, partitionNames: [String])? {
        let name = device.sysname
        let sectors = UInt64(sysfs(name, "size") ?? "0") ?? 0
        let sizeBytes = sectors * 512  // sysfs "size" is always in 512-byte units
        let backingFile = name.hasPrefix("loop") ? sysfs(name, "loop/backing_file") : nil
        let major = device.property("MAJOR").flatMap { Int($0) }
        let isCdrom = major == 11 || device.property("ID_CDROM") == "1" || name.hasPrefix("sr")
        guard Self.isListed(name: name, sizeBytes: sizeBytes, backingFile: backingFile, isCdrom: isCdrom,
                            includeAll: options.includeAll) else { return nil }
        let path = device.devnode ?? "/dev/\(name)"
        let partitionNames = listing("\(options.sysfsRoot)/block/\(name)").filter {
            access("\(options.sysfsRoot)/block/\(name)/\($0)/partition", F_OK) == 0
        }
        var holders = listing("\(options.sysfsRoot)/block/\(name)/holders")
        for part in partitionNames { holders += listing("\(options.sysfsRoot)/block/\(name)/\(part)/holders") }
        holders = Array(Set(holders)).sorted()

        let realPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(options.sysfsRoot)/block/\(name)"))
            .map { URL(fileURLWithPath: $0, relativeTo: URL(fileURLWithPath: "\(options.sysfsRoot)/block/")).standardized.path } ?? ""
        let transport = Self.transport(name: name, sysfsPath: realPath, idBus: udevDatabase ? device.property("ID_BUS") : nil,
                                       vendor: sysfs(name, "device/vendor"))

        var disk = Disk(name: name, path: path, sizeBytes: sizeBytes,
                        logicalSectorSize: Int(sysfs(name, "queue/logical_block_size") ?? "512") ?? 512,
                        physicalSectorSize: Int(sysfs(name, "queue/physical_block_size") ?? "512") ?? 512,
                        rotational: sysfs(name, "queue/rotational") == "1",
                        removable: sysfs(name, "removable") == "1",
                        readOnly: sysfs(name, "ro") == "1",
                        transport: transport, holders: holders, isCdrom: isCdrom, backingFile: backingFile)
        if udevDatabase {
            let links = device.devlinks
            disk.byId = links.filter { $0.hasPrefix("/dev/disk/by-id/") }
            disk.byPath = links.filter { $0.hasPrefix("/dev/disk/by-path/") }
            disk.serial = device.property("ID_SERIAL_SHORT") ?? device.property("ID_SERIAL")
            disk.wwn = device.property("ID_WWN_WITH_EXTENSION") ?? device.property("ID_WWN")
            disk.model = device.property("ID_MODEL_FROM_DATABASE") ?? device.property("ID_MODEL")
            disk.vendor = device.property("ID_VENDOR_FROM_DATABASE") ?? device.property("ID_VENDOR")
            disk.firmware = device.property("ID_REVISION")
        }
        // What the kernel itself exposes, when udev did not say.
        disk.serial = disk.serial ?? sysfs(name, "serial") ?? sysfs(name, "device/serial")
        disk.model = disk.model ?? sysfs(name, "device/model")
        disk.vendor = disk.vendor ?? sysfs(name, "device/vendor")
        disk.firmware = disk.firmware ?? sysfs(name, "device/rev") ?? sysfs(name, "device/firmware_rev")
        disk.wwn = disk.wwn ?? Self.wwnFromWWID(sysfs(name, "wwid") ?? sysfs(name, "device/wwid"))

        // Mounts: the disk, its partitions, and what is stacked on them.
        var devnums: [String] = []
        if let dev = sysfs(name, "dev") { devnums.append(dev) }
        for part in partitionNames {
            if let dev = sysfs("\(name)/\(part)", "dev") { devnums.append(dev) }
        }
        let stacked = holders.compactMap { sysfs($0, "dev") }
        disk.mountpoints = (devnums + stacked).flatMap { mounts.mountpoints(devnum: $0) }.sorted()
        disk.mounted = !disk.mountpoints.isEmpty
        disk.isBootMedia = !Set(devnums + stacked).isDisjoint(with: rootDevices)
        return (disk, partitionNames)
    }

    /// Reads signatures, the partition table, and each partition's filesystem with libblkid, through `descriptor`
    /// (from `openForProbe`; -1 when the disk could not be opened, with `errno` saying why).
    private func probe(_ disk: inout Disk, partitionNames: [String], descriptor: Int32) {
        do {
            guard descriptor >= 0 else { throw SystemError.fromErrno("open", path: disk.path) }
            let probe = try BlkidProbe(descriptor: descriptor, path: disk.path)
            defer { try? probe.close() }
            disk.signatures = try probe.signatures().map {
                Signature(type: $0.type, usage: $0.usage, label: $0.label, uuid: $0.uuid, offsetBytes: $0.offsetBytes)
            }
            if let table = try probe.partitionTable() {
                disk.partitionTable = table.type
                // Each partition's filesystem probe reads mostly its first and last MiB: ask for all of them at once.
                for entry in table.partitions where entry.sizeBytes > 0 {
                    Self.readAhead(descriptor, start: entry.startBytes, size: entry.sizeBytes)
                }
                disk.partitions = table.partitions.map { entry in
                    var partition = Partition(number: entry.number, path: partitionPath(disk.path, entry.number),
                                              startBytes: entry.startBytes, sizeBytes: entry.sizeBytes, name: entry.name,
                                              typeGuid: entry.type, uuid: entry.uuid)
                    if let fs = try? BlkidProbe(descriptor: descriptor, path: disk.path, offset: entry.startBytes,
                                                size: entry.sizeBytes),
                       let found = try? fs.filesystem() {
                        partition.fsType = found.type
                        partition.fsLabel = found.label
                        partition.fsUuid = found.uuid
                        try? fs.close()
                    }
                    if let node = partition.path, access(node, F_OK) != 0 { partition.path = nil }
                    return partition
                }
            }
        } catch {
            disk.probeError = String(describing: error)
            logger.info("cannot probe \(disk.path): \(error)")
            return
        }
        if disk.signatures.isEmpty && disk.partitionTable == nil {
            disk.unrecognisedData = Self.edgesHoldData(descriptor: descriptor, path: disk.path, sizeBytes: disk.sizeBytes)
        }
    }

    /// True when the first or the last MiB of the device holds a non-zero byte outside Aquarium's step journal.
    static func edgesHoldData(descriptor fd: Int32, path: String, sizeBytes: UInt64) -> Bool {
        var ranges: [Range<UInt64>] = [0..<min(sizeBytes, edgeBytes)]
        if sizeBytes > edgeBytes { ranges.append(max(edgeBytes, sizeBytes - edgeBytes)..<sizeBytes) }
        let journal = AquariumMarks.journalRange
        // 64 KiB at a time into one buffer; 4 KiB blocks are compared with zeros (memcmp), single bytes are looked at
        // only in a block that differs.
        let chunk = 64 << 10, block = 4096
        var buffer = [UInt8](repeating: 0, count: chunk)
        let zeros = [UInt8](repeating: 0, count: block)
        for range in ranges {
            var offset = range.lowerBound
            while offset < range.upperBound {
                let count = Int(min(UInt64(chunk), range.upperBound - offset))
                let done = buffer.withUnsafeMutableBytes { bytes -> Int in
                    let slice = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count])
                    do { return try FileIO.read(fd, into: slice, at: offset, path: path) } catch { return 0 }
                }
                guard done > 0 else { break }
                var start = 0
                while start < done {
                    let length = min(block, done - start)
                    let differs = buffer.withUnsafeBytes { bytes in
                        zeros.withUnsafeBytes { memcmp(bytes.baseAddress! + start, $0.baseAddress!, length) != 0 }
                    }
                    if differs {
                        for index in start..<(start + length) where buffer[index] != 0 {
                            if !journal.contains(offset + UInt64(index)) { return true }
                        }
                    }
                    start += length
                }
                offset += UInt64(done)
            }
        }
        return false
    }

    private func partitionPath(_ diskPath: String, _ number: Int) -> String {
        let lastIsDigit = diskPath.last?.isNumber ?? false
        return diskPath + (lastIsDigit ? "p" : "") + String(number)
    }

    /// Maps sysfs and udev facts to a transport.
    static func transport(name: String, sysfsPath: String, idBus: String?, vendor: String?) -> Transport {
        if name.hasPrefix("loop") { return .loop }
        if name.hasPrefix("nvme") || sysfsPath.contains("/nvme") { return .nvme }
        if name.hasPrefix("mmcblk") || sysfsPath.contains("/mmc") { return .mmc }
        if sysfsPath.contains("/usb") || idBus == "usb" { return .usb }
        if name.hasPrefix("vd") || sysfsPath.contains("/virtio") && !sysfsPath.contains("/target") { return .virtio }
        if sysfsPath.contains("/sas_") || sysfsPath.contains("/end_device-") || sysfsPath.contains("/expander-") { return .sas }
        if idBus == "ata" || sysfsPath.contains("/ata") || vendor?.trimmingCharacters(in: .whitespaces) == "ATA" { return .sata }
        if idBus == "scsi" || sysfsPath.contains("/target") || sysfsPath.contains("/host") { return .scsi }
        return .unknown
    }

    /// "naa.5000c500a1b2c3d4" / "eui.0025..." / "0x5000..." -> "0x5000c500a1b2c3d4"; other wwid forms stay null.
    static func wwnFromWWID(_ wwid: String?) -> String? {
        guard let wwid else { return nil }
        let lower = wwid.lowercased()
        for prefix in ["naa.", "eui.", "0x"] where lower.hasPrefix(prefix) {
            let hex = lower.dropFirst(prefix.count)
            if !hex.isEmpty && hex.allSatisfy({ $0.isHexDigit }) { return "0x" + hex }
        }
        return nil
    }
}

/// The disks of one probe batch, each written by the one worker that probes it.
private final class ProbeResults: @unchecked Sendable {
    private var disks: [Disk]
    private let lock = NSLock()

    init(_ disks: [Disk]) { self.disks = disks }

    func set(_ index: Int, _ disk: Disk) { lock.withLock { disks[index] = disk } }
    var all: [Disk] { lock.withLock { disks } }
}

/// The mount table (/proc/self/mountinfo) and swaps, by device number.
public struct MountTable: Sendable {
    public struct Entry: Equatable, Sendable {
        public var devnum: String
        public var mountpoint: String
        public var source: String
    }

    public var entries: [Entry]
    /// "major:minor" of active swap devices.
    public var swapDevnums: Set<String>

    public init(entries: [Entry], swapDevnums: Set<String> = []) {
        self.entries = entries
        self.swapDevnums = swapDevnums
    }

    public static func current() -> MountTable {
        let text = procFile("/proc/self/mountinfo")
        var table = parse(mountinfo: text)
        let swaps = procFile("/proc/swaps")
        for line in swaps.split(separator: "\n").dropFirst() {
            guard let device = line.split(separator: " ").first else { continue }
            var info = stat()
            if stat(String(device), &info) == 0, info.st_mode & S_IFMT == S_IFBLK {
                table.swapDevnums.insert(devnumString(UInt64(info.st_rdev)))
            }
        }
        return table
    }

    /// Reads a /proc file whole. /proc files report size 0, and a read sized from that (as
    /// `String(contentsOfFile:)` does) stops after the first page: with many mounts the table was cut short.
    public static func procFile(_ path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let data = (try? handle.readToEnd()) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Parses /proc/self/mountinfo: field 3 is major:minor, field 5 the mount point, the source follows " - fstype".
    public static func parse(mountinfo: String) -> MountTable {
        var entries: [Entry] = []
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count >= 5 else { continue }
            var source = ""
            if let dash = fields.firstIndex(of: "-"), dash + 2 < fields.count { source = fields[dash + 2] }
            entries.append(Entry(devnum: fields[2], mountpoint: unescape(fields[4]), source: source))
        }
        return MountTable(entries: entries)
    }

    static func unescape(_ text: String) -> String {
        // mountinfo escapes space, tab, newline and backslash as \ooo
        var result = ""
        var iterator = Array(text.utf8)[...]
        var bytes: [UInt8] = []
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "\\"), iterator.count >= 3,
               let value = UInt8(String(decoding: iterator.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                iterator = iterator.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        result = String(decoding: bytes, as: UTF8.self)
        return result
    }

    public func mountpoints(devnum: String) -> [String] {
        var points = entries.filter { $0.devnum == devnum }.map(\.mountpoint)
        if swapDevnums.contains(devnum) { points.append("[SWAP]") }
        return points
    }

    /// Device numbers backing any of `mountpoints`.
    public func devices(backing mountpoints: Set<String>) -> Set<String> {
        Set(entries.filter { mountpoints.contains($0.mountpoint) }.map(\.devnum))
    }
}

/// "major:minor" of a device number, as glibc's gnu_dev_major/gnu_dev_minor split it.
func devnumString(_ rdev: UInt64) -> String {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~UInt64(0xfff))
    let minor = (rdev & 0xff) | ((rdev >> 12) & ~UInt64(0xff))
    return "\(major):\(minor)"
}

extension MachineResources {
    /// This machine's: the online processors and `MemTotal` of meminfo (path overridable for tests).
    public static func current(meminfo: String = "/proc/meminfo") -> MachineResources? {
        let threads = ProcessInfo.processInfo.activeProcessorCount
        guard threads > 0, let text = try? String(contentsOfFile: meminfo, encoding: .utf8),
              let kilobytes = memTotalKiB(text) else { return nil }
        return MachineResources(cpuThreads: threads, memoryBytes: kilobytes * 1024)
    }
}
