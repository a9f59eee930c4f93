import Disks
import FileLayer
import Foundation
import GPT
import JSONCoding

/// The steps of FirstBoot's `apply` that the journal records.
public enum JournalStep: String, CaseIterable, Codable, Sendable {
    case wipe, partition, identities, mkfs, mount, layout, record
}

/// What the step journal on a system disk records: who the disk is being prepared for, the identities chosen
/// up front (so a rerun writes exactly the same ones), and which steps started and finished.
public struct JournalRecord: Codable, Equatable, Sendable {
    public var version: Int = 1
    /// Increases with every write; the valid slot with the highest sequence is current.
    public var sequence: UInt64
    public var nodeUUID: String
    public var hostname: String
    public var cluster: String
    public var diskGUID: String
    public var partitionUUID: String
    public var filesystemUUID: String
    public var filesystem: String
    public var startedAt: String
    /// Step name -> "started" or "done".
    public var steps: [String: String]
    /// Set when every step finished; a later boot then only mounts.
    public var completedAt: String?

    public init(sequence: UInt64, nodeUUID: String, hostname: String, cluster: String, diskGUID: String,
                partitionUUID: String, filesystemUUID: String, filesystem: String, startedAt: String,
                steps: [String: String], completedAt: String?) {
        self.sequence = sequence
        self.nodeUUID = nodeUUID
        self.hostname = hostname
        self.cluster = cluster
        self.diskGUID = diskGUID
        self.partitionUUID = partitionUUID
        self.filesystemUUID = filesystemUUID
        self.filesystem = filesystem
        self.startedAt = startedAt
        self.steps = steps
        self.completedAt = completedAt
    }

    public func isDone(_ step: JournalStep) -> Bool { steps[step.rawValue] == "done" }
    public func wasStarted(_ step: JournalStep) -> Bool { steps[step.rawValue] != nil }
    public var isComplete: Bool { completedAt != nil }

    /// Whether `disk` holds exactly what this journal says was written to it (or still nothing), so an interrupted
    /// run may resume on it. Anything else is content the disk gained since (it was reused by hand, say): it is then
    /// judged by the wipe policy like any other disk. Returns nil when the disk matches, else what differs.
    public func mismatch(_ disk: Disk) -> String? {
        // Still nothing (the journal itself is not content).
        if DiskPolicy.isEmpty(disk) { return nil }
        guard disk.partitionTable == "gpt" else {
            return "it holds " + (DiskPolicy.describeContent(disk) ?? "data libblkid does not recognise")
                + " instead of the GPT the journal records"
        }
        guard disk.partitions.count == 1, let partition = disk.partitions.first,
              partition.name == AquariumMarks.statePartitionName else {
            return DiskPolicy.describeContent(disk).map { "it \($0), not the one '\(AquariumMarks.statePartitionName)' "
                + "partition the journal records" } ?? "its partitions differ from the journal"
        }
        let ownIdentities = partition.uuid?.lowercased() == partitionUUID.lowercased()
        if !ownIdentities {
            // libparted made the table and the run died before the journal's identities were written: the partition
            // must still be blank.
            guard wasStarted(.partition), !isDone(.identities), partition.fsType == nil else {
                return "its partition '\(AquariumMarks.statePartitionName)' has PARTUUID \(partition.uuid ?? "none") "
                    + (partition.fsType.map { "and a \($0) filesystem " } ?? "")
                    + "where the journal records \(partitionUUID)"
            }
            return nil
        }
        if let fs = partition.fsType {
            guard fs == filesystem, partition.fsUuid?.lowercased() == filesystemUUID.lowercased() else {
                return "its partition holds \(fs) \(partition.fsUuid ?? "") where the journal records \(filesystem) "
                    + filesystemUUID
            }
        }
        return nil
    }
}

/// The step journal: two 4 KiB slots in the gap between the GPT and the first partition (bytes 512 KiB to
/// 520 KiB, never inside a partition, whatever the sector size). Each write goes to the slot the previous one did
/// not use and is fsynced, so a torn write leaves the previous record intact.
///
/// Slot format: "AQJRNL01", UInt32 LE length, UInt32 LE CRC-32 of the JSON, JSON.
public enum StepJournal {
    public static let offset: UInt64 = AquariumMarks.journalOffset
    public static let slotSize = AquariumMarks.journalSlotSize
    static let magic = Array("AQJRNL01".utf8)

    /// The current record on `device`, or nil when neither slot holds a valid one.
    public static func read(device: String) -> JournalRecord? {
        let fd = open(device, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var best: JournalRecord?
        for slot in 0..<2 {
            var buffer = [UInt8](repeating: 0, count: slotSize)
            let n = (try? FileIO.read(fd, into: &buffer, at: UInt64(offset) + UInt64(slot * slotSize), path: device)) ?? 0
            guard n == slotSize, Array(buffer[0..<8]) == magic else { continue }
            let length = Int(LittleEndian.le32(buffer, 8))
            guard length > 0, length <= slotSize - 16 else { continue }
            let json = Array(buffer[16..<(16 + length)])
            guard CRC32.checksum(json) == LittleEndian.le32(buffer, 12),
                  let record = try? JSONDecoder().decode(JournalRecord.self, from: Data(json)) else { continue }
            if record.sequence > best?.sequence ?? 0 { best = record }
        }
        return best
    }

    /// Writes `record` (its sequence chooses the slot) and fsyncs.
    public static func write(device: String, record: JournalRecord) throws(ContractError) {
        guard let json = try? JSONCoding.encoder(pretty: false).encode(record), json.count <= slotSize - 16 else {
            throw ContractError(.runtime, "cannot encode the step journal for \(device)")
        }
        var buffer = magic
        LittleEndian.append32(&buffer, UInt32(json.count))
        LittleEndian.append32(&buffer, CRC32.checksum(Array(json)))
        buffer += Array(json)
        buffer += [UInt8](repeating: 0, count: slotSize - buffer.count)
        try put(buffer, device: device, at: off_t(offset) + off_t(Int(record.sequence % 2) * slotSize))
    }

    /// Zeroes both slots (the wipe step: no journal older than this run survives it).
    public static func clear(device: String) throws(ContractError) {
        try put([UInt8](repeating: 0, count: 2 * slotSize), device: device, at: off_t(offset))
    }

    static func put(_ buffer: [UInt8], device: String, at position: off_t) throws(ContractError) {
        let fd = open(device, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw ContractError(.runtime, "cannot open \(device) to write the step journal: \(errnoText())") }
        defer { close(fd) }
        do {
            try FileIO.write(fd, buffer, at: UInt64(position), path: device)
            try FileIO.sync(fd, path: device)
        } catch {
            throw ContractError(.runtime, "the step journal: \(error)", cause: error)
        }
    }

    /// Whether `range` (bytes) overlaps the journal slots.
    public static func overlaps(_ range: Range<UInt64>) -> Bool {
        range.overlaps(AquariumMarks.journalRange)
    }
}

/// Little-endian helpers (GPT's are internal to that module).
enum LittleEndian {
    static func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }

    static func append32(_ b: inout [UInt8], _ v: UInt32) {
        for i in 0..<4 { b.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }
