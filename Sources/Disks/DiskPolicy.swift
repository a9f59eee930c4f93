// The one disk-safety policy: which disks may be used, for what, and whether their content may be destroyed.
// FirstBoot's planner (system and storage disks), the Provisioner (storage disks before they become OSDs) and the
// flasher (the stick to write) all ask these functions; none of them keeps rules of its own.

/// The on-disk marks of an Aquarium system disk, which the policy must recognise.
public enum AquariumMarks {
    /// The GPT partition name of the state partition.
    public static let statePartitionName = "aquarium-state"
    /// Discoverable Partitions Specification: /var.
    public static let statePartitionType = "4d21b016-b534-45c2-a9fb-5c16e091fd2d"
    /// FirstBoot's step journal: two 4 KiB slots at 512 KiB, in the gap between the GPT and the first partition.
    public static let journalOffset: UInt64 = 512 * 1024
    public static let journalSlotSize = 4096
    public static var journalRange: Range<UInt64> { journalOffset..<(journalOffset + UInt64(2 * journalSlotSize)) }

    /// The aquarium-state partition of `disk`, when the disk carries an Aquarium layout (GPT, that name, /var type).
    public static func statePartition(of disk: Disk) -> Partition? {
        guard disk.partitionTable == "gpt" else { return nil }
        return disk.partitions.first { $0.name == statePartitionName && $0.typeGuid?.lowercased() == statePartitionType }
    }
}

/// What the seed allows to be destroyed on a disk (`disks.system.wipe`, `disks.storage.wipe`).
public enum WipeRule: String, Sendable, Equatable, CaseIterable {
    /// Only empty disks: no signature libblkid knows, no partition table, no other data in the first and last MiB.
    case never
    /// Empty disks, and (system disk) an earlier Aquarium layout or (storage) an earlier Ceph OSD.
    case aquarium
    /// Any content, except another node's Aquarium state unless the seed names that node.
    case always
}

/// What a disk is wanted for.
public enum DiskUse: String, Sendable, Equatable {
    case systemDisk
    case storage
    /// A USB stick `aquarium-image flash` writes.
    case flashTarget
}

/// Who owns the Aquarium layout found on a disk.
public enum AquariumOwner: Sendable, Equatable {
    /// This node (the seed's cluster and host name): a later boot mounts it.
    case thisNode
    /// Another node: its node UUID (from the disk's journal or derived from its partition) and host name when known.
    case otherNode(uuid: String, hostname: String?)
}

/// Facts about a disk that its inventory record does not hold (read by the caller from the disk or the cluster).
public struct DiskFacts: Sendable, Equatable {
    /// Set when the disk carries an Aquarium layout.
    public var aquariumOwner: AquariumOwner?
    /// The node UUID the seed names with `host.reinstall`, or that a machine-bound seed stands for (nil: none).
    public var reinstallNode: String?
    /// Whether the seed is bound to this machine (`host.machine` matched): it may replace any Aquarium layout here.
    public var seedBoundToMachine: Bool
    /// The disk is one of this node's storage disks according to its previous node record.
    public var knownStorageDisk: Bool
    /// The fsid in the disk's bluestore label, when the caller read it.
    public var bluestoreFSID: String?
    /// This node's cluster fsid, when it is known (the Provisioner after bootstrap or from the join token).
    public var clusterFSID: String?

    public init(aquariumOwner: AquariumOwner? = nil, reinstallNode: String? = nil, seedBoundToMachine: Bool = false,
                knownStorageDisk: Bool = false, bluestoreFSID: String? = nil, clusterFSID: String? = nil) {
        self.aquariumOwner = aquariumOwner
        self.reinstallNode = reinstallNode
        self.seedBoundToMachine = seedBoundToMachine
        self.knownStorageDisk = knownStorageDisk
        self.bluestoreFSID = bluestoreFSID
        self.clusterFSID = clusterFSID
    }
}

/// Why a disk must not be used (or its content must not be destroyed). The description is the operator's sentence.
public enum DiskRefusal: Sendable, Equatable, CustomStringConvertible {
    case cdrom
    case bootMedia
    case readOnly
    case mounted([String])
    case held([String])
    case unreadable(String)
    /// Content the wipe rule does not allow destroying (`what` describes it, `key` names the seed key).
    case content(what: String, rule: WipeRule, key: String, hint: String)
    /// Non-zero bytes in the first or last MiB that libblkid does not recognise (plain dm-crypt, a wiped header, ...).
    case unrecognisedData(rule: WipeRule, key: String)
    /// Another node's Aquarium state, which only a seed that names that node may replace.
    case otherNode(uuid: String, hostname: String?)
    /// An OSD of another Ceph cluster under `wipe: never`.
    case foreignOSD(fsid: String, key: String)

    public var description: String {
        switch self {
        case .cdrom: "is a CD-ROM"
        case .bootMedia: "is boot media (holds the running system or the seed volume)"
        case .readOnly: "is read-only"
        case .mounted(let points): points.isEmpty ? "is mounted" : "is mounted (\(points.joined(separator: ", ")))"
        case .held(let holders): "is held by \(holders.joined(separator: ", ")) (device-mapper, LVM or MD)"
        case .unreadable(let error): "its content could not be read (\(error))"
        case .content(let what, let rule, let key, let hint):
            "\(what) (\(key) is \(rule.rawValue)\(hint.isEmpty ? "" : ": " + hint))"
        case .unrecognisedData(let rule, let key):
            "holds data libblkid does not recognise (non-zero bytes in its first or last MiB: encrypted or raw data?) "
                + "(\(key) is \(rule.rawValue); only always may destroy it)"
        case .otherNode(let uuid, let hostname):
            "holds the Aquarium state of another node (node \(uuid)\(hostname.map { ", host \($0)" } ?? "")); "
                + "a seed replaces it only when it names that node: set host.reinstall: \(uuid), or bind the seed to "
                + "this machine with host.machine"
        case .foreignOSD(let fsid, let key):
            "is an OSD of another Ceph cluster (\(fsid)) (\(key) is never; set it to aquarium to reuse the disk)"
        }
    }

    /// True for refusals no wipe rule can lift (the disk is in use, or is not a disk to write at all).
    public var isUsage: Bool {
        switch self {
        case .cdrom, .bootMedia, .readOnly, .mounted, .held, .unreadable: true
        case .content, .unrecognisedData, .otherNode, .foreignOSD: false
        }
    }
}

public enum DiskPolicy {
    /// Reasons a disk can never be used, whatever the seed says. `ignoredMountpoints`: mounts that are this node's own
    /// state mounts (a system disk already mounted by an earlier run), not a use by something else.
    public static func usageRefusals(_ disk: Disk, ignoredMountpoints: [String] = []) -> [DiskRefusal] {
        var refusals: [DiskRefusal] = []
        if disk.isCdrom { refusals.append(.cdrom) }
        if disk.isBootMedia { refusals.append(.bootMedia) }
        if disk.readOnly { refusals.append(.readOnly) }
        let foreign = disk.mountpoints.filter { point in
            !ignoredMountpoints.contains { point == $0 || point.hasPrefix($0 + "/") }
        }
        if !foreign.isEmpty {
            refusals.append(.mounted(foreign))
        } else if disk.mounted && disk.mountpoints.isEmpty {
            refusals.append(.mounted([]))
        }
        if !disk.holders.isEmpty { refusals.append(.held(disk.holders)) }
        if let error = disk.probeError { refusals.append(.unreadable(error)) }
        return refusals
    }

    /// Whether the disk holds nothing at all: no signature, no partition table, no unrecognised data.
    public static func isEmpty(_ disk: Disk) -> Bool {
        disk.signatures.isEmpty && disk.partitionTable == nil && disk.partitions.isEmpty && !disk.unrecognisedData
    }

    /// The signature types on the disk and its partitions.
    static func contentTypes(_ disk: Disk) -> Set<String> {
        Set(disk.signatures.map(\.type) + disk.partitions.compactMap(\.fsType))
    }

    /// True when libblkid found a Ceph bluestore label and nothing else (no partition table, no other signature).
    public static func holdsOnlyBluestore(_ disk: Disk) -> Bool {
        contentTypes(disk) == ["ceph_bluestore"] && disk.partitionTable == nil
    }

    /// Why the content of `disk` must not be destroyed to use it as `use` under `rule` (`key` names the seed key in the
    /// message), or nil when it may be (or there is nothing to destroy).
    public static func contentRefusal(_ disk: Disk, use: DiskUse, rule: WipeRule, key: String,
                                      facts: DiskFacts = DiskFacts()) -> DiskRefusal? {
        // Another node's state goes only when the seed names that node, whatever the wipe rule says.
        if case .otherNode(let uuid, let hostname) = facts.aquariumOwner {
            let named = facts.seedBoundToMachine || facts.reinstallNode?.lowercased() == uuid.lowercased()
            if !named { return .otherNode(uuid: uuid, hostname: hostname) }
        }
        if isEmpty(disk) { return nil }
        guard let what = describeContent(disk) else {
            // Only unrecognised bytes.
            return rule == .always ? nil : .unrecognisedData(rule: rule, key: key)
        }
        switch use {
        case .flashTarget:
            return nil
        case .systemDisk:
            switch rule {
            case .always: return nil
            case .aquarium:
                if AquariumMarks.statePartition(of: disk) != nil { return nil }
                return .content(what: what, rule: rule, key: key, hint: "only an earlier Aquarium layout may be replaced")
            case .never:
                if AquariumMarks.statePartition(of: disk) != nil {
                    return .content(what: "carries an earlier Aquarium layout", rule: rule, key: key,
                                    hint: "set it to aquarium to replace it")
                }
                return .content(what: what, rule: rule, key: key, hint: "")
            }
        case .storage:
            if holdsOnlyBluestore(disk) {
                // This node's own OSD stays (the Provisioner adopts it); the fsid decides when it is known.
                if let fsid = facts.bluestoreFSID, let cluster = facts.clusterFSID {
                    if fsid == cluster { return nil }
                    return rule == .never ? .foreignOSD(fsid: fsid, key: key) : nil
                }
                if facts.knownStorageDisk { return nil }
                return rule == .never ? .content(what: what, rule: rule, key: key, hint: "") : nil
            }
            switch rule {
            case .always: return nil
            case .aquarium:
                if AquariumMarks.statePartition(of: disk) != nil { return nil }
                return .content(what: what, rule: rule, key: key, hint: "only an earlier Ceph OSD may be reused")
            case .never:
                return .content(what: what, rule: rule, key: key, hint: "")
            }
        }
    }

    /// What is on a disk, in words; nil when libblkid found nothing.
    public static func describeContent(_ disk: Disk) -> String? {
        if let table = disk.partitionTable {
            let parts = disk.partitions.map { part -> String in
                var text = "\(part.number)"
                if let fs = part.fsType { text += " \(fs)" + (part.fsLabel.map { " '\($0)'" } ?? "") }
                if let name = part.name, !name.isEmpty { text += " named '\(name)'" }
                return text
            }
            let count = disk.partitions.count
            return "holds a \(table) partition table with \(count) partition\(count == 1 ? "" : "s")"
                + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")
        }
        let nonTable = disk.signatures.filter { $0.usage != "partition_table" }
        if let first = nonTable.first {
            return "holds \(first.type)" + (first.label.map { " '\($0)'" } ?? "")
                + (nonTable.count > 1 ? " and \(nonTable.count - 1) more signature(s)" : "")
        }
        if let first = disk.signatures.first { return "holds a \(first.type) signature" }
        return nil
    }
}
