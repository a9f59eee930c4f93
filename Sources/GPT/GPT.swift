import FileLayer
import Foundation
import SystemErrors

/// A GPT that is not what this module can safely edit, or an I/O failure, naming the device.
public struct GPTError: Error, CustomStringConvertible, Equatable, Sendable {
    public var path: String
    public var reason: String
    public var description: String { "GPT on \(path): \(reason)" }

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// One used entry of the partition array.
public struct GPTEntry: Equatable, Sendable {
    /// 1-based partition number (slot index + 1).
    public var number: Int
    public var typeGUID: UUID
    public var uniqueGUID: UUID
    public var firstLBA: UInt64
    public var lastLBA: UInt64
    public var attributes: UInt64
    public var name: String
}

/// Reads a GUID Partition Table and rewrites the identities libparted 3.5 cannot set — the disk
/// GUID, partition type GUIDs and partition unique GUIDs — and can move the backup header and
/// array to the end of a larger device (what a flashed stick needs). Both copies are written with
/// fresh CRC32s; libparted owns partition geometry, except for one entry added in a gap (`addPartition`).
public struct GPTEditor: Sendable {
    public let path: String
    public let sectorSize: Int
    public private(set) var diskGUID: UUID
    public private(set) var entries: [GPTEntry]
    public private(set) var firstUsableLBA: UInt64
    public private(set) var lastUsableLBA: UInt64
    public private(set) var backupLBA: UInt64

    private var header: [UInt8]
    private var array: [UInt8]
    private var entryCount: Int
    private var entrySize: Int
    private var arrayLBA: UInt64

    /// Reads the primary header and partition array of the image file or block device at `path`.
    public init(path: String, sectorSize: Int = 512) throws(GPTError) {
        self.path = path
        self.sectorSize = sectorSize
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GPTError(path: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let headerSector = try Self.read(fd, path: path, offset: UInt64(sectorSize), count: sectorSize)
        guard headerSector.count >= 92, Array(headerSector[0..<8]) == Array("EFI PART".utf8) else {
            throw GPTError(path: path, reason: "no GPT header at LBA 1 (sector size \(sectorSize))")
        }
        let headerSize = Int(Self.le32(headerSector, 12))
        guard headerSize >= 92, headerSize <= sectorSize else { throw GPTError(path: path, reason: "header size \(headerSize) is invalid") }
        header = Array(headerSector[0..<headerSize])
        var check = header
        check.replaceSubrange(16..<20, with: [0, 0, 0, 0])
        guard CRC32.checksum(check) == Self.le32(header, 16) else { throw GPTError(path: path, reason: "primary header CRC mismatch") }
        backupLBA = Self.le64(header, 32)
        firstUsableLBA = Self.le64(header, 40)
        lastUsableLBA = Self.le64(header, 48)
        diskGUID = Self.guid(header, 56)
        arrayLBA = Self.le64(header, 72)
        entryCount = Int(Self.le32(header, 80))
        entrySize = Int(Self.le32(header, 84))
        guard entrySize >= 128, entryCount > 0, entryCount <= 1024 else {
            throw GPTError(path: path, reason: "partition array of \(entryCount) x \(entrySize) bytes is not supported")
        }
        array = try Self.read(fd, path: path, offset: arrayLBA * UInt64(sectorSize), count: entryCount * entrySize)
        guard CRC32.checksum(array) == Self.le32(header, 88) else { throw GPTError(path: path, reason: "partition array CRC mismatch") }
        entries = []
        for slot in 0..<entryCount {
            let base = slot * entrySize
            let type = Self.guid(array, base)
            if type == Self.unused { continue }
            var name: [UInt16] = []
            for index in stride(from: base + 56, to: base + 128, by: 2) {
                let unit = UInt16(array[index]) | UInt16(array[index + 1]) << 8
                if unit == 0 { break }
                name.append(unit)
            }
            entries.append(GPTEntry(number: slot + 1, typeGUID: type, uniqueGUID: Self.guid(array, base + 16),
                                    firstLBA: Self.le64(array, base + 32), lastLBA: Self.le64(array, base + 40),
                                    attributes: Self.le64(array, base + 48), name: String(decoding: name, as: UTF16.self)))
        }
    }

    public mutating func setDiskGUID(_ guid: UUID) {
        diskGUID = guid
        Self.put(guid, into: &header, at: 56)
    }

    /// Sets the type and/or unique GUID of partition `number`.
    public mutating func setPartition(number: Int, typeGUID: UUID? = nil, uniqueGUID: UUID? = nil) throws(GPTError) {
        guard let index = entries.firstIndex(where: { $0.number == number }) else {
            throw GPTError(path: path, reason: "there is no partition \(number)")
        }
        let base = (number - 1) * entrySize
        if let typeGUID {
            entries[index].typeGUID = typeGUID
            Self.put(typeGUID, into: &array, at: base)
        }
        if let uniqueGUID {
            entries[index].uniqueGUID = uniqueGUID
            Self.put(uniqueGUID, into: &array, at: base + 16)
        }
    }

    /// Adds partition `number` (an unused entry) from `firstLBA` to `lastLBA`, inside the usable area and overlapping no
    /// other partition: the one geometry change made here, for the BIOS boot partition in the gap libparted leaves
    /// before the first 1 MiB aligned partition. `name` is at most 36 UTF-16 units.
    public mutating func addPartition(number: Int, firstLBA: UInt64, lastLBA: UInt64, typeGUID: UUID, uniqueGUID: UUID,
                                      name: String, attributes: UInt64 = 0) throws(GPTError) {
        guard number >= 1, number <= entryCount else {
            throw GPTError(path: path, reason: "partition \(number) is outside the array of \(entryCount) entries")
        }
        guard !entries.contains(where: { $0.number == number }) else {
            throw GPTError(path: path, reason: "partition \(number) is already in use")
        }
        guard firstLBA <= lastLBA, firstLBA >= firstUsableLBA, lastLBA <= lastUsableLBA else {
            throw GPTError(path: path, reason: "sectors \(firstLBA)-\(lastLBA) are not inside the usable area \(firstUsableLBA)-\(lastUsableLBA)")
        }
        if let other = entries.first(where: { $0.firstLBA <= lastLBA && firstLBA <= $0.lastLBA }) {
            throw GPTError(path: path, reason: "sectors \(firstLBA)-\(lastLBA) overlap partition \(other.number) (\(other.firstLBA)-\(other.lastLBA))")
        }
        let units = Array(name.utf16)
        guard units.count <= 36 else { throw GPTError(path: path, reason: "the name '\(name)' is longer than 36 UTF-16 units") }
        let base = (number - 1) * entrySize
        array.replaceSubrange(base..<(base + entrySize), with: [UInt8](repeating: 0, count: entrySize))
        Self.put(typeGUID, into: &array, at: base)
        Self.put(uniqueGUID, into: &array, at: base + 16)
        Self.put64(&array, base + 32, firstLBA)
        Self.put64(&array, base + 40, lastLBA)
        Self.put64(&array, base + 48, attributes)
        for (index, unit) in units.enumerated() {
            array[base + 56 + 2 * index] = UInt8(truncatingIfNeeded: unit)
            array[base + 57 + 2 * index] = UInt8(truncatingIfNeeded: unit >> 8)
        }
        entries.append(GPTEntry(number: number, typeGUID: typeGUID, uniqueGUID: uniqueGUID, firstLBA: firstLBA, lastLBA: lastLBA,
                                attributes: attributes, name: name))
        entries.sort { $0.number < $1.number }
    }

    /// Writes the primary and backup GPT. With `deviceSectorCount`, the backup header goes to the
    /// device's last sector and its array just before it, the last usable LBA grows to match, and the
    /// protective MBR covers the whole device.
    public mutating func write(deviceSectorCount: UInt64? = nil) throws(GPTError) {
        let arraySectors = UInt64((entryCount * entrySize + sectorSize - 1) / sectorSize)
        if let count = deviceSectorCount {
            let newBackup = count - 1
            let newLastUsable = newBackup - arraySectors - 1
            guard newLastUsable >= entries.map(\.lastLBA).max() ?? 0 else {
                throw GPTError(path: path, reason: "the device (\(count) sectors) is smaller than the partitions on it")
            }
            backupLBA = newBackup
            lastUsableLBA = newLastUsable
            Self.put64(&header, 32, backupLBA)
            Self.put64(&header, 48, lastUsableLBA)
        }
        Self.put32(&header, 88, CRC32.checksum(array))
        var primary = header
        Self.put64(&primary, 24, 1)
        Self.put64(&primary, 32, backupLBA)
        Self.put64(&primary, 72, arrayLBA)
        Self.sealHeader(&primary)
        var backup = header
        let backupArrayLBA = backupLBA - arraySectors
        Self.put64(&backup, 24, backupLBA)
        Self.put64(&backup, 32, 1)
        Self.put64(&backup, 72, backupArrayLBA)
        Self.sealHeader(&backup)

        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw GPTError(path: path, reason: "cannot open for writing: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let sector = UInt64(sectorSize)
        try Self.write(fd, path: path, offset: arrayLBA * sector, bytes: array)
        try Self.write(fd, path: path, offset: sector, bytes: primary)
        try Self.write(fd, path: path, offset: backupArrayLBA * sector, bytes: array)
        try Self.write(fd, path: path, offset: backupLBA * sector, bytes: backup)
        if deviceSectorCount != nil {
            // Protective MBR: partition 1 size (LBA 0, entry at 446, size field at +12).
            var mbr = try Self.read(fd, path: path, offset: 0, count: 512)
            if mbr[450] == 0xEE {
                Self.put32(&mbr, 458, UInt32(clamping: backupLBA))
                try Self.write(fd, path: path, offset: 0, bytes: mbr)
            }
        }
        do {
            try FileIO.sync(fd, path: path)
        } catch {
            throw GPTError(path: path, reason: "fsync failed: \(error.errno)")
        }
    }

    /// Type GUIDs the project uses.
    public enum PartitionType {
        /// EFI System Partition.
        public static let esp = UUID(uuidString: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")!
        /// Discoverable Partitions: root, x86-64.
        public static let rootX86_64 = UUID(uuidString: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709")!
        /// Discoverable Partitions: /var.
        public static let variableData = UUID(uuidString: "4D21B016-B534-45C2-A9FB-5C16E091FD2D")!
        /// Linux filesystem data.
        public static let linuxData = UUID(uuidString: "0FC63DAF-8483-4772-8E79-3D69D8477DE4")!
        /// Microsoft basic data (the FAT seed volume any OS can write).
        public static let basicData = UUID(uuidString: "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")!
        /// BIOS boot partition: GRUB's core image for legacy BIOS on a GPT disk ("Hah!IdontNeedEFI").
        public static let biosBoot = UUID(uuidString: "21686148-6449-6E6F-744E-656564454649")!
    }

    // MARK: - bytes

    private static let unused = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    private static func sealHeader(_ header: inout [UInt8]) {
        put32(&header, 16, 0)
        put32(&header, 16, CRC32.checksum(header))
    }

    private static func read(_ fd: Int32, path: String, offset: UInt64, count: Int) throws(GPTError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let done: Int
        do {
            done = try FileIO.read(fd, into: &buffer, at: offset, path: path)
        } catch {
            throw GPTError(path: path, reason: "short read at byte \(error.offset ?? offset)")
        }
        guard done == count else { throw GPTError(path: path, reason: "short read at byte \(offset + UInt64(done))") }
        return buffer
    }

    private static func write(_ fd: Int32, path: String, offset: UInt64, bytes: [UInt8]) throws(GPTError) {
        do {
            try FileIO.write(fd, bytes, at: offset, path: path)
        } catch {
            throw GPTError(path: path, reason: "write failed at byte \(error.offset ?? offset): \(error.errno)")
        }
    }

    static func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }

    static func le64(_ b: [UInt8], _ o: Int) -> UInt64 {
        UInt64(le32(b, o)) | UInt64(le32(b, o + 4)) << 32
    }

    static func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) {
        for i in 0..<4 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    static func put64(_ b: inout [UInt8], _ o: Int, _ v: UInt64) {
        for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }

    /// GPT stores the first three GUID fields little-endian, the last two as they are.
    static func guid(_ b: [UInt8], _ o: Int) -> UUID {
        let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
        let bytes = order.map { b[o + $0] }
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    static func put(_ guid: UUID, into b: inout [UInt8], at o: Int) {
        let u = guid.uuid
        let canonical = [u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7, u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15]
        let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
        for (index, source) in order.enumerated() { b[o + index] = canonical[source] }
    }
}

/// CRC-32 (IEEE 802.3, reflected, as GPT and zlib use).
public enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}

/// Name-based, deterministic UUIDs for reproducible images: the GUIDs depend only on the inputs
/// (for example image name + SOURCE_DATE_EPOCH + partition role), never on a random source.
public enum DeterministicUUID {
    /// A UUID derived from `name` alone: the same name always gives the same UUID (version 8, variant 1).
    public static func make(_ name: String) -> UUID {
        var bytes = [UInt8](repeating: 0, count: 16)
        var h1: UInt64 = 0xcbf2_9ce4_8422_2325
        var h2: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in name.utf8 {
            h1 = (h1 ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            h2 = (h2 ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 &+ 0x9E37_79B9_7F4A_7C15
        }
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: h1 >> (8 * UInt64(i)))
            bytes[8 + i] = UInt8(truncatingIfNeeded: h2 >> (8 * UInt64(i)))
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }
}
