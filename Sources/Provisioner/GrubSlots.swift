import BootSlots
import Foundation

/// A/B slots on a stick that boots through shim and Debian's signed GRUB (the default stick): the loader entries
/// stay the record and every decision is made from them; GRUB's counter (grubenv) is carried back into the counted
/// entry's name before a decision, and grub.cfg and grubenv are regenerated after every change (`GrubBoot`).
extension SlotUpdater {
    /// The ESP's `.conf` entries that parse, as `GrubBoot` takes them.
    static func grubEntries(_ view: SlotsView) -> [(name: EntryFileName, entry: SlotEntry)] {
        view.bootEntries.compactMap { info in
            guard let name = info.name, let entry = info.entry else { return nil }
            return (name, entry)
        }
    }

    /// On a GRUB stick: renames the counted entry after the tries GRUB used (`aquarium-b+3.conf` with
    /// `aquarium_tries=1` -> `aquarium-b+1-2.conf`), then makes grub.cfg and grubenv what the entries say (a change
    /// interrupted by a power loss is finished here). Nothing on a systemd-boot stick, whose loader renames entries
    /// itself. Returns what changed.
    @discardableResult
    public func reconcileGRUB() throws(ProvisionError) -> [String] {
        guard try stick.bootsThroughGRUB() else { return [] }
        let esp = stick.espVolume
        var changes: [String] = []
        let environment = try? esp.read(GrubBoot.environmentPath)
        let tries = environment.flatMap(GrubBoot.tries(inEnvironment:))
        let view = try SlotsView.read(stick, runningRoot: runningRoot)
        if let first = GrubBoot.bootOrder(Self.grubEntries(view)).first,
           let counted = GrubBoot.synchronized(first.name, environmentTries: tries) {
            try esp.rename("\(StickNames.entriesDirectory)/\(first.name.fileName)", to: counted.fileName)
            changes.append("\(first.name.fileName) -> \(counted.fileName) (GRUB's counter: \(tries ?? 0) tries left)")
        }
        try FileManager.default.createDirectoryIfNeeded(workDirectory)
        changes += try writeGRUB(scratch: workDirectory)
        if !changes.isEmpty {
            RangeCopy.sync(stick.disk)
            logger.info("\(stick.disk): GRUB's boot state: \(changes.joined(separator: "; "))")
        }
        return changes
    }

    /// On a GRUB stick: writes grubenv, then grub.cfg, generated from the loader entries, where they differ from
    /// what is on the ESP (the counter first: a grub.cfg that counts a trial never meets a block without the tries).
    @discardableResult
    func writeGRUB(scratch: String) throws(ProvisionError) -> [String] {
        guard try stick.bootsThroughGRUB() else { return [] }
        let esp = stick.espVolume
        let view = try SlotsView.read(stick, runningRoot: runningRoot)
        let (config, tries) = GrubBoot.configuration(Self.grubEntries(view))
        var changes: [String] = []
        let environment = try? esp.read(GrubBoot.environmentPath)
        let current = environment.flatMap(GrubBoot.parseEnvironment)
        if current == nil || current?[GrubBoot.triesVariable].flatMap({ Int($0) }) != tries {
            try esp.write(data: GrubBoot.environment(tries: tries), to: GrubBoot.environmentPath, scratch: scratch)
            changes.append("grubenv: " + (tries.map { "\(GrubBoot.triesVariable)=\($0)" } ?? "no trial"))
        }
        if (try? esp.read(StickNames.grubConfigPath)) != Data(config.utf8) {
            try esp.write(text: config, to: StickNames.grubConfigPath, scratch: scratch)
            let first = GrubBoot.bootOrder(Self.grubEntries(view)).first
            changes.append("grub.cfg boots \(first.map { $0.entry.slot.name + " (" + $0.entry.release + ")" } ?? "nothing")"
                           + (tries == nil ? "" : " on trial"))
        }
        return changes
    }

    /// On a GRUB stick booted through its trial entry (`aquarium.counted` on `commandLine`): the running slot's counted
    /// entry once GRUB's counter is in its name; nil for any other boot.
    public func grubCountedEntry(commandLine: String) throws(ProvisionError) -> String? {
        let words = commandLine.split(whereSeparator: \.isWhitespace)
        guard words.contains(where: { $0 == GrubBoot.countedParameter || $0.hasPrefix(GrubBoot.countedParameter + "=") }),
              try stick.bootsThroughGRUB() else { return nil }
        try reconcileGRUB()
        let view = try SlotsView.read(stick, runningRoot: runningRoot)
        return view.bootEntries.first { $0.name?.slot == view.running && $0.name?.isCounting == true }?.file
    }
}
