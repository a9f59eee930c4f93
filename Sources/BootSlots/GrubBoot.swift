import Foundation

/// A/B slots with boot counting under Debian's signed GRUB (the default stick's chain: shim -> GRUB; `--systemd-boot` sticks count in entry names).
///
/// The loader entries in `loader/entries` stay the record of the slots, exactly as on a systemd-boot stick, and every
/// decision (`UpdatePlan`, `SwitchPlan`, blessing, the rollback report) is made from their file names. GRUB cannot
/// rename files, so on this chain the counter GRUB decrements lives in its environment block `EFI/debian/grubenv`
/// (`aquarium_tries`), and `grub.cfg` is generated from the entries by whoever changed them (`aquarium-image build`,
/// `aquarium-provision update ...`). Each boot, before any decision, the node carries GRUB's counter back into the
/// counted entry's file name (`aquarium-b+3.conf` -> `aquarium-b+2-1.conf`), so both chains end in the same names.
public enum GrubBoot {
    /// GRUB's environment block beside its configuration (`$prefix/grubenv`).
    public static let environmentPath = "EFI/debian/grubenv"
    /// The tries the trial entry has left, as GRUB decrements them before booting it.
    public static let triesVariable = "aquarium_tries"
    /// Appended to the trial entry's kernel command line: this boot was counted (systemd-boot says so with the
    /// LoaderBootCountPath EFI variable instead).
    public static let countedParameter = "aquarium.counted"
    /// GRUB's environment block: a header line, `name=value` lines, `#` up to 1024 bytes; GRUB rewrites it in place.
    public static let environmentSize = 1024
    static let environmentHeader = "# GRUB Environment Block\n"

    /// The entries in the order systemd-boot would pick them: entries with tries left before used-up ones, then the
    /// highest generation first. `entries` are the ESP's `.conf` entries that parsed.
    public static func bootOrder(_ entries: [(name: EntryFileName, entry: SlotEntry)]) -> [(name: EntryFileName, entry: SlotEntry)] {
        entries.sorted { left, right in
            if left.name.isExhausted != right.name.isExhausted { return !left.name.isExhausted }
            if left.entry.generation != right.entry.generation { return left.entry.generation > right.entry.generation }
            return left.name.fileName < right.name.fileName
        }
    }

    /// `grub.cfg` for `entries`, and the tries its environment block must hold (nil: nothing on trial).
    ///
    /// The first entry of `bootOrder` boots. When it is on trial, GRUB boots it only after it has decremented
    /// `aquarium_tries` and saved that to `grubenv` (string comparisons: GRUB's script has no arithmetic); when the
    /// tries are used up, or the block cannot be written, the next good entry (the running slot that installed the
    /// update) boots instead, as systemd-boot does with an exhausted entry.
    public static func configuration(_ entries: [(name: EntryFileName, entry: SlotEntry)]) -> (config: String, tries: Int?) {
        let order = bootOrder(entries)
        var lines = [
            "# Aquarium (written by aquarium-image build and aquarium-provision update from loader/entries; do not edit):",
            "# shim -> this GRUB (Debian's signed build) -> Debian's signed kernel. Under Secure Boot GRUB has shim verify",
            "# the kernel; the initrd and this command line are not verified.",
            "set timeout=0",
        ]
        guard let first = order.first else {
            lines.append("echo 'Aquarium: no loader entry on this stick; reflash it'")
            return (lines.joined(separator: "\n") + "\n", nil)
        }
        guard let left = first.name.triesLeft, left > 0 else {
            lines += ["set default=good", "", first.entry.grubMenuEntry(id: "good")]
            return (lines.joined(separator: "\n") + "\n", nil)
        }
        let fallback = order.dropFirst().first { !$0.name.isCounting }
        lines += [
            "set default=\(fallback == nil ? "trial" : "good")",
            "# \(first.name.fileName) is on trial: boot it only with a try left, counted in grubenv first.",
            "load_env --file \"${prefix}/grubenv\" \(triesVariable)",
            "set aquarium_next=",
        ]
        for tries in stride(from: max(left, StickNames.trialTries), through: 1, by: -1) {
            lines.append("\(tries == max(left, StickNames.trialTries) ? "if" : "elif") [ \"${\(triesVariable)}\" = \"\(tries)\" ]; "
                         + "then set aquarium_next=\(tries - 1)")
        }
        lines += [
            "fi",
            "if [ -n \"${aquarium_next}\" ]; then",
            "    set \(triesVariable)=\"${aquarium_next}\"",
            "    if save_env --file \"${prefix}/grubenv\" \(triesVariable); then set default=trial; fi",
            "fi",
            "",
            first.entry.grubMenuEntry(id: "trial", extra: countedParameter),
        ]
        if let fallback { lines.append(fallback.entry.grubMenuEntry(id: "good")) }
        return (lines.joined(separator: "\n") + "\n", left)
    }

    /// The entry name after GRUB's counter is carried back into it: `aquarium-b+3.conf` with `aquarium_tries=1` ->
    /// `aquarium-b+1-2.conf`. Nil when nothing changes (not counting, no counter in the block, or no fewer tries).
    public static func synchronized(_ name: EntryFileName, environmentTries: Int?) -> EntryFileName? {
        guard let left = name.triesLeft, let tries = environmentTries, tries >= 0, tries < left else { return nil }
        return EntryFileName(stem: name.stem, triesLeft: tries, triesDone: (name.triesDone ?? 0) + (left - tries))
    }

    /// The 1024-byte environment block holding `variables` (sorted by name), as `grub-editenv` writes it.
    public static func environment(_ variables: [String: String]) -> Data {
        var text = environmentHeader
        for (name, value) in variables.sorted(by: { $0.key < $1.key }) {
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
            text += "\(name)=\(escaped)\n"
        }
        var data = Data(text.utf8)
        if data.count < environmentSize { data.append(Data(repeating: UInt8(ascii: "#"), count: environmentSize - data.count)) }
        return data
    }

    /// The block for a configuration's tries (nil: no counter).
    public static func environment(tries: Int?) -> Data {
        environment(tries.map { [triesVariable: String($0)] } ?? [:])
    }

    /// The variables of an environment block; nil when it is not one (no header, wrong size).
    public static func parseEnvironment(_ data: Data) -> [String: String]? {
        guard data.count == environmentSize, data.starts(with: Data(environmentHeader.utf8)) else { return nil }
        var variables: [String: String] = [:]
        let body = String(decoding: data.dropFirst(environmentHeader.utf8.count), as: UTF8.self)
        for line in body.split(separator: "\n", omittingEmptySubsequences: true) {
            guard !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { continue }
            var value = ""
            var escaping = false
            for character in line[line.index(after: equals)...] {
                if escaping {
                    value.append(character == "n" ? "\n" : character)
                    escaping = false
                } else if character == "\\" {
                    escaping = true
                } else {
                    value.append(character)
                }
            }
            variables[String(line[..<equals])] = value
        }
        return variables
    }

    /// `aquarium_tries` of a block, if it holds a number.
    public static func tries(inEnvironment data: Data) -> Int? {
        parseEnvironment(data)?[triesVariable].flatMap { Int($0) }
    }
}
