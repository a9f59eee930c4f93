import BootSlots
import Crypto
import Exec
import Foundation
import GPT

/// The stick this node booted from, seen through its GPT and, for the ESP, through mtools at the partition's offset:
/// nothing is mounted, and the same code works on a stick image file in tests.
public struct BootStick: Sendable {
    public struct Partition: Sendable, Equatable {
        public var number: Int
        public var uuid: String
        public var offsetBytes: UInt64
        public var sizeBytes: UInt64
    }

    /// The whole disk (`/dev/sda`) or an image file.
    public var disk: String
    public var esp: Partition
    public var slots: [Slot: Partition]

    /// Reads the GPT of `disk`. A stick without slot B (an image from before A/B slots) is refused: it is updated by
    /// reflashing.
    public static func open(_ disk: String) throws(ProvisionError) -> BootStick {
        let editor: GPTEditor
        do { editor = try GPTEditor(path: disk) } catch {
            throw .failedBecause("\(disk): cannot read its partition table: \(error)", cause: error)
        }
        func partition(_ name: String) -> Partition? {
            editor.entries.first { $0.name == name }.map {
                Partition(number: $0.number, uuid: $0.uniqueGUID.uuidString.lowercased(), offsetBytes: $0.firstLBA * 512,
                          sizeBytes: ($0.lastLBA - $0.firstLBA + 1) * 512)
            }
        }
        guard let esp = partition(StickNames.espPartitionName) else {
            throw .refused("\(disk) has no partition \(StickNames.espPartitionName): it is not an Aquarium stick")
        }
        var slots: [Slot: Partition] = [:]
        for slot in Slot.allCases { slots[slot] = partition(slot.partitionName) }
        guard slots.count == 2 else {
            if partition(StickNames.singleSlotRootName) != nil {
                throw .refused("reflash: this stick (\(disk)) was made by an image without A/B slots (partition "
                               + "\(StickNames.singleSlotRootName)); an update needs \(Slot.a.partitionName) and \(Slot.b.partitionName)")
            }
            throw .refused("\(disk) has no root partitions \(Slot.a.partitionName) and \(Slot.b.partitionName): reflash it")
        }
        return BootStick(disk: disk, esp: esp, slots: slots)
    }

    /// The whole disk that holds the partition with `partitionUUID` (`/dev/disk/by-partuuid/...` -> `/dev/sda2` ->
    /// `/sys/class/block/sda2/..` -> `/dev/sda`).
    public static func disk(holding partitionUUID: String) throws(ProvisionError) -> String {
        let link = "/dev/disk/by-partuuid/" + partitionUUID.lowercased()
        let partition = URL(fileURLWithPath: link).resolvingSymlinksInPath().lastPathComponent
        guard FileManager.default.fileExists(atPath: link), !partition.isEmpty else {
            throw .failed("no partition with PARTUUID \(partitionUUID) (\(link) is missing): cannot find the boot stick")
        }
        let parent = URL(fileURLWithPath: "/sys/class/block/\(partition)/..").resolvingSymlinksInPath().lastPathComponent
        guard FileManager.default.fileExists(atPath: "/sys/class/block/\(partition)/partition"), !parent.isEmpty else {
            throw .failed("/dev/\(partition) (PARTUUID \(partitionUUID)) is not a partition of a disk")
        }
        return "/dev/" + parent
    }

    /// The slot whose partition is `partitionUUID` (the running root), or nil.
    public func slot(ofPartition partitionUUID: String) -> Slot? {
        slots.first { $0.value.uuid == partitionUUID.lowercased() }?.key
    }

    public var espVolume: FATDrive { FATDrive(drive: "\(disk)@@\(esp.offsetBytes)", subject: "\(disk) (ESP)") }

    /// Refuses (exit 3) a locked stick (`build --locked`): its ESP holds one UKI signed with the operator's key and no
    /// loader entries, and its root hash is part of that signature, so a new release is a new signed image.
    public func refuseLocked() throws(ProvisionError) {
        guard try espVolume.list(StickNames.entriesDirectory).isEmpty,
              try espVolume.list("EFI/BOOT").map({ $0.lowercased() }) == ["bootx64.efi"] else { return }
        throw .refused("\(disk) is a locked stick (built with --locked: one UKI signed with your key, the root under "
            + "dm-verity with its hash in that signature): A/B updates of locked sticks are not supported; build and sign "
            + "the new release with `aquarium-image build --locked`, then reflash the stick (`aquarium-image flash`, then "
            + "`seed inject`)")
    }

    /// Whether the stick boots through shim and Debian's signed GRUB (the default; not `build --systemd-boot`):
    /// then GRUB's grub.cfg and grubenv carry the slots and their boot counting (`GrubBoot`).
    public func bootsThroughGRUB() throws(ProvisionError) -> Bool {
        try espVolume.list("EFI/BOOT").map { $0.lowercased() }
            .contains((StickNames.signedLoaderPath as NSString).lastPathComponent.lowercased())
    }
}

/// A FAT volume reached with mtools (`IMAGE@@OFFSET`), never mounted.
public struct FATDrive: Sendable {
    public var drive: String
    public var subject: String

    static let environment = ["MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null", "TZ": "UTC", "LC_ALL": "C"]

    func tool(_ name: String, _ arguments: [String], accepted: Set<Int32> = [0]) throws(ProvisionError) -> CommandResult {
        do {
            return try Command(name, ["-i", drive] + arguments, environment: Self.environment).run(acceptedStatuses: accepted)
        } catch {
            throw .failedBecause("\(subject): \(name) \(arguments.joined(separator: " ")) failed: \(error)", cause: error)
        }
    }

    /// File names in `directory` (no subdirectories); empty when the directory does not exist.
    public func list(_ directory: String) throws(ProvisionError) -> [String] {
        let result = try tool("mdir", ["-b", "-/", "::/" + directory], accepted: [0, 1])
        guard result.status == 0 else { return [] }
        let prefix = "::/" + directory + "/"
        return result.output.split(whereSeparator: \.isNewline).map(String.init)
            .filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
            .map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    public func read(_ path: String) throws(ProvisionError) -> Data {
        try tool("mtype", ["::/" + path]).standardOutput
    }

    /// Copies `file` to `path` (replacing it), creating `path`'s directory, then reads it back.
    public func write(file: String, to path: String) throws(ProvisionError) {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { _ = try tool("mmd", ["::/" + directory], accepted: [0, 1]) }
        _ = try tool("mcopy", ["-o", file, "::/" + path])
        guard let expected = FileManager.default.contents(atPath: file) else { throw .failed("\(file): cannot read it back") }
        guard try read(path) == expected else { throw .failed("\(subject): \(path) does not read back as written") }
    }

    public func write(text: String, to path: String, scratch: String) throws(ProvisionError) {
        try write(data: Data(text.utf8), to: path, scratch: scratch)
    }

    public func write(data: Data, to path: String, scratch: String) throws(ProvisionError) {
        let file = scratch + "/" + (path as NSString).lastPathComponent
        guard FileManager.default.createFile(atPath: file, contents: data) else {
            throw .failed("\(file): cannot write a temporary file")
        }
        defer { try? FileManager.default.removeItem(atPath: file) }
        try write(file: file, to: path)
    }

    public func delete(_ path: String) throws(ProvisionError) { _ = try tool("mdel", ["::/" + path]) }

    public func rename(_ path: String, to name: String) throws(ProvisionError) {
        let target = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(name)
        _ = try tool("mren", ["::/" + path, "::/" + target])
    }
}

/// The stick's slots and loader entries: what `update status` prints and what every decision starts from.
public struct SlotsView: Sendable {
    public struct EntryInfo: Sendable {
        public var file: String
        public var name: EntryFileName?
        public var entry: SlotEntry?
    }

    public var stick: BootStick
    public var running: Slot?
    /// `loader/entries`, every file (`.conf` and reported rollbacks).
    public var entries: [EntryInfo]

    public static func read(_ stick: BootStick, runningRoot: String?) throws(ProvisionError) -> SlotsView {
        let esp = stick.espVolume
        var infos: [EntryInfo] = []
        for file in try esp.list(StickNames.entriesDirectory) {
            let name = EntryFileName(file.hasSuffix(StickNames.rolledBackSuffix) ? String(file.dropLast(StickNames.rolledBackSuffix.count)) : file)
            let text = String(decoding: try esp.read(StickNames.entriesDirectory + "/" + file), as: UTF8.self)
            infos.append(EntryInfo(file: file, name: name, entry: SlotEntry.parse(text)))
        }
        return SlotsView(stick: stick, running: runningRoot.flatMap(stick.slot(ofPartition:)), entries: infos)
    }

    /// The `.conf` entries systemd-boot reads.
    public var bootEntries: [EntryInfo] { entries.filter { $0.file.hasSuffix(".conf") } }

    public func state(of slot: Slot) -> String {
        let own = bootEntries.filter { $0.name?.slot == slot }
        if let entry = own.first, let name = entry.name {
            if name.isExhausted { return "failed (tries used up), not booted" }
            if let left = name.triesLeft { return "on trial (\(left) tries left)" }
            return "good"
        }
        if entries.contains(where: { $0.name?.slot == slot && $0.file.hasSuffix(StickNames.rolledBackSuffix) }) {
            return "failed (rolled back), not booted"
        }
        return "empty"
    }

    public var text: String {
        var lines = ["stick \(stick.disk)"]
        for slot in Slot.allCases {
            let partition = stick.slots[slot]
            let entry = entries.first { $0.name?.slot == slot }
            lines.append("  \(slot.name)\(running == slot ? " (running)" : ""): \(state(of: slot)); release \(entry?.entry?.release ?? "-"), "
                         + "generation \(entry?.entry.map { String($0.generation) } ?? "-"), entry \(entry?.file ?? "-"), "
                         + "partition \(partition.map { "\($0.number) \($0.uuid), \($0.sizeBytes >> 20) MiB" } ?? "-")")
        }
        return lines.joined(separator: "\n")
    }
}

/// Copies byte ranges between files and devices with `pread`/`pwrite`, hashing what it wrote and what it reads back.
enum RangeCopy {
    /// The ranges of `path` within `[offset, offset+length)` that hold data (SEEK_DATA/SEEK_HOLE); the whole range
    /// when the file system or device cannot say.
    static func dataRanges(fd: Int32, offset: UInt64, length: UInt64) -> [(UInt64, UInt64)] {
        var ranges: [(UInt64, UInt64)] = []
        var position = off_t(offset)
        let end = off_t(offset + length)
        while position < end {
            let data = lseek(fd, position, 3 /* SEEK_DATA */)
            if data < 0 {
                if errno == ENXIO { break }
                return [(offset, length)]
            }
            if data >= end { break }
            var hole = lseek(fd, data, 4 /* SEEK_HOLE */)
            if hole < 0 || hole > end { hole = end }
            ranges.append((UInt64(data), UInt64(hole - data)))
            position = hole
        }
        return ranges
    }

    /// Copies the data ranges of `source[sourceOffset ..< +length]` to `target` at `targetOffset`, then reads them
    /// back from `target` past its page cache and compares SHA-256. Returns the bytes written.
    static func copyVerified(source: String, sourceOffset: UInt64, length: UInt64, target: String,
                             targetOffset: UInt64) throws(ProvisionError) -> UInt64 {
        let input = Glibc.open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .failed("\(source): cannot open: \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let output = Glibc.open(target, O_RDWR | O_CLOEXEC)
        guard output >= 0 else { throw .failed("\(target): cannot open for writing: \(String(cString: strerror(errno)))") }
        defer { close(output) }
        let ranges = dataRanges(fd: input, offset: sourceOffset, length: length)
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var written = SHA256()
        var total: UInt64 = 0
        for (start, count) in ranges {
            var done: UInt64 = 0
            while done < count {
                let chunk = Int(min(UInt64(buffer.count), count - done))
                let got = buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress, chunk, off_t(start + done)) }
                guard got == chunk else { throw .failed("\(source): short read at byte \(start + done)") }
                let put = buffer.withUnsafeBytes { pwrite(output, $0.baseAddress, chunk, off_t(targetOffset + start - sourceOffset + done)) }
                guard put == chunk else {
                    throw .failed("\(target): write at byte \(targetOffset + start - sourceOffset + done) failed: \(String(cString: strerror(errno)))")
                }
                written.update(data: buffer[0..<chunk])
                done += UInt64(chunk)
                total += UInt64(chunk)
            }
        }
        guard fsync(output) == 0 else { throw .failed("\(target): fsync failed: \(String(cString: strerror(errno)))") }
        _ = posix_fadvise(output, 0, 0, POSIX_FADV_DONTNEED)
        var readBack = SHA256()
        for (start, count) in ranges {
            var done: UInt64 = 0
            while done < count {
                let chunk = Int(min(UInt64(buffer.count), count - done))
                let got = buffer.withUnsafeMutableBytes { pread(output, $0.baseAddress, chunk, off_t(targetOffset + start - sourceOffset + done)) }
                guard got == chunk else { throw .failed("\(target): short read back at byte \(targetOffset + start - sourceOffset + done)") }
                readBack.update(data: buffer[0..<chunk])
                done += UInt64(chunk)
            }
        }
        guard written.finalize() == readBack.finalize() else {
            throw .failed("\(target): the slot does not read back as written (SHA-256 differs); the stick may be failing, the slot stays unbootable")
        }
        return total
    }

    static func sync(_ path: String, writable: Bool = true) {
        let fd = Glibc.open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
