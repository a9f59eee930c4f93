import Exec
import Foundation
import TestSupport
import Testing

/// Case 3 of the safety issue, replayed exactly: the node record's storage disk is gone and another disk now has its
/// kernel name. The Provisioner finds disks by identity only: it skips and reports the missing one and never touches
/// the disk that took its name, whatever the seed's wipe rule.
@Suite(.serialized) struct StorageIdentityTests {
    @Test(.requires(programs: ["losetup", "mkfs.ext4", "sha256sum", "blkid"]))
    func aPulledDiskIsNeverReplacedByWhateverHasItsName() throws {
        try withTemporaryDirectory { directory in
            let original = directory + "/aquarium-loop-osd.img", intruder = directory + "/aquarium-loop-other.img"
            for file in [original, intruder] {
                try Command("truncate", ["-s", "256M", file]).run()
            }
            try Command("mkfs.ext4", ["-q", "-F", "-L", "someone-else", intruder]).run()
            let device = try Command("losetup", ["--find", "--show", original]).run().output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            var attached = device
            defer { _ = try? Command("losetup", ["--detach", attached]).run(acceptedStatuses: Set(0...255)) }
            let seed = directory + "/seed.yaml"
            try "version: 1\nhost: {hostname: node-01}\ndisks:\n  storage: {wipe: always}\ncluster: {role: bootstrap}\n"
                .write(toFile: seed, atomically: true, encoding: .utf8)
            let record = directory + "/node.json"
            try NodeRecordFixture.json(hostname: "node-01", storageDisks: [NodeRecordFixture.disk(path: device, backingFile: original)],
                                       seed: seed).write(toFile: record, atomically: true, encoding: .utf8)
            // The disk is pulled; another one is attached under the same kernel name.
            try Command("losetup", ["--detach", device]).run()
            try Command("losetup", [device, intruder]).run()
            attached = device
            let before = try Command("sha256sum", [intruder]).run().output

            let root = directory + "/root"
            let result = try Command(try Products.path("aquarium-provision"),
                                     ["run", "--seed", seed, "--node-record", record, "--root", root, "--launcher", "process"])
                .run(acceptedStatuses: Set(0...255))
            #expect(result.status == 1, "\(result.errorOutput)")
            #expect(result.errorOutput.contains("file:" + original) && result.errorOutput.contains("identity only"),
                    "\(result.errorOutput)")
            #expect(try Command("sha256sum", [intruder]).run().output == before, "the disk with the old name is untouched")
            let label = try Command("blkid", ["-p", "-o", "value", "-s", "LABEL", device]).run().output
            #expect(label.trimmingCharacters(in: .whitespacesAndNewlines) == "someone-else")
            #expect(!FileManager.default.fileExists(atPath: root + "/etc/ceph/ceph.conf"), "nothing was created")
            let events = try String(contentsOfFile: root + "/var/lib/aquarium/events.jsonl", encoding: .utf8)
            #expect(events.contains("disk.missing"))
            var info = stat()
            #expect(stat(root + "/var/lib/aquarium/events.jsonl", &info) == 0 && info.st_mode & 0o777 == 0o600)
            let status = try Command(try Products.path("aquarium-provision"), ["status", "--root", root])
                .run(acceptedStatuses: Set(0...255))
            #expect(status.output.contains("missing") && status.output.contains("file:" + original), "\(status.output)")
        }
    }
}
