import Exec
@testable import FirstBoot
import Foundation
import Testing
import TestSupport

/// `plan` and `apply` end to end on real loop devices, read back with sfdisk, blkid and sha256.
/// Every test sees only its own loop devices (`--only-device`) and writes only under a temporary `--root`.
@Suite("FirstBoot on loop devices", .serialized)
struct ApplyDeviceTests {
    static let tools = ["losetup", "sfdisk", "blkid", "mkfs.xfs", "mkfs.ext4", "partx", "mount", "umount"]

    @Test("blank disk: GPT, /var partition, filesystem, mounts, units, node record",
          .requires(programs: ApplyDeviceTests.tools), arguments: [
        (512, "xfs"), (4096, "xfs"), (512, "ext4"),
    ])
    func blankDisk(sectorSize: Int, filesystem: String) throws {
        try LoopDevice.with(.init(sizeBytes: Harness.gib, sectorSize: sectorSize)) { disk in
            try Harness.withRoot { root in
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText(disks: [
                    "  system:", "    match: {min_size: 512MiB}", "    filesystem: \(filesystem)"]))
                let run = try Harness.apply(seed: seed, root: root, devices: [disk])
                #expect(run.status == 0, "\(run.output)\n\(run.errorOutput)")
                #expect(run.output.contains("(create)"))
                try Harness.expectFinalState(device: disk, root: root, sectorSize: sectorSize, filesystem: filesystem)
                // The verified seed is handed to the Provisioner beside the record, readable by root only.
                let record = try Harness.nodeRecord(root)
                #expect(record.seedPath == "/var/lib/aquarium/seed.yaml")
                #expect(FileManager.default.contents(atPath: root + record.seedPath) == FileManager.default.contents(atPath: seed))
                let attributes = try FileManager.default.attributesOfItem(atPath: root + record.seedPath)
                #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
                #expect(record.storageDisks.isEmpty && record.bootMedia == nil)
                // The state directories are on the new filesystem: a file written through the bind lands there.
                try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/var/lib/ceph/probe"))
                #expect(FileManager.default.fileExists(atPath: root + "/var/lib/aquarium-system/state/ceph/probe"))
                try Data("changed\n".utf8).write(to: URL(fileURLWithPath: root + "/etc/hostname"))
                #expect(FileManager.default.fileExists(atPath: root + "/var/lib/aquarium-system/etc/upper/hostname"))
            }
        }
    }

    /// Replays a CI boot (happy-1): udev re-read the new table after a write-close of the disk while FirstBoot ran
    /// mkfs, and mkfs.ext4 said "The file /dev/sda1 does not exist". The rescanner here does what udev does after
    /// every close of a write-opened disk: BLKRRPART whenever it can take the disk's BSD lock, again and again.
    @Test("udev re-reading the partition table whenever it can lock the disk (the CI boot where mkfs found no /dev/sda1): apply formats and mounts",
          .requires(programs: ApplyDeviceTests.tools), arguments: ["ext4", "xfs"])
    func udevRereadsTheTable(filesystem: String) throws {
        try LoopDevice.with(.init(sizeBytes: Harness.gib, partitionScan: true)) { disk in
            let rescanner = try PartitionRescanner(path: disk.path)
            defer { rescanner.stop() }
            try rescanner.waitForRereads(3)
            try Harness.withRoot { root in
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText(disks: [
                    "  system:", "    match: {min_size: 512MiB}", "    filesystem: \(filesystem)"]))
                let before = rescanner.rereads
                let run = try Harness.apply(seed: seed, root: root, devices: [disk])
                #expect(run.status == 0, "\(run.output)\n\(run.errorOutput)")
                #expect(rescanner.rereads > before, "the table was never re-read while apply ran: this test proved nothing")
                try Harness.expectFinalState(device: disk, root: root, sectorSize: 512, filesystem: filesystem)
            }
        }
    }

    @Test("without --yes apply refuses (exit 3) and writes nothing", .requires(programs: ApplyDeviceTests.tools))
    func needsYes() throws {
        try LoopDevice.with(.init(sizeBytes: 512 * Harness.mib)) { disk in
            try Harness.withRoot { root in
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText())
                let before = try Harness.sha256(disk.path)
                let run = try Harness.apply(seed: seed, root: root, devices: [disk], yes: false)
                #expect(run.status == 3)
                #expect(run.errorOutput.contains("--yes"))
                #expect(try Harness.sha256(disk.path) == before)
                #expect(Harness.mountpoints(under: root).isEmpty)
            }
        }
    }

    @Test("ext4 disk: refused with wipe never (data intact), taken with wipe always",
          .requires(programs: ApplyDeviceTests.tools))
    func ext4Disk() throws {
        let prepare: (String) throws -> Void = { file in try Command("mkfs.ext4", ["-q", "-F", "-L", "data", file]).run() }
        try LoopDevice.with(.init(sizeBytes: 512 * Harness.mib), prepare: prepare) { disk in
            try Harness.withRoot { root in
                let never = try Harness.writeSeed(root + "/..", Harness.seedText(), name: "never.yaml")
                let before = try Harness.sha256(disk.path)
                let refused = try Harness.apply(seed: never, root: root, devices: [disk])
                #expect(refused.status == 3)
                #expect(refused.errorOutput.contains(disk.path))
                #expect(refused.errorOutput.contains("holds ext4 'data' (disks.system.wipe is never)"), "\(refused.errorOutput)")
                #expect(try Harness.sha256(disk.path) == before, "a refused disk is byte-identical")
                #expect(try Command("e2fsck", ["-fn", disk.path]).run(acceptedStatuses: [0]).status == 0)

                let always = try Harness.writeSeed(root + "/..", Harness.seedText(disks: [
                    "  system:", "    match: {min_size: 512MiB}", "    wipe: always"]), name: "always.yaml")
                let taken = try Harness.apply(seed: always, root: root, devices: [disk])
                #expect(taken.status == 0, "\(taken.errorOutput)")
                try Harness.expectFinalState(device: disk, root: root, sectorSize: 512)
                // Nothing of the old filesystem is left for libblkid to find on the whole disk.
                #expect(try Harness.blkid(disk.path)["PTTYPE"] == "gpt")
                #expect(try Harness.blkid(disk.path)["TYPE"] == nil)
            }
        }
    }

    @Test("two identical disks: the same one every run, in any order, by a stable identity",
          .requires(programs: ApplyDeviceTests.tools))
    func identicalDisks() throws {
        try LoopDevice.withMany([.init(sizeBytes: Harness.gib), .init(sizeBytes: Harness.gib)]) { disks in
            try withTemporaryDirectory { directory in
                let seed = try Harness.writeSeed(directory, Harness.seedText())
                var chosen: Set<String> = []
                for order in [disks, disks.reversed(), disks, disks.reversed()] {
                    let run = try Harness.plan(seed: seed, devices: order)
                    #expect(run.status == 0, "\(run.errorOutput)")
                    let system = try #require(try Harness.planJSON(run)["systemDisk"] as? [String: Any])
                    chosen.insert(try #require(system["path"] as? String))
                }
                #expect(chosen.count == 1)
                // Loop devices have no WWN, serial or by-id link: the backing file is their stable identity.
                let expected = disks.min { $0.backingFile < $1.backingFile }?.path
                #expect(chosen.first == expected)
            }
        }
    }

    @Test("by_id selection through a saved inventory", .requires(programs: ApplyDeviceTests.tools))
    func byIdFromSavedInventory() throws {
        try LoopDevice.withMany([.init(sizeBytes: Harness.gib), .init(sizeBytes: 2 * Harness.gib)]) { disks in
            try withTemporaryDirectory { directory in
                var arguments = ["inventory", "--json"]
                for disk in disks { arguments += ["--device", disk.name] }
                let inventory = try Harness.tool(arguments)
                #expect(inventory.status == 0)
                // udevd does not run here: add the by-id links a node would have.
                var document = try #require(try JSONSerialization.jsonObject(with: Data(inventory.output.utf8)) as? [String: Any])
                var list = try #require(document["disks"] as? [[String: Any]])
                #expect(list.count == 2)
                for index in list.indices {
                    list[index]["byId"] = ["/dev/disk/by-id/virtio-test-\(list[index]["name"] as? String ?? "?")"]
                }
                document["disks"] = list
                let saved = directory + "/inventory.json"
                try JSONSerialization.data(withJSONObject: document).write(to: URL(fileURLWithPath: saved))
                // Name the larger disk, which "smallest" alone would never pick.
                let wanted = disks[1]
                let seed = try Harness.writeSeed(directory, Harness.seedText(disks: [
                    "  system:", "    match: {by_id: /dev/disk/by-id/virtio-test-\(wanted.name), min_size: 512MiB}"]))
                let run = try Harness.tool(["plan", "--seed", seed, "--inventory", saved, "--json"])
                #expect(run.status == 0, "\(run.errorOutput)")
                let system = try #require(try Harness.planJSON(run)["systemDisk"] as? [String: Any])
                #expect(system["path"] as? String == wanted.path)
                #expect(system["displayPath"] as? String == "/dev/disk/by-id/virtio-test-\(wanted.name)")
                // A by_id that names nothing refuses.
                let missing = try Harness.writeSeed(directory, Harness.seedText(disks: [
                    "  system:", "    match: {by_id: /dev/disk/by-id/virtio-absent}"]), name: "missing.yaml")
                let refused = try Harness.tool(["plan", "--seed", missing, "--inventory", saved])
                #expect(refused.status == 3)
                #expect(refused.output.contains("no disk has by_id /dev/disk/by-id/virtio-absent"))
            }
        }
    }

    @Test("nothing eligible: exit 3, every disk named with its reasons, nothing changed",
          .requires(programs: ApplyDeviceTests.tools))
    func nothingEligible() throws {
        let prepare: (String) throws -> Void = { file in try Command("mkfs.xfs", ["-q", "-f", "-L", "data", file]).run() }
        try LoopDevice.withMany([.init(sizeBytes: 256 * Harness.mib)]) { small in
            try LoopDevice.with(.init(sizeBytes: 400 * Harness.mib), prepare: prepare) { data in
                try LoopDevice.with(.init(sizeBytes: Harness.gib, readOnly: true)) { readOnly in
                    try Harness.withRoot { root in
                        // A seed volume directory: the refusal is also reported back to it.
                        let volume = root + "/../volume"
                        let seed = try Harness.writeSeed(volume, Harness.seedText(disks: ["  system:", "    match: {min_size: 300MiB}"]))
                        let hashes = try [small[0], data].map { try Harness.sha256($0.path) }
                        let run = try Harness.apply(seed: volume, root: root, devices: [small[0], data, readOnly])
                        #expect(run.status == 3)
                        #expect(run.errorOutput.contains("rejected \(small[0].path): is smaller than disks.system.match.min_size"))
                        #expect(run.errorOutput.contains("rejected \(data.path): holds xfs 'data' (disks.system.wipe is never)"))
                        #expect(run.errorOutput.contains("rejected \(readOnly.path): is read-only"))
                        #expect(try [small[0], data].map { try Harness.sha256($0.path) } == hashes)
                        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf:
                            URL(fileURLWithPath: volume + "/reports/node1.json"))) as? [String: Any])
                        #expect(report["outcome"] as? String == "refused")
                        #expect(report["exitCode"] as? Int == 3)
                        let text = try String(contentsOfFile: volume + "/reports/node1.txt", encoding: .utf8)
                        #expect(text.contains("rejected \(data.path): holds xfs 'data'"))
                        let plan = try Harness.plan(seed: seed, devices: [small[0], data, readOnly])
                        #expect(plan.status == 3)
                        let json = try Harness.planJSON(plan)
                        #expect(json["systemDisk"] is NSNull)
                        #expect((json["rejected"] as? [[String: Any]])?.count == 3)
                    }
                }
            }
        }
    }

    @Test("a mounted disk is never chosen, even with wipe always", .requires(programs: ApplyDeviceTests.tools))
    func mountedDisk() throws {
        let prepare: (String) throws -> Void = { file in try Command("mkfs.ext4", ["-q", "-F", file]).run() }
        try LoopDevice.with(.init(sizeBytes: Harness.gib), prepare: prepare) { disk in
            try Harness.withRoot { root in
                // Grow the mount table well past 4 KiB first: the disk's mount must be found however long it is.
                var binds: [String] = []
                defer { for bind in binds.reversed() { _ = try? Command("umount", [bind]).run() } }
                for index in 0..<80 {
                    let bind = root + "/../binds/\(index)"
                    try FileManager.default.createDirectory(atPath: bind, withIntermediateDirectories: true)
                    try Command("mount", ["--bind", root + "/../binds", bind]).run()
                    binds.append(bind)
                }
                let mountpoint = root + "/../mnt"
                try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
                try Command("mount", [disk.path, mountpoint]).run()
                defer { _ = try? Command("umount", [mountpoint]).run() }
                #expect(FullMountTable.read().entries.count > 80)
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText(disks: [
                    "  system:", "    match: {min_size: 512MiB}", "    wipe: always"]))
                let run = try Harness.apply(seed: seed, root: root, devices: [disk])
                #expect(run.status == 3)
                #expect(run.errorOutput.contains("rejected \(disk.path): is mounted"), "\(run.errorOutput)")
            }
        }
    }

    @Test("two applies at once: one prepares the disk, the other waits and only mounts",
          .requires(programs: ApplyDeviceTests.tools))
    func concurrentApplies() throws {
        let tool = try Products.path("aquarium-firstboot")
        try LoopDevice.with(.init(sizeBytes: Harness.gib)) { disk in
            try Harness.withRoot { root in
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText())
                var processes: [(Process, Pipe)] = []
                for _ in 0..<2 {
                    let process = Process()
                    let pipe = Pipe()
                    process.executableURL = URL(fileURLWithPath: tool)
                    process.arguments = ["apply", "--seed", seed, "--root", root, "--yes", "--no-handoff",
                                         "--only-device", disk.name] + Harness.hermetic
                    process.standardOutput = pipe
                    process.standardError = FileHandle.nullDevice
                    try process.run()
                    processes.append((process, pipe))
                }
                var outputs: [String] = []
                for (process, pipe) in processes {
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    #expect(process.terminationStatus == 0)
                    outputs.append(String(decoding: data, as: UTF8.self))
                }
                #expect(outputs.filter { $0.contains("(create)") }.count == 1, "\(outputs)")
                #expect(outputs.filter { $0.contains("(reuse)") }.count == 1, "\(outputs)")
                try Harness.expectFinalState(device: disk, root: root, sectorSize: 512)
            }
        }
    }

    @Test("a later boot keeps the storage disks the Provisioner turned into OSDs (bluestore), under wipe: never",
          .requires(programs: ApplyDeviceTests.tools))
    func storageDisksStayAfterBecomingOSDs() throws {
        try LoopDevice.withMany([.init(sizeBytes: Harness.gib), .init(sizeBytes: 2 * Harness.gib)]) { loops in
            try Harness.withRoot { root in
                let storage = loops[1]
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText(disks: [
                    "  system:", "    match: {min_size: 512MiB, max_size: 1536MiB}",
                    "  storage:", "    match: {min_size: 1536MiB}", "    wipe: never",
                ]))
                let first = try Harness.apply(seed: seed, root: root, devices: loops)
                #expect(first.status == 0, "\(first.errorOutput)")
                #expect(try Harness.nodeRecord(root).storageDisks.map(\.path) == [storage.path])

                // What `ceph-osd --mkfs` leaves at the start of a raw device: libblkid reports ceph_bluestore.
                let fd = open(storage.path, O_WRONLY)
                try #require(fd >= 0)
                let label = Array("bluestore block device\n\(UUID().uuidString.lowercased())\n".utf8)
                #expect(label.withUnsafeBytes { pwrite(fd, $0.baseAddress, label.count, 0) } == label.count)
                fsync(fd)
                close(fd)
                #expect(try Harness.blkid(storage.path)["TYPE"] == "ceph_bluestore")

                // "Reboot": the record on the system disk lists the disk, so it stays this node's storage disk.
                StateMounts.unmount(root: root)
                let reboot = try Harness.apply(seed: seed, root: root, devices: loops, yes: false)
                #expect(reboot.status == 0, "\(reboot.errorOutput)")
                #expect(reboot.output.contains("this node's storage disk"), "\(reboot.output)")
                #expect(try Harness.nodeRecord(root).storageDisks.map(\.path) == [storage.path])

                // With the state mounted, `plan` reads the record too and agrees.
                let plan = try Harness.planJSON(try Harness.plan(seed: seed, devices: loops, extra: ["--root", root]))
                let planned = (plan["storageDisks"] as? [[String: Any]])?.compactMap { $0["path"] as? String }
                #expect(planned == [storage.path], "\(plan)")
            }
        }
    }

    @Test("second apply only mounts: partition table and filesystem UUID unchanged",
          .requires(programs: ApplyDeviceTests.tools))
    func secondBootMountsOnly() throws {
        try LoopDevice.with(.init(sizeBytes: Harness.gib)) { disk in
            try Harness.withRoot { root in
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText())
                #expect(try Harness.apply(seed: seed, root: root, devices: [disk]).status == 0)
                let table = try Command("sfdisk", ["--json", disk.path]).run().output
                let fsUUID = try Harness.blkid(disk.path + "p1")["UUID"]
                let first = try Harness.nodeRecord(root)
                try Data("state".utf8).write(to: URL(fileURLWithPath: root + "/var/lib/aquarium/keep"))

                // Same boot, already mounted: nothing to do but succeed.
                let again = try Harness.apply(seed: seed, root: root, devices: [disk], yes: false)
                #expect(again.status == 0, "\(again.errorOutput)")
                #expect(again.output.contains("(reuse)"))

                // "Reboot": everything unmounted, then apply without --yes.
                StateMounts.unmount(root: root)
                #expect(Harness.mountpoints(under: root).isEmpty)
                let reboot = try Harness.apply(seed: seed, root: root, devices: [disk], yes: false)
                #expect(reboot.status == 0, "\(reboot.errorOutput)")
                #expect(reboot.output.contains("(reuse)"))
                #expect(reboot.output.contains("steps run: mount, layout, record, handoff"))
                #expect(try Command("sfdisk", ["--json", disk.path]).run().output == table)
                #expect(try Harness.blkid(disk.path + "p1")["UUID"] == fsUUID)
                let second = try Harness.nodeRecord(root)
                #expect(second.nodeUUID == first.nodeUUID)
                #expect(second.createdAt == first.createdAt)
                #expect(FileManager.default.contents(atPath: root + "/var/lib/aquarium/keep") == Data("state".utf8))
                try Harness.expectFinalState(device: disk, root: root, sectorSize: 512)

                // The journal lost (zeroed): the node record on the disk still carries the node's identity.
                StateMounts.unmount(root: root)
                let fd = open(disk.path, O_WRONLY)
                #expect(fd >= 0)
                let zeros = [UInt8](repeating: 0, count: 2 * StepJournal.slotSize)
                #expect(zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, zeros.count, off_t(StepJournal.offset)) } == zeros.count)
                fsync(fd)
                close(fd)
                #expect(StepJournal.read(device: disk.path) == nil)
                let noJournal = try Harness.apply(seed: seed, root: root, devices: [disk], yes: false)
                #expect(noJournal.status == 0, "\(noJournal.errorOutput)")
                #expect(try Harness.nodeRecord(root).nodeUUID == first.nodeUUID)
                #expect(try Harness.nodeRecord(root).createdAt == first.createdAt)
                #expect(try Command("sfdisk", ["--json", disk.path]).run().output == table)

                // Another node's seed never takes this disk.
                StateMounts.unmount(root: root)
                let other = try Harness.writeSeed(root + "/..", Harness.seedText(hostname: "node2"), name: "node2.yaml")
                let refused = try Harness.apply(seed: other, root: root, devices: [disk])
                #expect(refused.status == 3)
                #expect(refused.errorOutput.contains("holds the Aquarium state of another node"))
                #expect(try Command("sfdisk", ["--json", disk.path]).run().output == table)
            }
        }
    }
}

/// What udev does to a whole disk after a descriptor open for writing is closed, in a loop: open it read-only, take
/// its BSD lock without waiting and, when that works, BLKRRPART (the kernel drops and re-adds the partition nodes).
final class PartitionRescanner {
    private let thread: Thread
    private let state: State

    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw MissingCapability(what: "read access to \(path)") }
        close(fd)
        let state = State()
        thread = Thread {
            while !state.isStopped() {
                let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
                if fd >= 0 {
                    if flock(fd, LOCK_EX | LOCK_NB) == 0, ioctl(fd, 0x125F) == 0 { state.reread() }
                    close(fd)
                }
                usleep(2_000)
            }
        }
        self.state = state
        thread.start()
    }

    final class State: @unchecked Sendable {
        private let lock = NSLock()
        private var stopped = false
        private var count = 0
        func isStopped() -> Bool { lock.withLock { stopped } }
        func stop() { lock.withLock { stopped = true } }
        func reread() { lock.withLock { count += 1 } }
        var rereads: Int { lock.withLock { count } }
    }

    var rereads: Int { state.rereads }

    func waitForRereads(_ wanted: Int) throws {
        let deadline = Date().addingTimeInterval(10)
        while state.rereads < wanted {
            guard Date() < deadline else { throw MissingCapability(what: "BLKRRPART on a loop device with --partscan") }
            usleep(10_000)
        }
    }

    /// Stops the loop and waits until its last re-read is over.
    func stop() {
        state.stop()
        while !thread.isFinished { usleep(5_000) }
    }
}
