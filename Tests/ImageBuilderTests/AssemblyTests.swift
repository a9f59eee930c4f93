import Exec
import Foundation
import GPT
import ImageBuilder
import Testing
import TestSupport

@Suite("Image assembly: GPT, FAT32 ESP, ext4 root, AQUASEED, reproducible")
struct AssemblyTests {
    @Test("two builds with the same epoch are byte-identical; another epoch changes identities",
          .requires(root: false, programs: ImageFixtures.programs))
    func reproducible() throws {
        try withTemporaryDirectory { directory in
            let first = try ImageFixtures.assemble(in: directory, tag: "a")
            sleep(1)  // a wall-clock leak would show as a difference
            let second = try ImageFixtures.assemble(in: directory, tag: "b")
            let third = try ImageFixtures.assemble(in: directory, tag: "c", epoch: ImageFixtures.epoch + 86_400)
            let a = try FileDigest.sha256(path: first.artifacts.image)
            let b = try FileDigest.sha256(path: second.artifacts.image)
            let c = try FileDigest.sha256(path: third.artifacts.image)
            #expect(a == b)
            #expect(a != c)
            // sha256sum agrees with our digest and with SHA256SUMS.
            let sums = try String(contentsOfFile: first.artifacts.sums, encoding: .utf8)
            #expect(sums.contains("\(a)  aquarium.raw\n"))
            let real = try ImageFixtures.tool("sha256sum", [first.artifacts.image, first.artifacts.bmap])
            let realDigests = real.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
            let listed = sums.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
            #expect(realDigests == listed)
        }
    }

    @Test("partition table read back by sfdisk: names, type GUIDs, deterministic GUIDs",
          .requires(root: false, programs: ImageFixtures.programs))
    func partitionTable() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "a")
            let identity = BuildIdentity(imageName: "aquarium", epoch: ImageFixtures.epoch)
            let table = try ImageFixtures.sfdisk(result.artifacts.image)
            #expect(table["label"] as? String == "gpt")
            #expect((table["id"] as? String)?.uppercased() == identity.diskGUID.uuidString)
            let partitions = try #require(table["partitions"] as? [[String: Any]])
            try #require(partitions.count == 4)
            let expected: [(PartitionRole, String)] = [(.esp, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
                                                       (.root, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"),
                                                       (.rootB, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"),
                                                       (.seed, "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")]
            for (partition, (role, type)) in zip(partitions, expected) {
                #expect(partition["type"] as? String == type)
                #expect((partition["uuid"] as? String)?.uppercased() == identity.partitionGUID(role).uuidString)
                #expect(partition["name"] as? String == role.partitionName)
                let start = try #require(partition["start"] as? Int)
                #expect(start % 2048 == 0, "partitions are 1 MiB aligned")
            }
            let esp = try #require(partitions.first?["size"] as? Int)
            #expect(esp == 40 * 2048)
            #expect(partitions.map { $0["name"] as? String } == ["AQUA-ESP", "AQUA-ROOT-A", "AQUA-ROOT-B", "AQUASEED"])
            #expect(partitions[1]["size"] as? Int == partitions[2]["size"] as? Int, "slot B is as large as slot A")
            // The backup header sits at the last sector of the file.
            let lastLBA = try #require(table["lastlba"] as? Int)
            #expect(UInt64(lastLBA + 34) * 512 == result.assembly.sizeBytes)
        }
    }

    @Test("filesystems read back: blkid, fsck.vfat, e2fsck, debugfs, mtools",
          .requires(root: false, programs: ImageFixtures.programs))
    func filesystems() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "a")
            let image = result.artifacts.image
            let identity = BuildIdentity(imageName: "aquarium", epoch: ImageFixtures.epoch)
            let esp = try #require(result.assembly.partition(.esp))
            let root = try #require(result.assembly.partition(.root))
            let seed = try #require(result.assembly.partition(.seed))

            let espProbe = try ImageFixtures.blkid(image, offset: esp.offsetBytes)
            #expect(espProbe["TYPE"] == "vfat")
            #expect(espProbe["VERSION"] == "FAT32")
            #expect(espProbe["LABEL"] == "AQUA-ESP")
            let volume = identity.fatVolumeID(.esp)
            #expect(espProbe["UUID"] == String(volume.prefix(4)) + "-" + String(volume.suffix(4)))
            let rootProbe = try ImageFixtures.blkid(image, offset: root.offsetBytes)
            #expect(rootProbe["TYPE"] == "ext4")
            #expect(rootProbe["LABEL"] == "aquarium-root")
            #expect(rootProbe["UUID"] == identity.filesystemUUID(.root).uuidString.lowercased())
            let seedProbe = try ImageFixtures.blkid(image, offset: seed.offsetBytes)
            #expect(seedProbe["TYPE"] == "vfat")
            #expect(seedProbe["LABEL"] == "AQUASEED")

            // fsck.vfat has no offset option: check copies of the two FAT partitions.
            for part in [esp, seed] {
                let copy = directory + "/\(part.role.rawValue).fat"
                try ImageFixtures.extract(image, offset: part.offsetBytes, count: part.sizeBytes, to: copy)
                let fsck = try Command("fsck.vfat", ["-n", copy]).run(acceptedStatuses: [0, 1])
                #expect(fsck.status == 0, "fsck.vfat \(part.role): \(fsck.output) \(fsck.errorOutput)")
            }
            let ext4 = "\(image)?offset=\(root.offsetBytes)"
            let fsck = try Command("e2fsck", ["-fn", ext4]).run(acceptedStatuses: [0, 1, 4, 8])
            #expect(fsck.status == 0, "e2fsck: \(fsck.output) \(fsck.errorOutput)")

            // Content, owners and times of the root filesystem.
            #expect(try ImageFixtures.tool("debugfs", ["-R", "cat /etc/hostname", ext4]) == "aquarium\n")
            let stat = try ImageFixtures.tool("debugfs", ["-R", "stat /usr/bin/hello", ext4])
            #expect(stat.contains("Mode:  04755"))
            #expect(stat.contains("User:     0   Group:     0"))
            for field in ["ctime", "atime", "mtime", "crtime"] {
                let line = stat.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(field + ":") }
                #expect(line?.contains("0x6553f100:00000000") == true, "\(field) stamped with the epoch: \(stat)")
            }
            let link = try ImageFixtures.tool("debugfs", ["-R", "stat /usr/bin/hi", ext4])
            #expect(link.contains("Type: symlink"))
            let hard = try ImageFixtures.tool("debugfs", ["-R", "stat /etc/hostname", ext4])
            #expect(hard.contains("Links: 2"))
            let many = try ImageFixtures.tool("debugfs", ["-R", "ls -p /usr/share/many", ext4])
            #expect(many.split(separator: "\n").count == 302)

            // ESP: systemd-boot where firmware looks, the loader entry pointing at the root partition.
            let mtools = ["MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1"]
            let espDrive = "\(image)@@\(esp.offsetBytes)"
            let entry = try ImageFixtures.tool("mtype", ["-i", espDrive, "::/loader/entries/aquarium-a.conf"], environment: mtools)
            #expect(entry.contains("options  root=PARTUUID=\(identity.partitionGUID(.root).uuidString.lowercased()) ro console=ttyS0,115200"))
            #expect(entry.contains("aquarium.slot=a aquarium.release=build-\(ImageFixtures.epoch)"))
            #expect(entry.contains("linux    /aquarium/a/vmlinuz"))
            let loader = try ImageFixtures.tool("mtype", ["-i", espDrive, "::/loader/loader.conf"], environment: mtools)
            #expect(loader.hasPrefix("default aquarium-*\n"))
            let bootloader = try Command("mtype", ["-i", espDrive, "::/EFI/BOOT/BOOTX64.EFI"], environment: mtools).run().standardOutput
            #expect(bootloader == ImageFixtures.bytes(120_000, seed: 3))
            let kernel = try Command("mtype", ["-i", espDrive, "::/aquarium/a/vmlinuz"], environment: mtools).run().standardOutput
            #expect(kernel == ImageFixtures.bytes(1_500_000, seed: 1))
            let listing = try ImageFixtures.tool("mdir", ["-i", espDrive, "-b", "-/", "::/"], environment: mtools)
            #expect(listing.contains("::/EFI/BOOT/BOOTX64.EFI"))
            #expect(listing.contains("::/loader/loader.conf"))

            // Seed volume: README and the example, no seed.yaml.
            let seedDrive = "\(image)@@\(seed.offsetBytes)"
            let seedListing = try ImageFixtures.tool("mdir", ["-i", seedDrive, "-b", "-/", "::/"], environment: mtools)
            #expect(seedListing.contains("::/README.TXT"))
            #expect(seedListing.contains("::/example-seed.yaml"))
            #expect(!seedListing.contains("::/seed.yaml"))
            let readme = try ImageFixtures.tool("mtype", ["-i", seedDrive, "::/README.TXT"], environment: mtools)
            #expect(readme.contains("seed.yaml"))
            #expect(readme.contains("seeds/<DMI serial>.yaml"))

            // The file is sparse: far less allocated than its size.
            #expect(result.assembly.allocatedBytes < result.assembly.sizeBytes / 2)
        }
    }

    @Test("--compress writes NAME.raw.zst that decompresses to NAME.raw; SHA256SUMS lists all three",
          .requires(root: false, programs: ImageFixtures.programs + ["zstd", "sha256sum"]))
    func compressed() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "z", compress: true)
            let zst = try #require(result.artifacts.compressed)
            let restored = directory + "/restored.raw"
            try Command("zstd", ["-q", "-d", zst, "-o", restored]).run()
            #expect(try FileDigest.sha256(path: restored) == FileDigest.sha256(path: result.artifacts.image))
            let sums = try String(contentsOfFile: result.artifacts.sums, encoding: .utf8)
            let real = try ImageFixtures.tool("sha256sum", [result.artifacts.image, result.artifacts.bmap, zst])
            let digests = { (text: String) in text.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" } }
            #expect(digests(sums) == digests(real))
            #expect(sums.hasSuffix("  aquarium.raw.zst\n"))
        }
    }

    @Test("a too small ESP is refused as invalid input before anything is written")
    func smallESP() throws {
        try withTemporaryDirectory { directory in
            let input = AssemblyInput(output: directory + "/x.raw", rootTree: directory, espTree: directory, seedTree: directory,
                                      layout: StickLayout(espMiB: 16), identity: BuildIdentity(imageName: "x", epoch: 0))
            #expect(throws: ImageError.self) { try ImageAssembler().assemble(input) }
            #expect(!FileManager.default.fileExists(atPath: directory + "/x.raw"))
        }
    }

    @Test("SOURCE_DATE_EPOCH: unset means now, garbage is invalid input", arguments: [
        (["SOURCE_DATE_EPOCH": "1700000000"], Int64?.some(1_700_000_000)),
        ([:], Int64?.some(1_234)),
        (["SOURCE_DATE_EPOCH": "yesterday"], Int64?.none),
    ])
    func epoch(environment: [String: String], expected: Int64?) throws {
        if let expected {
            #expect(try BuildIdentity.epochFromEnvironment(environment, now: Date(timeIntervalSince1970: 1_234)) == expected)
        } else {
            #expect(throws: ImageError.self) { try BuildIdentity.epochFromEnvironment(environment) }
        }
    }
}
