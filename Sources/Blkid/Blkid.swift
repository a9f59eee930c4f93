import CBlkid
import Glibc
import SystemErrors

/// One signature libblkid recognises on a device: a filesystem, an LVM PV, a RAID member,
/// a Ceph bluestore label, or a partition table.
public struct BlkidSignature: Equatable, Sendable {
    /// libblkid's name for it ("xfs", "ext4", "LVM2_member", "gpt", "PMBR", ...).
    public var type: String
    /// "filesystem", "raid", "crypto", "other", or "partition_table".
    public var usage: String?
    public var label: String?
    public var uuid: String?
    /// Where the magic bytes were found, in bytes from the start of the probed area.
    public var offsetBytes: UInt64?
}

/// One entry of a partition table as libblkid reads it.
public struct BlkidPartition: Equatable, Sendable {
    public var number: Int
    public var startBytes: UInt64
    public var sizeBytes: UInt64
    public var name: String?
    /// GPT type GUID (lower case) or MBR type as "0x83".
    public var type: String?
    public var uuid: String?
}

/// The partition table libblkid finds on a device.
public struct BlkidPartitionTable: Equatable, Sendable {
    public var type: String
    public var id: String?
    public var partitions: [BlkidPartition]
}

/// The single owner of a `blkid_probe`, and of the file descriptor it reads unless the caller lent it.
///
/// Close it with `close()`; `deinit` only frees what is left.
public final class BlkidProbe {
    private var probe: blkid_probe?
    private var fd: Int32
    /// False when the descriptor was lent by the caller (`init(descriptor:...)`), who closes it.
    private let ownsDescriptor: Bool
    public let path: String

    /// Opens `path` read-only and prepares a probe over `size` bytes starting at `offset`
    /// (the whole device when `size` is 0). Opening read-only is always enough for probing.
    public convenience init(path: String, offset: UInt64 = 0, size: UInt64 = 0) throws(SystemError) {
        let descriptor = try checkErrno("open", path: path) { open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
        try self.init(descriptor: descriptor, owned: true, path: path, offset: offset, size: size)
    }

    /// Prepares a probe over an open descriptor of `path` that the caller keeps open for the probe's life and closes
    /// itself. Several probes of one device (the disk, then each partition) can share one descriptor: while any
    /// descriptor of a block device is open the kernel keeps what was read in its page cache, and the last close drops it.
    public convenience init(descriptor: Int32, path: String, offset: UInt64 = 0, size: UInt64 = 0) throws(SystemError) {
        try self.init(descriptor: descriptor, owned: false, path: path, offset: offset, size: size)
    }

    private init(descriptor: Int32, owned: Bool, path: String, offset: UInt64, size: UInt64) throws(SystemError) {
        self.path = path
        guard let created = blkid_new_probe() else {
            let error = SystemError.fromErrno("blkid_new_probe", path: path)
            if owned { Glibc.close(descriptor) }
            throw error
        }
        if blkid_probe_set_device(created, descriptor, blkid_loff_t(offset), blkid_loff_t(size)) != 0 {
            let error = SystemError(operation: "blkid_probe_set_device", path: path, errno: Glibc.errno,
                                    message: "libblkid cannot read this device")
            blkid_free_probe(created)
            if owned { Glibc.close(descriptor) }
            throw error
        }
        self.probe = created
        self.fd = descriptor
        self.ownsDescriptor = owned
    }

    deinit {
        if let probe { blkid_free_probe(probe) }
        if fd >= 0 && ownsDescriptor { Glibc.close(fd) }
    }

    /// Frees the probe and closes the device (a lent descriptor stays open).
    public func close() throws(SystemError) {
        if let probe { blkid_free_probe(probe) }
        probe = nil
        if !ownsDescriptor { fd = -1 }
        if fd >= 0 {
            let descriptor = fd
            fd = -1
            if Glibc.close(descriptor) != 0 { throw SystemError.fromErrno("close", path: path) }
        }
    }

    private func handle() throws(SystemError) -> blkid_probe {
        guard let probe else { throw SystemError(operation: "blkid probe", path: path, message: "probe already closed") }
        return probe
    }

    /// The logical sector size libblkid sees.
    public var sectorSize: UInt32 {
        guard let probe else { return 512 }
        return blkid_probe_get_sectorsize(probe)
    }

    /// Every signature on the device, as `wipefs` would list them: all superblocks
    /// (filesystems, LVM, RAID, bluestore, ...) and partition tables, with their offsets.
    public func signatures() throws(SystemError) -> [BlkidSignature] {
        let probe = try handle()
        blkid_probe_enable_superblocks(probe, 1)
        blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE
                                          | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM)
        blkid_probe_enable_partitions(probe, 1)
        blkid_probe_set_partitions_flags(probe, BLKID_PARTS_MAGIC)
        blkid_probe_enable_topology(probe, 0)
        defer { blkid_reset_probe(probe) }

        var found: [BlkidSignature] = []
        while true {
            let rc = blkid_do_probe(probe)
            if rc == 1 { break }
            if rc < 0 {
                throw SystemError(operation: "blkid_do_probe", path: path, errno: Glibc.errno,
                                  message: "libblkid could not read the signatures")
            }
            let values = currentValues(probe)
            if let type = values["TYPE"] {
                found.append(BlkidSignature(type: type, usage: values["USAGE"], label: values["LABEL"],
                                            uuid: values["UUID"], offsetBytes: values["SBMAGIC_OFFSET"].flatMap { UInt64($0) }))
            } else if let type = values["PTTYPE"] {
                found.append(BlkidSignature(type: type, usage: "partition_table", label: nil, uuid: values["PTUUID"],
                                            offsetBytes: values["PTMAGIC_OFFSET"].flatMap { UInt64($0) }))
            }
        }
        return found
    }

    /// The superblock that a safe probe reports for the probed area (nil when there is none or it is ambiguous).
    public func filesystem() throws(SystemError) -> BlkidSignature? {
        let probe = try handle()
        blkid_probe_enable_superblocks(probe, 1)
        blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE
                                          | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_MAGIC)
        blkid_probe_enable_partitions(probe, 0)
        defer { blkid_reset_probe(probe) }
        let rc = blkid_do_safeprobe(probe)
        if rc < 0 {
            if rc == -2 { return nil }  // ambiguous: several signatures; signatures() lists them
            throw SystemError(operation: "blkid_do_safeprobe", path: path, errno: Glibc.errno,
                              message: "libblkid could not probe the filesystem")
        }
        if rc == 1 { return nil }
        let values = currentValues(probe)
        guard let type = values["TYPE"] else { return nil }
        return BlkidSignature(type: type, usage: values["USAGE"], label: values["LABEL"], uuid: values["UUID"],
                              offsetBytes: values["SBMAGIC_OFFSET"].flatMap { UInt64($0) })
    }

    /// The partition table and its entries, or nil when the device has none.
    public func partitionTable() throws(SystemError) -> BlkidPartitionTable? {
        let probe = try handle()
        blkid_probe_enable_superblocks(probe, 0)
        blkid_probe_enable_partitions(probe, 1)
        blkid_probe_set_partitions_flags(probe, BLKID_PARTS_ENTRY_DETAILS)
        defer { blkid_reset_probe(probe) }
        guard let list = blkid_probe_get_partitions(probe) else { return nil }
        guard let table = blkid_partlist_get_table(list), let tableType = optionalString(blkid_parttable_get_type(table)) else {
            return nil
        }
        let sector: UInt64 = 512  // libblkid reports partition geometry in 512-byte sectors
        var partitions: [BlkidPartition] = []
        let count = blkid_partlist_numof_partitions(list)
        if count > 0 {
            for index in 0..<count {
                guard let part = blkid_partlist_get_partition(list, index) else { continue }
                var type = optionalString(blkid_partition_get_type_string(part))
                if type == nil {
                    let code = blkid_partition_get_type(part)
                    if code != 0 { type = "0x" + String(code, radix: 16) }
                }
                partitions.append(BlkidPartition(
                    number: Int(blkid_partition_get_partno(part)),
                    startBytes: UInt64(max(0, blkid_partition_get_start(part))) * sector,
                    sizeBytes: UInt64(max(0, blkid_partition_get_size(part))) * sector,
                    name: optionalString(blkid_partition_get_name(part)).flatMap { $0.isEmpty ? nil : $0 },
                    type: type?.lowercased(),
                    uuid: optionalString(blkid_partition_get_uuid(part))?.lowercased()))
            }
        }
        return BlkidPartitionTable(type: tableType, id: optionalString(blkid_parttable_get_id(table))?.lowercased(),
                                   partitions: partitions)
    }

    private func currentValues(_ probe: blkid_probe) -> [String: String] {
        var values: [String: String] = [:]
        let count = blkid_probe_numof_values(probe)
        guard count > 0 else { return values }
        for index in 0..<count {
            var name: UnsafePointer<CChar>?
            var data: UnsafePointer<CChar>?
            var length = 0
            if blkid_probe_get_value(probe, index, &name, &data, &length) == 0, let name, let data {
                values[String(cString: name)] = String(cString: data)
            }
        }
        return values
    }
}
