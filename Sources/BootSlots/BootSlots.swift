import Foundation

/// One of the stick's two root slots. Slot A is what `aquarium-image build` fills; slot B is empty in a fresh image
/// and receives the first `aquarium-provision update`, which then alternates between them.
public enum Slot: String, CaseIterable, Sendable, Codable {
    case a, b

    public var other: Slot { self == .a ? .b : .a }
    /// The GPT partition name of the slot's root partition.
    public var partitionName: String { "AQUA-ROOT-" + rawValue.uppercased() }
    /// The loader entry's file name without boot counter and suffix: `aquarium-a`.
    public var entryStem: String { "aquarium-\(rawValue)" }
    /// The directory on the ESP that holds the slot's kernel and initrd.
    public var bootDirectory: String { "aquarium/\(rawValue)" }
    public var name: String { "slot " + rawValue.uppercased() }

    /// The slot whose loader entry stem is `stem`, if any.
    public init?(entryStem stem: String) {
        guard let slot = Slot.allCases.first(where: { $0.entryStem == stem }) else { return nil }
        self = slot
    }
}

/// The stick's fixed names: partitions, ESP paths, the kernel parameters the loader entries carry.
public enum StickNames {
    public static let espPartitionName = "AQUA-ESP"
    /// The partition name of the root in images made before A/B slots: a stick with it is updated by reflashing.
    public static let singleSlotRootName = "AQUA-ROOT"
    public static let entriesDirectory = "loader/entries"
    /// `default aquarium-*`: systemd-boot picks the first entry in its sort order that matches, and sorts entries
    /// without tries left last, so an exhausted trial entry is never the default.
    public static let loaderConf = "default aquarium-*\ntimeout 0\neditor no\n"
    public static let sortKey = "aquarium"
    /// Kernel parameters in every entry's options: which slot and which image release booted.
    public static let slotParameter = "aquarium.slot"
    public static let releaseParameter = "aquarium.release"
    /// Tries a new slot gets (systemd-boot boot counting: `aquarium-b+3.conf`).
    public static let trialTries = 3
    /// systemd-boot's vendor GUID for its EFI variables (LoaderBootCountPath, LoaderEntrySelected, ...).
    public static let loaderVendorGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
    /// The signed boot chain (the default; not `build --systemd-boot`): shim is `EFI/BOOT/BOOTX64.EFI` and starts Debian's signed GRUB
    /// from here, which reads `EFI/debian/grub.cfg` (its built-in configuration: `$prefix/grub.cfg`, the prefix
    /// Debian builds it with being `/EFI/debian` on the volume it was started from).
    public static let signedLoaderPath = "EFI/BOOT/grubx64.efi"
    public static let grubConfigPath = "EFI/debian/grub.cfg"
    /// What an exhausted trial entry is renamed to once its rollback has been reported (not `.conf`: systemd-boot
    /// ignores it, `update status` still shows it).
    public static let rolledBackSuffix = ".rolled-back"
}

/// A loader entry file name with systemd-boot's boot counter: `STEM[+LEFT[-DONE]].conf`
/// (https://systemd.io/AUTOMATIC_BOOT_ASSESSMENT/). Without a counter the entry is not on trial (good, or never counted).
public struct EntryFileName: Equatable, Sendable, CustomStringConvertible {
    public var stem: String
    public var triesLeft: Int?
    public var triesDone: Int?

    public init(stem: String, triesLeft: Int? = nil, triesDone: Int? = nil) {
        self.stem = stem
        self.triesLeft = triesLeft
        self.triesDone = triesDone
    }

    /// Parses a file name as systemd-boot does: the counter is the text after the last `+` before `.conf`, digits,
    /// optionally `-` and digits. A malformed counter makes it part of the stem (systemd-boot then ignores it too).
    public init?(_ fileName: String) {
        let suffix = ".conf"
        guard fileName.lowercased().hasSuffix(suffix), fileName.count > suffix.count else { return nil }
        let base = String(fileName.dropLast(suffix.count))
        guard let plus = base.lastIndex(of: "+") else {
            self.init(stem: base)
            return
        }
        let counter = base[base.index(after: plus)...]
        let parts = counter.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        let isDigits: (Substring) -> Bool = { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
        guard let left = parts.first, isDigits(left), parts.count == 1 || isDigits(parts[1]),
              let leftValue = Int(left) else {
            self.init(stem: base)
            return
        }
        self.init(stem: String(base[..<plus]), triesLeft: leftValue, triesDone: parts.count == 2 ? Int(parts[1]) : nil)
    }

    public var fileName: String {
        guard let triesLeft else { return stem + ".conf" }
        return stem + "+\(triesLeft)" + (triesDone.map { "-\($0)" } ?? "") + ".conf"
    }

    public var description: String { fileName }
    public var slot: Slot? { Slot(entryStem: stem) }
    /// On trial: counted and not yet marked good.
    public var isCounting: Bool { triesLeft != nil }
    /// Every try used up: systemd-boot sorts it last, the other slot boots.
    public var isExhausted: Bool { triesLeft == 0 }
    /// What systemd-bless-boot renames a good entry to: the counter removed.
    public var blessed: EntryFileName { EntryFileName(stem: stem) }
}

/// The loader entry of one slot (Boot Loader Specification type #1), as written and read back.
public struct SlotEntry: Equatable, Sendable {
    public var slot: Slot
    /// The image's release string (`aquarium-image build --release`).
    public var release: String
    /// Orders the entries: systemd-boot boots the highest `version` of equal sort keys first; every update writes
    /// one more than the highest on the stick.
    public var generation: Int
    /// The slot's root partition (the stick's own GPT entry, not the image's).
    public var rootPartitionUUID: String
    /// Kernel parameters after `root=PARTUUID=` (the image's `kernel_cmdline`), without the slot parameters.
    public var commandLine: String

    public init(slot: Slot, release: String, generation: Int, rootPartitionUUID: String, commandLine: String) {
        self.slot = slot
        self.release = release
        self.generation = generation
        self.rootPartitionUUID = rootPartitionUUID.lowercased()
        self.commandLine = commandLine
    }

    /// The kernel's command line: the slot's root, the image's command line, the slot and release parameters.
    public var options: String {
        "root=PARTUUID=\(rootPartitionUUID) \(commandLine) \(StickNames.slotParameter)=\(slot.rawValue) \(StickNames.releaseParameter)=\(release)"
    }

    /// The same entry as a GRUB menu entry (the signed boot chain's `EFI/debian/grub.cfg`), with GRUB's menu entry
    /// `id` and `extra` kernel parameters. Every value is one the builder checked (a UUID, a release string, the
    /// description's command line without quotes), so no quoting beyond GRUB's single quotes is needed.
    public func grubMenuEntry(id: String, extra: String = "") -> String {
        """
        menuentry 'Aquarium \(release) (\(slot.name))' --id \(id) {
            linux /\(slot.bootDirectory)/vmlinuz \(options)\(extra.isEmpty ? "" : " " + extra)
            initrd /\(slot.bootDirectory)/initrd.img
        }

        """
    }

    public var text: String {
        """
        title    Aquarium \(release) (\(slot.name))
        sort-key \(StickNames.sortKey)
        version  \(generation)
        linux    /\(slot.bootDirectory)/vmlinuz
        initrd   /\(slot.bootDirectory)/initrd.img
        options  \(options)

        """
    }

    /// Reads an entry this type wrote (nil for anything else).
    public static func parse(_ text: String) -> SlotEntry? {
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.hasPrefix("#"), let space = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }) else { continue }
            fields[String(trimmed[..<space])] = trimmed[space...].trimmingCharacters(in: .whitespaces)
        }
        guard let options = fields["options"], let generation = fields["version"].flatMap({ Int($0) }) else { return nil }
        var words = options.split(separator: " ").map(String.init)
        let value = { (name: String) -> String? in
            words.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
        }
        guard let root = value("root"), root.hasPrefix("PARTUUID="), let slot = value(StickNames.slotParameter).flatMap(Slot.init(rawValue:)),
              let release = value(StickNames.releaseParameter) else { return nil }
        words.removeAll { $0.hasPrefix("root=") || $0.hasPrefix(StickNames.slotParameter + "=") || $0.hasPrefix(StickNames.releaseParameter + "=") }
        return SlotEntry(slot: slot, release: release, generation: generation,
                         rootPartitionUUID: String(root.dropFirst("PARTUUID=".count)), commandLine: words.joined(separator: " "))
    }

    /// Whether `release` can go into an entry and onto the kernel command line: 1-64 of `A-Z a-z 0-9 . _ + ~ -`.
    public static func isValidRelease(_ release: String) -> Bool {
        !release.isEmpty && release.count <= 64 && !release.hasPrefix("-")
            && release.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._+~-".contains($0)) }
    }
}

/// What an update does to the stick's loader entries, decided from the file names alone (pure, unit-tested).
public struct UpdatePlan: Equatable, Sendable {
    public var target: Slot
    /// Existing entries of the target slot, removed before its root is overwritten.
    public var remove: [String]
    /// The new entry's file name, with `+3` tries.
    public var entryFileName: String
    public var generation: Int

    public init(target: Slot, remove: [String], entryFileName: String, generation: Int) {
        self.target = target
        self.remove = remove
        self.entryFileName = entryFileName
        self.generation = generation
    }

    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        /// The running slot's own entry still counts tries: it has not been marked good yet.
        case runningSlotOnTrial(String)
        /// No entry for the running slot: the stick's loader entries are not ones `update` knows.
        case noEntryForRunningSlot(Slot)

        public var description: String {
            switch self {
            case .runningSlotOnTrial(let name):
                return "the running slot's loader entry \(name) is still on trial (not yet marked good); wait for this boot to "
                    + "finish (aquarium-slot-good.service) before updating again, or the slot to fall back to would be overwritten"
            case .noEntryForRunningSlot(let slot):
                return "no loader entry for the running \(slot.name) on the ESP; reflash the stick"
            }
        }
    }

    /// `running` is the slot the system booted from; `entries` are the ESP's `loader/entries` file names with their
    /// generations (nil where an entry could not be read).
    public static func make(running: Slot, entries: [(name: String, generation: Int?)]) throws(Refusal) -> UpdatePlan {
        let parsed = entries.compactMap { entry in EntryFileName(entry.name).map { ($0, entry.generation) } }
        let own = parsed.filter { $0.0.slot == running }
        guard !own.isEmpty else { throw .noEntryForRunningSlot(running) }
        if let trial = own.first(where: { $0.0.isCounting }) { throw .runningSlotOnTrial(trial.0.fileName) }
        let target = running.other
        let highest = parsed.compactMap(\.1).max() ?? 0
        return UpdatePlan(target: target, remove: parsed.filter { $0.0.slot == target }.map(\.0.fileName),
                          entryFileName: EntryFileName(stem: target.entryStem, triesLeft: StickNames.trialTries).fileName,
                          generation: highest + 1)
    }
}

/// Going back to the other slot on purpose (`update rollback`): its good entry is written again with the next
/// generation and `+3` tries, so it boots next, on trial. If the older release no longer works with the node's state,
/// its tries run out and the running slot (whose entry stays) boots again by itself.
public struct SwitchPlan: Equatable, Sendable {
    public var target: Slot
    /// The target's good entry, rewritten under the new name.
    public var source: String
    public var entryFileName: String
    public var generation: Int

    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case runningSlotOnTrial(String)
        case noEntryForRunningSlot(Slot)
        /// The other slot has no entry: nothing was ever installed there.
        case empty(Slot)
        /// The other slot's entry is waiting for its first (trial) boot, or its tries ran out.
        case notGood(Slot, entry: String)

        public var description: String {
            switch self {
            case .runningSlotOnTrial(let name):
                return "the running slot's loader entry \(name) is still on trial (not yet marked good); wait for this boot to "
                    + "finish (aquarium-slot-good.service) before switching, so the slot to fall back to is known good"
            case .noEntryForRunningSlot(let slot):
                return UpdatePlan.Refusal.noEntryForRunningSlot(slot).description
            case .empty(let slot):
                return "\(slot.name) holds no image (no loader entry): there is nothing to go back to"
            case .notGood(let slot, let entry):
                let name = EntryFileName(entry)
                if name?.isExhausted == true || entry.hasSuffix(StickNames.rolledBackSuffix) {
                    return "\(slot.name) holds a release that failed its trial boot (\(entry)); there is nothing good to go back to"
                }
                return "\(slot.name) holds an update waiting for its first boot (\(entry)): reboot to try it, or install "
                    + "another image over it with `update install`"
            }
        }
    }

    /// `running` is the slot the system booted from; `entries` the ESP's loader entry file names with generations.
    public static func make(running: Slot, entries: [(name: String, generation: Int?)]) throws(Refusal) -> SwitchPlan {
        let parsed = entries.compactMap { entry in EntryFileName(entry.name).map { ($0, entry.generation) } }
        let own = parsed.filter { $0.0.slot == running }
        guard !own.isEmpty else { throw .noEntryForRunningSlot(running) }
        if let trial = own.first(where: { $0.0.isCounting }) { throw .runningSlotOnTrial(trial.0.fileName) }
        let target = running.other
        let theirs = parsed.filter { $0.0.slot == target }
        if let good = theirs.first(where: { !$0.0.isCounting }) {
            let highest = parsed.compactMap(\.1).max() ?? 0
            return SwitchPlan(target: target, source: good.0.fileName,
                              entryFileName: EntryFileName(stem: target.entryStem, triesLeft: StickNames.trialTries).fileName,
                              generation: highest + 1)
        }
        if let other = theirs.first { throw .notGood(target, entry: other.0.fileName) }
        if let aside = entries.first(where: { $0.name.hasPrefix(target.entryStem) && $0.name.hasSuffix(StickNames.rolledBackSuffix) }) {
            throw .notGood(target, entry: aside.name)
        }
        throw .empty(target)
    }
}

/// Reads `root=PARTUUID=` from a kernel command line (`/proc/cmdline`).
/// A locked stick (`build --locked`) boots `root=/dev/mapper/aquarium-root`; its partition is `aquarium.verity.partuuid=`.
public func rootPartitionUUID(commandLine: String) -> String? {
    let words = commandLine.split(whereSeparator: { $0 == " " || $0 == "\n" })
    for prefix in ["root=PARTUUID=", "aquarium.verity.partuuid="] {
        if let word = words.first(where: { $0.hasPrefix(prefix) }) { return String(word.dropFirst(prefix.count)).lowercased() }
    }
    return nil
}

/// The path in `LoaderBootCountPath` (UTF-16LE after 4 attribute bytes in efivarfs): `\loader\entries\aquarium-b+2-1.conf`
/// -> `aquarium-b+2-1.conf`.
public func bootCountEntryName(efiVariable data: Data) -> String? {
    guard data.count > 4 else { return nil }
    var units: [UInt16] = []
    let bytes = [UInt8](data.dropFirst(4))
    var index = 0
    while index + 1 < bytes.count {
        let unit = UInt16(bytes[index]) | UInt16(bytes[index + 1]) << 8
        if unit == 0 { break }
        units.append(unit)
        index += 2
    }
    let path = String(decoding: units, as: UTF16.self)
    guard let name = path.split(whereSeparator: { $0 == "\\" || $0 == "/" }).last else { return nil }
    return String(name)
}
