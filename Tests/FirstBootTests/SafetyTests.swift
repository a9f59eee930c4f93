import Exec
@testable import FirstBoot
import Foundation
import Seed
import Testing
import TestSupport

/// The cases of the safety issue, each replayed exactly on loop devices: every one now ends safely, with the exit code
/// and a message that names the device and the reason, and the data intact.
@Suite("Safety: never the wrong disk, never a foreign seed", .serialized)
struct SafetyTests {
    static let tools = ApplyDeviceTests.tools + ["wipefs", "debugfs", "sha256sum"]

    /// The ext4 partition of `disk` with its label and the content of /precious.txt, read with real tools.
    static func precious(_ disk: LoopDevice) throws -> (label: String?, content: String) {
        try disk.rescanPartitions()
        let label = try Harness.blkid(disk.path + "p1")["LABEL"]
        let content = try Command("debugfs", ["-R", "cat /precious.txt", disk.path + "p1"]).run().output
        return (label, content)
    }

    /// Case 1: an interrupted first boot leaves its journal; the disk is reused by hand (wipefs, sfdisk one partition at
    /// 1 MiB, mkfs.ext4 -L precious, data); the next apply without --yes under wipe: never must not resume onto it.
    @Test(.requires(programs: SafetyTests.tools)) func staleJournalNeverWipesAReusedDisk() throws {
        try Harness.withRoot { root in
            try LoopDevice.with(.init(sizeBytes: 1 << 30)) { disk in
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText(), name: "case1.yaml")
                let interrupted = try Harness.apply(seed: seed, root: root, devices: [disk], extra: ["--fault-inject", "mkfs"])
                #expect(interrupted.killed)
                StateMounts.unmount(root: root)
                let journal = try #require(StepJournal.read(device: disk.path))
                #expect(!journal.isComplete)

                // Reused by hand.
                try Command("wipefs", ["-a", disk.path]).run()
                try Command("sfdisk", ["--quiet", disk.path]).run(input: Data("start=2048, type=83\n".utf8))
                try disk.rescanPartitions()
                let data = root + "/../precious"
                try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
                try Data("the operator's data\n".utf8).write(to: URL(fileURLWithPath: data + "/precious.txt"))
                try Command("mkfs.ext4", ["-q", "-F", "-L", "precious", "-d", data, disk.path + "p1"]).run()
                #expect(StepJournal.read(device: disk.path) == journal, "the stale journal is still on the disk")
                let before = try Harness.sha256(disk.path)

                for yes in [false, true] {
                    let again = try Harness.apply(seed: seed, root: root, devices: [disk], yes: yes)
                    #expect(again.status == 3, "\(again.errorOutput)")
                    #expect(again.errorOutput.contains(disk.path) && again.errorOutput.contains("disks.system.wipe is never"),
                            "\(again.errorOutput)")
                    #expect(again.errorOutput.contains("step journal") && again.errorOutput.contains("stale"), "\(again.errorOutput)")
                    #expect(try Harness.sha256(disk.path) == before, "nothing was written (--yes: \(yes))")
                }
                let kept = try Self.precious(disk)
                #expect(kept.label == "precious")
                #expect(kept.content == "the operator's data\n")
            }
        }
    }

    /// Case 2: node A's signed seed copied to seeds/<B's serial>.yaml (with its .sig) must not wipe B; an expired seed
    /// prepares nothing; another node's Aquarium disk is replaced only by a seed that names that node.
    @Test(.requires(programs: SafetyTests.tools + ["mkfs.ext4"])) func seedsAreBoundToTheirMachine() throws {
        try Harness.withRoot { root in
            try LoopDevice.with(.init(sizeBytes: 1 << 30), prepare: { file in
                try Command("mkfs.ext4", ["-q", "-F", "-L", "b-data", file]).run()
            }) { disk in
                let work = root + "/.."
                let keys = root + "/etc/aquarium/trusted-seed-keys"
                try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
                try SeedSignature.writeKeyPair(privateKeyPath: work + "/signer.key", publicKeyPath: keys + "/signer.pub")
                let privateKey = try SeedSignature.readPrivateKey(path: work + "/signer.key")
                let seedA = Harness.seedText(hostname: "node-a", disks: ["  system:", "    match: {min_size: 512MiB}",
                                                                         "    wipe: always"])
                    .replacingOccurrences(of: "  hostname: node-a\n", with: "  hostname: node-a\n  machine: {serial: NODE-A}\n")
                // The operator's copy mistake, exactly: A's signed seed under B's serial, signature and all.
                let volume = work + "/volume"
                let copied = try Harness.writeSeed(volume, seedA, name: "seeds/NODE-B.yaml")
                _ = try SeedSignature.signFile(path: copied, privateKey: privateKey)
                let serialB = work + "/serial-b"
                try Data("NODE-B\n".utf8).write(to: URL(fileURLWithPath: serialB))
                let before = try Harness.sha256(disk.path)
                let onB = try Harness.apply(seed: volume, root: root, devices: [disk], extra: ["--dmi-serial-file", serialB])
                #expect(onB.status == 3, "\(onB.errorOutput)")
                #expect(onB.errorOutput.contains("bound to another machine") && onB.errorOutput.contains("NODE-B"), "\(onB.errorOutput)")
                #expect(try Harness.sha256(disk.path) == before)
                let report = try String(contentsOfFile: volume + "/reports/NODE-B.txt", encoding: .utf8)
                #expect(report.contains("refused (exit 3)") && report.contains("bound to another machine"), "\(report)")

                // An expired seed (bound to B this time) prepares nothing.
                let expired = try Harness.writeSeed(work, seedA.replacingOccurrences(of: "NODE-A", with: "NODE-B")
                    + "expires: \"2020-01-01T00:00:00Z\"\n", name: "expired.yaml")
                _ = try SeedSignature.signFile(path: expired, privateKey: privateKey)
                let old = try Harness.apply(seed: expired, root: root, devices: [disk], extra: ["--dmi-serial-file", serialB])
                #expect(old.status == 3 && old.errorOutput.contains("expired at 2020-01-01T00:00:00Z"), "\(old.errorOutput)")
                #expect(try Harness.sha256(disk.path) == before)

                // On A itself the same seed is accepted and may wipe (it is bound to this machine).
                let serialA = work + "/serial-a"
                try Data("NODE-A\n".utf8).write(to: URL(fileURLWithPath: serialA))
                let seedOnA = try Harness.writeSeed(work, seedA, name: "a.yaml")
                _ = try SeedSignature.signFile(path: seedOnA, privateKey: privateKey)
                let onA = try Harness.apply(seed: seedOnA, root: root, devices: [disk], extra: ["--dmi-serial-file", serialA])
                #expect(onA.status == 0, "\(onA.errorOutput)")
                let nodeA = try Harness.nodeRecord(root).nodeUUID
                StateMounts.unmount(root: root)
                let table = try Command("sfdisk", ["--json", disk.path]).run().output

                // The same seed, now expired, still mounts A's own disk on a later boot (and prepares nothing).
                let expiredA = try Harness.writeSeed(work, seedA + "expires: \"2020-01-01T00:00:00Z\"\n", name: "a-old.yaml")
                _ = try SeedSignature.signFile(path: expiredA, privateKey: privateKey)
                let later = try Harness.apply(seed: expiredA, root: root, devices: [disk], extra: ["--dmi-serial-file", serialA])
                #expect(later.status == 0 && later.output.contains("reuse"), "\(later.output)\(later.errorOutput)")
                StateMounts.unmount(root: root)

                // Another node's unbound seed with wipe: always never takes A's disk...
                let seedC = Harness.seedText(hostname: "node-c", disks: ["  system:", "    match: {min_size: 512MiB}",
                                                                         "    wipe: always"])
                let unbound = try Harness.writeSeed(work, seedC, name: "c.yaml")
                _ = try SeedSignature.signFile(path: unbound, privateKey: privateKey)
                let taken = try Harness.apply(seed: unbound, root: root, devices: [disk])
                #expect(taken.status == 3, "\(taken.errorOutput)")
                #expect(taken.errorOutput.contains("another node (node \(nodeA), host node-a)")
                        && taken.errorOutput.contains("host.reinstall: \(nodeA)"), "\(taken.errorOutput)")
                #expect(try Command("sfdisk", ["--json", disk.path]).run().output == table)

                // ...unless it names that node.
                let reinstall = try Harness.writeSeed(work, seedC.replacingOccurrences(
                    of: "  hostname: node-c\n", with: "  hostname: node-c\n  reinstall: \(nodeA)\n"), name: "c2.yaml")
                _ = try SeedSignature.signFile(path: reinstall, privateKey: privateKey)
                let replaced = try Harness.apply(seed: reinstall, root: root, devices: [disk])
                #expect(replaced.status == 0, "\(replaced.errorOutput)")
                #expect(try Harness.nodeRecord(root).hostname == "node-c")
                #expect(try Harness.nodeRecord(root).nodeUUID != nodeA)
            }
        }
    }

    /// `seed sign` refuses a seed that may wipe any disk and names no machine, unless --unbound.
    /// Hardware requirements (upstream Aquarium checked them before anything else): a machine short of what the seed
    /// asks is refused (exit 3) before a disk is touched, the reason in the error and in the report on the stick; a
    /// known-bad disk model is kept out with the seed's reason.
    @Test(.requires(programs: SafetyTests.tools)) func requirementsAndDeniedModelsRefuseBeforeTouching() throws {
        try Harness.withRoot { root in
            try LoopDevice.with(.init(sizeBytes: 1 << 30)) { disk in
                let work = root + "/.."
                let volume = work + "/volume"
                let threads = ProcessInfo.processInfo.activeProcessorCount
                _ = try Harness.writeSeed(volume, Harness.seedText(hostname: "node-r")
                    .replacingOccurrences(of: "  requirements: {storage_disks: 0}\n",
                                          with: "  requirements: {cpu_threads: \(threads + 62), storage_disks: 0}\n"))
                let before = try Harness.sha256(disk.path)
                let short = try Harness.apply(seed: volume, root: root, devices: [disk])
                #expect(short.status == 3, "\(short.errorOutput)")
                #expect(short.errorOutput.contains("does not meet the hardware requirements (host.requirements): cpu_threads: needs "
                    + "\(threads + 62) CPU threads, has \(threads)"), "\(short.errorOutput)")
                #expect(try Harness.sha256(disk.path) == before, "a disk was touched")
                let reports = try FileManager.default.contentsOfDirectory(atPath: volume + "/reports").filter { $0.hasSuffix(".txt") }
                let report = try String(contentsOfFile: volume + "/reports/" + (reports.first ?? "none"), encoding: .utf8)
                #expect(report.contains("refused (exit 3)") && report.contains("cpu_threads: needs \(threads + 62) CPU threads"),
                        "\(reports): \(report)")

                // The loop device's model is unknown: an allow list keeps it out, with what the plan says.
                let allowOnly = try Harness.writeSeed(work, Harness.seedText(hostname: "node-r",
                    disks: ["  system:", "    match: {min_size: 512MiB}", "  models:", "    allow:", "      - {model: \"Micron*\"}"]),
                    name: "allow.yaml")
                let kept = try Harness.apply(seed: allowOnly, root: root, devices: [disk])
                #expect(kept.status == 3 && kept.errorOutput.contains("is not in disks.models.allow"), "\(kept.errorOutput)")
                #expect(try Harness.sha256(disk.path) == before)
            }
        }
    }

    @Test func signingAnUnboundWipingSeedIsRefused() throws {
        try withTemporaryDirectory { directory in
            let image = try Products.path("aquarium-image")
            try Command(image, ["seed", "keygen", "--output", directory + "/k"]).run()
            let key = "k"
            let seed = try Harness.writeSeed(directory, Harness.seedText(disks: ["  storage:", "    wipe: always"]))
            let refused = try Command(image, ["seed", "sign", "--key", directory + "/" + key, seed]).run(acceptedStatuses: Set(0...255))
            #expect(refused.status == 3, "\(refused.errorOutput)")
            #expect(refused.errorOutput.contains(seed) && refused.errorOutput.contains("host.machine"), "\(refused.errorOutput)")
            #expect(!FileManager.default.fileExists(atPath: seed + ".sig"))
            let forced = try Command(image, ["seed", "sign", "--key", directory + "/" + key, "--unbound", seed])
                .run(acceptedStatuses: Set(0...255))
            #expect(forced.status == 0, "\(forced.errorOutput)")
            #expect(FileManager.default.fileExists(atPath: seed + ".sig"))
        }
    }

    /// Raw data without a signature (plain dm-crypt, a wiped header) is not "empty" under wipe: never.
    @Test(.requires(programs: SafetyTests.tools)) func unrecognisedDataIsNotEmpty() throws {
        try Harness.withRoot { root in
            try LoopDevice.with(.init(sizeBytes: 1 << 30), prepare: { file in
                let handle = try #require(FileHandle(forWritingAtPath: file))
                try handle.seek(toOffset: 64 * 1024)
                try handle.write(contentsOf: Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }))
                try handle.close()
            }) { disk in
                #expect(try Harness.blkid(disk.path).isEmpty, "libblkid sees nothing")
                let before = try Harness.sha256(disk.path)
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText(), name: "raw.yaml")
                let refused = try Harness.apply(seed: seed, root: root, devices: [disk])
                #expect(refused.status == 3)
                #expect(refused.errorOutput.contains("data libblkid does not recognise"), "\(refused.errorOutput)")
                #expect(try Harness.sha256(disk.path) == before)
                let always = try Harness.writeSeed(root + "/..", Harness.seedText(disks: ["  system:",
                    "    match: {min_size: 512MiB}", "    wipe: always"]), name: "raw-always.yaml")
                #expect(try Harness.apply(seed: always, root: root, devices: [disk]).status == 0)
            }
        }
    }

    /// The disk is claimed exclusively before each destructive step: held by another opener, nothing is written.
    @Test(.requires(programs: SafetyTests.tools)) func aDiskOpenedExclusivelyElsewhereIsNotWritten() throws {
        try Harness.withRoot { root in
            try LoopDevice.with(.init(sizeBytes: 1 << 30)) { disk in
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText(), name: "excl.yaml")
                let fd = open(disk.path, O_RDONLY | O_EXCL | O_CLOEXEC)
                #expect(fd >= 0)
                defer { close(fd) }
                let before = try Harness.sha256(disk.path)
                let busy = try Harness.apply(seed: seed, root: root, devices: [disk])
                #expect(busy.status == 3, "\(busy.errorOutput)")
                #expect(busy.errorOutput.contains(disk.path) && busy.errorOutput.contains("in use"), "\(busy.errorOutput)")
                #expect(try Harness.sha256(disk.path) == before)
            }
        }
    }

    /// One node record: FirstBoot writes it, the Provisioner reads the same type and runs only the seed FirstBoot verified.
    @Test(.requires(programs: SafetyTests.tools)) func nodeRecordRoundTripAndSeedCheck() throws {
        try Harness.withRoot { root in
            try LoopDevice.withMany([.init(sizeBytes: 1 << 30), .init(sizeBytes: 256 << 20)]) { disks in
                let seed = try Harness.writeSeed(root + "/..", Harness.seedText(), name: "rt.yaml")
                let applied = try Harness.apply(seed: seed, root: root, devices: disks)
                #expect(applied.status == 0, "\(applied.errorOutput)")
                let record = try NodeRecord.load(path: root + "/" + NodeRecord.relativePath)
                #expect(record.version == 1 && record.hostname == "node1")
                #expect(record.storageDisks.map(\.stableIdentity) == ["file:" + disks[1].backingFile])
                #expect(record.seedSHA256 == (try Harness.sha256(seed)))
                let provision = try Products.path("aquarium-provision")
                func run() throws -> CommandResult {
                    try Command(provision, ["run", "--node-record", root + "/" + NodeRecord.relativePath, "--root", root,
                                            "--launcher", "systemd"]).run(acceptedStatuses: Set(0...255))
                }
                // Record and seed accepted: it gets as far as the launcher check (systemd needs --root /).
                let accepted = try run()
                #expect(accepted.status == 2 && accepted.errorOutput.contains("--root /"), "\(accepted.errorOutput)")
                // A seed changed after FirstBoot verified it is refused.
                let copy = root + "/" + NodeRecord.seedRelativePath
                try Data((Harness.seedText() + "# changed\n").utf8).write(to: URL(fileURLWithPath: copy))
                let changed = try run()
                #expect(changed.status == 3 && changed.errorOutput.contains("not the one FirstBoot verified"), "\(changed.errorOutput)")
                // A record of another version is an error naming the file.
                let text = try String(contentsOfFile: root + "/" + NodeRecord.relativePath, encoding: .utf8)
                try Data(text.replacingOccurrences(of: "\"version\" : 1", with: "\"version\" : 7").utf8)
                    .write(to: URL(fileURLWithPath: root + "/" + NodeRecord.relativePath))
                let future = try run()
                #expect(future.status == 2 && future.errorOutput.contains("version 7 is not supported"), "\(future.errorOutput)")
            }
        }
    }
}

/// Reports on a seed volume someone else wrote never follow a planted symbolic link.
@Suite("Safety: reports on the seed volume")
struct ReportLinkTests {
    @Test func reportsNeverFollowLinks() throws {
        try withTemporaryDirectory { directory in
            let victim = directory + "/victim"
            try FileManager.default.createDirectory(atPath: victim, withIntermediateDirectories: true)
            try Data("keep me\n".utf8).write(to: URL(fileURLWithPath: victim + "/file"))
            let report = ApplyReport(outcome: "success", exitCode: 0, dmiSerial: nil)
            // reports/ itself is a link: refused, nothing lands in the link's target.
            let linkedVolume = directory + "/linked"
            try FileManager.default.createDirectory(atPath: linkedVolume, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: linkedVolume + "/reports", withDestinationPath: victim)
            #expect(throws: ApplyError.self) { _ = try report.write(to: linkedVolume + "/reports", seed: nil) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: victim) == ["file"])
            // A report name that is a link: the link is replaced, its target untouched.
            let volume = directory + "/volume/reports"
            try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: volume + "/\(report.baseName).txt", withDestinationPath: victim + "/file")
            let paths = try report.write(to: volume, seed: nil)
            #expect(paths.count == 2)
            #expect(try String(contentsOfFile: victim + "/file", encoding: .utf8) == "keep me\n")
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: volume + "/\(report.baseName).txt")) == nil)
            #expect(try String(contentsOfFile: volume + "/\(report.baseName).txt", encoding: .utf8).contains("success"))
        }
    }
}

/// A seed is read at most one byte past the 256 KiB limit, then refused: never read whole.
@Suite("Safety: bounded seed reads")
struct BoundedSeedTests {
    @Test func anOversizedSeedIsRefusedWithoutReadingItWhole() throws {
        try withTemporaryDirectory { directory in
            let seed = directory + "/huge.yaml"
            var text = Harness.seedText()
            text += String(repeating: "# padding padding padding padding padding padding padding padding\n", count: 20_000)
            try Data(text.utf8).write(to: URL(fileURLWithPath: seed))
            let run = try Harness.tool(["plan", "--seed", seed, "--inventory", "/nonexistent/inventory.json"] + Harness.hermetic)
            #expect(run.status == 2, "\(run.errorOutput)")
            #expect(run.errorOutput.contains(seed) && run.errorOutput.contains("262144"), "\(run.errorOutput)")
        }
    }
}
