import Disks
import Foundation
import GPT
import JSONCoding
import NodeContract
import Seed

/// Facts the plan needs beyond the seed and the inventory. All explicit, so the planner stays pure.
public struct PlannerOptions: Sendable, Equatable {
    /// Mount points that are Aquarium's own state mounts in the target root (a disk mounted only there is not
    /// "in use": it is this node's system disk, already mounted by an earlier run).
    public var ownMountpoints: [String]
    /// The step journal found on each disk (by path). An unfinished journal of this node on a disk that still holds
    /// exactly what it records is an interrupted first boot to resume; any journal names the node a layout belongs to.
    public var journals: [String: JournalRecord]
    /// Stable identities of the storage disks this node's previous node record lists. Once the Provisioner made
    /// them OSDs they hold Ceph bluestore; they stay this node's storage disks whatever `disks.storage.wipe` says
    /// (the Provisioner checks that the OSD belongs to this node's cluster before it adopts one).
    public var knownStorageDisks: Set<String>
    /// The seed is bound to this machine (`host.machine` matched): it stands for this machine's node and may replace
    /// an Aquarium layout of another node here (as `host.reinstall` does for one node UUID).
    public var seedBoundToMachine: Bool

    public init(ownMountpoints: [String] = [], journals: [String: JournalRecord] = [:], knownStorageDisks: Set<String> = [],
                seedBoundToMachine: Bool = false) {
        self.ownMountpoints = ownMountpoints
        self.journals = journals
        self.knownStorageDisks = knownStorageDisks
        self.seedBoundToMachine = seedBoundToMachine
    }

    /// The own mount points for a target root ("/" on a node).
    public static func ownMountpoints(root: String) -> [String] {
        let base = root == "/" ? "" : (root.hasSuffix("/") ? String(root.dropLast()) : root)
        return [AquariumLayout.stateMountpoint] .map { base + $0 }
            + AquariumLayout.bindDirectories.map { base + $0.target }
            + [base + "/etc"]
    }
}

/// What happens to the chosen system disk.
public enum SystemDiskMode: String, Codable, Sendable {
    /// Partition, format and lay out a disk that is empty (or may be wiped).
    case create
    /// The disk already carries this node's layout: mount only.
    case reuse
    /// An earlier run on this disk was interrupted: continue from its step journal.
    case resume
}

/// A chosen disk as the plan shows it.
public struct PlannedDisk: Codable, Equatable, Sendable {
    public var path: String
    /// The most stable name of the disk: a by-id link when there is one, else the path.
    public var displayPath: String
    public var name: String
    public var stableIdentity: String
    public var byId: [String]
    @Nullable public var wwn: String?
    @Nullable public var serial: String?
    @Nullable public var model: String?
    @Nullable public var vendor: String?
    public var sizeBytes: UInt64
    public var logicalSectorSize: Int
    public var rotational: Bool
    public var transport: String
    /// What is on the disk now, in words (null: nothing libblkid knows).
    @Nullable public var content: String?
    /// System disk only: create, reuse or resume.
    @Nullable public var mode: SystemDiskMode?
    /// Why this disk was chosen.
    public var reasons: [String]
    /// Storage only: this node's own OSD, kept whatever `disks.storage.wipe` says (its previous node record lists it).
    /// Not in the JSON (the reasons say it); the human plan names it.
    public var ownOSD = false

    enum CodingKeys: String, CodingKey {
        case path, displayPath, name, stableIdentity, byId, wwn, serial, model, vendor, sizeBytes, logicalSectorSize
        case rotational, transport, content, mode, reasons
    }
}

/// A disk that is neither the system disk nor a storage disk, and why.
public struct RejectedDisk: Codable, Equatable, Sendable {
    public var path: String
    public var name: String
    public var stableIdentity: String
    public var reasons: [String]
}

/// One hardware requirement (`host.requirements`) against what the machine has.
public struct RequirementCheck: Codable, Equatable, Sendable {
    /// The seed key: `cpu_threads`, `memory`, `storage_disks`.
    public var requirement: String
    public var required: String
    public var actual: String
    public var met: Bool

    public init(requirement: String, required: String, actual: String, met: Bool) {
        self.requirement = requirement
        self.required = required
        self.actual = actual
        self.met = met
    }

    /// `memory: needs 1.5 GiB (1 GiB + 2 OSDs × 256 MiB), has 1.9 GiB`.
    public var description: String { "\(requirement): needs \(required), has \(actual)" }
}

/// The plan: `aquarium-firstboot plan --json` prints it (docs/plan.md), `apply` executes its actions.
public struct Plan: Encodable, Equatable, Sendable {
    @Nullable public var systemDisk: PlannedDisk?
    public var storageDisks: [PlannedDisk]
    public var rejected: [RejectedDisk]
    /// What `apply` will do, in order: the very list it executes (in the JSON, each in words).
    public var actions: [PlanAction]
    /// Why no system disk was chosen (null when one was).
    @Nullable public var refusal: String?
    /// The filesystem the state partition gets (or has).
    public var filesystem: String
    /// The hardware requirements checked (none when the inventory has no machine section and no role needs disks).
    public var requirements: [RequirementCheck] = []

    /// No system disk, or a requirement not met on a machine not installed yet.
    public var isRefused: Bool { systemDisk == nil || refusal != nil }

    enum CodingKeys: String, CodingKey { case systemDisk, storageDisks, rejected, actions, refusal, filesystem, requirements }
}
