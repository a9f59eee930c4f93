import Disks
import Exec
import Foundation
import Testing
import TestSupport

/// Inventory against real loop devices that each test creates and always detaches.
@Suite("Inventory on real loop devices", .serialized)
struct InventoryDeviceTests {
    func scan(_ loops: [LoopDevice]) throws -> [String: Disk] {
        let inventory = try InventoryScanner(options: InventoryOptions(onlyNames: Set(loops.map(\.name)))).scan()
        return Dictionary(uniqueKeysWithValues: inventory.disks.map { ($0.name, $0) })
    }

    @Test("sizes, 4K logical sectors, read-only, backing files, transport", .requires(programs: ["losetup"]))
    func geometryAndFlags() throws {
        try LoopDevice.withMany([.init(sizeBytes: 64 << 20), .init(sizeBytes: 96 << 20, sectorSize: 4096),
                                 .init(sizeBytes: 32 << 20, readOnly: true)]) { loops in
            let disks = try scan(loops)
            #expect(disks.count == 3)
            let plain = try #require(disks[loops[0].name])
            #expect(plain.sizeBytes == 64 << 20)
            #expect(plain.logicalSectorSize == 512)
            #expect(plain.readOnly == false)
            #expect(plain.transport == .loop)
            #expect(plain.backingFile == loops[0].backingFile)
            #expect(plain.partitionTable == nil)
            #expect(plain.signatures.isEmpty)
            #expect(plain.partitions.isEmpty)
            #expect(plain.mounted == false)
            #expect(plain.isBootMedia == false)
            #expect(plain.path == loops[0].path)

            let large = try #require(disks[loops[1].name])
            #expect(large.sizeBytes == 96 << 20)
            #expect(large.logicalSectorSize == 4096)
            #expect(large.physicalSectorSize == 4096)

            let readOnly = try #require(disks[loops[2].name])
            #expect(readOnly.readOnly == true)
            #expect(readOnly.sizeBytes == 32 << 20)
        }
    }

    @Test("an ext4 filesystem: signature with type, label and UUID",
          .requires(programs: ["losetup", "mkfs.ext4", "blkid"]))
    func ext4Signature() throws {
        try LoopDevice.with(.init(sizeBytes: 64 << 20), prepare: { file in
            try Command("mkfs.ext4", ["-q", "-F", "-L", "aq-ext4", file]).run()
        }) { loop in
            let disk = try #require(try scan([loop])[loop.name])
            let ext4 = try #require(disk.signatures.first { $0.type == "ext4" })
            #expect(ext4.label == "aq-ext4")
            #expect(ext4.usage == "filesystem")
            #expect(ext4.offsetBytes == 1080)  // the ext superblock magic
            let uuid = try Command("blkid", ["-p", "-s", "UUID", "-o", "value", loop.path]).run().output
            #expect(ext4.uuid == uuid.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(disk.partitionTable == nil)
        }
    }

    @Test("an xfs filesystem and an LVM physical volume are recognised",
          .requires(programs: ["losetup", "mkfs.xfs", "pvcreate"]))
    func xfsAndLVM() throws {
        try LoopDevice.with(.init(sizeBytes: 320 << 20), prepare: { file in
            try Command("mkfs.xfs", ["-q", "-f", "-L", "data", file]).run()
        }) { loop in
            let disk = try #require(try scan([loop])[loop.name])
            let xfs = try #require(disk.signatures.first { $0.type == "xfs" })
            #expect(xfs.label == "data")
            #expect(xfs.offsetBytes == 0)
        }
        try LoopDevice.with(.init(sizeBytes: 64 << 20)) { loop in
            // --devices limits LVM to this device; nothing else on the machine is scanned or touched.
            try Command("pvcreate", ["--devices", loop.path, "-q", loop.path]).run()
            defer { _ = try? Command("pvremove", ["--devices", loop.path, "-q", "-y", loop.path]).run() }
            let disk = try #require(try scan([loop])[loop.name])
            #expect(disk.signatures.contains { $0.type == "LVM2_member" && $0.usage == "raid" })
        }
    }

    @Test("a GPT with two partitions matches what sfdisk --json says",
          .requires(programs: ["losetup", "sfdisk", "mkfs.ext4"]))
    func gptMatchesSfdisk() throws {
        try LoopDevice.with(.init(sizeBytes: 128 << 20)) { loop in
            let script = """
                label: gpt
                start=2048, size=40960, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="aq-one"
                start=43008, size=81920, type=4D21B016-B534-45C2-A9FB-5C16E091FD2D, name="aq-two"
                """
            try Command("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", loop.path]).run(input: Data(script.utf8))
            try loop.rescanPartitions()
            try Command("mkfs.ext4", ["-q", "-F", "-L", "second", loop.path + "p2"]).run()

            let disk = try #require(try scan([loop])[loop.name])
            #expect(disk.partitionTable == "gpt")
            #expect(disk.signatures.contains { $0.type == "gpt" && $0.usage == "partition_table" })

            let json = try Command("sfdisk", ["--json", loop.path]).run().standardOutput
            let table = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
            let pt = try #require(table["partitiontable"] as? [String: Any])
            let parts = try #require(pt["partitions"] as? [[String: Any]])
            let sector = try #require(pt["sectorsize"] as? Int)
            #expect(disk.partitions.count == parts.count)
            for (ours, theirs) in zip(disk.partitions, parts) {
                #expect(ours.path == theirs["node"] as? String)
                #expect(ours.path == loop.path + "p\(ours.number)")
                #expect(ours.startBytes == UInt64((theirs["start"] as? Int ?? -1) * sector))
                #expect(ours.sizeBytes == UInt64((theirs["size"] as? Int ?? -1) * sector))
                #expect(ours.name == theirs["name"] as? String)
                #expect(ours.typeGuid == (theirs["type"] as? String)?.lowercased())
                #expect(ours.uuid == (theirs["uuid"] as? String)?.lowercased())
            }
            #expect(disk.partitions.map(\.number) == [1, 2])
            #expect(disk.partitions[1].fsType == "ext4")
            #expect(disk.partitions[1].fsLabel == "second")
            #expect(disk.partitions[0].fsType == nil)
        }
    }

    @Test("40 disks, more than one probe batch and probed two at a time: each disk gets its own signatures, partitions and edge data",
          .requires(programs: ["losetup", "sfdisk", "mkfs.ext4"]))
    func manyDisksEachTheirOwn() throws {
        let count = 40  // more than InventoryScanner.probeBatch (32): two batches
        try LoopDevice.withMany(Array(repeating: .init(sizeBytes: 16 << 20), count: count)) { loops in
            for (index, loop) in loops.enumerated() {
                switch index % 4 {
                case 0:
                    try Command("mkfs.ext4", ["-q", "-F", "-L", "whole-\(index)", loop.path]).run()
                case 1:
                    let script = "label: gpt\nstart=2048, size=20480, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"p-\(index)\"\n"
                    try Command("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", loop.path]).run(input: Data(script.utf8))
                    try loop.rescanPartitions()
                    try Command("mkfs.ext4", ["-q", "-F", "-L", "part-\(index)", loop.path + "p1"]).run()
                case 2:
                    // One byte in the last MiB and nothing libblkid knows: data no signature explains.
                    let handle = try #require(FileHandle(forWritingAtPath: loop.path))
                    try handle.seek(toOffset: (16 << 20) - 4096 - UInt64(index))
                    try handle.write(contentsOf: Data([0x5a]))
                    try handle.synchronize()
                    try handle.close()
                default:
                    break  // blank
                }
            }
            let disks = try scan(loops)
            #expect(disks.count == count)
            for (index, loop) in loops.enumerated() {
                let disk = try #require(disks[loop.name])
                #expect(disk.path == loop.path)
                #expect(disk.probeError == nil, "\(loop.path): \(disk.probeError ?? "")")
                switch index % 4 {
                case 0:
                    #expect(disk.signatures.map(\.type) == ["ext4"], "\(loop.path)")
                    #expect(disk.signatures.first?.label == "whole-\(index)", "\(loop.path)")
                    #expect(disk.partitions.isEmpty && !disk.unrecognisedData, "\(loop.path)")
                case 1:
                    #expect(disk.partitionTable == "gpt", "\(loop.path)")
                    #expect(disk.partitions.map(\.name) == ["p-\(index)"], "\(loop.path)")
                    #expect(disk.partitions.first?.fsLabel == "part-\(index)", "\(loop.path)")
                    #expect(disk.partitions.first?.fsType == "ext4", "\(loop.path)")
                case 2:
                    #expect(disk.signatures.isEmpty && disk.partitionTable == nil, "\(loop.path)")
                    #expect(disk.unrecognisedData, "\(loop.path): the byte near its end was not seen")
                default:
                    #expect(disk.signatures.isEmpty && disk.partitionTable == nil && !disk.unrecognisedData, "\(loop.path)")
                }
            }
        }
    }

    @Test("a mounted filesystem marks its disk mounted, with the mount point",
          .requires(programs: ["losetup", "mkfs.ext4", "mount", "umount"]))
    func mountedDisk() throws {
        try LoopDevice.with(.init(sizeBytes: 64 << 20), prepare: { file in
            try Command("mkfs.ext4", ["-q", "-F", file]).run()
        }) { loop in
            try withTemporaryDirectory { mountpoint in
                try Command("mount", [loop.path, mountpoint]).run()
                defer { _ = try? Command("umount", [mountpoint]).run() }
                let disk = try #require(try scan([loop])[loop.name])
                #expect(disk.mounted)
                #expect(disk.mountpoints == [mountpoint])
            }
        }
    }

    @Test("a disk carrying the AQUASEED volume is boot media", .requires(programs: ["losetup", "mkfs.vfat"]))
    func seedVolumeIsBootMedia() throws {
        try LoopDevice.with(.init(sizeBytes: 64 << 20), prepare: { file in
            try Command("mkfs.vfat", ["-n", "AQUASEED", file]).run()
        }) { loop in
            let disk = try #require(try scan([loop])[loop.name])
            #expect(disk.isBootMedia)
        }
    }

    @Test("the CLI prints the documented JSON for a loop device; jq reads it", .requires(programs: ["losetup", "jq"]))
    func cliJSON() throws {
        try LoopDevice.with(.init(sizeBytes: 48 << 20, sectorSize: 4096)) { loop in
            let result = try Products.run("aquarium-firstboot", ["inventory", "--json", "--device", loop.name])
            #expect(result.status == 0, "\(result.errorOutput)")
            let query = try Command("jq", ["-r", ".disks[0] | [.name, .sizeBytes, .logicalSectorSize, .transport] | @tsv"])
                .run(input: result.standardOutput).output
            #expect(query.trimmingCharacters(in: .whitespacesAndNewlines) == "\(loop.name)\t\(48 << 20)\t4096\tloop")
            let object = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
            let disk = try #require((object["disks"] as? [[String: Any]])?.first)
            let contract = ["name", "path", "byId", "byPath", "sizeBytes", "logicalSectorSize", "physicalSectorSize",
                            "rotational", "removable", "readOnly", "transport", "model", "vendor", "serial", "wwn",
                            "partitionTable", "signatures", "partitions", "mounted", "holders", "isBootMedia"]
            for key in contract { #expect(disk.keys.contains(key), "missing key \(key)") }
            #expect(disk["wwn"] is NSNull)
            #expect(disk["partitionTable"] is NSNull)

            let table = try Products.run("aquarium-firstboot", ["inventory", "--device", loop.name])
            #expect(table.status == 0)
            #expect(table.output.contains(loop.path))
            #expect(table.output.contains("4096"))
        }
    }
}

@Suite("Mount table on a busy machine", .serialized)
struct BusyMountTableTests {
    @Test("a mount behind more than a page of /proc/self/mountinfo is still seen",
          .requires(programs: ["losetup", "mkfs.ext4", "mount", "umount"]))
    func manyMounts() throws {
        try withTemporaryDirectory { dir in
            // 100 bind mounts with long paths push the mountinfo well past 4 KiB.
            var binds: [String] = []
            defer { for point in binds.reversed() { _ = try? Command("umount", [point]).run() } }
            for index in 0..<100 {
                let point = dir + "/bind-mount-point-with-a-rather-long-name-to-fill-the-table-\(index)"
                try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
                try Command("mount", ["--bind", dir, point]).run()
                binds.append(point)
            }
            #expect(MountTable.procFile("/proc/self/mountinfo").utf8.count > 8192)
            try LoopDevice.with(.init(sizeBytes: 64 << 20), prepare: { file in
                try Command("mkfs.ext4", ["-q", "-F", file]).run()
            }) { loop in
                let mountpoint = dir + "/zz-last"
                try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
                try Command("mount", [loop.path, mountpoint]).run()
                defer { _ = try? Command("umount", [mountpoint]).run() }
                let inventory = try InventoryScanner(options: InventoryOptions(onlyNames: [loop.name])).scan()
                #expect(inventory.disks.first?.mounted == true)
                #expect(inventory.disks.first?.mountpoints == [mountpoint])
            }
        }
    }
}
