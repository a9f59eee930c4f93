import Archive
import Blkid
import Exec
import Foundation
import Parted
import Synchronization
import SystemErrors
import Testing
import TestSupport
import Udev

@Suite("C library wrappers")
struct WrapperTests {
    @Test("libparted: opening a missing device gives libparted's own message")
    func partedMissingDevice() throws {
        do {
            _ = try PartedDevice(path: "/dev/aquarium-does-not-exist")
            Issue.record("opening a missing device succeeded")
        } catch {
            #expect(error.device == "/dev/aquarium-does-not-exist")
            #expect(error.messages.contains { $0.contains("Could not stat device /dev/aquarium-does-not-exist") },
                    "messages: \(error.messages)")
            #expect(error.description.contains("No such file or directory"))
        }
    }

    /// Replays the crash CI saw: `defer { device.close() }` before a table made on the device (ImageAssembler,
    /// FirstBoot's createTable) destroyed the PedDevice while the table still used it; `ped_disk_destroy` then read
    /// freed memory, which parallel tests reused at once (SIGFPE in libparted, the whole test process gone). Now the
    /// device stays open until its last table ends, under many threads doing the same.
    @Test("libparted: close() while a table is alive keeps the device until the table ends, under parallel use")
    func partedCloseWithLiveTable() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/image.raw"
            #expect(FileManager.default.createFile(atPath: path, contents: nil) && truncate(path, 64 << 20) == 0)
            var disk: PartedDisk? = nil
            let device = try PartedDevice(path: path)
            disk = try PartedDisk.fresh(on: device, type: "gpt")
            _ = try disk?.append([PartitionRequest(name: "one", sizeBytes: 8 << 20)])
            device.close()
            #expect(device.logicalSectorSize == 512, "closed under a live table")
            #expect(try disk?.partitions().map(\.name) == ["one"])
            try disk?.commit(informKernel: false)
            disk = nil
            #expect(device.logicalSectorSize == 0, "still open after its last table ended")

            // The same on many threads at once, each with its own image, closing before its table ends.
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 64) { index in
                let image = directory + "/parallel-\(index).raw"
                guard FileManager.default.createFile(atPath: image, contents: nil), truncate(image, 32 << 20) == 0 else {
                    failures.withLock { $0.append("\(image): cannot create it") }
                    return
                }
                do {
                    let device = try PartedDevice(path: image)
                    let table = try PartedDisk.fresh(on: device, type: "gpt")
                    defer { device.close() }
                    _ = try table.append([PartitionRequest(name: "p\(index)", sizeBytes: nil)])
                    try table.commit(informKernel: false)
                    let reread = try PartedDisk.read(from: PartedDevice(path: image))
                    if try reread.partitions().map(\.name) != ["p\(index)"] { failures.withLock { $0.append(image) } }
                } catch {
                    failures.withLock { $0.append("\(image): \(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty)
        }
    }

    @Test("libblkid: opening a missing device gives ENOENT naming the path")
    func blkidMissingDevice() throws {
        do {
            _ = try BlkidProbe(path: "/dev/aquarium-does-not-exist")
            Issue.record("probing a missing device succeeded")
        } catch {
            #expect(error.errno == ENOENT)
            #expect(error.path == "/dev/aquarium-does-not-exist")
            #expect(error.description.contains("No such file or directory"))
        }
    }

    @Test("libarchive: opening a missing archive gives libarchive's message")
    func archiveMissingFile() throws {
        do {
            _ = try ArchiveReader(path: "/nonexistent/aquarium.tar.zst")
            Issue.record("opening a missing archive succeeded")
        } catch {
            #expect(error.path == "/nonexistent/aquarium.tar.zst")
            #expect(error.message.contains("Failed to open"), "message: \(error.message)")
        }
    }

    @Test("libudev: block disks are enumerated with sysfs attributes even without udevd")
    func udevEnumeratesDisks() throws {
        let udev = try Udev()
        let disks = try udev.devices(subsystem: "block", devtype: "disk")
        #expect(!disks.isEmpty)
        for disk in disks {
            #expect(disk.devtype == "disk")
            #expect(disk.property("MAJOR") != nil, "\(disk.sysname) has no MAJOR")
            #expect(disk.attribute("size") != nil, "\(disk.sysname) has no size attribute")
        }
        do {
            _ = try udev.device(syspath: "/sys/class/block/aquarium-nope")
            Issue.record("a missing sysfs device was found")
        } catch {
            #expect(error.path == "/sys/class/block/aquarium-nope")
        }
    }

    @Test("libarchive: files and a directory tree round-trip through zstd tar and extract")
    func archiveRoundTrip() throws {
        try withTemporaryDirectory { dir in
            let tree = dir + "/tree"
            try FileManager.default.createDirectory(atPath: tree + "/etc/aquarium", withIntermediateDirectories: true)
            try Data("hello\n".utf8).write(to: URL(fileURLWithPath: tree + "/etc/aquarium/hello.txt"))
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tree + "/etc/aquarium/hello.txt")
            try FileManager.default.createSymbolicLink(atPath: tree + "/link", withDestinationPath: "etc/aquarium/hello.txt")
            let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try Data(big).write(to: URL(fileURLWithPath: tree + "/big.bin"))

            let archivePath = dir + "/out.tar.zst"
            let writer = try ArchiveWriter(path: archivePath, compression: .zstd)
            try writer.addTree(tree)
            try writer.addFile("./extra/notes.txt", contents: Array("notes".utf8), mode: 0o640, modificationTime: 1_700_000_000)
            try writer.finish()

            let listed = try ArchiveReader(path: archivePath).list().map(\.path)
            #expect(listed.contains("./etc/aquarium/hello.txt"))
            #expect(listed.contains("./big.bin"))
            #expect(listed.contains("./extra/notes.txt"))

            let out = dir + "/out"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try ArchiveReader(path: archivePath).extract(to: out)
            #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/big.bin")) == Data(big))
            #expect(try String(contentsOfFile: out + "/link", encoding: .utf8) == "hello\n")
            let mode = try FileManager.default.attributesOfItem(atPath: out + "/etc/aquarium/hello.txt")[.posixPermissions] as? Int
            #expect(mode == 0o600)
            #expect(try String(contentsOfFile: out + "/extra/notes.txt", encoding: .utf8) == "notes")

            // `tar` (a real reader) agrees.
            let tarList = try Command("tar", ["--zstd", "-tf", archivePath]).run().output
            #expect(tarList.contains("./etc/aquarium/hello.txt"))
        }
    }

    @Test("libparted: a fresh GPT with 1 MiB-aligned named partitions, read back by sfdisk",
          .requires(programs: ["losetup", "sfdisk"]),
          arguments: [512, 4096])
    func partedCreatesGPT(sectorSize: Int) throws {
        try LoopDevice.with(.init(sizeBytes: 256 << 20, sectorSize: sectorSize)) { loop in
            let device = try PartedDevice(path: loop.path)
            #expect(device.logicalSectorSize == sectorSize)
            #expect(try device.partitionTableType() == nil)
            let disk = try PartedDisk.fresh(on: device)
            let made = try disk.append([PartitionRequest(name: "aquarium-esp", sizeBytes: 64 << 20, flags: [.esp]),
                                        PartitionRequest(name: "aquarium-state", sizeBytes: nil)])
            try disk.commit()
            #expect(made.count == 2)

            let json = try Command("sfdisk", ["--json", loop.path]).run().standardOutput
            let table = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
            let pt = try #require(table["partitiontable"] as? [String: Any])
            #expect(pt["label"] as? String == "gpt")
            #expect(pt["sectorsize"] as? Int == sectorSize)
            let parts = try #require(pt["partitions"] as? [[String: Any]])
            #expect(parts.count == 2)
            #expect(parts.map { $0["name"] as? String } == ["aquarium-esp", "aquarium-state"])
            for part in parts {
                let start = try #require(part["start"] as? Int)
                #expect((start * sectorSize) % (1 << 20) == 0, "partition not 1 MiB aligned: \(part)")
            }
            #expect((parts[0]["size"] as? Int).map { $0 * sectorSize } == 64 << 20)
            #expect(parts[0]["type"] as? String == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")

            let reread = try PartedDisk.read(from: PartedDevice(path: loop.path))
            #expect(try reread.partitions().map(\.name) == ["aquarium-esp", "aquarium-state"])
        }
    }
}
