import Disks
import Exec
import FileLayer
import Foundation
import GPT
import Logging
import NodeContract
import Parted
import Seed

/// The destructive steps of `apply` on the chosen disk, each under an exclusive claim.
extension ApplyEngine {
    // MARK: - disk steps

    /// Runs `body` while holding `disk` exclusively, after checking it is still the planned disk (exit 3 otherwise).
    /// A check that writes nothing opens the disk read-only: closing a descriptor that was open for writing makes
    /// udev re-read the partition table.
    func exclusively(_ disk: Disk, writable: Bool = true, _ body: (DiskClaim) throws -> Void) throws {
        let claim: DiskClaim
        do {
            claim = try DiskClaim(disk, writable: writable, logger: logger)
        } catch {
            throw ApplyError(.refused, "refused: \(error.message)")
        }
        defer { claim.close() }
        try body(claim)
    }

    /// A fresh GPT with one partition over the whole disk, 1 MiB aligned; the kernel is told (BLKPG).
    func createTable(_ disk: Disk) throws {
        let device = try PartedDevice(path: disk.path)
        defer { device.close() }
        let table = try PartedDisk.fresh(on: device, type: "gpt")
        try table.append([PartitionRequest(name: AquariumLayout.partitionName, sizeBytes: nil)])
        try table.commit(informKernel: true)
    }

    /// The identities libparted cannot set: disk GUID, the /var type GUID and the derived PARTUUID.
    func setIdentities(_ disk: Disk, _ identity: Identity) throws {
        var editor = try GPTEditor(path: disk.path, sectorSize: disk.logicalSectorSize)
        guard let diskGUID = UUID(uuidString: identity.diskGUID), let partUUID = UUID(uuidString: identity.partitionUUID),
              let type = UUID(uuidString: AquariumLayout.partitionType) else {
            throw ApplyError(.runtime, "\(disk.path): the journal holds malformed GUIDs; wipe the disk and run again")
        }
        guard editor.entries.map(\.number) == [1], editor.entries[0].name == AquariumLayout.partitionName else {
            throw ApplyError(.runtime, "\(disk.path): unexpected partition table after partitioning: "
                + editor.entries.map { "\($0.number) '\($0.name)'" }.joined(separator: ", "))
        }
        editor.setDiskGUID(diskGUID)
        try editor.setPartition(number: 1, typeGUID: type, uniqueGUID: partUUID)
        try editor.write()
    }

    func makeFilesystem(partition: String, disk: Disk, _ identity: Identity) throws {
        try ensurePartitionNode(disk: disk.path, partition: partition)
        let command: Command
        switch identity.filesystem {
        case "ext4":
            command = Command("mkfs.ext4", ["-F", "-q", "-L", AquariumLayout.filesystemLabel, "-U", identity.filesystemUUID,
                                            partition])
        default:
            command = Command("mkfs.xfs", ["-f", "-q", "-L", AquariumLayout.filesystemLabel, "-m", "uuid=\(identity.filesystemUUID)",
                                           partition])
        }
        try command.run()
    }

    /// The partition node appears once the kernel knows the table (BLKPG from libparted, or partx after a crash).
    func ensurePartitionNode(disk: String, partition: String) throws {
        if waitForBlockDevice(partition, seconds: 0.5) { return }
        _ = try? Command("partx", ["--add", "--nr", "1", disk]).run(acceptedStatuses: [0, 1])
        _ = try? Command("partx", ["--update", "--nr", "1", disk]).run(acceptedStatuses: [0, 1])
        guard waitForBlockDevice(partition, seconds: 5) else {
            throw ApplyError(.runtime, "\(partition) did not appear after partitioning \(disk); check `partx --show \(disk)`")
        }
    }

    func waitForBlockDevice(_ path: String, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            var info = stat()
            if stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFBLK { return true }
            usleep(50_000)
        } while Date() < deadline
        return false
    }
}
