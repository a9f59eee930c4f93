import Exec
@testable import FirstBoot
import Foundation
import Testing
import TestSupport

/// Helpers for the device tests: seeds, running the built tool against a target root restricted to the test's own
/// loop devices, and reading results back with real tools.
enum Harness {
    static let mib: UInt64 = 1 << 20
    static let gib: UInt64 = 1 << 30

    /// Seed text with the given `disks:` section lines (each already indented by two spaces).
    static func seedText(hostname: String = "node1", disks: [String] = [], secretToken: Bool = false) -> String {
        var text = """
            version: 1
            host:
              hostname: \(hostname)

            """
        let systemLines = disks.isEmpty ? ["  system:", "    match: {min_size: 512MiB}"] : disks
        // These tests are about the system disk: without a storage section the bootstrap node is monitor-only, as a
        // seed says explicitly (a bootstrap node needs one storage disk by default).
        if !systemLines.contains(where: { $0.hasPrefix("  storage") }) && !secretToken {
            text += "  requirements: {storage_disks: 0}\n"
        }
        text += "disks:\n" + systemLines.joined(separator: "\n") + "\n"
        if secretToken {
            text += "cluster:\n  role: join\n  join:\n    address: 10.0.0.1\n    token: AQBsecretTOKENvalue==\n"
        } else {
            text += "cluster:\n  role: bootstrap\n"
        }
        return text
    }

    static func writeSeed(_ directory: String, _ text: String, name: String = "seed.yaml") throws -> String {
        let path = directory + "/" + name
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    struct Run {
        var status: Int32
        var killed: Bool
        var output: String
        var errorOutput: String
    }

    /// Runs `aquarium-firstboot` with `arguments`; a run killed by a signal (fault injection) is reported, not thrown.
    static func tool(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        // Its own TMPDIR, removed afterwards: a run that fault injection kills cannot remove its copies of the seed
        // volume and its report staging itself (on a node they are in /run, gone at the next boot).
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("aquarium-firstboot-run-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let command = Command(try Products.path("aquarium-firstboot"), arguments,
                              environment: environment.merging(["TMPDIR": scratch]) { given, _ in given })
        do {
            let result = try command.run(acceptedStatuses: Set(0...255))
            return Run(status: result.status, killed: false, output: result.output, errorOutput: result.errorOutput)
        } catch {
            guard error.reason?.hasPrefix("killed by signal") == true else { throw error }
            return Run(status: -1, killed: true, output: "", errorOutput: error.standardError)
        }
    }

    /// `apply` against `root`, seeing only `devices`.
    static func apply(seed: String, root: String, devices: [LoopDevice], extra: [String] = [], yes: Bool = true) throws -> Run {
        var arguments = ["apply", "--seed", seed, "--root", root, "--no-handoff"]
        if yes { arguments.append("--yes") }
        for device in devices { arguments += ["--only-device", device.name] }
        return try tool(arguments + hermetic + extra)
    }

    static func plan(seed: String, devices: [LoopDevice], json: Bool = true, extra: [String] = []) throws -> Run {
        var arguments = ["plan", "--seed", seed]
        if json { arguments.append("--json") }
        for device in devices { arguments += ["--only-device", device.name] }
        return try tool(arguments + hermetic + extra)
    }

    /// No kernel command line, DMI serial or NICs of the host: tests never depend on them.
    static let hermetic = ["--cmdline", "/nonexistent/cmdline", "--dmi-serial-file", "/nonexistent/serial",
                           "--net-dir", "/nonexistent/net"]

    static func planJSON(_ run: Run) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], "\(run.output)")
    }

    /// `sfdisk --json DEVICE` as a dictionary (the partition table as a real reader sees it).
    static func sfdisk(_ device: String) throws -> [String: Any] {
        let result = try Command("sfdisk", ["--json", device]).run()
        let object = try #require(try JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
        return try #require(object["partitiontable"] as? [String: Any])
    }

    /// `blkid -p -o export DEVICE` as key/value pairs (empty when nothing is found).
    static func blkid(_ device: String) throws -> [String: String] {
        let result = try Command("blkid", ["-p", "-o", "export", device]).run(acceptedStatuses: [0, 2])
        var values: [String: String] = [:]
        for line in result.output.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        return values
    }

    /// SHA-256 of a whole file or device (sha256sum: much faster than hashing in a debug build).
    static func sha256(_ path: String) throws -> String {
        let output = try Command("sha256sum", [path]).run().output
        return String(output.prefix { $0 != " " })
    }

    static func nodeRecord(_ root: String) throws -> NodeRecord {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/" + NodeRecord.relativePath))
        return try JSONDecoder().decode(NodeRecord.self, from: data)
    }

    static func mountpoints(under root: String) -> [String] {
        let resolved = ApplyEngine.absolute(root)
        // Not String(contentsOfFile:): it stops after 4 KiB of a /proc file.
        return FullMountTable.read().entries.map(\.mountpoint).filter { $0.hasPrefix(resolved + "/") }.sorted()
    }

    /// A target root, the mounts `apply` makes in it taken down however the body ends.
    static func withRoot<T>(_ body: (String) throws -> T) throws -> T {
        try withTemporaryDirectory { directory in
            let root = directory + "/root"
            try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
            try Data("image\n".utf8).write(to: URL(fileURLWithPath: root + "/etc/hostname"))
            try FileManager.default.createDirectory(atPath: root + "/var/log", withIntermediateDirectories: true)
            try Data("from the image\n".utf8).write(to: URL(fileURLWithPath: root + "/var/log/image.log"))
            defer { StateMounts.unmount(root: root) }
            return try body(root)
        }
    }

    /// Checks the finished layout on `device` against the node record, with sfdisk and blkid.
    static func expectFinalState(device: LoopDevice, root: String, sectorSize: Int, filesystem: String = "xfs",
                                 hostname: String = "node1", sourceLocation: SourceLocation = #_sourceLocation) throws {
        let record = try nodeRecord(root)
        let table = try sfdisk(device.path)
        #expect(table["label"] as? String == "gpt", sourceLocation: sourceLocation)
        #expect(table["sectorsize"] as? Int == sectorSize, sourceLocation: sourceLocation)
        #expect((table["id"] as? String)?.lowercased() == record.systemDisk.diskGUID, sourceLocation: sourceLocation)
        let partitions = try #require(table["partitions"] as? [[String: Any]], sourceLocation: sourceLocation)
        #expect(partitions.count == 1, sourceLocation: sourceLocation)
        let part = try #require(partitions.first, sourceLocation: sourceLocation)
        #expect(part["name"] as? String == "aquarium-state", sourceLocation: sourceLocation)
        #expect((part["type"] as? String)?.lowercased() == AquariumLayout.partitionType, sourceLocation: sourceLocation)
        let expectedUUID = AquariumLayout.statePartitionUUID(cluster: "ceph", hostname: hostname)
        #expect((part["uuid"] as? String)?.lowercased() == expectedUUID, sourceLocation: sourceLocation)
        #expect(record.systemDisk.partitionUUIDs["aquarium-state"] == expectedUUID, sourceLocation: sourceLocation)
        let start = try #require(part["start"] as? Int, sourceLocation: sourceLocation)
        let size = try #require(part["size"] as? Int, sourceLocation: sourceLocation)
        #expect(start * sectorSize == 1 << 20, "1 MiB aligned start", sourceLocation: sourceLocation)
        #expect((start + size) * sectorSize % (1 << 20) == 0, "1 MiB aligned end", sourceLocation: sourceLocation)
        let fs = try blkid(device.path + "p1")
        #expect(fs["TYPE"] == filesystem, sourceLocation: sourceLocation)
        #expect(fs["LABEL"] == "aquarium", sourceLocation: sourceLocation)
        #expect(fs["UUID"] == record.systemDisk.filesystemUUID, sourceLocation: sourceLocation)
        #expect(record.hostname == hostname, sourceLocation: sourceLocation)
        let resolved = ApplyEngine.absolute(root)
        #expect(mountpoints(under: root) == [resolved + "/etc", resolved + "/var/lib/aquarium", resolved + "/var/lib/aquarium-system",
                                           resolved + "/var/lib/ceph", resolved + "/var/log"], sourceLocation: sourceLocation)
        // The image's files are still visible through the overlay and the copied /var/log.
        #expect(FileManager.default.fileExists(atPath: root + "/etc/hostname"), sourceLocation: sourceLocation)
        #expect(FileManager.default.fileExists(atPath: root + "/var/log/image.log"), sourceLocation: sourceLocation)
        for unit in ["var-lib-aquarium\\x2dsystem.mount", "var-lib-aquarium.mount", "var-lib-ceph.mount", "var-log.mount"] {
            let text = (try? String(contentsOfFile: root + "/etc/systemd/system/" + unit, encoding: .utf8)) ?? ""
            #expect(!text.isEmpty, "unit \(unit)", sourceLocation: sourceLocation)
        }
        let stateUnit = (try? String(contentsOfFile: root + "/etc/systemd/system/var-lib-aquarium\\x2dsystem.mount", encoding: .utf8)) ?? ""
        #expect(stateUnit.contains("What=/dev/disk/by-uuid/\(record.systemDisk.filesystemUUID)"), sourceLocation: sourceLocation)
        let journal = try #require(StepJournal.read(device: device.path), sourceLocation: sourceLocation)
        #expect(journal.isComplete, sourceLocation: sourceLocation)
        #expect(journal.nodeUUID == record.nodeUUID, sourceLocation: sourceLocation)
    }

    /// `apply` without `--seed`: the seed is found on the AQUASEED volume among `devices` (a FAT loop device, read and
    /// written back with mtools as on a node), with the hermetic kernel command line, DMI serial and NICs.
    static func applyFromVolume(root: String, devices: [LoopDevice], extra: [String] = []) throws -> Run {
        var arguments = ["apply", "--root", root, "--no-handoff", "--yes"]
        for device in devices { arguments += ["--only-device", device.name] }
        return try tool(arguments + hermetic + extra)
    }

    /// A file from a FAT image or device (mtools), nil when it is not there.
    static func fatFile(_ image: String, _ name: String) throws -> String? {
        let result = try Command("mtype", ["-i", image, "::" + name]).run(acceptedStatuses: [0, 1])
        return result.status == 0 ? result.output : nil
    }

    /// Prepares a backing file as an AQUASEED FAT volume holding `seed` as seed.yaml (like `aquarium-image seed inject`).
    static func makeSeedVolume(_ file: String, seed: String) throws {
        try Command("mkfs.vfat", ["-n", "AQUASEED", file]).run()
        let text = FileManager.default.temporaryDirectory.appendingPathComponent("seed-\(UUID().uuidString).yaml").path
        defer { try? FileManager.default.removeItem(atPath: text) }
        try Data(seed.utf8).write(to: URL(fileURLWithPath: text))
        try Command("mcopy", ["-i", file, text, "::seed.yaml"]).run()
    }

    /// True when every byte of the device is zero (a blank disk nothing wrote to): `cmp` against /dev/zero over the
    /// device's size. As strong as comparing hashes for a disk that started blank, and much cheaper than hashing.
    static func isAllZero(_ device: String) throws -> Bool {
        let size = try Command("blockdev", ["--getsize64", device]).run().output.trimmingCharacters(in: .whitespacesAndNewlines)
        return try Command("cmp", ["-s", "-n", size, device, "/dev/zero"]).run(acceptedStatuses: [0, 1]).status == 0
    }
}
