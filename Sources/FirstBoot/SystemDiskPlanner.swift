import Disks
import Foundation
import GPT
import JSONCoding
import NodeContract
import Seed

// The system-disk selection policy (issue 4, docs/plan.md). Pure: the same seed, inventory and
// options always give the same plan, whatever order the inventory lists the disks in.

public enum SystemDiskPlanner {
    /// Applies the selection rules of docs/plan.md to `inventory`.
    public static func plan(seed: Seed, inventory: Inventory, options: PlannerOptions = PlannerOptions()) -> Plan {
        let system = seed.disks.system
        let expectedUUID = AquariumLayout.statePartitionUUID(cluster: seed.cluster.name, hostname: seed.host.hostname)
        // Canonical order first: nothing below may depend on the order the inventory listed the disks in.
        let disks = inventory.disks.sorted { identityKey($0) < identityKey($1) }

        var reasonsByPath: [String: [String]] = [:]
        var candidates: [(disk: Disk, mode: SystemDiskMode)] = []
        var ownLayoutDisks: [Disk] = []
        var facts: [String: DiskFacts] = [:]
        for disk in disks {
            let journal = options.journals[disk.path]
            let owner = AquariumLayout.owner(of: disk, journal: journal, cluster: seed.cluster.name,
                                             hostname: seed.host.hostname)
            facts[disk.path] = DiskFacts(aquariumOwner: owner, reinstallNode: seed.host.reinstall,
                                         seedBoundToMachine: options.seedBoundToMachine,
                                         knownStorageDisk: options.knownStorageDisks.contains(disk.stableIdentity))
            let mode = systemMode(disk, owner: owner, journal: journal, seed: seed)
            if mode == .reuse || mode == .resume { ownLayoutDisks.append(disk) }
            var reasons = usageReasons(disk, options: options, allowOwnMounts: mode != .create)
            reasons += matchReasons(disk, match: system.match, key: "disks.system.match")
            // Known-bad models are kept out of what is set up now; a system disk this node already runs on stays.
            if mode == .create, let model = modelReason(disk, seed.disks.models) { reasons.append(model) }
            if mode == .create, let content = DiskPolicy.contentRefusal(disk, use: .systemDisk, rule: system.wipe.rule,
                                                                        key: "disks.system.wipe", facts: facts[disk.path]!) {
                reasons.append(content.description)
                if let journal, let stale = staleJournal(journal, disk: disk, seed: seed) { reasons.append(stale) }
            }
            reasonsByPath[disk.path] = reasons
            if reasons.isEmpty { candidates.append((disk, mode)) }
        }

        var refusal: String?
        var chosen: (disk: Disk, mode: SystemDiskMode, why: [String])?
        let ownCandidates = candidates.filter { $0.mode != .create }
        let identities = uniqueIdentities(system.match)
        if ownLayoutDisks.count > 1 {
            refusal = "\(ownLayoutDisks.count) disks carry this node's Aquarium layout ("
                + ownLayoutDisks.map(\.path).joined(separator: ", ")
                + "); remove or wipe all but one (wipefs --all DISK) and run again"
        } else if let own = ownLayoutDisks.first {
            if let candidate = ownCandidates.first {
                let why = candidate.mode == .reuse
                    ? "carries this node's Aquarium layout (partition '\(AquariumLayout.partitionName)' \(expectedUUID)): mount only"
                    : "an earlier first boot on this disk was interrupted: resume from its step journal"
                chosen = (candidate.disk, candidate.mode, [why])
            } else {
                refusal = "\(own.path) carries this node's Aquarium layout but cannot be used: "
                    + (reasonsByPath[own.path] ?? []).joined(separator: "; ")
                    + "; fix the seed or the disk (never creating a second system disk for this node)"
            }
        } else if !identities.isEmpty {
            let named = disks.filter { matchReasons($0, match: identityOnly(system.match), key: "").isEmpty }
            let what = identities.joined(separator: ", ")
            if named.isEmpty {
                refusal = "no disk has \(what) (disks.system.match); check the seed against `aquarium-firstboot inventory`"
            } else if named.count > 1 {
                refusal = "\(named.count) disks have \(what) (" + named.map(\.path).joined(separator: ", ")
                    + "); disks.system.match must name exactly one disk"
            } else if let only = candidates.first(where: { $0.disk.path == named[0].path }) {
                chosen = (only.disk, only.mode, ["the only disk with \(what)"])
            } else {
                refusal = "the disk with \(what), \(named[0].path), cannot be used: "
                    + (reasonsByPath[named[0].path] ?? []).joined(separator: "; ")
            }
        } else if candidates.isEmpty {
            refusal = "no disk is eligible as the system disk"
        } else {
            let ordered = candidates.sorted { preferred($0.disk, $1.disk, system.prefer, rotational: system.match.rotational) }
            let first = ordered[0]
            if ordered.count > 1, preferenceKey(ordered[1].disk, system.prefer, system.match.rotational)
                == preferenceKey(first.disk, system.prefer, system.match.rotational),
               identityKey(ordered[1].disk).rank == IdentityRank.none.rawValue {
                refusal = "\(first.disk.path) and \(ordered[1].disk.path) are equally preferred and have no stable "
                    + "identity (WWN, serial, by-id link) to choose between them; name one in disks.system.match"
            } else {
                var why = ["\(system.prefer.rawValue) eligible disk"
                    + (system.match.rotational == nil ? " (SSDs before HDDs)" : "")]
                if ordered.count > 1 {
                    why.append("preferred over " + ordered.dropFirst().map(\.disk.path).joined(separator: ", "))
                }
                chosen = (first.disk, first.mode, why)
            }
        }

        // Storage: the remaining eligible disks that match disks.storage under its own wipe rule.
        var storage: [PlannedDisk] = []
        var rejected: [RejectedDisk] = []
        let storageRule = seed.disks.storage
        for disk in disks where disk.path != chosen?.disk.path {
            var storageReasons = usageReasons(disk, options: options, allowOwnMounts: false)
            storageReasons += matchReasons(disk, match: storageRule.match, key: "disks.storage.match")
            let ownOSD = options.knownStorageDisks.contains(disk.stableIdentity) && DiskPolicy.holdsOnlyBluestore(disk)
            if !ownOSD, let model = modelReason(disk, seed.disks.models) { storageReasons.append(model) }
            if AquariumLayout.statePartition(of: disk)?.uuid?.lowercased() == expectedUUID {
                storageReasons.append("carries this node's Aquarium system layout")
            } else if let content = DiskPolicy.contentRefusal(disk, use: .storage, rule: storageRule.wipe.rule,
                                                               key: "disks.storage.wipe", facts: facts[disk.path] ?? DiskFacts()) {
                storageReasons.append(content.description)
            }
            if !disk.hasStableIdentity {
                storageReasons.append("has no stable identity (WWN, serial, by-id link): the Provisioner could not find "
                    + "it again after a reboot, so it is not made an OSD")
            }
            if chosen != nil && storageReasons.isEmpty {
                var why = [ownOSD ? "this node's storage disk (its previous node record lists it) holding a Ceph OSD"
                                  : "eligible and matches disks.storage.match"]
                if candidates.contains(where: { $0.disk.path == disk.path }), let chosenDisk = chosen?.disk {
                    why.append("not chosen as system disk: \(chosenDisk.path) is preferred")
                }
                var disk = planned(disk, mode: nil, reasons: why)
                disk.ownOSD = ownOSD
                storage.append(disk)
                continue
            }
            var reasons = reasonsByPath[disk.path] ?? []
            if reasons.isEmpty, let chosenDisk = chosen?.disk {
                reasons.append("eligible, but \(chosenDisk.path) is preferred as system disk")
            } else if reasons.isEmpty, let refusal {
                reasons.append("eligible, but not chosen: \(refusal)")
            }
            let extra = storageReasons.filter { !reasons.contains($0) }
            if chosen != nil && !extra.isEmpty {
                reasons.append("not a storage disk: " + extra.joined(separator: "; "))
            }
            rejected.append(RejectedDisk(path: disk.path, name: disk.name, stableIdentity: disk.stableIdentity, reasons: reasons))
        }

        let systemDisk = chosen.map { planned($0.disk, mode: $0.mode, reasons: $0.why) }
        let resumed = chosen.flatMap { $0.mode == .resume ? options.journals[$0.disk.path] : nil }
        let actions = systemDisk.map {
            PlanAction.actions(for: $0, storageDisks: storage.count, partitionUUID: resumed?.partitionUUID ?? expectedUUID,
                               filesystem: resumed?.filesystem ?? system.filesystem.rawValue)
        } ?? []
        if chosen == nil && refusal == nil { refusal = "no disk is eligible as the system disk" }
        let requirements = requirementChecks(seed: seed, machine: inventory.machine, storageDisks: storage.count)
        let unmet = requirements.filter { !$0.met }
        var plannedActions = actions
        // Before anything is touched: a machine that is not installed yet and falls short is refused; one that runs
        // this node already keeps running (the plan shows what is short).
        if chosen?.mode == .create, !unmet.isEmpty {
            refusal = "the machine does not meet the hardware requirements (host.requirements): "
                + unmet.map(\.description).joined(separator: "; ")
            plannedActions = []
        }
        var plan = Plan(systemDisk: systemDisk, storageDisks: storage, rejected: rejected, actions: plannedActions,
                        refusal: refusal, filesystem: system.filesystem.rawValue)
        plan.requirements = requirements
        return plan
    }

    /// `host.requirements` against the machine (when the inventory says what it has) and the planned storage disks.
    static func requirementChecks(seed: Seed, machine: MachineResources?, storageDisks: Int) -> [RequirementCheck] {
        let wanted = seed.host.requirements
        var checks: [RequirementCheck] = []
        if let machine {
            checks.append(RequirementCheck(requirement: "cpu_threads", required: "\(wanted.cpuThreads) CPU threads",
                                           actual: "\(machine.cpuThreads)", met: machine.cpuThreads >= wanted.cpuThreads))
            let memory = wanted.memory + wanted.memoryPerOSD * UInt64(storageDisks)
            checks.append(RequirementCheck(
                requirement: "memory",
                required: "\(Seed.sizeText(memory)) (\(Seed.sizeText(wanted.memory)) + \(storageDisks) "
                    + "OSD\(storageDisks == 1 ? "" : "s") × \(Seed.sizeText(wanted.memoryPerOSD)))",
                actual: binarySize(machine.memoryBytes), met: machine.memoryBytes >= memory))
        }
        let disks = wanted.storageDisks(for: seed.cluster.role)
        if disks > 0 {
            checks.append(RequirementCheck(
                requirement: "storage_disks",
                required: "\(disks) storage disk\(disks == 1 ? "" : "s")" + (seed.cluster.role == .bootstrap && wanted.storageDisks == nil
                    ? " (a bootstrap node's cluster needs an OSD)" : ""),
                actual: "\(storageDisks)", met: storageDisks >= disks))
        }
        return checks
    }

    /// `1.9 GiB`: memory as the kernel counts it.
    static func binarySize(_ bytes: UInt64) -> String {
        String(format: "%.1f GiB", Double(bytes) / Double(1 << 30))
    }

    /// Why `disks.models` keeps `disk` out, or nil.
    static func modelReason(_ disk: Disk, _ models: Seed.DiskModels) -> String? {
        models.refusal(vendor: disk.vendor, model: disk.model, firmware: disk.firmware)
    }

    // MARK: - rules

    static func systemMode(_ disk: Disk, owner: AquariumOwner?, journal: JournalRecord?, seed: Seed) -> SystemDiskMode {
        // An unfinished journal of this node wins, but only on a disk that still holds exactly what the journal says
        // it wrote (or still nothing): anything else is content, judged by the wipe policy like any other disk.
        if let journal, !journal.isComplete, journal.hostname == seed.host.hostname, journal.cluster == seed.cluster.name,
           journal.mismatch(disk) == nil {
            return .resume
        }
        if owner == .thisNode { return .reuse }
        return .create
    }

    /// Why a journal of this node on `disk` is not resumed (the disk changed since), for the plan's reasons.
    static func staleJournal(_ journal: JournalRecord, disk: Disk, seed: Seed) -> String? {
        guard !journal.isComplete, journal.hostname == seed.host.hostname, journal.cluster == seed.cluster.name,
              let mismatch = journal.mismatch(disk) else { return nil }
        return "its step journal (an interrupted first boot of this node, started \(journal.startedAt)) is stale: "
            + "\(mismatch); the disk is judged by its content, not resumed"
    }

    /// Reasons a disk can never be used, whatever the seed says.
    static func usageReasons(_ disk: Disk, options: PlannerOptions, allowOwnMounts: Bool) -> [String] {
        DiskPolicy.usageRefusals(disk, ignoredMountpoints: allowOwnMounts ? options.ownMountpoints : []).map(\.description)
    }

    /// Reasons a disk does not satisfy a `match` (`key` names the seed key in messages).
    static func matchReasons(_ disk: Disk, match: DiskMatch, key: String) -> [String] {
        var reasons: [String] = []
        let k = key.isEmpty ? "" : key + "."
        if let byId = match.byId {
            let wanted = byId.hasPrefix("/dev/disk/by-id/") ? byId : "/dev/disk/by-id/" + byId
            if !disk.byId.contains(wanted) { reasons.append("is not \(k)by_id \(byId)") }
        }
        if let serial = match.serial, !(disk.serial.map { glob(serial, $0) } ?? false) {
            reasons.append("serial \(disk.serial ?? "unknown") does not match \(k)serial '\(serial)'")
        }
        if let wwn = match.wwn, WWN.comparable(disk.wwn) != WWN.comparable(wwn) {
            reasons.append("WWN \(disk.wwn ?? "unknown") is not \(k)wwn \(wwn)")
        }
        if let model = match.model, !(disk.model.map { glob(model, $0) } ?? false) {
            reasons.append("model \(disk.model ?? "unknown") does not match \(k)model '\(model)'")
        }
        if let transports = match.transport, !transports.contains(where: { transport($0) == disk.transport }) {
            reasons.append("transport \(disk.transport.rawValue) is not one of \(k)transport ["
                + transports.map(\.rawValue).joined(separator: ", ") + "]")
        }
        if let rotational = match.rotational, rotational != disk.rotational {
            reasons.append("is \(disk.rotational ? "an HDD" : "an SSD") (\(k)rotational is \(rotational))")
        }
        if let minimum = match.minSize, disk.sizeBytes < minimum {
            reasons.append("is smaller than \(k)min_size (\(formatSize(disk.sizeBytes)) < \(formatSize(minimum)))")
        }
        if let maximum = match.maxSize, disk.sizeBytes > maximum {
            reasons.append("is larger than \(k)max_size (\(formatSize(disk.sizeBytes)) > \(formatSize(maximum)))")
        }
        if !key.isEmpty, disk.removable {
            let asked = match.transport?.contains(.usb) == true || match.byId != nil || match.serial != nil || match.wwn != nil
            if !asked {
                reasons.append("is removable (allowed only when \(k)transport is [usb] or by_id/serial/wwn names it)")
            }
        }
        return reasons
    }

    /// What is on a disk, in words; nil when libblkid found nothing.
    public static func describeContent(_ disk: Disk) -> String? {
        DiskPolicy.describeContent(disk) ?? (disk.unrecognisedData ? "holds data libblkid does not recognise" : nil)
    }

    // MARK: - identity and preference

    enum IdentityRank: Int { case wwn = 0, serial, byId, backingFile, none }

    /// The canonical order of disks: by their most stable identity (WWN, serial, by-id, a loop device's backing
    /// file); only disks with none of these fall back to the path.
    static func identityKey(_ disk: Disk) -> (rank: Int, value: String, path: String) {
        if let wwn = disk.wwn, !wwn.isEmpty { return (IdentityRank.wwn.rawValue, WWN.comparable(wwn), disk.path) }
        if let serial = disk.serial, !serial.isEmpty { return (IdentityRank.serial.rawValue, serial, disk.path) }
        if let link = disk.byId.sorted().first { return (IdentityRank.byId.rawValue, link, disk.path) }
        if let file = disk.backingFile, !file.isEmpty { return (IdentityRank.backingFile.rawValue, file, disk.path) }
        return (IdentityRank.none.rawValue, "", disk.path)
    }

    static func preferenceKey(_ disk: Disk, _ prefer: DiskPreference, _ rotational: Bool?) -> [UInt64] {
        let media: UInt64 = rotational == nil && disk.rotational ? 1 : 0
        let size = prefer == .smallest ? disk.sizeBytes : UInt64.max - disk.sizeBytes
        return [media, size]
    }

    static func preferred(_ a: Disk, _ b: Disk, _ prefer: DiskPreference, rotational: Bool?) -> Bool {
        let ka = preferenceKey(a, prefer, rotational), kb = preferenceKey(b, prefer, rotational)
        if ka != kb { return ka.lexicographicallyPrecedes(kb) }
        return identityKey(a) < identityKey(b)
    }

    /// The unique identities a match names: by_id, wwn, serial without glob characters.
    static func uniqueIdentities(_ match: DiskMatch) -> [String] {
        var names: [String] = []
        if let byId = match.byId { names.append("by_id \(byId)") }
        if let wwn = match.wwn { names.append("wwn \(wwn)") }
        if let serial = match.serial, !serial.contains(where: { "*?[".contains($0) }) { names.append("serial \(serial)") }
        return names
    }

    static func identityOnly(_ match: DiskMatch) -> DiskMatch {
        var only = DiskMatch(byId: match.byId, wwn: match.wwn)
        if let serial = match.serial, !serial.contains(where: { "*?[".contains($0) }) { only.serial = serial }
        return only
    }

    static func transport(_ wanted: DiskTransport) -> Transport {
        switch wanted {
        case .nvme: .nvme
        case .sata, .ata: .sata
        case .sas: .sas
        case .scsi, .iscsi, .fc: .scsi
        case .usb: .usb
        case .virtio: .virtio
        case .mmc: .mmc
        }
    }

    static func glob(_ pattern: String, _ value: String) -> Bool { fnmatch(pattern, value, 0) == 0 }
}
