import Foundation
import BootSlots
import GPT
import Logging
import Parted

/// Sizes of the stick's partitions.
public struct StickLayout: Sendable, Equatable, Codable {
    /// The EFI system partition (FAT32): systemd-boot, kernel, initrd, loader entry.
    public var espMiB: UInt64
    /// The seed partition (FAT, label AQUASEED) operators write from any OS.
    public var seedMiB: UInt64
    /// Free space left in the root filesystem beyond its content.
    public var rootHeadroomMiB: UInt64
    /// The root partition is at least this large.
    public var rootMinimumMiB: UInt64

    public init(espMiB: UInt64 = 256, seedMiB: UInt64 = 64, rootHeadroomMiB: UInt64 = 256, rootMinimumMiB: UInt64 = 0) {
        self.espMiB = espMiB
        self.seedMiB = seedMiB
        self.rootHeadroomMiB = rootHeadroomMiB
        self.rootMinimumMiB = rootMinimumMiB
    }

    public func validate(subject: String) throws(ImageError) {
        if espMiB << 20 < FATVolume.minimumFAT32Bytes {
            throw .invalid(subject, "the ESP must be at least \(FATVolume.minimumFAT32Bytes >> 20) MiB for FAT32 (it is \(espMiB) MiB)")
        }
        if seedMiB < 2 { throw .invalid(subject, "the seed partition must be at least 2 MiB (it is \(seedMiB) MiB)") }
    }
}

/// What goes into an image: three directory trees (slot B stays empty) and how to lay them out.
public struct AssemblyInput: Sendable {
    /// The image file to create (replaced if it exists).
    public var output: String
    /// The root filesystem tree (becomes ext4).
    public var rootTree: String
    /// The ESP's files: EFI/BOOT/BOOTX64.EFI, loader/, kernel and initrd.
    public var espTree: String
    /// The seed partition's files (README, example seed).
    public var seedTree: String
    public var layout: StickLayout
    public var identity: BuildIdentity
    /// GRUB for legacy BIOS (boot.img, core.img): with it the stick gets a BIOS boot partition and MBR boot code.
    public var biosBoot: BIOSBootCode?
    /// The locked mode: a dm-verity hash tree after the root filesystem, in the same partition.
    public var verity: Bool

    public init(output: String, rootTree: String, espTree: String, seedTree: String, layout: StickLayout, identity: BuildIdentity,
                biosBoot: BIOSBootCode? = nil, verity: Bool = false) {
        self.biosBoot = biosBoot
        self.verity = verity
        self.output = output
        self.rootTree = rootTree
        self.espTree = espTree
        self.seedTree = seedTree
        self.layout = layout
        self.identity = identity
    }
}

/// Where a partition ended up.
public struct PlacedPartition: Sendable, Equatable {
    public var role: PartitionRole
    public var number: Int
    public var offsetBytes: UInt64
    public var sizeBytes: UInt64
    public var partitionGUID: UUID
}

/// What assembly produced.
public struct AssemblyResult: Sendable {
    public var image: String
    public var sizeBytes: UInt64
    public var allocatedBytes: UInt64
    public var partitions: [PlacedPartition]
    /// The root filesystem's dm-verity tree (locked mode).
    public var verity: VerityRoot?
    /// Step name and seconds, in order.
    public var steps: [(String, Double)]

    public func partition(_ role: PartitionRole) -> PlacedPartition? { partitions.first { $0.role == role } }
}

/// Assembles the GPT stick image in a sparse file: libparted writes the table, GPTEditor sets the
/// deterministic GUIDs, dosfstools/mtools and mke2fs fill the filesystems at their offsets. No loop
/// device, no mount, no root needed.
public struct ImageAssembler {
    public var logger: Logger

    public init(logger: Logger = Logger(label: "aquarium.image.assemble")) {
        self.logger = logger
    }

    static let mib: UInt64 = 1 << 20

    /// `beforeESP` runs after the root (and its verity tree) is written and before the ESP is formatted from
    /// `input.espTree`: the locked mode puts the UKI carrying the root hash there.
    public func assemble(_ input: AssemblyInput,
                         beforeESP: ((VerityRoot?) throws(ImageError) -> Void)? = nil) throws(ImageError) -> AssemblyResult {
        try input.layout.validate(subject: input.output)
        var steps: [(String, Double)] = []
        func timed<T>(_ name: String, _ body: () throws(ImageError) -> T) throws(ImageError) -> T {
            let start = Date()
            let value = try body()
            steps.append((name, Date().timeIntervalSince(start)))
            logger.debug("\(name): \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
            return value
        }
        let identity = input.identity
        let environment = identity.toolEnvironment
        let rootTree = FileTree(path: input.rootTree)
        let espTree = FileTree(path: input.espTree)
        let seedTree = FileTree(path: input.seedTree)

        let (rootBytes, inodes) = try timed("scan trees") { () throws(ImageError) -> (UInt64, UInt64) in
            for tree in [rootTree, espTree, seedTree] {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: tree.path, isDirectory: &isDirectory), isDirectory.boolValue else {
                    throw .invalid(tree.path, "is not a directory")
                }
                try tree.clampTimes(to: identity.epoch)
            }
            return Ext4Volume.size(for: try rootTree.entries(), headroomBytes: input.layout.rootHeadroomMiB * Self.mib,
                                   minimumBytes: input.layout.rootMinimumMiB * Self.mib)
        }

        let espBytes = input.layout.espMiB * Self.mib
        let seedBytes = input.layout.seedMiB * Self.mib
        // The locked mode's hash tree follows the filesystem in the same partition.
        let verityBytes = input.verity ? (VerityRoot.reservedBytes(forDataBytes: rootBytes) + Self.mib - 1) / Self.mib * Self.mib : 0
        let rootPartitionBytes = rootBytes + verityBytes
        // 1 MiB before the first partition (primary GPT, alignment), 1 MiB after the last (backup GPT). Slot B is as
        // large as slot A and stays a hole: it costs nothing in the bmap or on the wire.
        let total = Self.mib + espBytes + 2 * rootPartitionBytes + seedBytes + Self.mib
        let placed = try timed("partition table") { () throws(ImageError) -> [PlacedPartition] in
            try createSparseFile(input.output, size: total)
            return try writePartitionTable(input.output, esp: espBytes, root: rootPartitionBytes, seed: seedBytes, identity: identity)
        }
        guard placed.count == PartitionRole.allCases.count else {
            throw .failure(input.output, "expected \(PartitionRole.allCases.count) partitions, libparted made \(placed.count)")
        }
        if let bios = input.biosBoot {
            try timed("BIOS boot (GRUB i386-pc)") { () throws(ImageError) in
                try bios.install(into: input.output, uniqueGUID: identity.uuid("partition/bios-boot"))
            }
        }

        try timed("root (ext4)") { () throws(ImageError) in
            let root = Ext4Volume(image: input.output, offsetBytes: placed[1].offsetBytes, sizeBytes: rootBytes,
                                  environment: environment)
            try root.create(from: rootTree, label: PartitionRole.root.label, uuid: identity.filesystemUUID(.root),
                            hashSeed: identity.ext4HashSeed, inodes: inodes, epoch: identity.epoch, logger: logger)
        }
        var verity: VerityRoot?
        if input.verity {
            verity = try timed("root dm-verity tree") { () throws(ImageError) -> VerityRoot in
                let scratch = input.output + ".verity-scratch"
                try? FileManager.default.removeItem(atPath: scratch)
                do { try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true) } catch {
                    throw .failure(scratch, "cannot create the directory: \(error)")
                }
                defer { try? FileManager.default.removeItem(atPath: scratch) }
                return try VerityRoot.format(image: input.output, offset: placed[1].offsetBytes, dataBytes: rootBytes,
                                             reservedBytes: verityBytes, salt: identity.veritySalt,
                                             uuid: identity.uuid("verity/root"), scratch: scratch, logger: logger)
            }
        }
        if let beforeESP { try beforeESP(verity) }
        try timed("ESP (FAT32)") { () throws(ImageError) in
            let esp = FATVolume(image: input.output, offsetBytes: placed[0].offsetBytes, sizeBytes: placed[0].sizeBytes,
                                environment: environment)
            try esp.format(label: PartitionRole.esp.label, volumeID: identity.fatVolumeID(.esp), logger: logger)
            try esp.copy(tree: espTree, logger: logger)
        }
        try timed("seed (FAT)") { () throws(ImageError) in
            let seed = FATVolume(image: input.output, offsetBytes: placed[3].offsetBytes, sizeBytes: placed[3].sizeBytes,
                                 environment: environment)
            try seed.format(label: PartitionRole.seed.label, volumeID: identity.fatVolumeID(.seed), logger: logger)
            try seed.copy(tree: seedTree, logger: logger)
        }
        var info = stat()
        guard stat(input.output, &info) == 0 else { throw .failure(input.output, "cannot stat: \(errnoText())") }
        return AssemblyResult(image: input.output, sizeBytes: UInt64(info.st_size), allocatedBytes: UInt64(info.st_blocks) * 512,
                              partitions: placed, verity: verity, steps: steps)
    }

    func createSparseFile(_ path: String, size: UInt64) throws(ImageError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .failure(path, "cannot create the image file: \(errnoText())") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw .failure(path, "cannot size the image file to \(size) bytes: \(errnoText())") }
    }

    func writePartitionTable(_ path: String, esp: UInt64, root: UInt64, seed: UInt64,
                             identity: BuildIdentity) throws(ImageError) -> [PlacedPartition] {
        let parts: [PartedPartition]
        do {
            let device = try PartedDevice(path: path)
            defer { device.close() }
            let disk = try PartedDisk.fresh(on: device, type: "gpt")
            parts = try disk.append([
                PartitionRequest(name: PartitionRole.esp.partitionName, sizeBytes: esp, flags: [.esp]),
                PartitionRequest(name: PartitionRole.root.partitionName, sizeBytes: root),
                PartitionRequest(name: PartitionRole.rootB.partitionName, sizeBytes: root),
                PartitionRequest(name: PartitionRole.seed.partitionName, sizeBytes: seed),
            ])
            try disk.commit(informKernel: false)
        } catch {
            throw .failure(path, "writing the partition table failed: \(error)")
        }
        do {
            var editor = try GPTEditor(path: path)
            editor.setDiskGUID(identity.diskGUID)
            for (index, role) in PartitionRole.allCases.enumerated() {
                try editor.setPartition(number: index + 1, typeGUID: role.typeGUID, uniqueGUID: identity.partitionGUID(role))
            }
            try editor.write()
        } catch {
            throw .failure(path, "setting the partition GUIDs failed: \(error)")
        }
        return zip(PartitionRole.allCases, parts).map { role, part in
            PlacedPartition(role: role, number: part.number, offsetBytes: UInt64(part.startSector) * 512,
                            sizeBytes: UInt64(part.sectorCount) * 512, partitionGUID: identity.partitionGUID(role))
        }
    }
}
