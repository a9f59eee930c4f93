import BootSlots
import Exec
import Foundation
import GPT
import QEMU
import Testing
import TestSupport

/// The whole path on a real boot: the image built from image/, a seed injected into a copy of the
/// stick, a QEMU/TCG node (OVMF, the stick as USB storage, SATA disks with serials) that provisions
/// itself unattended and powers off (`aquarium.poweroff` on the kernel command line), and checks made
/// from the host without mounting anything.
@Suite("End to end: build, boot from USB, provision", .serialized)
struct EndToEndTests {
    static let gib: UInt64 = 1 << 30

    struct Node {
        var ssd: DiskImage
        var hdds: [DiskImage]
        var disks: [VirtualDisk] {
            [VirtualDisk(path: ssd.path, serial: "AQ-SSD-0001", rotationRate: 1)]
                + hdds.enumerated().map { VirtualDisk(path: $1.path, serial: "AQ-HDD-000\($0 + 1)", rotationRate: 7200) }
        }
    }

    func blankNode(_ name: String) throws -> Node {
        let dir = try E2E.shared.directory(name)
        return Node(ssd: try .blank(dir + "/ssd.raw", sizeBytes: 12 * Self.gib),
                    hdds: [try .blank(dir + "/hdd1.raw", sizeBytes: 20 * Self.gib),
                           try .blank(dir + "/hdd2.raw", sizeBytes: 20 * Self.gib)])
    }

    /// A copy of the image with `seed` (and `extra` files) on its seed volume. By default the node powers off when
    /// done and the Provisioner is not started (FirstBoot is under test).
    func seededStick(_ name: String, seed: String, extra: [(String, String)] = [], profile: E2E.Profile = .minimal,
                     kernelArguments: String = "aquarium.poweroff aquarium.provision=off") throws -> Stick {
        let env = E2E.shared
        let stick = try Stick.copy(of: try env.image(profile), to: try env.directory(name) + "/stick.raw")
        if !kernelArguments.isEmpty { try stick.appendKernelArguments(kernelArguments) }
        try env.inject(stick, seed: seed, as: nil)
        for (path, text) in extra { try env.inject(stick, seed: text, as: path) }
        return stick
    }

    func reportJSON(_ stick: Stick, host: String) throws -> [String: Any] {
        let listing = (try? stick.seedVolumeListing()) ?? "?"
        let text = try #require(try stick.seedVolumeFile("reports/\(host).json"), "no report for \(host); volume: \(listing)")
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func sfdisk(_ path: String) throws -> [String: Any] {
        let json = try Command("sfdisk", ["--json", path]).run().standardOutput
        let table = try JSONSerialization.jsonObject(with: json) as? [String: Any]
        return try #require(table?["partitiontable"] as? [String: Any])
    }

    func stateIdentity(_ disk: DiskImage) throws -> (diskGUID: String, partUUID: String, fsUUID: String, start: Int) {
        let table = try sfdisk(disk.path)
        let parts = try #require(table["partitions"] as? [[String: Any]])
        let state = try #require(parts.first { $0["name"] as? String == "aquarium-state" }, "no aquarium-state partition: \(parts)")
        let start = try #require(state["start"] as? Int)
        let size = try #require(state["size"] as? Int)
        let fsUUID = try Command("blkid", ["-p", "-O", String(start * 512), "-S", String(size * 512), "-s", "UUID", "-o", "value", disk.path])
            .run().output.trimmingCharacters(in: .whitespacesAndNewlines)
        return (try #require(table["id"] as? String), try #require(state["uuid"] as? String), fsUUID, start)
    }

    /// Reads a file from the ext4 state filesystem with debugfs at the partition's offset (no mount).
    func stateFile(_ disk: DiskImage, _ path: String) throws -> String {
        let identity = try stateIdentity(disk)
        return try Command("debugfs", ["-R", "cat /\(path)", "\(disk.path)?offset=\(identity.start * 512)"]).run().output
    }

    /// The journal on the ext4 state filesystem (`state/log/journal`), copied out with debugfs and read with journalctl.
    func stateJournal(_ disk: DiskImage) throws -> String {
        let identity = try stateIdentity(disk)
        return try withTemporaryDirectory { work in
            try Command("debugfs", ["-R", "rdump /state/log/journal \(work)", "\(disk.path)?offset=\(identity.start * 512)"]).run()
            let files = (FileManager.default.enumerator(atPath: work)?.allObjects as? [String] ?? [])
                .filter { $0.hasSuffix(".journal") || $0.hasSuffix(".journal~") }.map { "--file=" + work + "/" + $0 }
            #expect(!files.isEmpty, "no journal files under state/log/journal")
            guard !files.isEmpty else { return "" }
            return try Command("journalctl", files + ["-o", "short-monotonic", "--no-pager"]).run().output
        }
    }

    @Test("happy path, second boot, and a replaced stick: the node selects the small SSD, provisions it and keeps its identity",
          .requires(root: false, programs: ["qemu-system-x86_64", "mtype", "sfdisk", "debugfs", "journalctl"]))
    func happyPathSecondBootReplacedStick() throws {
        let env = E2E.shared
        let node = try blankNode("happy")
        let hddBefore = try node.hdds.map { try $0.fingerprint() }
        let stick = try seededStick("happy", seed: E2E.seed(hostname: "e2e-node-01", filesystem: "ext4"))

        let first = try env.boot("happy-1", stick: stick, disks: node.disks)
        E2E.expectPoweredOff(first, "happy-1")
        #expect(first.console.contains(E2E.handoffMarker), "FirstBoot never handed off; console tail: \(first.console.suffix(3000))")
        let report = try reportJSON(stick, host: "e2e-node-01")
        #expect(report["outcome"] as? String == "success", "report: \(report)")
        #expect(report["exitCode"] as? Int == 0, "report: \(report)")
        #expect(report["mode"] as? String == "create", "a blank disk is partitioned and formatted: \(report)")
        #expect((report["handoff"] as? String)?.hasPrefix("handoff: ") == true, "report: \(report)")
        // OVMF without Secure Boot (OVMF_CODE_4M.fd): the report says UEFI with Secure Boot off.
        let boot = report["boot"] as? [String: Any]
        #expect(boot?["firmware"] as? String == "uefi" && boot?["secureBoot"] as? Bool == false, "report: \(report)")
        #expect(!first.console.contains("Failed to start"), "a unit failed on a good first boot: \(E2E.failedUnits(first.console))")
        // FirstBoot holds the disk's BSD lock while it writes: never while something waits for udev (a CI boot spent
        // 2 × 120 s in libparted's `udevadm settle` when the lock was taken before partitioning).
        #expect(!first.console.contains("Timed out for waiting the udev queue"), "udevadm settle waited for the locked disk")
        let identity = try stateIdentity(node.ssd)
        let record = try #require(try JSONSerialization.jsonObject(with: Data(try stateFile(node.ssd, "state/aquarium/node.json").utf8)) as? [String: Any])
        #expect(record["hostname"] as? String == "e2e-node-01")
        let nodeUUID = try #require(record["nodeUUID"] as? String)
        #expect(try node.hdds.map { try $0.fingerprint() } == hddBefore, "the storage disks changed")
        // The node's journal is on its system disk up to the power-off, not only up to FirstBoot's layout step (journald
        // kept writing to the image's /var/log/journal under the bind mount; the system disk had a copy that ended there).
        let journal = try stateJournal(node.ssd)
        #expect(journal.contains("node record written to /var/lib/aquarium/node.json"), "journal tail: \(journal.suffix(2000))")
        #expect(journal.contains("aquarium-poweroff.service"), "journal tail: \(journal.suffix(2000))")
        env.note("first boot to handoff: \(first.markerTimes[E2E.handoffMarker].map { String(format: "%.1f s", $0) } ?? "n/a"), whole run \(Int(first.seconds)) s")

        // Second boot of the same node: mount only. The first boot's report is removed, so the one read afterwards
        // can only have been written by FirstBoot on this boot.
        for name in ["reports/e2e-node-01.json", "reports/e2e-node-01.txt"] { try stick.removeSeedVolumeFile(name) }
        let second = try env.boot("happy-2", stick: stick, disks: node.disks)
        E2E.expectPoweredOff(second, "happy-2")
        #expect(second.console.contains(E2E.handoffMarker), "FirstBoot never handed off on the second boot")
        #expect(!second.console.contains("Failed to start"), "a unit failed on the second boot: \(E2E.failedUnits(second.console))")
        let report2 = try reportJSON(stick, host: "e2e-node-01")
        #expect(report2["outcome"] as? String == "success", "report: \(report2)")
        #expect(report2["mode"] as? String == "reuse", "the second boot must only mount: \(report2)")
        #expect((report2["handoff"] as? String)?.hasPrefix("handoff: ") == true, "report: \(report2)")
        #expect(report2["nodeUUID"] as? String == nodeUUID, "report: \(report2)")
        let again = try stateIdentity(node.ssd)
        #expect(again.diskGUID == identity.diskGUID)
        #expect(again.partUUID == identity.partUUID)
        #expect(again.fsUUID == identity.fsUUID)
        let record2 = try JSONSerialization.jsonObject(with: Data(try stateFile(node.ssd, "state/aquarium/node.json").utf8)) as? [String: Any]
        #expect(record2?["nodeUUID"] as? String == nodeUUID)

        // Replace the stick: a fresh copy of the image with the same seed brings the node back as itself.
        let fresh = try seededStick("happy-fresh", seed: E2E.seed(hostname: "e2e-node-01", filesystem: "ext4"))
        let third = try env.boot("happy-3", stick: fresh, disks: node.disks)
        E2E.expectPoweredOff(third, "happy-3")
        #expect(third.console.contains(E2E.handoffMarker), "FirstBoot never handed off with the replaced stick")
        let report3 = try reportJSON(fresh, host: "e2e-node-01")
        #expect(report3["outcome"] as? String == "success", "report: \(report3)")
        #expect(report3["mode"] as? String == "reuse", "a replaced stick finds the node's disk and only mounts it: \(report3)")
        #expect(report3["nodeUUID"] as? String == nodeUUID, "report: \(report3)")
        #expect(try stateIdentity(node.ssd).fsUUID == identity.fsUUID)
        #expect(try node.hdds.map { try $0.fingerprint() } == hddBefore)
    }

    @Test("refusal: the only candidate holds xfs and the seed says wipe: never — the node stops, says why, touches nothing",
          .requires(root: false, programs: ["qemu-system-x86_64", "mkfs.xfs", "mtype"]))
    func refusal() throws {
        let env = E2E.shared
        let dir = try env.directory("refusal")
        let disk = try DiskImage.blank(dir + "/data.raw", sizeBytes: 12 * Self.gib)
        try Command("mkfs.xfs", ["-q", "-f", "-L", "data", disk.path]).run()
        let before = try disk.fingerprint()
        let stick = try seededStick("refusal", seed: E2E.seed(hostname: "e2e-refuse", filesystem: "xfs"))
        let run = try env.boot("refusal", stick: stick, disks: [VirtualDisk(path: disk.path, serial: "AQ-DATA-0001", rotationRate: 1)])
        E2E.expectPoweredOff(run, "refusal")
        #expect(run.console.contains("wipe is never") || run.console.contains("disks.system.wipe"), "console tail: \(run.console.suffix(3000))")
        #expect(!run.console.contains(E2E.handoffMarker), "a refused node must not hand off")
        let report = try reportJSON(stick, host: "e2e-refuse")
        // Refused for safety (exit 3), not any failure: a crash of FirstBoot must not pass as a refusal.
        #expect(report["outcome"] as? String == "refused", "report: \(report)")
        #expect(report["exitCode"] as? Int == 3, "report: \(report)")
        #expect(try disk.fingerprint() == before, "the refused disk changed")
    }

    @Test("a per-node seed under seeds/<DMI serial>.yaml wins over seed.yaml; the node reaches nothing outside this machine",
          .requires(root: false, programs: ["qemu-system-x86_64", "mtype", "ip"]))
    func perNodeSeed() throws {
        let env = E2E.shared
        let node = try blankNode("per-node")
        // The outside, as seen from the guest: this host's external address, where a listener counts what arrives.
        // aquarium-netcheck.service (image/) tries a TCP connection there and reports chrony's time sources.
        let outside = try OutsideListener()
        let target = "\(try OutsideListener.hostAddress()):\(outside.port)"
        let stick = try seededStick("per-node", seed: E2E.seed(hostname: "e2e-shared", filesystem: "ext4"),
                                    extra: [("seeds/AQ-NODE-4711.yaml", E2E.seed(hostname: "e2e-node-4711", filesystem: "ext4"))],
                                    kernelArguments: "aquarium.poweroff aquarium.provision=off aquarium.netcheck=\(target)")
        let run = try env.boot("per-node", stick: stick, disks: node.disks, systemSerial: "AQ-NODE-4711")
        E2E.expectPoweredOff(run, "per-node")
        let report = try reportJSON(stick, host: "e2e-node-4711")
        #expect(report["outcome"] as? String == "success", "report: \(report)")
        #expect(report["hostname"] as? String == "e2e-node-4711", "report: \(report)")
        #expect(report["dmiSerial"] as? String == "AQ-NODE-4711", "report: \(report)")
        #expect(try stick.seedVolumeFile("reports/e2e-shared.json") == nil)

        // Item: nothing leaves this machine. The guest's attempt fails at once (QEMU's restrict=on answers with a
        // reset), the listener saw nothing, and chrony has no time source (the seed names no NTP server).
        // Console lines end in "\r\n", one Character in Swift: split on every kind of newline, not on "\n".
        let lines = run.console.split(whereSeparator: \.isNewline)
        let line = lines.first { $0.contains("aquarium-netcheck: tcp \(target) ") }.map(String.init)
        let checked = try #require(line, "aquarium-netcheck did not report; console tail: \(run.console.suffix(3000))")
        #expect(checked.contains(" failed after "), "\(checked)")
        let milliseconds = checked.components(separatedBy: " failed after ").last?.split(separator: " ").first.flatMap { Int($0) }
        #expect((milliseconds ?? .max) < 5000, "the outside connection did not fail at once: \(checked)")
        #expect(outside.connections() == 0, "a connection from the guest reached this host's external address")
        #expect(run.console.contains("aquarium-netcheck: chrony time sources: 0"),
                "\(lines.filter { $0.contains("aquarium-netcheck") })")
        env.note("per-node: \(checked.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    @Test("Secure Boot enforced with Microsoft's keys: a --systemd-boot stick is refused by the firmware (and boots without Secure Boot); the default stick (signed chain) boots to handoff, counting an A/B update's trial in grubenv and marking it good; the same image boots on legacy BIOS",
          .requires(root: false, programs: ["qemu-system-x86_64", "mtype", "sfdisk"]))
    func secureBoot() throws {
        let env = E2E.shared
        let node = try blankNode("secure-boot")
        let before = try node.ssd.fingerprint()
        // The firmware enforces it: the unsigned chain does not start, and no disk and no seed volume file is touched.
        let unsigned = try seededStick("secure-boot-unsigned", seed: E2E.seed(hostname: "e2e-sb", filesystem: "ext4"),
                                       profile: .minimalSystemdBoot)
        let refused = try env.boot("secure-boot-unsigned", stick: unsigned, disks: node.disks, timeout: 150,
                                   stopMarkers: ["Access Denied"], secureBoot: true)
        #expect(refused.ending == .marker("Access Denied"), "OVMF did not refuse the unsigned loader: \(refused.ending); console tail: \(refused.console.suffix(2000))")
        #expect(refused.console.contains("BdsDxe: failed to load Boot0001") && !refused.console.contains("Linux version"))
        #expect(try unsigned.seedVolumeFile("reports/e2e-sb.json") == nil)
        #expect(try node.ssd.fingerprint() == before, "the disk changed although nothing booted")
        // Without Secure Boot the same systemd-boot stick boots to handoff (the chain an operator can still choose).
        let plainNode = try blankNode("systemd-boot")
        let plain = try env.boot("systemd-boot", stick: unsigned, disks: plainNode.disks)
        E2E.expectPoweredOff(plain, "systemd-boot")
        #expect(plain.console.contains(E2E.handoffMarker), "FirstBoot never handed off under systemd-boot; console tail: \(plain.console.suffix(3000))")
        #expect(try unsigned.espFile("EFI/BOOT/BOOTX64.EFI").range(of: Data("systemd-boot".utf8)) != nil, "not systemd-boot")

        // The default chain: shim (Microsoft's CA) -> GRUB (Debian) -> the kernel (Debian) -> FirstBoot, as on stock
        // firmware. The stick carries an update first, written as a node writes one (`update install`, from a copy of
        // the same stick, so slot B's entry has the same command line): GRUB must count the trial in grubenv (save_env
        // under Secure Boot's lockdown) and boot slot B with aquarium.counted; FirstBoot succeeds there and
        // aquarium-slot-good.service marks it good before the node powers off.
        let stick = try seededStick("secure-boot", seed: E2E.seed(hostname: "e2e-sb", filesystem: "ext4"))
        let directory = try env.directory("secure-boot")
        let update = directory + "/update.raw"
        try? FileManager.default.removeItem(atPath: update)
        try Command("cp", ["--sparse=always", stick.path, update]).run()
        defer { try? FileManager.default.removeItem(atPath: update) }
        let parts = try #require(try sfdisk(stick.path)["partitions"] as? [[String: Any]])
        let slotA = try #require(parts.first { $0["name"] as? String == Slot.a.partitionName }?["uuid"] as? String).lowercased()
        let installed = try Products.run("aquarium-provision", ["update", "install", "--stick", stick.path, "--running-root", slotA,
                                                                "--root", directory + "/host", "--no-bmap", update])
        #expect(installed.status == 0, "update install: \(installed.errorOutput)")
        #expect(GrubBoot.tries(inEnvironment: try stick.espFile(GrubBoot.environmentPath)) == StickNames.trialTries)
        let run = try env.boot("secure-boot", stick: stick, disks: node.disks, secureBoot: true)
        E2E.expectPoweredOff(run, "secure-boot")
        #expect(run.console.contains(E2E.handoffMarker), "FirstBoot never handed off; console tail: \(run.console.suffix(3000))")
        let report = try reportJSON(stick, host: "e2e-sb")
        #expect(report["outcome"] as? String == "success", "report: \(report)")
        let boot = report["boot"] as? [String: Any]
        #expect(boot?["firmware"] as? String == "uefi" && boot?["secureBoot"] as? Bool == true, "report: \(report)")
        #expect(try stick.seedVolumeFile("reports/e2e-sb.txt")?.contains("firmware: UEFI, Secure Boot enforced") == true)
        // The kernel knows it too (lockdown follows Secure Boot on Debian's kernel).
        #expect(run.console.contains("secureboot: Secure boot enabled") && run.console.contains("Kernel is locked down from EFI Secure Boot"),
                "the kernel did not log Secure Boot; console head: \(run.console.prefix(4000))")
        // GRUB counted the try and booted slot B; the node carried the counter into the entry and marked it good.
        let entries = try Command("mdir", ["-b", "-/", "-i", "\(stick.path)@@\(try stick.espOffset)", "::/loader/entries"],
                                  environment: ["MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null"]).run().output
        #expect(entries.contains("aquarium-b.conf") && !entries.contains("+"), "slot B not marked good: \(entries)")
        #expect(run.console.contains("is good: FirstBoot and the Provisioner succeeded on it"), "no blessing on the console")
        #expect(GrubBoot.tries(inEnvironment: try stick.espFile(GrubBoot.environmentPath)) == nil, "grubenv still counts")
        #expect(String(decoding: try stick.espFile(StickNames.grubConfigPath), as: UTF8.self).contains("--id good {\n    linux /aquarium/b/vmlinuz"),
                "grub.cfg does not boot slot B")

        // The same image on legacy BIOS (SeaBIOS): boot.img in the MBR, core.img in the BIOS boot partition, the same
        // grub.cfg on the ESP, the same root, seed discovery and FirstBoot.
        let biosNode = try blankNode("legacy-bios")
        let biosStick = try seededStick("legacy-bios", seed: E2E.seed(hostname: "e2e-bios", filesystem: "ext4"))
        let bios = try env.boot("legacy-bios", stick: biosStick, disks: biosNode.disks, legacyBIOS: true)
        E2E.expectPoweredOff(bios, "legacy-bios")
        #expect(bios.console.contains(E2E.handoffMarker), "FirstBoot never handed off on BIOS; console tail: \(bios.console.suffix(3000))")
        #expect(!bios.console.contains("efi: EFI v"), "the kernel saw UEFI firmware: \(bios.console.prefix(3000))")
        let biosReport = try reportJSON(biosStick, host: "e2e-bios")
        #expect(biosReport["outcome"] as? String == "success", "report: \(biosReport)")
        #expect((biosReport["boot"] as? [String: Any])?["firmware"] as? String == "bios", "report: \(biosReport)")
        #expect(try biosStick.seedVolumeFile("reports/e2e-bios.txt")?.contains("firmware: legacy BIOS") == true)
    }

    /// A stick of the locked image with `seed` signed by `key` (`seed sign`) on its seed volume; `trust` is the public
    /// key `seed inject` checks the signature with (the image's own trusted key by default).
    func lockedStick(_ name: String, key: String, trust: String? = nil) throws -> Stick {
        let env = E2E.shared
        let stick = try Stick.copy(of: try env.image(.minimalLocked), to: try env.directory(name) + "/stick.raw")
        let seed = try env.directory(name) + "/seed.yaml"
        try Data(E2E.seed(hostname: "e2e-locked", filesystem: "ext4").utf8).write(to: URL(fileURLWithPath: seed))
        let signed = try Products.run("aquarium-image", ["seed", "sign", "--key", key, seed])
        #expect(signed.status == 0, "\(signed.errorOutput)")
        let inject = try Products.run("aquarium-image", ["seed", "inject", stick.path, seed] + (trust.map { ["--public-key", $0] } ?? []))
        #expect(inject.status == 0, "\(inject.errorOutput)")
        return stick
    }

    @Test("Locked mode, only the operator's certificate enrolled: boots to handoff with a verified root; a UKI signed by another key, Debian's shim, a changed command line, a changed root byte and a seed signed by an untrusted key each stop it, no disk touched",
          .requires(programs: ["qemu-system-x86_64", "sbsign", "sbattach", "virt-fw-vars"]))
    func lockedMode() throws {
        let env = E2E.shared
        let material = try env.lockedMaterial()
        let vars = try env.enrolledVars(material)
        let node = try blankNode("locked")
        let before = try node.ssd.fingerprint()
        let uki = "EFI/BOOT/BOOTX64.EFI"

        // A UKI signed with a key the firmware does not trust: the firmware refuses it.
        let otherKeys = try env.directory("locked") + "/other-keys"
        try? FileManager.default.removeItem(atPath: otherKeys)
        #expect(try Products.run("aquarium-image", ["keys", "init", "--output", otherKeys]).status == 0)
        let resigned = try lockedStick("locked-other-key", key: material.seedKey)
        let scratch = try env.directory("locked-other-key") + "/uki.efi"
        try resigned.espFile(uki).write(to: URL(fileURLWithPath: scratch))
        try Command("sbattach", ["--remove", scratch]).run()
        try Command("sbsign", ["--key", otherKeys + "/aquarium-db.key", "--cert", otherKeys + "/aquarium-db.crt", "--output", scratch, scratch]).run()
        try resigned.replaceESPFile(uki, with: try Data(contentsOf: URL(fileURLWithPath: scratch)))
        let otherKey = try env.boot("locked-other-key", stick: resigned, disks: node.disks, timeout: 150, stopMarkers: ["Access Denied"],
                                    secureBoot: true, varsTemplate: vars)
        #expect(otherKey.ending == .marker("Access Denied") && !otherKey.console.contains("Linux version"),
                "a UKI signed by another key started: \(otherKey.ending); \(otherKey.console.suffix(2000))")

        // Debian's Microsoft-signed chain (the default stick): refused too, Microsoft's CA is not in this db.
        let shim = try seededStick("locked-shim", seed: E2E.seed(hostname: "e2e-locked", filesystem: "ext4"))
        let shimRun = try env.boot("locked-shim", stick: shim, disks: node.disks, timeout: 150, stopMarkers: ["Access Denied"],
                                   secureBoot: true, varsTemplate: vars)
        #expect(shimRun.ending == .marker("Access Denied") && !shimRun.console.contains("Linux version"),
                "shim started under the operator-only db: \(shimRun.ending); \(shimRun.console.suffix(2000))")

        // The command line inside the signed UKI changed (init=/bin/sh instead of systemd.show_status=1): refused too.
        let edited = try lockedStick("locked-cmdline", key: material.seedKey)
        var image = try edited.espFile(uki)
        let original = Data("systemd.show_status=1".utf8)
        let range = try #require(image.range(of: original), "the UKI's command line")
        image.replaceSubrange(range, with: Data("init=/bin/sh         ".utf8))
        try edited.replaceESPFile(uki, with: image)
        let cmdline = try env.boot("locked-cmdline", stick: edited, disks: node.disks, timeout: 150, stopMarkers: ["Access Denied"],
                                   secureBoot: true, varsTemplate: vars)
        #expect(cmdline.ending == .marker("Access Denied") && !cmdline.console.contains("Linux version"),
                "a UKI with a changed command line started: \(cmdline.ending); \(cmdline.console.suffix(2000))")

        // One byte of the root filesystem changed (a byte of the ext4 superblock's volume label, which ext4 itself
        // would not mind): dm-verity stops the kernel when the initramfs first reads it, before FirstBoot exists.
        let changed = try lockedStick("locked-root-changed", key: material.seedKey)
        try changed.flipByte(at: try changed.offset(ofPartitionType: GPTEditor.PartitionType.rootX86_64) + 1024 + 120)
        let tampered = try env.boot("locked-root-changed", stick: changed, disks: node.disks, timeout: 400,
                                    stopMarkers: ["Kernel panic", E2E.handoffMarker], secureBoot: true, varsTemplate: vars)
        #expect(tampered.ending == .marker("Kernel panic") || tampered.ending == .exited(status: 0),
                "\(tampered.ending); \(tampered.console.suffix(3000))")
        #expect(tampered.console.contains("device-mapper: verity") && tampered.console.contains("corrupted"),
                "no verity error; console tail: \(tampered.console.suffix(3000))")
        #expect(!tampered.console.contains("aquarium-firstboot"), "FirstBoot ran from a changed root")
        #expect(try node.ssd.fingerprint() == before, "a disk changed although the root was refused")

        // A seed signed by a key the image does not trust (seed inject told to accept it): FirstBoot refuses it.
        let otherSeedKey = try env.directory("locked") + "/other-seed-key"
        for suffix in ["", ".pub"] { try? FileManager.default.removeItem(atPath: otherSeedKey + suffix) }
        #expect(try Products.run("aquarium-image", ["seed", "keygen", "--output", otherSeedKey]).status == 0)
        let untrusted = try lockedStick("locked-untrusted-seed", key: otherSeedKey, trust: otherSeedKey + ".pub")
        let refused = try env.boot("locked-untrusted-seed", stick: untrusted, disks: node.disks, secureBoot: true, varsTemplate: vars)
        E2E.expectPoweredOff(refused, "locked-untrusted-seed")
        #expect(!refused.console.contains(E2E.handoffMarker))
        #expect(refused.console.contains("which is not trusted"), "console tail: \(refused.console.suffix(3000))")
        #expect(try node.ssd.fingerprint() == before, "a disk changed although the seed was refused")

        // The untouched stick: firmware checks the operator's signature, the initramfs opens the root under
        // dm-verity, FirstBoot hands off, and the kernel knows it runs under Secure Boot.
        let stick = try lockedStick("locked", key: material.seedKey)
        let run = try env.boot("locked", stick: stick, disks: node.disks, secureBoot: true, varsTemplate: vars)
        E2E.expectPoweredOff(run, "locked")
        #expect(run.console.contains(E2E.handoffMarker), "FirstBoot never handed off; console tail: \(run.console.suffix(3000))")
        #expect(run.console.contains("opened read-only under dm-verity"), "console head: \(run.console.prefix(6000))")
        #expect(run.console.contains("root=/dev/mapper/aquarium-root") && run.console.contains("secureboot: Secure boot enabled"))
        let report = try reportJSON(stick, host: "e2e-locked")
        #expect(report["outcome"] as? String == "success", "report: \(report)")
        #expect((report["boot"] as? [String: Any])?["secureBoot"] as? Bool == true)
    }
}
