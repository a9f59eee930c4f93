import JSONCoding

/// The disk model shared by inventory, planning and the node record.
///
/// JSON contract (docs/inventory.md): camelCase keys, unknown values are `null`, lists are
/// empty rather than missing, sizes are bytes.

/// How a disk is attached.
public enum Transport: String, Codable, Sendable, CaseIterable {
    case nvme, sata, sas, scsi, usb, virtio, mmc, loop, unknown
}

/// A signature libblkid recognises on a disk or partition.
public struct Signature: Codable, Equatable, Sendable {
    /// libblkid's name: "xfs", "ext4", "LVM2_member", "linux_raid_member", "ceph_bluestore", "gpt", "PMBR", ...
    public var type: String
    /// "filesystem", "raid", "crypto", "other" or "partition_table" (null when libblkid did not say).
    @Nullable public var usage: String?
    @Nullable public var label: String?
    @Nullable public var uuid: String?
    @Nullable public var offsetBytes: UInt64?

    public init(type: String, usage: String? = nil, label: String? = nil, uuid: String? = nil, offsetBytes: UInt64? = nil) {
        self.type = type
        self.usage = usage
        self.label = label
        self.uuid = uuid
        self.offsetBytes = offsetBytes
    }
}

/// One partition of a disk's partition table.
public struct Partition: Codable, Equatable, Sendable {
    public var number: Int
    @Nullable public var path: String?
    public var startBytes: UInt64
    public var sizeBytes: UInt64
    /// GPT partition name.
    @Nullable public var name: String?
    /// GPT type GUID (lower case), or an MBR type such as "0x83".
    @Nullable public var typeGuid: String?
    /// GPT partition UUID (PARTUUID).
    @Nullable public var uuid: String?
    @Nullable public var fsType: String?
    @Nullable public var fsLabel: String?
    @Nullable public var fsUuid: String?

    public init(number: Int, path: String?, startBytes: UInt64, sizeBytes: UInt64, name: String? = nil,
                typeGuid: String? = nil, uuid: String? = nil, fsType: String? = nil, fsLabel: String? = nil,
                fsUuid: String? = nil) {
        self.number = number
        self.path = path
        self.startBytes = startBytes
        self.sizeBytes = sizeBytes
        self.name = name
        self.typeGuid = typeGuid
        self.uuid = uuid
        self.fsType = fsType
        self.fsLabel = fsLabel
        self.fsUuid = fsUuid
    }
}

/// One whole disk.
public struct Disk: Codable, Equatable, Sendable {
    /// Kernel name ("sdb", "nvme0n1", "loop3"). Never used to choose a disk: it can change between boots.
    public var name: String
    public var path: String
    /// /dev/disk/by-id links (empty without udev).
    public var byId: [String]
    /// /dev/disk/by-path links (empty without udev).
    public var byPath: [String]
    public var sizeBytes: UInt64
    public var logicalSectorSize: Int
    public var physicalSectorSize: Int
    public var rotational: Bool
    public var removable: Bool
    public var readOnly: Bool
    public var transport: Transport
    @Nullable public var model: String?
    @Nullable public var vendor: String?
    @Nullable public var serial: String?
    @Nullable public var wwn: String?
    /// The drive's firmware revision (udev `ID_REVISION`, sysfs `device/rev` or `device/firmware_rev`).
    @Nullable public var firmware: String?
    /// "gpt", "dos", ... or null when the disk has no partition table.
    @Nullable public var partitionTable: String?
    /// Everything libblkid recognises on the whole disk, partition tables included (what `wipefs` lists).
    public var signatures: [Signature]
    public var partitions: [Partition]
    /// The disk or one of its partitions is mounted (or used as swap).
    public var mounted: Bool
    /// Devices stacked on the disk or its partitions (device-mapper, MD RAID, ...), by kernel name.
    public var holders: [String]
    /// The disk holds the running root filesystem, /boot, or the Aquarium seed volume.
    public var isBootMedia: Bool
    /// Extra fields beyond the contract, documented in docs/inventory.md.
    public var isCdrom: Bool
    /// Mount points of the disk and its partitions.
    public var mountpoints: [String]
    /// For loop devices: the backing file.
    @Nullable public var backingFile: String?
    /// Why libblkid could not read the disk, when it could not (e.g. no medium).
    @Nullable public var probeError: String?
    /// libblkid recognises nothing, yet the first or last MiB holds non-zero bytes (outside Aquarium's step journal):
    /// raw data such as plain dm-crypt or a wiped header. Such a disk is not empty.
    public var unrecognisedData: Bool

    public init(name: String, path: String, byId: [String] = [], byPath: [String] = [], sizeBytes: UInt64,
                logicalSectorSize: Int = 512, physicalSectorSize: Int = 512, rotational: Bool = false,
                removable: Bool = false, readOnly: Bool = false, transport: Transport = .unknown,
                model: String? = nil, vendor: String? = nil, serial: String? = nil, wwn: String? = nil,
                firmware: String? = nil, partitionTable: String? = nil, signatures: [Signature] = [], partitions: [Partition] = [],
                mounted: Bool = false, holders: [String] = [], isBootMedia: Bool = false, isCdrom: Bool = false,
                mountpoints: [String] = [], backingFile: String? = nil, probeError: String? = nil,
                unrecognisedData: Bool = false) {
        self.name = name
        self.path = path
        self.byId = byId
        self.byPath = byPath
        self.sizeBytes = sizeBytes
        self.logicalSectorSize = logicalSectorSize
        self.physicalSectorSize = physicalSectorSize
        self.rotational = rotational
        self.removable = removable
        self.readOnly = readOnly
        self.transport = transport
        self.model = model
        self.vendor = vendor
        self.serial = serial
        self.wwn = wwn
        self.firmware = firmware
        self.partitionTable = partitionTable
        self.signatures = signatures
        self.partitions = partitions
        self.mounted = mounted
        self.holders = holders
        self.isBootMedia = isBootMedia
        self.isCdrom = isCdrom
        self.mountpoints = mountpoints
        self.backingFile = backingFile
        self.probeError = probeError
        self.unrecognisedData = unrecognisedData
    }

    enum CodingKeys: String, CodingKey {
        case name, path, byId, byPath, sizeBytes, logicalSectorSize, physicalSectorSize, rotational, removable, readOnly
        case transport, model, vendor, serial, wwn, firmware, partitionTable, signatures, partitions, mounted, holders, isBootMedia
        case isCdrom, mountpoints, backingFile, probeError, unrecognisedData
    }

    /// Decodes a saved inventory leniently: missing lists are empty, missing flags false,
    /// so hand-written inventory documents for planning stay short.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        path = try c.decodeIfPresent(String.self, forKey: .path) ?? "/dev/\(name)"
        byId = try c.decodeIfPresent([String].self, forKey: .byId) ?? []
        byPath = try c.decodeIfPresent([String].self, forKey: .byPath) ?? []
        sizeBytes = try c.decode(UInt64.self, forKey: .sizeBytes)
        logicalSectorSize = try c.decodeIfPresent(Int.self, forKey: .logicalSectorSize) ?? 512
        physicalSectorSize = try c.decodeIfPresent(Int.self, forKey: .physicalSectorSize) ?? logicalSectorSize
        rotational = try c.decodeIfPresent(Bool.self, forKey: .rotational) ?? false
        removable = try c.decodeIfPresent(Bool.self, forKey: .removable) ?? false
        readOnly = try c.decodeIfPresent(Bool.self, forKey: .readOnly) ?? false
        transport = try c.decodeIfPresent(Transport.self, forKey: .transport) ?? .unknown
        model = try c.decodeIfPresent(String.self, forKey: .model)
        vendor = try c.decodeIfPresent(String.self, forKey: .vendor)
        serial = try c.decodeIfPresent(String.self, forKey: .serial)
        wwn = try c.decodeIfPresent(String.self, forKey: .wwn)
        firmware = try c.decodeIfPresent(String.self, forKey: .firmware)
        partitionTable = try c.decodeIfPresent(String.self, forKey: .partitionTable)
        signatures = try c.decodeIfPresent([Signature].self, forKey: .signatures) ?? []
        partitions = try c.decodeIfPresent([Partition].self, forKey: .partitions) ?? []
        mounted = try c.decodeIfPresent(Bool.self, forKey: .mounted) ?? false
        holders = try c.decodeIfPresent([String].self, forKey: .holders) ?? []
        isBootMedia = try c.decodeIfPresent(Bool.self, forKey: .isBootMedia) ?? false
        isCdrom = try c.decodeIfPresent(Bool.self, forKey: .isCdrom) ?? false
        mountpoints = try c.decodeIfPresent([String].self, forKey: .mountpoints) ?? []
        backingFile = try c.decodeIfPresent(String.self, forKey: .backingFile)
        probeError = try c.decodeIfPresent(String.self, forKey: .probeError)
        unrecognisedData = try c.decodeIfPresent(Bool.self, forKey: .unrecognisedData) ?? false
    }

    /// The most stable identity this disk has: WWN, then serial, then the first by-id link, then a loop device's
    /// backing file, then the path (`path:` identities are not stable: kernel names change between boots).
    public var stableIdentity: String {
        if let wwn, !wwn.isEmpty { return "wwn:" + wwn }
        if let serial, !serial.isEmpty { return "serial:" + serial }
        if let first = byId.sorted().first { return "by-id:" + first }
        if let backingFile, !backingFile.isEmpty { return "file:" + backingFile }
        return "path:" + path
    }

    /// Whether `stableIdentity` names this disk whatever its kernel name is.
    public var hasStableIdentity: Bool { !stableIdentity.hasPrefix("path:") }
}

/// What `aquarium-firstboot inventory --json` prints.
public struct Inventory: Codable, Equatable, Sendable {
    public var disks: [Disk]
    /// The machine's CPU threads and memory (null in a document written without them: requirements are then not
    /// checked against it).
    @Nullable public var machine: MachineResources?

    public init(disks: [Disk], machine: MachineResources? = nil) {
        self.disks = disks
        self.machine = machine
    }

    enum CodingKeys: String, CodingKey { case disks, machine }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        disks = try c.decode([Disk].self, forKey: .disks)
        machine = try c.decodeIfPresent(MachineResources.self, forKey: .machine)
    }
}

/// What the hardware requirements are checked against: the online CPU threads and the memory the kernel manages
/// (`MemTotal`, a little less than what is installed).
public struct MachineResources: Codable, Equatable, Sendable {
    public var cpuThreads: Int
    public var memoryBytes: UInt64

    public init(cpuThreads: Int, memoryBytes: UInt64) {
        self.cpuThreads = cpuThreads
        self.memoryBytes = memoryBytes
    }

    /// `MemTotal:       24576000 kB` in /proc/meminfo, in KiB.
    public static func memTotalKiB(_ meminfo: String) -> UInt64? {
        guard let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }) else { return nil }
        let words = line.split(whereSeparator: \.isWhitespace)
        guard words.count >= 2, words.count < 3 || words[2] == "kB" else { return nil }
        return UInt64(words[1])
    }
}

/// World Wide Names as udev, sysfs and seeds spell them.
public enum WWN {
    /// The form two WWNs are compared in: lower case, without `0x`, `naa.`, `eui.`, `wwn-0x` or `wwn-` (a udev
    /// `ID_WWN` "0x5000c500a1b2c3d4", a sysfs wwid "naa.5000c500a1b2c3d4" and a by-id name "wwn-0x5000..." compare equal).
    public static func comparable(_ wwn: String?) -> String {
        guard var text = wwn?.lowercased() else { return "" }
        for prefix in ["wwn-0x", "wwn-", "0x", "naa.", "eui."] where text.hasPrefix(prefix) {
            text = String(text.dropFirst(prefix.count))
            break
        }
        return text
    }
}
