import FileLayer
import Foundation
import Logging

/// Why a disk could not be claimed for a destructive step.
public struct DiskClaimError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// Something else has the disk open exclusively, mounted or stacked on it (EBUSY).
        case busy
        /// The device at that path is no longer the disk that was planned (identity or size changed).
        case changed
        case failed
    }

    public var kind: Kind
    public var message: String

    public var description: String { message }
}

/// Exclusive access to a whole disk for the length of a destructive step: the device is opened `O_EXCL` (the kernel
/// refuses while it is mounted, held by device-mapper/MD/LVM or claimed by another exclusive opener) and its identity
/// is checked against the disk that was planned, right before anything is written. Close explicitly; `deinit` is
/// only a backstop.
public final class DiskClaim {
    public let disk: Disk
    public private(set) var fd: Int32

    /// Opens `planned.path` exclusively and re-reads its identity (WWN, serial, size, a loop device's backing file).
    public init(_ planned: Disk, writable: Bool = true, logger: Logger = Logger(label: "aquarium.disks")) throws(DiskClaimError) {
        disk = planned
        var descriptor: Int32
        repeat {
            descriptor = open(planned.path, (writable ? O_RDWR : O_RDONLY) | O_EXCL | O_CLOEXEC)
        } while descriptor < 0 && errno == EINTR
        guard descriptor >= 0 else {
            let code = errno
            let reason = String(cString: strerror(code))
            throw DiskClaimError(kind: code == EBUSY ? .busy : .failed,
                                 message: code == EBUSY
                                    ? "\(planned.path) is in use (the kernel refused exclusive access: mounted, held by "
                                        + "device-mapper/LVM/MD, or opened by another program); nothing was written"
                                    : "cannot open \(planned.path) exclusively: \(reason)")
        }
        fd = descriptor
        let current: Disk?
        do {
            current = try InventoryScanner(options: InventoryOptions(includeAll: true, onlyNames: [planned.name]),
                                           logger: logger).scan().disks.first
        } catch {
            close()
            throw DiskClaimError(kind: .failed, message: "cannot re-read \(planned.path) before writing: \(error)")
        }
        if let problem = Self.identityChange(planned: planned, now: current) {
            close()
            throw DiskClaimError(kind: .changed, message: "\(planned.path) is no longer the disk that was planned "
                + "(\(problem)); nothing was written. Run again to plan from what is attached now")
        }
    }

    /// What differs between the planned disk and the disk now at its path, or nil when it is the same disk.
    public static func identityChange(planned: Disk, now: Disk?) -> String? {
        guard let now else { return "it is gone" }
        var problems: [String] = []
        if now.sizeBytes != planned.sizeBytes { problems.append("size \(now.sizeBytes) bytes, planned \(planned.sizeBytes)") }
        if now.wwn != planned.wwn { problems.append("WWN \(now.wwn ?? "none"), planned \(planned.wwn ?? "none")") }
        if now.serial != planned.serial { problems.append("serial \(now.serial ?? "none"), planned \(planned.serial ?? "none")") }
        if now.backingFile != planned.backingFile {
            problems.append("backing file \(now.backingFile ?? "none"), planned \(planned.backingFile ?? "none")")
        }
        if now.logicalSectorSize != planned.logicalSectorSize {
            problems.append("\(now.logicalSectorSize)-byte sectors, planned \(planned.logicalSectorSize)")
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }

    /// Writes zeros over `range` through the claimed descriptor.
    public func zero(_ range: Range<UInt64>) throws(DiskClaimError) {
        let chunk = [UInt8](repeating: 0, count: 1 << 16)
        var position = range.lowerBound
        while position < range.upperBound {
            let count = Int(min(UInt64(chunk.count), range.upperBound - position))
            do {
                try FileIO.write(fd, Array(chunk[0..<count]), at: position, path: disk.path)
            } catch {
                throw DiskClaimError(kind: .failed, message: "cannot wipe: \(error)")
            }
            position += UInt64(count)
        }
    }

    /// Zeroes the signatures of what is on the disk: its first `head` bytes (partition tables, whole-disk labels, the
    /// step journal), its last MiB (the backup GPT), the first MiB of each partition and 8 KiB around every signature
    /// libblkid reported; then flushes.
    public func wipeSignatures(head: UInt64 = 1 << 20) throws(DiskClaimError) {
        for range in Self.wipeRanges(disk, head: head) { try zero(range) }
        try sync()
    }

    /// The ranges `wipeSignatures` zeroes.
    public static func wipeRanges(_ disk: Disk, head: UInt64) -> [Range<UInt64>] {
        let size = disk.sizeBytes
        let mib: UInt64 = 1 << 20
        var ranges: [Range<UInt64>] = [0..<min(size, max(head, AquariumMarks.journalRange.upperBound))]
        if size > mib { ranges.append((size - mib)..<size) }
        for part in disk.partitions where part.startBytes < size {
            ranges.append(part.startBytes..<min(size, part.startBytes + min(part.sizeBytes, mib)))
        }
        for signature in disk.signatures {
            if let offset = signature.offsetBytes, offset < size {
                let start = offset >= 4096 ? offset - 4096 : 0
                ranges.append(start..<min(size, offset + 4096))
            }
        }
        return ranges
    }

    /// Flushes what was written to the device.
    public func sync() throws(DiskClaimError) {
        do {
            try FileIO.sync(fd, path: disk.path)
        } catch {
            throw DiskClaimError(kind: .failed, message: error.description)
        }
    }

    /// Releases the exclusive access.
    public func close() {
        guard fd >= 0 else { return }
        _ = Foundation.close(fd)
        fd = -1
    }

    deinit { close() }
}
