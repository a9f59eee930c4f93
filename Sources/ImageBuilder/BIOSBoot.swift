import Exec
import FileLayer
import Foundation
import GPT
import Logging

/// GRUB for legacy BIOS (i386-pc) on the GPT stick, placed as `grub-install` would place it on a disk, without a
/// loop device: `boot.img` in the code area of the protective MBR (the partition table and signature after byte 440
/// stay), `core.img` in a BIOS boot partition in the gap before the first 1 MiB aligned partition (GPT entry 5,
/// sectors 34-2047). The BIOS runs boot.img, boot.img reads core.img's first sector, that sector reads the rest.
/// core.img holds every module the boot needs (no module directory on the stick) and the prefix
/// `(,gpt1)/EFI/debian`: the ESP of the disk the BIOS booted, whose `grub.cfg` the UEFI GRUB reads too.
public struct BIOSBootCode: Sendable, Equatable {
    /// GRUB's boot sector image (512 bytes).
    public var bootImage: [UInt8]
    /// GRUB's core image: diskboot (its first sector, with the block list), the decompressor, kernel and modules.
    public var coreImage: [UInt8]

    /// The BIOS boot partition: from the first usable sector of a 128-entry GPT to the sector before 1 MiB.
    public static let firstLBA: UInt64 = 34
    public static let lastLBA: UInt64 = 2047
    public static let partitionNumber = 5
    public static let partitionName = "BIOSBOOT"
    /// Where core.img finds grub.cfg: partition 1 (the ESP) of the disk the BIOS booted from.
    public static let prefix = "(,gpt1)/EFI/debian"
    /// Built into core.img: disk access through the BIOS, GPT, FAT, the menu, the Linux loader, and what grub.cfg's
    /// boot counting uses (`[` from test, load_env/save_env from loadenv); their dependencies come with them. Nothing
    /// is loaded from the ESP: it holds no i386-pc modules.
    public static let modules = ["biosdisk", "part_gpt", "fat", "normal", "linux", "test", "loadenv"]

    // GRUB's i386-pc layout (include/grub/i386/pc/boot.h, boot/i386/pc/diskboot.S).
    static let kernelSectorOffset = 0x5C
    static let bootDriveOffset = 0x64
    static let driveCheckOffset = 0x66
    /// The MBR's boot code ends here: the disk signature and partition table follow.
    static let bootCodeBytes = 440
    /// diskboot's first block list entry (start LBA u64, sector count u16, segment u16) ends its sector.
    static let blockListOffset = 0x200 - 12
    static let loadSegment: UInt16 = 0x820

    public init(bootImage: [UInt8], coreImage: [UInt8]) {
        self.bootImage = bootImage
        self.coreImage = coreImage
    }

    public var coreSectors: UInt64 { (UInt64(coreImage.count) + 511) / 512 }

    /// Builds core.img with `grub-mkimage` (the build host's grub-common) from the modules of the image's own
    /// grub-pc-bin (`moduleDirectory`, /usr/lib/grub/i386-pc in the root tree), and reads boot.img from there.
    public static func build(moduleDirectory: String, scratch: String, environment: [String: String],
                             logger: Logger) throws(ImageError) -> BIOSBootCode {
        let core = scratch + "/core.img"
        try runTool(Command("grub-mkimage", ["-O", "i386-pc", "-d", moduleDirectory, "-p", prefix, "-o", core] + modules,
                            environment: environment),
                    subject: moduleDirectory, what: "building GRUB's BIOS core image (grub-mkimage from grub-common)", logger: logger)
        let boot = moduleDirectory + "/boot.img"
        guard let bootData = FileManager.default.contents(atPath: boot) else {
            throw .invalid(boot, "is missing: legacy BIOS boot needs grub-pc-bin in the description's packages")
        }
        guard let coreData = FileManager.default.contents(atPath: core) else { throw .failure(core, "grub-mkimage wrote nothing") }
        let code = BIOSBootCode(bootImage: [UInt8](bootData), coreImage: [UInt8](coreData))
        try code.validate(subject: moduleDirectory)
        return code
    }

    /// Refuses images that are not GRUB's i386-pc boot and core images, or a core too large for the partition.
    public func validate(subject: String) throws(ImageError) {
        guard bootImage.count == 512, bootImage[510] == 0x55, bootImage[511] == 0xAA else {
            throw .invalid(subject, "boot.img is not a 512-byte boot sector (\(bootImage.count) bytes, no 55 AA signature)")
        }
        guard coreImage.count > 512 else { throw .invalid(subject, "core.img has \(coreImage.count) bytes, less than its first sector") }
        let count = UInt16(coreImage[Self.blockListOffset + 8]) | UInt16(coreImage[Self.blockListOffset + 9]) << 8
        let segment = UInt16(coreImage[Self.blockListOffset + 10]) | UInt16(coreImage[Self.blockListOffset + 11]) << 8
        guard segment == Self.loadSegment, UInt64(count) == coreSectors - 1 else {
            throw .invalid(subject, "core.img's first sector is not GRUB's diskboot (block list: \(count) sectors at segment "
                           + String(format: "0x%X", segment) + "; expected \(coreSectors - 1) at 0x820)")
        }
        let room = Self.lastLBA - Self.firstLBA + 1
        guard coreSectors <= room else {
            throw .invalid(subject, "core.img needs \(coreSectors) sectors; the BIOS boot partition has \(room)")
        }
    }

    /// The first sector of the stick: boot.img's code told where core.img starts, followed by `existing`'s disk
    /// signature, protective partition table and boot signature (bytes 440-511).
    public func bootSector(keeping existing: [UInt8]) -> [UInt8] {
        var code = bootImage
        put64(&code, Self.kernelSectorOffset, Self.firstLBA)
        code[Self.bootDriveOffset] = 0xFF   // the drive the BIOS booted from, as it passes it in DL
        // grub-bios-setup does this for hard disks (a USB stick is one to the BIOS): BIOSes that pass a wrong drive
        // number must not make boot.img fall back to the first hard disk.
        code[Self.driveCheckOffset] = 0x90
        code[Self.driveCheckOffset + 1] = 0x90
        return Array(code[0..<Self.bootCodeBytes]) + Array(existing[Self.bootCodeBytes..<512])
    }

    /// core.img with its first block list pointing at its own second sector in the BIOS boot partition.
    public var placedCore: [UInt8] {
        var core = coreImage
        put64(&core, Self.blockListOffset, Self.firstLBA + 1)
        return core
    }

    /// Adds the BIOS boot partition to the image's GPT and writes core.img into it and boot.img into the MBR.
    public func install(into image: String, uniqueGUID: UUID) throws(ImageError) {
        do {
            var editor = try GPTEditor(path: image)
            if let early = editor.entries.first(where: { $0.firstLBA <= Self.lastLBA }) {
                throw GPTError(path: image, reason: "partition \(early.number) starts at sector \(early.firstLBA), before \(Self.lastLBA + 1): "
                               + "no room for the BIOS boot partition")
            }
            try editor.addPartition(number: Self.partitionNumber, firstLBA: Self.firstLBA, lastLBA: Self.lastLBA,
                                    typeGUID: GPTEditor.PartitionType.biosBoot, uniqueGUID: uniqueGUID, name: Self.partitionName)
            try editor.write()
        } catch {
            throw .failure(image, "adding the BIOS boot partition failed: \(error)")
        }
        let fd = open(image, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .failure(image, "cannot open for writing: \(errnoText())") }
        defer { close(fd) }
        var mbr = [UInt8](repeating: 0, count: 512)
        let read: Int
        do {
            read = try FileIO.read(fd, into: &mbr, at: 0, path: image)
        } catch {
            throw .failure(image, "reading sector 0 failed: \(error)")
        }
        guard read == 512, mbr[450] == 0xEE else { throw .failure(image, "sector 0 is not a protective MBR (no partition of type EE)") }
        do {
            try FileIO.write(fd, placedCore, at: Self.firstLBA * 512, path: image)
            try FileIO.write(fd, bootSector(keeping: mbr), at: 0, path: image)
            try FileIO.sync(fd, path: image)
        } catch {
            throw .failure(image, "writing GRUB's BIOS boot code failed: \(error)")
        }
    }

    private func put64(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt64) {
        for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }
}
