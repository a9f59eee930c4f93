import Exec
import Foundation
import GPT
import Parted
import Testing
import TestSupport

@Suite("GPT identities and backup relocation")
struct GPTTests {
    func sfdiskJSON(_ path: String) throws -> [String: Any] {
        let json = try Command("sfdisk", ["--json", path]).run().standardOutput
        let object = try JSONSerialization.jsonObject(with: json) as? [String: Any]
        return try #require(object?["partitiontable"] as? [String: Any])
    }

    func makeTable(_ path: String) throws {
        let device = try PartedDevice(path: path)
        let disk = try PartedDisk.fresh(on: device)
        try disk.append([PartitionRequest(name: "esp", sizeBytes: 8 << 20, flags: [.esp]),
                         PartitionRequest(name: "aquarium-state", sizeBytes: nil)])
        try disk.commit(informKernel: false)
    }

    /// A 64 MiB image file with `makeTable`'s two partitions.
    func tableImage(in directory: String) throws -> String {
        let image = directory + "/disk.img"
        #expect(FileManager.default.createFile(atPath: image, contents: nil))
        #expect(truncate(image, 64 << 20) == 0)
        try makeTable(image)
        return image
    }

    @Test("CRC-32 matches the IEEE check value")
    func crc() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([]) == 0)
    }

    @Test("deterministic UUIDs depend only on the name")
    func deterministic() {
        #expect(DeterministicUUID.make("a") == DeterministicUUID.make("a"))
        #expect(DeterministicUUID.make("a") != DeterministicUUID.make("b"))
        let text = DeterministicUUID.make("aquarium").uuidString
        #expect(Array(text)[14] == "8")  // version 8
    }

    @Test("type, partition and disk GUIDs written to an image file, read back by sfdisk",
          .requires(root: false, programs: ["sfdisk"]))
    func setIdentities() throws {
        try withTemporaryDirectory { dir in
            let image = try tableImage(in: dir)
            var editor = try GPTEditor(path: image)
            #expect(editor.entries.map(\.name) == ["esp", "aquarium-state"])
            let disk = DeterministicUUID.make("disk")
            let part = DeterministicUUID.make("state")
            editor.setDiskGUID(disk)
            try editor.setPartition(number: 2, typeGUID: GPTEditor.PartitionType.variableData, uniqueGUID: part)
            try editor.write()

            let table = try sfdiskJSON(image)
            #expect((table["id"] as? String)?.uppercased() == disk.uuidString)
            let parts = try #require(table["partitions"] as? [[String: Any]])
            #expect((parts[1]["type"] as? String)?.uppercased() == GPTEditor.PartitionType.variableData.uuidString)
            #expect((parts[1]["uuid"] as? String)?.uppercased() == part.uuidString)
            #expect(parts[1]["name"] as? String == "aquarium-state")
            #expect((parts[0]["type"] as? String)?.uppercased() == GPTEditor.PartitionType.esp.uuidString)
            let verify = try Command("sfdisk", ["--verify", image]).run(acceptedStatuses: [0, 1])
            #expect(verify.status == 0, "\(verify.output) \(verify.errorOutput)")
            #expect(!verify.output.contains("corrupt"))

            let reread = try GPTEditor(path: image)
            #expect(reread.diskGUID == disk)
            #expect(reread.entries[1].uniqueGUID == part)
            #expect(throws: GPTError.self) { try editor.setPartition(number: 7, typeGUID: part) }
        }
    }

    @Test("a partition added in the gap before the first one: both copies, read back by sfdisk; bad requests refused",
          .requires(root: false, programs: ["sfdisk"]))
    func addPartition() throws {
        try withTemporaryDirectory { dir in
            let image = try tableImage(in: dir)
            var editor = try GPTEditor(path: image)
            let guid = DeterministicUUID.make("bios")
            let refused: [(Int, UInt64, UInt64, String, String)] = [
                (1, 34, 2047, "ab", "already in use"),
                (0, 34, 2047, "ab", "outside the array"),
                (129, 34, 2047, "ab", "outside the array"),
                (5, 33, 2047, "ab", "not inside the usable area"),
                (5, 34, 2048, "ab", "overlap partition 1"),
                (5, 2047, 34, "ab", "not inside the usable area"),
                (5, 34, 2047, String(repeating: "n", count: 37), "longer than 36"),
            ]
            for (number, first, last, name, reason) in refused {
                do {
                    try editor.addPartition(number: number, firstLBA: first, lastLBA: last, typeGUID: GPTEditor.PartitionType.biosBoot,
                                            uniqueGUID: guid, name: name)
                    Issue.record("partition \(number) at \(first)-\(last) was accepted")
                } catch {
                    #expect((error as? GPTError)?.reason.contains(reason) == true, "\(error)")
                }
            }
            try editor.addPartition(number: 5, firstLBA: 34, lastLBA: 2047, typeGUID: GPTEditor.PartitionType.biosBoot,
                                    uniqueGUID: guid, name: "BIOSBOOT")
            try editor.write()
            let verify = try Command("sfdisk", ["--verify", image]).run(acceptedStatuses: [0, 1])
            #expect(verify.status == 0, "\(verify.output) \(verify.errorOutput)")
            let parts = try #require(try sfdiskJSON(image)["partitions"] as? [[String: Any]])
            let bios = try #require(parts.first { ($0["node"] as? String)?.hasSuffix("img5") == true })
            #expect(bios["start"] as? Int == 34 && bios["size"] as? Int == 2014)
            #expect((bios["type"] as? String)?.uppercased() == GPTEditor.PartitionType.biosBoot.uuidString)
            #expect((bios["uuid"] as? String)?.uppercased() == guid.uuidString && bios["name"] as? String == "BIOSBOOT")
            let reread = try GPTEditor(path: image)
            #expect(reread.entries.map(\.number) == [1, 2, 5])
            // The backup copy says the same: with the primary header wiped, sfdisk reads the backup.
            let fd = open(image, O_RDWR)
            #expect(pwrite(fd, [UInt8](repeating: 0, count: 512), 512, 512) == 512)
            close(fd)
            let fromBackup = try #require(try sfdiskJSON(image)["partitions"] as? [[String: Any]])
            #expect(fromBackup.contains { $0["start"] as? Int == 34 && $0["size"] as? Int == 2014 }, "\(fromBackup)")
        }
    }

    @Test("the backup header moves to the end of a larger device",
          .requires(programs: ["losetup", "sfdisk"]), arguments: [512, 4096])
    func relocateBackup(sectorSize: Int) throws {
        try LoopDevice.with(.init(sizeBytes: 128 << 20, sectorSize: sectorSize)) { loop in
            // Write a table sized for 64 MiB, as an image written to a bigger stick would be.
            let small = FileManager.default.temporaryDirectory.appendingPathComponent("aquarium-gpt-\(UUID().uuidString).img").path
            defer { try? FileManager.default.removeItem(atPath: small) }
            try LoopDevice.with(.init(sizeBytes: 64 << 20, sectorSize: sectorSize)) { smallLoop in
                try makeTable(smallLoop.path)
                try Command("dd", ["if=\(smallLoop.path)", "of=\(loop.path)", "bs=1M", "count=64", "conv=fsync", "status=none"]).run()
            }
            let before = try sfdiskJSON(loop.path)
            #expect((before["lastlba"] as? Int ?? 0) < (64 << 20) / sectorSize)
            var editor = try GPTEditor(path: loop.path, sectorSize: sectorSize)
            try editor.write(deviceSectorCount: UInt64((128 << 20) / sectorSize))
            let after = try sfdiskJSON(loop.path)
            let sectors = (128 << 20) / sectorSize
            let arraySectors = 16384 / sectorSize
            #expect(after["lastlba"] as? Int == sectors - 1 - arraySectors - 1)
            let verify = try Command("sfdisk", ["--verify", loop.path]).run(acceptedStatuses: [0, 1])
            #expect(verify.status == 0, "\(verify.output) \(verify.errorOutput)")
            #expect(editor.backupLBA == UInt64(sectors - 1))
        }
    }
}
