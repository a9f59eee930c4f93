import Exec
import Foundation
import GPT
import ImageBuilder
import Testing
import TestSupport

@Suite("Legacy BIOS: GRUB's boot.img in the protective MBR, core.img in a BIOS boot partition")
struct BIOSBootTests {
    static func le64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }

    /// A boot sector and a core image shaped like GRUB's: `sectors` sectors, the block list at the end of the first.
    static func synthetic(sectors: Int, listedSectors: Int? = nil, segment: UInt16 = 0x820) -> BIOSBootCode {
        var boot = [UInt8](repeating: 0xB0, count: 512)
        boot[510] = 0x55
        boot[511] = 0xAA
        var core = [UInt8](repeating: 0xC0, count: sectors * 512)
        let list = 0x200 - 12
        for index in 0..<8 { core[list + index] = index == 0 ? 2 : 0 }
        let count = UInt16(listedSectors ?? sectors - 1)
        core[list + 8] = UInt8(count & 0xFF)
        core[list + 9] = UInt8(count >> 8)
        core[list + 10] = UInt8(segment & 0xFF)
        core[list + 11] = UInt8(segment >> 8)
        return BIOSBootCode(bootImage: boot, coreImage: core)
    }

    @Test("the boot sector points at sector 34, uses the BIOS's drive, keeps bytes 440-511; core's block list starts at 35")
    func patching() throws {
        let code = Self.synthetic(sectors: 263)
        try code.validate(subject: "synthetic")
        var existing = [UInt8](repeating: 0, count: 512)
        for index in 440..<512 { existing[index] = UInt8(index & 0xFF) }
        let sector = code.bootSector(keeping: existing)
        #expect(sector.count == 512)
        #expect(Self.le64(sector, 0x5C) == 34, "boot.img's kernel sector")
        #expect(sector[0x64] == 0xFF, "boot drive: the one the BIOS passes")
        #expect(sector[0x66] == 0x90 && sector[0x67] == 0x90, "the drive check jump is replaced, as grub-bios-setup does for hard disks")
        #expect(Array(sector[440..<512]) == Array(existing[440..<512]), "disk signature, partition table and 55 AA untouched")
        #expect(sector[0] == 0xB0 && sector[439] == 0xB0)
        let core = code.placedCore
        #expect(Self.le64(core, 0x1F4) == 35, "the rest of core.img follows its first sector")
        #expect(core[0x1FC] == 0x06 && core[0x1FD] == 0x01, "the sector count grub-mkimage wrote is kept (262)")
        #expect(Array(core[512...]) == Array(code.coreImage[512...]))
    }

    @Test("what is not GRUB's i386-pc boot code, or does not fit the BIOS boot partition, is refused", arguments: [
        (BIOSBootCode(bootImage: [UInt8](repeating: 0, count: 512), coreImage: [UInt8](repeating: 0, count: 2048)), "no 55 AA"),
        (BIOSBootCode(bootImage: [UInt8](repeating: 0, count: 446), coreImage: [UInt8](repeating: 0, count: 2048)), "446 bytes"),
        (BIOSBootTests.synthetic(sectors: 1), "less than its first sector"),
        (BIOSBootTests.synthetic(sectors: 20, listedSectors: 30), "expected 19 at 0x820"),
        (BIOSBootTests.synthetic(sectors: 20, segment: 0x1000), "segment 0x1000"),
        (BIOSBootTests.synthetic(sectors: 2015), "needs 2015 sectors; the BIOS boot partition has 2014"),
    ])
    func refused(code: BIOSBootCode, reason: String) {
        let error = #expect(throws: ImageError.self) { try code.validate(subject: "/grub/i386-pc") }
        #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
    }

    @Test("a --secure-boot image also boots BIOS: partition 5 at sectors 34-2047, boot.img and core.img in place, reproducible",
          .requires(root: false, programs: ImageFixtures.programs + ImageFixtures.signedChainPrograms))
    func assembled() throws {
        try withTemporaryDirectory { directory in
            let first = try ImageFixtures.assemble(in: directory, tag: "one", secureBoot: true)
            let image = first.artifacts.image
            let table = try ImageFixtures.sfdisk(image)
            let partitions = try #require(table["partitions"] as? [[String: Any]])
            #expect(partitions.map { $0["name"] as? String } == ["AQUA-ESP", "AQUA-ROOT-A", "AQUA-ROOT-B", "AQUASEED", "BIOSBOOT"])
            let bios = try #require(partitions.last)
            #expect(bios["start"] as? Int == 34 && bios["size"] as? Int == 2014, "\(bios)")
            #expect((bios["type"] as? String)?.uppercased() == GPTEditor.PartitionType.biosBoot.uuidString)
            let identity = BuildIdentity(imageName: "aquarium", epoch: ImageFixtures.epoch)
            #expect((bios["uuid"] as? String)?.uppercased() == identity.uuid("partition/bios-boot").uuidString)
            let verify = try Command("sfdisk", ["--verify", image]).run(acceptedStatuses: [0, 1])
            #expect(verify.status == 0, "\(verify.output) \(verify.errorOutput)")

            // What is on disk is what grub-mkimage made from the root's modules, placed as grub-bios-setup would.
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: image))
            defer { try? handle.close() }
            let head = [UInt8](try #require(try handle.read(upToCount: 2048 * 512)))
            let boot = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ImageFixtures.hostBIOSModules + "/boot.img")))
            #expect(Array(head[0..<0x5C]) == Array(boot[0..<0x5C]), "boot.img's code up to its parameters")
            #expect(Self.le64(head, 0x5C) == 34 && head[0x66] == 0x90)
            #expect(Array(head[0x68..<440]) == Array(boot[0x68..<440]))
            #expect(head[450] == 0xEE && head[510] == 0x55 && head[511] == 0xAA, "still a protective MBR")
            let core = Array(head[(34 * 512)...])
            #expect(Array(core[0..<4]) != [0, 0, 0, 0])
            #expect(Self.le64(core, 0x1F4) == 35)
            let sectors = Int(core[0x1FC]) | Int(core[0x1FD]) << 8
            #expect(sectors > 100 && sectors < 2013, "core.img holds the modules (\(sectors + 1) sectors)")
            // (Its prefix and modules are compressed inside it; that GRUB finds grub.cfg is proven by booting it:
            // EndToEndTests.secureBoot, legacy BIOS.)
            // The data ranges of the bmap cover it: flash writes it.
            let map = first.artifacts.blockMap
            let coreEnd = UInt64(34 + sectors) * 512 + 511
            #expect(map.ranges.contains { $0.first * map.blockSize <= 34 * 512 && ($0.last + 1) * map.blockSize > coreEnd },
                    "core.img is in one mapped range of the bmap")

            // The same inputs and epoch: byte-identical, core.img included.
            let second = try ImageFixtures.assemble(in: directory, tag: "two", secureBoot: true)
            #expect(try Data(contentsOf: URL(fileURLWithPath: image)) == Data(contentsOf: URL(fileURLWithPath: second.artifacts.image)))

            // The default image (systemd-boot) is UEFI only: no BIOS boot partition, no boot code.
            let plain = try ImageFixtures.assemble(in: directory, tag: "plain")
            let plainParts = try #require(try ImageFixtures.sfdisk(plain.artifacts.image)["partitions"] as? [[String: Any]])
            #expect(plainParts.count == 4)
        }
    }
}
