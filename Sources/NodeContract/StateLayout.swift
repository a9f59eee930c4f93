import Disks
import Foundation
import GPT
import Seed

/// Names, GUIDs and paths of the Aquarium system-disk layout, shared by FirstBoot (which makes it) and the
/// Provisioner (which lives in it).
public enum AquariumLayout {
    /// The GPT partition name of the state partition.
    public static let partitionName = AquariumMarks.statePartitionName
    /// Discoverable Partitions Specification: /var.
    public static let partitionType = AquariumMarks.statePartitionType
    /// The filesystem label (XFS allows 12 characters).
    public static let filesystemLabel = "aquarium"
    /// Where the state filesystem is mounted, relative to the target root.
    public static let stateMountpoint = "/var/lib/aquarium-system"
    /// Directories of the target root that live on the state filesystem (bind mounts), and where.
    public static let bindDirectories: [(target: String, source: String)] = [
        ("/var/lib/aquarium", "state/aquarium"),
        ("/var/lib/ceph", "state/ceph"),
        ("/var/log", "state/log"),
    ]
    /// /etc is an overlay: the image's /etc below, this node's changes in `etc/upper` on the state filesystem.
    public static let etcUpper = "etc/upper"
    public static let etcWork = "etc/work"

    /// The state partition's PARTUUID for a node: derived from the cluster and host name so that the plan can
    /// recognise "this node's layout" from an inventory alone.
    public static func statePartitionUUID(cluster: String, hostname: String) -> String {
        DeterministicUUID.make("aquarium-state/\(cluster)/\(hostname)").uuidString.lowercased()
    }

    /// The node UUID of a layout whose journal is gone: derived from its PARTUUID (as `apply` does on reuse).
    public static func derivedNodeUUID(partitionUUID: String) -> String {
        DeterministicUUID.make("aquarium-node/\(partitionUUID.lowercased())").uuidString.lowercased()
    }

    /// The aquarium-state partition of `disk`, when the disk carries an Aquarium layout (GPT, that name, /var type).
    public static func statePartition(of disk: Disk) -> Partition? { AquariumMarks.statePartition(of: disk) }

    /// Who owns the Aquarium layout on `disk` (nil: it carries none), from its state partition and its step journal.
    public static func owner(of disk: Disk, journal: JournalRecord?, cluster: String, hostname: String) -> AquariumOwner? {
        let expected = statePartitionUUID(cluster: cluster, hostname: hostname)
        if let state = statePartition(of: disk), let uuid = state.uuid?.lowercased() {
            if uuid == expected { return .thisNode }
            if let journal, journal.partitionUUID.lowercased() == uuid {
                return .otherNode(uuid: journal.nodeUUID, hostname: journal.hostname)
            }
            return .otherNode(uuid: derivedNodeUUID(partitionUUID: uuid), hostname: nil)
        }
        // No layout (yet): a journal of another node alone still names it.
        if let journal, journal.hostname != hostname || journal.cluster != cluster {
            return .otherNode(uuid: journal.nodeUUID, hostname: journal.hostname)
        }
        return nil
    }
}

extension WipePolicy {
    /// The disk policy's rule for this seed value (`disks.system.wipe`, `disks.storage.wipe`).
    public var rule: WipeRule {
        switch self {
        case .never: .never
        case .aquarium: .aquarium
        case .always: .always
        }
    }
}
