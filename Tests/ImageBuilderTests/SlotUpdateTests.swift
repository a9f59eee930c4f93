import BootSlots
import Exec
import Foundation
import ImageBuilder
import Logging
import Parted
import Provisioner
import Testing
import TestSupport

/// `aquarium-provision update` on image files: a v1 stick updated from a v2 image (slot B written and read back, its
/// kernel, initrd and counted entry on the ESP), blessing as systemd-bless-boot would, the rollback report, refusals.
/// The boots themselves are scripts/update-demo (QEMU).
@Suite struct SlotUpdateTests {
    static let mtools = ["MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1"]

    struct Fixture {
        let directory: String
        let stick: String
        let v2: StickBuilder.Result
        let runningA: String
        let events: EventLog

        init(_ directory: String) throws {
            self.directory = directory
            let v1 = try ImageFixtures.assemble(in: directory, tag: "v1", release: "v1")
            v2 = try ImageFixtures.assemble(in: directory, tag: "v2", release: "v2", compress: true) { root in
                try Data("v2\n".utf8).write(to: URL(fileURLWithPath: root + "/etc/v2-only"))
            }
            stick = directory + "/stick.raw"
            try Command("cp", ["--sparse=always", v1.artifacts.image, stick]).run()
            runningA = try #require(v1.assembly.partition(.root)).partitionGUID.uuidString.lowercased()
            events = EventLog(path: directory + "/events.jsonl")
        }

        func updater(running: String? = nil) throws -> SlotUpdater {
            SlotUpdater(stick: try BootStick.open(stick), runningRoot: running ?? runningA, events: events,
                        workDirectory: directory + "/work", logger: Logger(label: "test"))
        }

        func entries() throws -> [String] { try BootStick.open(stick).espVolume.list(StickNames.entriesDirectory) }

        func rename(_ from: String, _ to: String) throws {
            try BootStick.open(stick).espVolume.rename("\(StickNames.entriesDirectory)/\(from)", to: to)
        }

        func bytes(_ path: String, offset: UInt64, count: UInt64) throws -> Data {
            let handle = try #require(FileHandle(forReadingAtPath: path))
            defer { try? handle.close() }
            try handle.seek(toOffset: offset)
            return try handle.read(upToCount: Int(count)) ?? Data()
        }
    }

    @Test("v1 stick updated from v2: slot B holds v2's root, the ESP its kernel and a +3 entry; blessed as systemd-bless-boot would",
          .requires(root: false, programs: ImageFixtures.programs + ["mren", "mdel"]))
    func updateAndBless() throws {
        try withTemporaryDirectory { directory in
            let f = try Fixture(directory)
            #expect(try f.entries() == ["aquarium-a.conf"])
            let installed = try f.updater().install(image: f.v2.artifacts.image)
            #expect(installed == SlotUpdater.Installed(slot: .b, release: "v2", entryFileName: "aquarium-b+3.conf",
                                                       bytesWritten: installed.bytesWritten))
            #expect(try f.entries() == ["aquarium-a.conf", "aquarium-b+3.conf"])

            let stick = try BootStick.open(f.stick)
            let slotB = try #require(stick.slots[.b])
            let v2Root = try #require(f.v2.assembly.partition(.root))
            #expect(try f.bytes(f.stick, offset: slotB.offsetBytes, count: v2Root.sizeBytes)
                    == f.bytes(f.v2.artifacts.image, offset: v2Root.offsetBytes, count: v2Root.sizeBytes))
            let probe = try ImageFixtures.blkid(f.stick, offset: slotB.offsetBytes)
            #expect(probe["LABEL"] == "aquarium-root")

            let entryText = String(decoding: try stick.espVolume.read("loader/entries/aquarium-b+3.conf"), as: UTF8.self)
            let entry = try #require(SlotEntry.parse(entryText))
            #expect(entry == SlotEntry(slot: .b, release: "v2", generation: 2, rootPartitionUUID: slotB.uuid,
                                       commandLine: ImageFixtures.commandLine))
            #expect(try stick.espVolume.read("aquarium/b/vmlinuz") == stick.espVolume.read("aquarium/a/vmlinuz"))

            // systemd-boot counts the first try and boots slot B; FirstBoot and the Provisioner succeed; it is marked good.
            try f.rename("aquarium-b+3.conf", "aquarium-b+2-1.conf")
            let text = try f.updater(running: slotB.uuid).bless(countedEntry: "aquarium-b+2-1.conf")
            #expect(text?.contains("v2 in slot B is good") == true)
            #expect(try f.entries() == ["aquarium-a.conf", "aquarium-b.conf"])
            #expect(f.events.read().map(\.event) == ["update.started", "update.written", "update.blessed"])

            // The next update goes to slot A, removing its old entry first, with the next generation; from NAME.raw.zst
            // (decompressed with libarchive into a sparse file: no zstd program on the node).
            let compressed = try #require(f.v2.artifacts.compressed)
            let next = try f.updater(running: slotB.uuid).install(image: compressed)
            #expect(next.slot == .a && next.entryFileName == "aquarium-a+3.conf")
            #expect(try f.entries() == ["aquarium-a+3.conf", "aquarium-b.conf"])
            let again = String(decoding: try stick.espVolume.read("loader/entries/aquarium-a+3.conf"), as: UTF8.self)
            #expect(SlotEntry.parse(again)?.generation == 3)
            let slotA = try #require(stick.slots[.a])
            #expect(try f.bytes(f.stick, offset: slotA.offsetBytes, count: v2Root.sizeBytes)
                    == f.bytes(f.v2.artifacts.image, offset: v2Root.offsetBytes, count: v2Root.sizeBytes))
        }
    }

    @Test("tries used up: the rollback is reported once, as an event, and the exhausted entry is put aside",
          .requires(root: false, programs: ImageFixtures.programs + ["mren", "mdel"]))
    func rollback() throws {
        try withTemporaryDirectory { directory in
            let f = try Fixture(directory)
            _ = try f.updater().install(image: f.v2.artifacts.image)
            // Three failed tries of slot B: systemd-boot renamed it to +0-3 and booted slot A again.
            try f.rename("aquarium-b+3.conf", "aquarium-b+0-3.conf")
            let messages = try f.updater().reportRollback()
            #expect(messages.count == 1)
            #expect(messages.first?.contains("the update to v2 failed") == true)
            #expect(messages.first?.contains("rolled back to v1 in slot A") == true)
            #expect(try f.entries() == ["aquarium-a.conf", "aquarium-b+0-3.conf.rolled-back"])
            #expect(f.events.read().last?.event == "update.rolled-back")
            #expect(try f.updater().reportRollback().isEmpty, "reported once")
            #expect(try SlotsView.read(BootStick.open(f.stick), runningRoot: f.runningA).state(of: .b) == "failed (rolled back), not booted")
        }
    }

    @Test("rollback on purpose: the other slot's good release boots next on trial, no root written; refused while nothing good is there",
          .requires(root: false, programs: ImageFixtures.programs + ["mren", "mdel"]))
    func rollbackOnPurpose() throws {
        try withTemporaryDirectory { directory in
            let f = try Fixture(directory)
            func refusal(_ running: String? = nil) -> String {
                do { _ = try f.updater(running: running).rollback(); return "not refused" }
                catch let error as ProvisionError { return error.exitCode == .refused ? error.description : "not a refusal: \(error)" }
                catch { return "\(error)" }
            }
            #expect(refusal().contains("slot B holds no image"))
            _ = try f.updater().install(image: f.v2.artifacts.image)
            #expect(refusal().contains("slot B holds an update waiting for its first boot (aquarium-b+3.conf)"))
            let stick = try BootStick.open(f.stick)
            let slotA = try #require(stick.slots[.a]), slotB = try #require(stick.slots[.b])
            try f.rename("aquarium-b+3.conf", "aquarium-b+2-1.conf")
            _ = try f.updater(running: slotB.uuid).bless(countedEntry: "aquarium-b+2-1.conf")
            let roots = try [slotA, slotB].map { try f.bytes(f.stick, offset: $0.offsetBytes, count: $0.sizeBytes) }

            // v2 in slot B runs; the operator goes back to v1.
            let switched = try f.updater(running: slotB.uuid).rollback()
            #expect(switched.slot == .a && switched.release == "v1" && switched.entryFileName == "aquarium-a+3.conf")
            #expect(try f.entries() == ["aquarium-a+3.conf", "aquarium-b.conf"])
            let text = String(decoding: try stick.espVolume.read("loader/entries/aquarium-a+3.conf"), as: UTF8.self)
            #expect(SlotEntry.parse(text) == SlotEntry(slot: .a, release: "v1", generation: 3, rootPartitionUUID: slotA.uuid,
                                                       commandLine: ImageFixtures.commandLine))
            #expect(try [slotA, slotB].map { try f.bytes(f.stick, offset: $0.offsetBytes, count: $0.sizeBytes) } == roots,
                    "no root was written")
            #expect(f.events.read().last?.event == "update.rollback")
            #expect(f.events.read().last?.detail?.contains("v1 in slot A boots next, on trial") == true)
            #expect(refusal(slotB.uuid).contains("slot A holds an update waiting for its first boot (aquarium-a+3.conf)"))

            // systemd-boot boots it (generation 3 sorts first); while on trial, no second switch; then it is good.
            try f.rename("aquarium-a+3.conf", "aquarium-a+2-1.conf")
            #expect(refusal().contains("aquarium-a+2-1.conf is still on trial"))
            _ = try f.updater().bless(countedEntry: "aquarium-a+2-1.conf")
            #expect(try f.entries() == ["aquarium-a.conf", "aquarium-b.conf"])
            #expect(try SlotsView.read(BootStick.open(f.stick), runningRoot: f.runningA).state(of: .b).hasPrefix("good"))
        }
    }

    @Test("the signed chain (--secure-boot): shim, MokManager, GRUB, a grub.cfg booting slot A and GRUB's environment block",
          .requires(root: false, programs: ImageFixtures.programs + ImageFixtures.signedChainPrograms + ["mren", "mdel", "grub-script-check"]))
    func signedChain() throws {
        try withTemporaryDirectory { directory in
            let signed = try ImageFixtures.assemble(in: directory, tag: "sb", release: "v1", secureBoot: true)
            let stick = try BootStick.open(signed.artifacts.image)
            let esp = stick.espVolume
            let chain = StickContent.SignedChain.inRoot(directory + "/root-sb")
            #expect(try esp.list("EFI/BOOT") == ["BOOTX64.EFI", "grubx64.efi", "mmx64.efi"], "no fbx64.efi: no NVRAM writes")
            #expect(try esp.read("EFI/BOOT/BOOTX64.EFI") == Data(contentsOf: URL(fileURLWithPath: chain.shim)))
            #expect(try esp.read("EFI/BOOT/grubx64.efi") == Data(contentsOf: URL(fileURLWithPath: chain.grub)))
            #expect(try esp.read("EFI/BOOT/mmx64.efi") == Data(contentsOf: URL(fileURLWithPath: chain.mokManager)))
            // GRUB boots what slot A's systemd-boot entry says, with the same options.
            let entry = try #require(SlotEntry.parse(String(decoding: try esp.read("loader/entries/aquarium-a.conf"), as: UTF8.self)))
            let config = String(decoding: try esp.read("EFI/debian/grub.cfg"), as: UTF8.self)
            #expect(config.contains("set timeout=0\n"))
            #expect(config.contains("    linux /aquarium/a/vmlinuz \(entry.options)\n"), "\(config)")
            #expect(config.contains("    initrd /aquarium/a/initrd.img\n"), "\(config)")
            #expect(entry.options.contains("root=PARTUUID=\(try #require(stick.slots[.a]).uuid)"))
            let check = try Command("grub-script-check", []).run(input: Data(config.utf8), acceptedStatuses: Set(0...255))
            #expect(check.status == 0, "grub-script-check: \(check.errorOutput)")

            // grubenv: GRUB's 1024-byte block, nothing on trial yet.
            #expect(try esp.list("EFI/debian") == ["grub.cfg", "grubenv"])
            #expect(try esp.read(GrubBoot.environmentPath) == GrubBoot.environment(tries: nil))
            #expect(try stick.bootsThroughGRUB())
            // A root without the signed packages: refused, naming the package to add.
            try FileManager.default.removeItem(atPath: chain.shim)
            let refusal = #expect(throws: ImageError.self) { _ = try RootfsBuilder.bootFiles(root: directory + "/root-sb", secureBoot: true) }
            #expect(refusal?.message.contains("needs shim-signed in the description's packages") == true, "\(String(describing: refusal))")
        }
    }

    /// GRUB's side of a boot as it changes grubenv (`save_env`): with the host's grub-editenv on a copy of the block.
    static func grubSaves(tries: Int, on stick: String, directory: String) throws {
        let esp = try BootStick.open(stick).espVolume
        let file = directory + "/grubenv-\(tries)"
        try esp.read(GrubBoot.environmentPath).write(to: URL(fileURLWithPath: file))
        try Command("grub-editenv", [file, "set", "\(GrubBoot.triesVariable)=\(tries)"]).run()
        try esp.write(file: file, to: GrubBoot.environmentPath)
    }

    @Test("A/B under GRUB (--secure-boot stick): update, GRUB's counted try carried into the entry, blessed; tries used up: rolled back",
          .requires(root: false, programs: ImageFixtures.programs + ImageFixtures.signedChainPrograms
                    + ["mren", "mdel", "grub-script-check", "grub-editenv"]))
    func grubSlots() throws {
        try withTemporaryDirectory { directory in
            let v1 = try ImageFixtures.assemble(in: directory, tag: "sb", release: "v1", secureBoot: true)
            let v2 = try ImageFixtures.assemble(in: directory, tag: "v2", release: "v2")
            let path = v1.artifacts.image
            let stick = try BootStick.open(path)
            let esp = stick.espVolume
            let slotA = try #require(stick.slots[.a]).uuid, slotB = try #require(stick.slots[.b]).uuid
            let events = EventLog(path: directory + "/events.jsonl")
            func updater(_ running: String) -> SlotUpdater {
                SlotUpdater(stick: stick, runningRoot: running, events: events, workDirectory: directory + "/work", logger: Logger(label: "test"))
            }
            func entries() throws -> [String] { try esp.list(StickNames.entriesDirectory) }
            func config() throws -> String { String(decoding: try esp.read(StickNames.grubConfigPath), as: UTF8.self) }
            func tries() throws -> Int? { GrubBoot.tries(inEnvironment: try esp.read(GrubBoot.environmentPath)) }
            func expectConfigMatchesEntries() throws {
                let view = try SlotsView.read(stick, runningRoot: nil)
                let expected = GrubBoot.configuration(view.bootEntries.compactMap { info in
                    info.name.flatMap { name in info.entry.map { (name, $0) } }
                })
                #expect(try config() == expected.config)
                #expect(try tries() == expected.tries)
                let check = try Command("grub-script-check", []).run(input: Data(try config().utf8), acceptedStatuses: Set(0...255))
                #expect(check.status == 0, "grub-script-check: \(check.errorOutput)")
            }

            // The update: slot B written, its entry +3, grub.cfg counting it with 3 tries in grubenv, slot A the fallback.
            let installed = try updater(slotA).install(image: v2.artifacts.image)
            #expect(installed.slot == .b && installed.entryFileName == "aquarium-b+3.conf")
            #expect(try entries() == ["aquarium-a.conf", "aquarium-b+3.conf"])
            #expect(try tries() == 3)
            #expect(try config().contains("aquarium.slot=b aquarium.release=v2 aquarium.counted\n"))
            #expect(try config().contains("--id good {\n    linux /aquarium/a/vmlinuz root=PARTUUID=\(slotA) "))
            try expectConfigMatchesEntries()
            // Slot A still running (not rebooted yet): not a counted boot, nothing to mark good.
            #expect(try updater(slotA).grubCountedEntry(commandLine: "root=PARTUUID=\(slotA) quiet") == nil)

            // GRUB counts a try (tries 3 -> 2, saved) and boots slot B with aquarium.counted; the node carries the
            // counter into the entry and marks it good.
            try Self.grubSaves(tries: 2, on: path, directory: directory)
            let counted = try updater(slotB).grubCountedEntry(commandLine: "root=PARTUUID=\(slotB) quiet aquarium.counted")
            #expect(counted == "aquarium-b+2-1.conf")
            #expect(try entries() == ["aquarium-a.conf", "aquarium-b+2-1.conf"])
            #expect(try updater(slotB).bless(countedEntry: counted)?.contains("v2 in slot B is good") == true)
            #expect(try entries() == ["aquarium-a.conf", "aquarium-b.conf"])
            #expect(try tries() == nil && !config().contains("load_env"), "nothing on trial any more")
            #expect(try config().contains("--id good {\n    linux /aquarium/b/vmlinuz root=PARTUUID=\(slotB) "))
            try expectConfigMatchesEntries()
            #expect(try updater(slotB).reconcileGRUB().isEmpty, "in step: nothing to change")

            // The next update goes into slot A; its three tries are used up (GRUB saves 0 and boots slot B): the
            // node on slot B carries the counter over and reports the rollback once; grub.cfg boots slot B only.
            _ = try updater(slotB).install(image: v2.artifacts.image)
            #expect(try entries() == ["aquarium-a+3.conf", "aquarium-b.conf"])
            try Self.grubSaves(tries: 0, on: path, directory: directory)
            #expect(try updater(slotB).grubCountedEntry(commandLine: "root=PARTUUID=\(slotB) quiet") == nil, "not a counted boot")
            let messages = try updater(slotB).reportRollback()
            #expect(messages.count == 1 && messages.first?.contains("rolled back to v2 in slot B") == true, "\(messages)")
            #expect(try entries() == ["aquarium-a+0-3.conf.rolled-back", "aquarium-b.conf"])
            #expect(try tries() == nil && !config().contains("aquarium.counted"))
            try expectConfigMatchesEntries()
            #expect(events.read().map(\.event) == ["update.started", "update.written", "update.blessed", "update.started",
                                                     "update.written", "update.rolled-back"])

            // Interrupted after the entry was renamed but before grub.cfg was rewritten (a power loss): the next
            // reconcile finishes it.
            try esp.write(text: "set timeout=0\n", to: StickNames.grubConfigPath, scratch: directory)
            #expect(try updater(slotB).reconcileGRUB().contains { $0.hasPrefix("grub.cfg boots slot B") })
            try expectConfigMatchesEntries()
        }
    }

    @Test("the image is checked against its bmap before any byte is written: a changed byte, a truncated copy, no bmap",
          .requires(root: false, programs: ImageFixtures.programs + ["mren", "mdel"]))
    func bmapChecked() throws {
        try withTemporaryDirectory { directory in
            let f = try Fixture(directory)
            let v2Root = try #require(f.v2.assembly.partition(.root))
            let slotB = try #require(try BootStick.open(f.stick).slots[.b])
            let slotBefore = try f.bytes(f.stick, offset: slotB.offsetBytes, count: v2Root.sizeBytes)
            let copies = directory + "/copies"
            try FileManager.default.createDirectory(atPath: copies, withIntermediateDirectories: true)
            func copy(_ name: String, bmap: Bool = true) throws -> String {
                let image = copies + "/" + name
                try Command("cp", ["--sparse=always", f.v2.artifacts.image, image]).run()
                if bmap { try Command("cp", [f.v2.artifacts.bmap, image + ".bmap"]).run() }
                return image
            }
            func expectNothingWritten(_ what: String) throws {
                #expect(try f.entries() == ["aquarium-a.conf"], "\(what)")
                #expect(try f.bytes(f.stick, offset: slotB.offsetBytes, count: v2Root.sizeBytes) == slotBefore, "\(what)")
                #expect(!f.events.read().contains { $0.event == "update.started" }, "\(what)")
            }

            // One changed byte in the root's first block (the ext4 superblock: mapped, checksummed).
            let damaged = try copy("damaged.raw")
            let handle = try #require(FileHandle(forUpdatingAtPath: damaged))
            try handle.seek(toOffset: v2Root.offsetBytes + 1100)
            let old = try #require(try handle.read(upToCount: 1)?.first)
            try handle.seek(toOffset: v2Root.offsetBytes + 1100)
            try handle.write(contentsOf: Data([old ^ 0xff]))
            try handle.close()
            do {
                _ = try f.updater().install(image: damaged)
                Issue.record("a damaged image was written")
            } catch {
                #expect((error as? ProvisionError)?.exitCode == .refused)
                let text = String(describing: error)
                #expect(text.contains("\(damaged): blocks ") && text.contains("do not match their sha256 in the bmap \(damaged).bmap"), "\(text)")
                #expect(text.contains("nothing was written"), "\(text)")
            }
            try expectNothingWritten("damaged")

            // A copy that stopped short (an interrupted download): its size is not the bmap's.
            let truncated = try copy("truncated.raw")
            let size = try #require(FileManager.default.attributesOfItem(atPath: truncated)[.size] as? UInt64)
            #expect(Glibc.truncate(truncated, off_t(size - 4096)) == 0)
            do {
                _ = try f.updater().install(image: truncated)
                Issue.record("a truncated image was written")
            } catch {
                #expect((error as? ProvisionError)?.exitCode == .refused)
                #expect(String(describing: error).contains("the copy is incomplete or is another image"), "\(error)")
            }
            try expectNothingWritten("truncated")

            // No bmap beside it: refused as bad input, saying what to do; --bmap FILE or --no-bmap let it through.
            let bare = try copy("bare.raw", bmap: false)
            do {
                _ = try f.updater().install(image: bare)
                Issue.record("an image without a bmap was written unchecked")
            } catch {
                #expect((error as? ProvisionError)?.exitCode == .invalidInput)
                #expect(String(describing: error).contains("no bmap beside it (looked for \(bare).bmap)"), "\(error)")
                #expect(String(describing: error).contains("--no-bmap"))
            }
            try expectNothingWritten("no bmap")
            do {
                _ = try f.updater().install(image: damaged, bmap: .file(copies + "/nonexistent.bmap"))
                Issue.record("a missing --bmap file was accepted")
            } catch {
                #expect((error as? ProvisionError)?.exitCode == .invalidInput)
            }
            let installed = try f.updater().install(image: bare, bmap: .file(f.v2.artifacts.bmap))
            #expect(installed.slot == .b && installed.release == "v2")
            let written = f.events.read().last { $0.event == "update.written" }?.detail ?? ""
            #expect(written.contains("checked against \(f.v2.artifacts.bmap)"), "\(written)")
            #expect(try f.bytes(f.stick, offset: slotB.offsetBytes, count: v2Root.sizeBytes)
                    == f.bytes(f.v2.artifacts.image, offset: v2Root.offsetBytes, count: v2Root.sizeBytes))
            // The same image unchecked (the slot is on the B side now: remove its entry as a rollback would leave it).
            try f.rename("aquarium-b+3.conf", "aquarium-b+0-3.conf")
            let unchecked = try f.updater().install(image: bare, bmap: .unchecked)
            #expect(unchecked.slot == .b)
            let uncheckedDetail = f.events.read().last { $0.event == "update.written" }?.detail ?? ""
            #expect(uncheckedDetail.contains("not checked against a bmap"), "\(uncheckedDetail)")
        }
    }

    @Test("refusals: a single-slot stick, a running slot on trial, a root that does not fit",
          .requires(root: false, programs: ImageFixtures.programs + ["mren", "mdel"]))
    func refusals() throws {
        try withTemporaryDirectory { directory in
            // A stick from before A/B slots: ESP and AQUA-ROOT.
            let old = directory + "/old.raw"
            #expect(FileManager.default.createFile(atPath: old, contents: nil) && truncate(old, 64 << 20) == 0)
            let device = try PartedDevice(path: old)
            let disk = try PartedDisk.fresh(on: device, type: "gpt")
            _ = try disk.append([PartitionRequest(name: "AQUA-ESP", sizeBytes: 8 << 20, flags: [.esp]),
                                 PartitionRequest(name: "AQUA-ROOT", sizeBytes: 16 << 20)])
            try disk.commit(informKernel: false)
            device.close()
            do {
                _ = try BootStick.open(old)
                Issue.record("a single-slot stick was accepted")
            } catch {
                #expect((error as? ProvisionError)?.exitCode == .refused)
                #expect(String(describing: error).hasPrefix("reflash: this stick (\(old)) was made by an image without A/B slots"))
            }

            let f = try Fixture(directory)
            // An old image is not an update image.
            do {
                _ = try f.updater().install(image: old)
                Issue.record("a single-slot image was accepted")
            } catch {
                #expect((error as? ProvisionError)?.exitCode == .refused)
                #expect(String(describing: error).contains("is not an A/B image"))
            }
            // While slot B is on trial, no update may overwrite slot A, the slot to fall back to.
            _ = try f.updater().install(image: f.v2.artifacts.image)
            try f.rename("aquarium-b+3.conf", "aquarium-b+2-1.conf")
            let slotB = try #require(try BootStick.open(f.stick).slots[.b]).uuid
            do {
                _ = try f.updater(running: slotB).install(image: f.v2.artifacts.image)
                Issue.record("an update during a trial boot was accepted")
            } catch {
                #expect((error as? ProvisionError)?.exitCode == .refused)
                #expect(String(describing: error).contains("still on trial"))
            }
            // A bigger root than the slot.
            let big = try ImageFixtures.assemble(in: directory, tag: "big", release: "big") { root in
                let file = root + "/usr/share/big"
                #expect(FileManager.default.createFile(atPath: file, contents: ImageFixtures.bytes(24 << 20, seed: 9)))
            }
            try f.rename("aquarium-b+2-1.conf", "aquarium-b.conf")
            do {
                _ = try f.updater(running: slotB).install(image: big.artifacts.image)
                Issue.record("a root larger than the slot was accepted")
            } catch {
                #expect((error as? ProvisionError)?.exitCode == .refused)
                #expect(String(describing: error).contains("does not fit slot A"))
            }
        }
    }
}
