import CParted
import Foundation
import Synchronization
import SystemErrors

/// A libparted failure, carrying the text libparted raised through its exception handler.
public struct PartedError: Error, CustomStringConvertible, Equatable, Sendable {
    public var operation: String
    public var device: String
    /// libparted's own messages, in the order it raised them ("Error: Could not stat device ...").
    public var messages: [String]

    public var description: String {
        let detail = messages.isEmpty ? "libparted gave no reason" : messages.joined(separator: "; ")
        return "\(operation) \(device) failed: \(detail)"
    }
}

/// How the exception handler answers libparted's questions for the operation in progress.
public enum PartedAnswerPolicy: Sendable {
    /// Cancel (or leave unhandled) everything: nothing is changed on a question. The default.
    case refuse
    /// Answer "Fix" where libparted offers it (e.g. move a backup GPT header to the end of a larger device).
    case fix
}

/// The exception state for the one libparted operation that runs at a time.
///
/// libparted keeps a process-wide handler and is not thread-safe, so every call goes through
/// `Parted.serialized`, which holds this lock, installs the capturing handler, and turns what
/// libparted said into a `PartedError` when the call fails.
private struct ExceptionState: ~Copyable {
    var messages: [String] = []
    var policy: PartedAnswerPolicy = .refuse
}

private let exceptionState = Mutex(ExceptionState())
private let operationLock = NSRecursiveLock()
/// How many `PartedDevice` values share each libparted device; guarded by `operationLock`.
nonisolated(unsafe) private var deviceOwners: [UnsafeMutableRawPointer: Int] = [:]

private let capturingHandler: @convention(c) (UnsafeMutablePointer<PedException>?) -> PedExceptionOption = { exception in
    guard let exception else { return PED_EXCEPTION_UNHANDLED }
    let type = optionalString(ped_exception_get_type_string(exception.pointee.type)) ?? "Exception"
    let text = optionalString(exception.pointee.message) ?? ""
    let offered = exception.pointee.options.rawValue
    let policy = exceptionState.withLock { state in
        state.messages.append("\(type): \(text)")
        return state.policy
    }
    func offers(_ option: PedExceptionOption) -> Bool { offered & option.rawValue != 0 }
    if policy == .fix && offers(PED_EXCEPTION_FIX) { return PED_EXCEPTION_FIX }
    if offers(PED_EXCEPTION_CANCEL) { return PED_EXCEPTION_CANCEL }
    if offers(PED_EXCEPTION_NO) { return PED_EXCEPTION_NO }
    return PED_EXCEPTION_UNHANDLED
}

public enum Parted {
    /// Runs `body` as the only libparted operation in flight, with libparted's messages captured.
    /// Returns the body's result and the messages libparted raised (warnings included).
    static func serialized<T>(policy: PartedAnswerPolicy = .refuse,
                              _ body: () throws(PartedError) -> T) throws(PartedError) -> (T, [String]) {
        operationLock.lock()
        defer { operationLock.unlock() }
        exceptionState.withLock { state in
            state.messages = []
            state.policy = policy
        }
        ped_exception_set_handler(capturingHandler)
        defer { exceptionState.withLock { $0.policy = .refuse } }
        let result = try body()
        let messages = exceptionState.withLock { $0.messages }
        return (result, messages)
    }

    /// The messages captured so far in the current serialized operation.
    static func capturedMessages() -> [String] {
        exceptionState.withLock { $0.messages }
    }

    static func failure(_ operation: String, _ device: String) -> PartedError {
        PartedError(operation: operation, device: device, messages: capturedMessages())
    }
}

/// Geometry of one partition as libparted sees it.
public struct PartedPartition: Equatable, Sendable {
    public var number: Int
    public var startSector: Int64
    public var endSector: Int64
    public var name: String?
    public var fileSystem: String?
    public var path: String?

    public var sectorCount: Int64 { endSector - startSector + 1 }
}

/// What to create: a partition of `sizeBytes` (nil: the rest of the disk) named `name`.
public struct PartitionRequest: Equatable, Sendable {
    public var name: String
    public var sizeBytes: UInt64?
    /// The libparted flags to set, e.g. `.esp`.
    public var flags: [PartitionFlag]

    public init(name: String, sizeBytes: UInt64?, flags: [PartitionFlag] = []) {
        self.name = name
        self.sizeBytes = sizeBytes
        self.flags = flags
    }
}

public enum PartitionFlag: Sendable, Equatable {
    case esp, bios, lvm, raid

    var ped: PedPartitionFlag {
        switch self {
        case .esp: PED_PARTITION_ESP
        case .bios: PED_PARTITION_BIOS_GRUB
        case .lvm: PED_PARTITION_LVM
        case .raid: PED_PARTITION_RAID
        }
    }
}

/// The single owner of a libparted `PedDevice` (a block device or an image file).
///
/// A `PartedDisk` made from it keeps it open: `close()` while a table read from or made on it is still alive only
/// marks it, and the last such table's end closes it (libparted's `ped_disk_destroy` reads the device, so destroying
/// the device first is a use after free — harmless in a single-threaded tool until the memory is reused, a crash
/// when other threads reuse it at once).
public final class PartedDevice {
    private var device: UnsafeMutablePointer<PedDevice>?
    public let path: String
    /// Tables alive on this device, and whether `close()` was asked meanwhile; guarded by `operationLock`.
    fileprivate var liveDisks = 0
    fileprivate var closeAsked = false

    /// Opens the device or image file at `path` through libparted.
    public init(path: String) throws(PartedError) {
        self.path = path
        let (opened, _) = try Parted.serialized { () throws(PartedError) -> UnsafeMutablePointer<PedDevice> in
            guard let device = ped_device_get(path) else { throw Parted.failure("open", path) }
            // libparted hands out the same PedDevice for the same path; count the Swift owners
            // so it is destroyed once, by the last of them.
            deviceOwners[UnsafeMutableRawPointer(device), default: 0] += 1
            return device
        }
        self.device = opened
    }

    deinit { release() }

    /// Releases the device (once no `PartedDisk` on it is alive). libparted cannot report failure here.
    public func close() {
        operationLock.lock()
        defer { operationLock.unlock() }
        if liveDisks > 0 {
            closeAsked = true
            return
        }
        release()
    }

    /// A table on this device ended (its `ped_disk_destroy` done); called with `operationLock` held.
    fileprivate func diskEnded() {
        liveDisks -= 1
        if liveDisks == 0 && closeAsked { release() }
    }

    private func release() {
        operationLock.lock()
        defer { operationLock.unlock() }
        guard let device else { return }
        self.device = nil
        let key = UnsafeMutableRawPointer(device)
        let remaining = (deviceOwners[key] ?? 1) - 1
        if remaining > 0 {
            deviceOwners[key] = remaining
        } else {
            deviceOwners[key] = nil
            ped_device_destroy(device)
        }
    }

    func handle() throws(PartedError) -> UnsafeMutablePointer<PedDevice> {
        guard let device else { throw PartedError(operation: "use", device: path, messages: ["device already closed"]) }
        return device
    }

    public var logicalSectorSize: Int { device.map { Int($0.pointee.sector_size) } ?? 0 }
    public var physicalSectorSize: Int { device.map { Int($0.pointee.phys_sector_size) } ?? 0 }
    /// Length in logical sectors.
    public var sectorCount: Int64 { device.map { Int64($0.pointee.length) } ?? 0 }
    public var sizeBytes: UInt64 { UInt64(sectorCount) * UInt64(logicalSectorSize) }
    public var model: String? { device.flatMap { optionalString($0.pointee.model) } }

    /// The partition table type on the device ("gpt", "msdos", ...), or nil when there is none.
    public func partitionTableType() throws(PartedError) -> String? {
        let device = try handle()
        let (type, _) = try Parted.serialized { () throws(PartedError) -> String? in
            guard let type = ped_disk_probe(device) else { return nil }
            return optionalString(type.pointee.name)
        }
        return type
    }
}

/// The single owner of a libparted `PedDisk` (a partition table in memory, read from or
/// to be written to a `PartedDevice`).
public final class PartedDisk {
    private var disk: UnsafeMutablePointer<PedDisk>?
    public let device: PartedDevice

    private init(disk: UnsafeMutablePointer<PedDisk>, device: PartedDevice) {
        self.disk = disk
        self.device = device
        operationLock.lock()
        device.liveDisks += 1
        operationLock.unlock()
    }

    deinit {
        operationLock.lock()
        if let disk { ped_disk_destroy(disk) }
        device.diskEnded()
        operationLock.unlock()
    }

    /// Reads the partition table on `device`. `policy: .fix` lets libparted repair what it offers to
    /// fix (a backup GPT header that is not at the end of a larger device).
    public static func read(from device: PartedDevice, policy: PartedAnswerPolicy = .refuse) throws(PartedError) -> PartedDisk {
        let handle = try device.handle()
        let (disk, _) = try Parted.serialized(policy: policy) { () throws(PartedError) -> UnsafeMutablePointer<PedDisk> in
            guard let disk = ped_disk_new(handle) else { throw Parted.failure("read partition table of", device.path) }
            return disk
        }
        return PartedDisk(disk: disk, device: device)
    }

    /// A new, empty partition table of `type` ("gpt") for `device`, in memory until `commit()`.
    public static func fresh(on device: PartedDevice, type: String = "gpt") throws(PartedError) -> PartedDisk {
        let handle = try device.handle()
        let (disk, _) = try Parted.serialized { () throws(PartedError) -> UnsafeMutablePointer<PedDisk> in
            guard let diskType = ped_disk_type_get(type) else { throw Parted.failure("find disk type '\(type)' for", device.path) }
            guard let disk = ped_disk_new_fresh(handle, diskType) else { throw Parted.failure("create partition table on", device.path) }
            return disk
        }
        return PartedDisk(disk: disk, device: device)
    }

    private func handle() throws(PartedError) -> UnsafeMutablePointer<PedDisk> {
        guard let disk else { throw PartedError(operation: "use", device: device.path, messages: ["partition table already closed"]) }
        return disk
    }

    public var typeName: String? { disk.flatMap { optionalString($0.pointee.type.pointee.name) } }

    /// The real partitions (no free space or metadata), in table order.
    public func partitions() throws(PartedError) -> [PartedPartition] {
        let disk = try handle()
        let (list, _) = try Parted.serialized { () throws(PartedError) -> [PartedPartition] in
            var result: [PartedPartition] = []
            var part = ped_disk_next_partition(disk, nil)
            while let current = part {
                let kind = current.pointee.type.rawValue
                if current.pointee.num > 0 && kind & (PED_PARTITION_FREESPACE.rawValue | PED_PARTITION_METADATA.rawValue) == 0 {
                    var name: String?
                    if ped_disk_type_check_feature(disk.pointee.type, PED_DISK_TYPE_PARTITION_NAME) != 0 {
                        name = optionalString(ped_partition_get_name(current)).flatMap { $0.isEmpty ? nil : $0 }
                    }
                    var path: String?
                    if let cPath = ped_partition_get_path(current) {
                        path = String(cString: cPath)
                        free(cPath)
                    }
                    result.append(PartedPartition(number: Int(current.pointee.num),
                                                  startSector: Int64(current.pointee.geom.start),
                                                  endSector: Int64(current.pointee.geom.end),
                                                  name: name,
                                                  fileSystem: current.pointee.fs_type.flatMap { optionalString($0.pointee.name) },
                                                  path: path))
                }
                part = ped_disk_next_partition(disk, current)
            }
            return result
        }
        return list
    }

    /// Appends partitions in order, each starting at the next `alignmentBytes` boundary
    /// (1 MiB by default: right for 512-byte and 4K-sector disks alike). A request without a
    /// size takes the rest of the usable space, up to an aligned end.
    @discardableResult
    public func append(_ requests: [PartitionRequest], alignmentBytes: UInt64 = 1 << 20) throws(PartedError) -> [PartedPartition] {
        let disk = try handle()
        let device = self.device
        let sectorSize = UInt64(device.logicalSectorSize)
        let align = Int64(max(1, alignmentBytes / sectorSize))
        _ = try Parted.serialized { () throws(PartedError) in
            // Usable area: after the primary GPT, before the backup GPT (GPT reserves 33 sectors each end on 512 B).
            let lastUsable = Int64(device.sectorCount) - 1 - Int64(max(34, (16384 + 1024) / Int(sectorSize) + 1))
            var nextStart = align
            var part = ped_disk_next_partition(disk, nil)
            while let current = part {
                if current.pointee.num > 0 { nextStart = max(nextStart, Int64(current.pointee.geom.end) + 1) }
                part = ped_disk_next_partition(disk, current)
            }
            for request in requests {
                let start = (nextStart + align - 1) / align * align
                var end: Int64
                if let size = request.sizeBytes {
                    end = start + Int64((size + sectorSize - 1) / sectorSize) - 1
                } else {
                    end = (lastUsable + 1) / align * align - 1
                }
                guard end > start, end <= lastUsable else {
                    throw PartedError(operation: "add partition '\(request.name)' to", device: device.path,
                                      messages: ["it does not fit: sectors \(start)-\(end), last usable sector \(lastUsable)"])
                }
                guard let part = ped_partition_new(disk, PED_PARTITION_NORMAL, nil, PedSector(start), PedSector(end)) else {
                    throw Parted.failure("create partition '\(request.name)' on", device.path)
                }
                guard let constraint = ped_constraint_exact(&part.pointee.geom) else {
                    ped_partition_destroy(part)
                    throw Parted.failure("constrain partition '\(request.name)' on", device.path)
                }
                defer { ped_constraint_destroy(constraint) }
                if ped_disk_add_partition(disk, part, constraint) == 0 {
                    ped_partition_destroy(part)
                    throw Parted.failure("add partition '\(request.name)' to", device.path)
                }
                if ped_partition_set_name(part, request.name) == 0 {
                    throw Parted.failure("name partition '\(request.name)' on", device.path)
                }
                for flag in request.flags where ped_partition_set_flag(part, flag.ped, 1) == 0 {
                    throw Parted.failure("set a flag on partition '\(request.name)' of", device.path)
                }
                nextStart = end + 1
            }
        }
        return try partitions()
    }

    /// Writes the table to the device. For a block device the kernel is told too (BLKPG), so the
    /// partition nodes appear; for an image file only the file is written.
    public func commit(informKernel: Bool = true) throws(PartedError) {
        let disk = try handle()
        let path = device.path
        _ = try Parted.serialized { () throws(PartedError) in
            if ped_disk_commit_to_dev(disk) == 0 { throw Parted.failure("write partition table to", path) }
            if informKernel && ped_disk_commit_to_os(disk) == 0 { throw Parted.failure("inform the kernel about", path) }
        }
    }
}
