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
            let image = dir + "/disk.img"
            #expect(FileManager.default.createFile(atPath: image, contents: nil))
            #expect(truncate(image, 64 << 20) == 0)
            try makeTable(image)
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
