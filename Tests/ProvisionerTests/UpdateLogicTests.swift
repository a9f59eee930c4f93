import BootSlots
import Foundation
import Testing

/// A/B slots: systemd-boot's counter in entry file names, the entries update writes and reads, the update's slot choice
/// and refusals (pure logic; the QEMU scenario is scripts/update-demo).
@Suite struct UpdateLogicTests {
    @Test("entry file names parse as systemd-boot reads them", arguments: [
        ("aquarium-a.conf", "aquarium-a", nil, nil),
        ("aquarium-b+3.conf", "aquarium-b", 3, nil),
        ("aquarium-b+2-1.conf", "aquarium-b", 2, 1),
        ("aquarium-b+0-3.conf", "aquarium-b", 0, 3),
        ("aquarium-b+x.conf", "aquarium-b+x", nil, nil),
        ("aquarium-b+1-.conf", "aquarium-b+1-", nil, nil),
        ("a+b+1-2.conf", "a+b", 1, 2),
    ] as [(String, String, Int?, Int?)])
    func entryNames(name: String, stem: String, left: Int?, done: Int?) throws {
        let parsed = try #require(EntryFileName(name))
        #expect(parsed.stem == stem)
        #expect(parsed.triesLeft == left)
        #expect(parsed.triesDone == done)
        #expect(parsed.fileName == name)
        #expect(parsed.isCounting == (left != nil))
        #expect(parsed.isExhausted == (left == 0))
    }

    @Test func notEntries() {
        #expect(EntryFileName("aquarium-a.conf.rolled-back") == nil)
        #expect(EntryFileName(".conf") == nil)
        #expect(EntryFileName("loader.txt") == nil)
        #expect(EntryFileName("aquarium-b+2-1.conf")?.blessed.fileName == "aquarium-b.conf")
        #expect(EntryFileName("aquarium-b+2-1.conf")?.slot == .b)
        #expect(EntryFileName("other.conf")?.slot == nil)
    }

    @Test func entryRoundTrip() throws {
        let entry = SlotEntry(slot: .b, release: "v2", generation: 7, rootPartitionUUID: "0A1B2C3D-0000-4000-8000-000000000001",
                              commandLine: "ro console=ttyS0,115200 quiet")
        #expect(entry.text.contains("linux    /aquarium/b/vmlinuz"))
        #expect(entry.text.contains("sort-key aquarium"))
        #expect(entry.text.contains("version  7"))
        #expect(entry.text.contains("options  root=PARTUUID=0a1b2c3d-0000-4000-8000-000000000001 ro console=ttyS0,115200 quiet aquarium.slot=b aquarium.release=v2"))
        #expect(SlotEntry.parse(entry.text) == entry)
        #expect(SlotEntry.parse("title x\nlinux /vmlinuz\noptions root=/dev/sda2\n") == nil)
    }

    @Test("release strings", arguments: [("v2", true), ("2026.11.28+rc1~x_y", true), ("", false), ("-v", false),
                                         ("has space", false), ("a=b", false), (String(repeating: "x", count: 65), false)])
    func releases(release: String, valid: Bool) {
        #expect(SlotEntry.isValidRelease(release) == valid)
    }

    @Test("the update goes to the other slot, after every existing generation, with 3 tries")
    func plans() throws {
        let first = try UpdatePlan.make(running: .a, entries: [("aquarium-a.conf", 1)])
        #expect(first == UpdatePlan(target: .b, remove: [], entryFileName: "aquarium-b+3.conf", generation: 2))
        let afterRollback = try UpdatePlan.make(running: .a, entries: [("aquarium-a.conf", 1), ("aquarium-b+0-3.conf", 2)])
        #expect(afterRollback == UpdatePlan(target: .b, remove: ["aquarium-b+0-3.conf"], entryFileName: "aquarium-b+3.conf", generation: 3))
        let fromB = try UpdatePlan.make(running: .b, entries: [("aquarium-a.conf", 1), ("aquarium-b.conf", 2)])
        #expect(fromB == UpdatePlan(target: .a, remove: ["aquarium-a.conf"], entryFileName: "aquarium-a+3.conf", generation: 3))
    }

    @Test func refusals() {
        #expect(throws: UpdatePlan.Refusal.runningSlotOnTrial("aquarium-b+2-1.conf")) {
            try UpdatePlan.make(running: .b, entries: [("aquarium-a.conf", 1), ("aquarium-b+2-1.conf", 2)])
        }
        #expect(throws: UpdatePlan.Refusal.noEntryForRunningSlot(.a)) {
            try UpdatePlan.make(running: .a, entries: [("aquarium.conf", nil)])
        }
    }

    /// `update rollback`: the other slot's good entry boots next, on trial; everything else is refused with its reason.
    @Test("going back on purpose: the other slot's good entry again, next generation, 3 tries; refusals", arguments: [
        (Slot.b, [("aquarium-a.conf", 1), ("aquarium-b.conf", 2)],
         "plan a from aquarium-a.conf as aquarium-a+3.conf generation 3"),
        (Slot.a, [("aquarium-a.conf", 3), ("aquarium-b.conf", 2)],
         "plan b from aquarium-b.conf as aquarium-b+3.conf generation 4"),
        (Slot.a, [("aquarium-a.conf", 1)],
         "refused: slot B holds no image (no loader entry): there is nothing to go back to"),
        (Slot.a, [("aquarium-a.conf", 1), ("aquarium-b+3.conf", 2)],
         "refused: slot B holds an update waiting for its first boot (aquarium-b+3.conf): reboot to try it, or install another image over it with `update install`"),
        (Slot.a, [("aquarium-a.conf", 1), ("aquarium-b+0-3.conf", 2)],
         "refused: slot B holds a release that failed its trial boot (aquarium-b+0-3.conf); there is nothing good to go back to"),
        (Slot.a, [("aquarium-a.conf", 1), ("aquarium-b+0-3.conf.rolled-back", nil)],
         "refused: slot B holds a release that failed its trial boot (aquarium-b+0-3.conf.rolled-back); there is nothing good to go back to"),
        (Slot.b, [("aquarium-a.conf", 1), ("aquarium-b+2-1.conf", 2)],
         "refused: the running slot's loader entry aquarium-b+2-1.conf is still on trial (not yet marked good); wait for this boot to finish (aquarium-slot-good.service) before switching, so the slot to fall back to is known good"),
        (Slot.a, [("aquarium.conf", nil)], "refused: no loader entry for the running slot A on the ESP; reflash the stick"),
    ] as [(Slot, [(String, Int?)], String)])
    func switchPlans(running: Slot, entries: [(String, Int?)], expected: String) {
        let outcome: String
        do {
            let plan = try SwitchPlan.make(running: running, entries: entries.map { (name: $0.0, generation: $0.1) })
            outcome = "plan \(plan.target.rawValue) from \(plan.source) as \(plan.entryFileName) generation \(plan.generation)"
        } catch {
            outcome = "refused: \(error)"
        }
        #expect(outcome == expected)
    }

    @Test func kernelCommandLineAndEFIVariable() {
        #expect(rootPartitionUUID(commandLine: "BOOT_IMAGE=x root=PARTUUID=ABCD-1 ro\n") == "abcd-1")
        #expect(rootPartitionUUID(commandLine: "root=/dev/sda1") == nil)
        #expect(rootPartitionUUID(commandLine: "root=/dev/mapper/aquarium-root ro aquarium.verity=ab aquarium.verity.partuuid=D030-2 panic=60")
                == "d030-2", "a locked stick's running root partition")
        var data = Data([0x06, 0, 0, 0])
        for unit in "\\loader\\entries\\aquarium-b+2-1.conf".utf16 { data.append(UInt8(unit & 0xff)); data.append(UInt8(unit >> 8)) }
        data.append(contentsOf: [0, 0])
        #expect(bootCountEntryName(efiVariable: data) == "aquarium-b+2-1.conf")
        #expect(bootCountEntryName(efiVariable: Data([1, 2])) == nil)
    }
}
