import Foundation
import NodeContract

/// One thing `apply` does to the system disk and the target root, as a value. The plan is a list of these: `plan`
/// prints them (in words, and as the strings of the JSON `actions`), and `apply` executes exactly that list, in
/// order, one step per action (docs/plan.md, docs/firstboot.md).
public enum PlanAction: Equatable, Sendable, Encodable, CustomStringConvertible {
    /// Start the step journal on `disk` (create), or pick up the interrupted first boot it records (`resume`).
    case journal(disk: String, resume: Bool)
    /// Clear every signature on `disk` and any older journal; `content` is what is on it now (nil: nothing known).
    case wipeSignatures(disk: String, content: String?)
    /// A fresh GPT on `disk` with partition 1 over the whole disk.
    case partition(disk: String, sectorSize: Int)
    /// The identities libparted cannot set: the disk GUID, the /var type GUID and the partition's `partitionUUID`.
    case setIdentities(disk: String, partitionUUID: String)
    /// mkfs of the state partition.
    case format(filesystem: String)
    /// Mount the state filesystem; `reuse`: this node's existing layout on `disk`, checked to be this node's.
    case mount(disk: String, reuse: Bool)
    /// Bind the state directories, overlay /etc and write the systemd mount units.
    case layout
    /// The verified seed and the node record naming `storageDisks` storage disks.
    case writeRecord(storageDisks: Int)
    /// The journal write that marks the first boot complete (later boots only mount).
    case complete(disk: String)
    /// Start `aquarium-provision`.
    case handoff

    /// The step that runs this action: its journal entry and fault points.
    public var step: ApplyStep {
        switch self {
        case .journal: .journal
        case .wipeSignatures: .wipe
        case .partition: .partition
        case .setIdentities: .identities
        case .format: .mkfs
        case .mount: .mount
        case .layout: .layout
        case .writeRecord: .record
        case .complete: .complete
        case .handoff: .handoff
        }
    }

    /// The action in words, as `plan` prints it.
    public var description: String {
        let journalBytes = "bytes \(StepJournal.offset)-\(StepJournal.offset + 2 * UInt64(StepJournal.slotSize) - 1)"
        switch self {
        case .journal(let disk, false):
            return "record each step in the journal on \(disk) (\(journalBytes))"
        case .journal(let disk, true):
            return "resume the interrupted first boot recorded in the step journal on \(disk), recording each further "
                + "step there (\(journalBytes))"
        case .wipeSignatures(let disk, let content?):
            return "wipe \(disk): it \(content)"
        case .wipeSignatures(let disk, nil):
            return "wipe \(disk): clear any signatures and older journals (it holds nothing libblkid knows)"
        case .partition(let disk, let sectorSize):
            return "create a GPT on \(disk) with partition 1 '\(AquariumLayout.partitionName)' over the whole disk "
                + "(1 MiB aligned, \(sectorSize)-byte sectors, type /var \(AquariumLayout.partitionType))"
        case .setIdentities(let disk, let partitionUUID):
            return "set the disk GUID of \(disk) and partition 1's /var type and PARTUUID \(partitionUUID)"
        case .format(let filesystem):
            return "format it \(filesystem) labelled '\(AquariumLayout.filesystemLabel)'"
        case .mount(_, false):
            return "mount it at \(AquariumLayout.stateMountpoint)"
        case .mount(let disk, true):
            return "mount partition '\(AquariumLayout.partitionName)' of \(disk) at \(AquariumLayout.stateMountpoint) "
                + "(no partitioning, no formatting)"
        case .layout:
            return "bind " + AquariumLayout.bindDirectories.map(\.target).joined(separator: ", ")
                + " from it, overlay /etc with its \(AquariumLayout.etcUpper), and write systemd mount units"
        case .writeRecord(let count):
            return "write the node record /var/lib/aquarium/node.json"
                + (count == 0 ? "" : " with \(count) storage disk\(count == 1 ? "" : "s")")
        case .complete(let disk):
            return "mark the first boot complete in the journal on \(disk) (later boots only mount)"
        case .handoff:
            return "hand off to aquarium-provision"
        }
    }

    /// In the plan's JSON each action is its description (docs/plan.md: `actions` is a list of strings).
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The actions for `system` (the chosen disk, as planned) in the order `apply` runs them: the state partition gets
    /// `partitionUUID` and a `filesystem`, the record names `storageDisks` storage disks.
    public static func actions(for system: PlannedDisk, storageDisks: Int, partitionUUID: String,
                               filesystem: String) -> [PlanAction] {
        let target = system.displayPath
        let tail: [PlanAction] = [.layout, .writeRecord(storageDisks: storageDisks)]
        switch system.mode ?? .create {
        case .reuse:
            return [.mount(disk: target, reuse: true)] + tail + [.handoff]
        case .create, .resume:
            return [.journal(disk: target, resume: system.mode == .resume),
                    .wipeSignatures(disk: target, content: system.content),
                    .partition(disk: target, sectorSize: system.logicalSectorSize),
                    .setIdentities(disk: target, partitionUUID: partitionUUID),
                    .format(filesystem: filesystem),
                    .mount(disk: target, reuse: false)]
                + tail + [.complete(disk: target), .handoff]
        }
    }
}
