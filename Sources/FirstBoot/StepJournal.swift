import Foundation
import GPT

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

    public func isDone(_ step: ApplyStep) -> Bool { steps[step.rawValue] == "done" }
    public var isComplete: Bool { completedAt != nil }
}

/// The step journal: two 4 KiB slots in the gap between the GPT and the first partition (bytes 512 KiB to
/// 520 KiB, never inside a partition, whatever the sector size). Each write goes to the slot the previous one did
/// not use and is fsynced, so a torn write leaves the previous record intact.
///
/// Slot format: "AQJRNL01", UInt32 LE length, UInt32 LE CRC-32 of the JSON, JSON.
public enum StepJournal {
    public static let offset: UInt64 = 512 * 1024
    public static let slotSize = 4096
    static let magic = Array("AQJRNL01".utf8)

    /// The current record on `device`, or nil when neither slot holds a valid one.
    public static func read(device: String) -> JournalRecord? {
        let fd = open(device, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var best: JournalRecord?
        for slot in 0..<2 {
            var buffer = [UInt8](repeating: 0, count: slotSize)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, slotSize, off_t(offset) + off_t(slot * slotSize)) }
            guard n == slotSize, Array(buffer[0..<8]) == magic else { continue }
            let length = Int(GPTBytes.le32(buffer, 8))
            guard length > 0, length <= slotSize - 16 else { continue }
            let json = Array(buffer[16..<(16 + length)])
            guard CRC32.checksum(json) == GPTBytes.le32(buffer, 12),
                  let record = try? JSONDecoder().decode(JournalRecord.self, from: Data(json)) else { continue }
            if record.sequence > best?.sequence ?? 0 { best = record }
        }
        return best
    }

    /// Writes `record` (its sequence chooses the slot) and fsyncs.
    public static func write(device: String, record: JournalRecord) throws(ApplyError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let json = try? encoder.encode(record), json.count <= slotSize - 16 else {
            throw ApplyError(.runtime, "cannot encode the step journal for \(device)")
        }
        var buffer = magic
        GPTBytes.append32(&buffer, UInt32(json.count))
        GPTBytes.append32(&buffer, CRC32.checksum(Array(json)))
        buffer += Array(json)
        buffer += [UInt8](repeating: 0, count: slotSize - buffer.count)
        let fd = open(device, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw ApplyError(.runtime, "cannot open \(device) to write the step journal: \(errnoText())") }
        defer { close(fd) }
        let position = off_t(offset) + off_t(Int(record.sequence % 2) * slotSize)
        let n = buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress, slotSize, position) }
        guard n == slotSize, fsync(fd) == 0 else {
            throw ApplyError(.runtime, "cannot write the step journal to \(device): \(errnoText())")
        }
    }

    /// Whether `range` (bytes) overlaps the journal slots.
    static func overlaps(_ range: Range<UInt64>) -> Bool {
        range.overlaps(offset..<(offset + UInt64(2 * slotSize)))
    }
}

/// Little-endian helpers (GPT's are internal to that module).
enum GPTBytes {
    static func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }

    static func append32(_ b: inout [UInt8], _ v: UInt32) {
        for i in 0..<4 { b.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }
