import BootSlots
import Exec
import Foundation
import Testing
import TestSupport

/// A/B slots under Debian's signed GRUB (`--secure-boot` sticks): grub.cfg and grubenv generated from the loader
/// entries, GRUB's counter carried back into entry names (pure logic, checked by GRUB's own grub-script-check and
/// grub-editenv; the boots are `AQUARIUM_UPDATE_SECURE_BOOT=1 scripts/update-demo`, QEMU with Secure Boot enforced).
@Suite struct GrubBootTests {
    static func entry(_ slot: Slot, _ release: String, generation: Int) -> SlotEntry {
        SlotEntry(slot: slot, release: release, generation: generation,
                  rootPartitionUUID: slot == .a ? "11111111-2222-3333-4444-555555555555" : "66666666-7777-8888-9999-000000000000",
                  commandLine: "console=ttyS0 quiet")
    }

    static func entries(_ names: [String]) -> [(name: EntryFileName, entry: SlotEntry)] {
        names.enumerated().map { index, file in
            let name = EntryFileName(file)!
            return (name, entry(name.slot!, name.slot == .a ? "v1" : "v2", generation: index + 1))
        }
    }

    /// (entries in generation order, what boots without a try left, the trial entry, the tries grubenv must hold)
    @Test("grub.cfg from the entries: what boots, what is on trial, the counter",
          .requires(root: false, programs: ["grub-script-check"]), arguments: [
        (["aquarium-a.conf"], "a", nil as String?, nil as Int?),
        (["aquarium-a.conf", "aquarium-b+3.conf"], "a", "b", 3),
        (["aquarium-a.conf", "aquarium-b+1-2.conf"], "a", "b", 1),
        (["aquarium-a.conf", "aquarium-b+0-3.conf"], "a", nil, nil),   // used up: slot A boots, nothing counts
        (["aquarium-a.conf", "aquarium-b.conf"], "b", nil, nil),       // B blessed, newer: B boots
        (["aquarium-b.conf", "aquarium-a+3.conf"], "b", "a", 3),       // the next update, into slot A
    ])
    func configuration(names: [String], good: String, trial: String?, tries: Int?) throws {
        let (config, counter) = GrubBoot.configuration(Self.entries(names))
        #expect(counter == tries)
        let goodSlot = try #require(Slot(rawValue: good))
        #expect(config.contains("--id good {\n    linux /aquarium/\(good)/vmlinuz root=PARTUUID=\(Self.entry(goodSlot, "", generation: 0).rootPartitionUUID) "),
                "\(config)")
        #expect(config.contains("set timeout=0\n"))
        if let trial {
            #expect(config.contains("set default=good\n"), "the good slot unless GRUB counted a try")
            #expect(config.contains("load_env --file \"${prefix}/grubenv\" aquarium_tries\n"))
            #expect(config.contains("if save_env --file \"${prefix}/grubenv\" aquarium_tries; then set default=trial; fi\n"),
                    "the trial boots only once its try is saved")
            #expect(config.contains("linux /aquarium/\(trial)/vmlinuz "), "\(config)")
            #expect(config.contains("aquarium.slot=\(trial) aquarium.release=\(trial == "a" ? "v1" : "v2") aquarium.counted\n"), "\(config)")
            for left in 1...3 {
                #expect(config.contains("[ \"${aquarium_tries}\" = \"\(left)\" ]; then set aquarium_next=\(left - 1)\n"), "\(config)")
            }
            #expect(!config.contains("\"0\" ]"), "no try left: never the trial")
        } else {
            #expect(!config.contains("load_env") && !config.contains("save_env") && !config.contains("aquarium.counted"), "\(config)")
            #expect(config.components(separatedBy: "menuentry ").count == 2, "one entry")
        }
        // GRUB's own parser accepts it.
        let check = try Command("grub-script-check", []).run(input: Data(config.utf8), acceptedStatuses: Set(0...255))
        #expect(check.status == 0, "grub-script-check: \(check.errorOutput)\n\(config)")
    }

    @Test("a trial without a good entry to fall back to still counts, and boots it")
    func trialAlone() {
        let (config, tries) = GrubBoot.configuration(Self.entries(["aquarium-b+3.conf"]))
        #expect(tries == 3 && config.contains("set default=trial\n") && !config.contains("--id good"))
        #expect(GrubBoot.configuration([]).config.contains("no loader entry"))
    }

    @Test("GRUB's counter back into the entry name", arguments: [
        ("aquarium-b+3.conf", 3 as Int?, nil as String?),
        ("aquarium-b+3.conf", 2, "aquarium-b+2-1.conf"),
        ("aquarium-b+3.conf", 0, "aquarium-b+0-3.conf"),
        ("aquarium-b+2-1.conf", 1, "aquarium-b+1-2.conf"),
        ("aquarium-b+1-2.conf", 2, nil),   // never more tries than the name says
        ("aquarium-b+3.conf", nil, nil),   // no counter in the block
        ("aquarium-b.conf", 1, nil),       // not on trial
        ("aquarium-a+3.conf", -1, nil),
    ])
    func synchronized(file: String, tries: Int?, expected: String?) throws {
        let name = try #require(EntryFileName(file))
        #expect(GrubBoot.synchronized(name, environmentTries: tries)?.fileName == expected)
    }

    @Test("the environment block is GRUB's: 1024 bytes, read and written by grub-editenv",
          .requires(root: false, programs: ["grub-editenv"]))
    func environment() throws {
        try withTemporaryDirectory { directory in
            let block = GrubBoot.environment(tries: 3)
            #expect(block.count == 1024)
            #expect(GrubBoot.tries(inEnvironment: block) == 3)
            #expect(GrubBoot.tries(inEnvironment: GrubBoot.environment(tries: nil)) == nil)
            #expect(GrubBoot.parseEnvironment(GrubBoot.environment(["x": "a\\b\nc"]))?["x"] == "a\\b\nc")
            #expect(GrubBoot.parseEnvironment(Data(count: 1024)) == nil)
            #expect(GrubBoot.parseEnvironment(block.dropLast()) == nil)
            let file = directory + "/grubenv"
            try block.write(to: URL(fileURLWithPath: file))
            #expect(try Command("grub-editenv", [file, "list"]).run().output == "aquarium_tries=3\n")
            // What GRUB's save_env does after a try: the same block, one less.
            try Command("grub-editenv", [file, "set", "aquarium_tries=2"]).run()
            let saved = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(saved == GrubBoot.environment(tries: 2), "byte for byte what grub-editenv writes")
            try FileManager.default.removeItem(atPath: file)
            try Command("grub-editenv", [file, "create"]).run()
            // A block grub-editenv made (with its own comment lines) reads as empty.
            #expect(GrubBoot.parseEnvironment(try Data(contentsOf: URL(fileURLWithPath: file))) == [:])
        }
    }
}
