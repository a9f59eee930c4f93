import Exec
import Foundation

/// Version-1 node records (docs/firstboot.md) for Provisioner tests that run without FirstBoot: storage disks are loop
/// devices named by their stable identity (`file:` + the backing file the kernel reports), as the inventory names them.
public enum NodeRecordFixture {
    /// The stable identity the inventory gives a loop device.
    public static func identity(_ loop: LoopDevice) -> String { identity(path: loop.path, backingFile: loop.backingFile) }

    public static func identity(path: String, backingFile: String) -> String {
        let name = (path as NSString).lastPathComponent
        let reported = (try? String(contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return "file:" + (reported ?? backingFile)
    }

    public static func disk(_ loop: LoopDevice) -> [String: Any] { disk(path: loop.path, backingFile: loop.backingFile) }

    /// A storage disk entry for the loop device at `path` backed by `backingFile`.
    public static func disk(path: String, backingFile: String) -> [String: Any] {
        let size = (try? FileManager.default.attributesOfItem(atPath: backingFile)[.size] as? NSNumber)?.uint64Value ?? 0
        return ["stableIdentity": identity(path: path, backingFile: backingFile), "path": path, "wwn": NSNull(),
                "serial": NSNull(), "byId": [String](), "sizeBytes": size]
    }

    /// SHA-256 (hex) of a file, with coreutils.
    public static func sha256(_ path: String) throws -> String {
        String(try Command("sha256sum", [path]).run().output.prefix(64))
    }

    /// A record for `hostname` with `storage` as its storage disks. The system disk is `systemDisk` when given, else an
    /// identity no disk on this machine has.
    public static func json(hostname: String, cluster: String = "ceph", storage: [LoopDevice], seed: String,
                            systemDisk: LoopDevice? = nil) throws -> String {
        try json(hostname: hostname, cluster: cluster, storageDisks: storage.map(disk), seed: seed, systemDisk: systemDisk)
    }

    public static func json(hostname: String, cluster: String = "ceph", storageDisks: [[String: Any]], seed: String,
                            systemDisk: LoopDevice? = nil) throws -> String {
        let system: [String: Any] = [
            "stableIdentity": systemDisk.map(identity) ?? "serial:AQUARIUM-TEST-NO-SUCH-DISK",
            "path": systemDisk?.path ?? "/dev/aquarium-test-none", "wwn": NSNull(),
            "serial": systemDisk == nil ? "AQUARIUM-TEST-NO-SUCH-DISK" : NSNull(), "byId": [String](),
            "diskGUID": "00000000-0000-0000-0000-000000000000", "partitionUUIDs": [String: String](), "filesystem": "xfs",
            "filesystemUUID": "00000000-0000-0000-0000-000000000000",
        ]
        let record: [String: Any] = [
            "version": 1, "nodeUUID": UUID().uuidString.lowercased(), "hostname": hostname, "cluster": cluster,
            "seedSHA256": FileManager.default.fileExists(atPath: seed) ? try sha256(seed) : String(repeating: "0", count: 64),
            "systemDisk": system, "storageDisks": storageDisks, "bootMedia": NSNull(), "seedPath": seed,
            "createdAt": "2026-11-28T00:00:00Z", "updatedAt": "2026-11-28T00:00:00Z",
        ]
        return String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .prettyPrinted]),
                      as: UTF8.self)
    }

    public static func write(to path: String, hostname: String, cluster: String = "ceph", storage: [LoopDevice],
                             seed: String, systemDisk: LoopDevice? = nil) throws {
        try json(hostname: hostname, cluster: cluster, storage: storage, seed: seed, systemDisk: systemDisk)
            .write(toFile: path, atomically: true, encoding: .utf8)
    }
}
