import Disks
import Exec
import Foundation
import Logging
import NodeContract
import Seed

/// A storage disk from the node record, found on this machine by its stable identity.
public struct ResolvedDisk: Equatable, Sendable {
    /// The name used in the state and messages: the record's stable identity.
    public var key: String
    /// What the OSD's `block` link points to: a by-id link when there is one (stable across boots), else the path.
    public var stablePath: String
    /// The kernel device (`/dev/loop3`, `/dev/sdb`) this boot.
    public var device: String
    /// The inventory record of the disk as found now.
    public var disk: Disk
}

/// Finds the node record's storage disks by their stable identity only and applies the one disk policy
/// (`Disks.DiskPolicy`) before anything is written to them.
public enum StorageDiskCheck {
    /// This machine's disks, as the inventory reads them.
    public static func inventory(logger: Logger) throws(ProvisionError) -> Inventory {
        do {
            return try InventoryScanner(options: InventoryOptions(), logger: logger).scan()
        } catch {
            throw .failed("cannot list this machine's disks: \(error)")
        }
    }

    /// The disk the record names, or nil when no disk on this machine has its identity (pulled, dead): such a disk is
    /// skipped and reported, never replaced by whatever now has its old kernel name. Refuses (exit 3) an identity
    /// that several disks claim or whose size changed.
    public static func resolve(_ identity: DiskIdentity, in inventory: Inventory) throws(ProvisionError) -> ResolvedDisk? {
        if identity.stableIdentity.hasPrefix("path:") {
            throw .refused("the storage disk \(identity.path) in the node record has no stable identity (WWN, serial, "
                + "by-id link); it cannot be told apart from whatever has that kernel name now. Rerun FirstBoot")
        }
        switch identity.locate(in: inventory) {
        case .missing:
            return nil
        case .ambiguous(let paths):
            throw .refused("the storage disk \(identity.displayName) is ambiguous: \(paths.joined(separator: ", ")) all "
                + "have its identity; nothing was written. Remove the duplicate or rerun FirstBoot")
        case .changed(let disk, let why):
            throw .refused("the storage disk \(identity.displayName) at \(disk.path) is not the disk the node record "
                + "names (\(why)); nothing was written. Rerun FirstBoot")
        case .found(let disk):
            let link = disk.byId.sorted().first { $0.contains("/wwn-") } ?? disk.byId.sorted().first
            return ResolvedDisk(key: identity.stableIdentity, stablePath: link ?? disk.path, device: disk.path, disk: disk)
        }
    }

    /// Refuses (exit 3) a disk that is the node's system disk or boot media, is mounted, used as swap or held by
    /// another device (LVM, MD, dm-crypt).
    public static func checkNotInUse(_ disk: ResolvedDisk, record: NodeRecord, inventory: Inventory) throws(ProvisionError) {
        let roles: [(String, DiskIdentity?)] = [("system disk", record.systemDisk.identity), ("boot media", record.bootMedia)]
        for (role, identity) in roles {
            guard let identity else { continue }
            if identity.matches(disk.disk) || inventory.disks.first(where: identity.matches)?.path == disk.device {
                throw .refused("the storage disk \(disk.key) (\(disk.device)) is the node's \(role) "
                    + "(\(identity.displayName)); the Provisioner never touches it. Fix the node record (rerun FirstBoot).")
            }
        }
        let usage = DiskPolicy.usageRefusals(disk.disk)
        if !usage.isEmpty {
            throw .refused("the storage disk \(disk.key) (\(disk.device)) " + usage.map(\.description).joined(separator: "; ")
                + "; release it first")
        }
    }

    /// What is on the disk, as far as the Provisioner cares.
    public enum Content: Equatable, Sendable {
        case empty
        case bluestore(BluestoreLabel)
        /// Anything else (a partition table, a filesystem, LVM, unrecognised data), in words.
        case other(String)
    }

    /// The disk with its bluestore label made visible to the policy (libblkid does not know every label version).
    public static func probe(_ disk: Disk) -> (Disk, BluestoreLabel?) {
        var disk = disk
        let mayHoldLabel = disk.unrecognisedData || disk.signatures.contains { $0.type == "ceph_bluestore" }
        guard mayHoldLabel, let label = BluestoreLabel.read(device: disk.path) else { return (disk, nil) }
        if !disk.signatures.contains(where: { $0.type == "ceph_bluestore" }) {
            disk.signatures.append(Signature(type: "ceph_bluestore", usage: "other", offsetBytes: 0))
        }
        disk.unrecognisedData = false
        return (disk, label)
    }

    public static func content(_ disk: Disk, label: BluestoreLabel?) -> Content {
        if let label, DiskPolicy.holdsOnlyBluestore(disk) { return .bluestore(label) }
        if DiskPolicy.isEmpty(disk) { return .empty }
        return .other(DiskPolicy.describeContent(disk) ?? "data libblkid does not recognise")
    }

    /// The policy's verdict on destroying what is on `disk` for an OSD of the cluster `clusterFSID` ("" before there
    /// is one); throws the refusal (exit 3).
    public static func checkContent(_ disk: ResolvedDisk, probed: Disk, label: BluestoreLabel?, seed: Seed,
                                    clusterFSID: String?) throws(ProvisionError) {
        let facts = DiskFacts(knownStorageDisk: true, bluestoreFSID: label?.clusterFSID, clusterFSID: clusterFSID ?? "")
        if let refusal = DiskPolicy.contentRefusal(probed, use: .storage, rule: seed.disks.storage.wipe.rule,
                                                   key: "disks.storage.wipe", facts: facts) {
            throw .refused("the storage disk \(disk.key) (\(disk.device)) \(refusal); it is left alone")
        }
    }

    /// Claims the disk exclusively (the kernel refuses while it is mounted or held), checks it is still the disk the
    /// record names, and zeroes its signatures and first 16 MiB (where bluestore keeps its label).
    public static func wipe(_ disk: ResolvedDisk, logger: Logger) throws(ProvisionError) {
        do {
            let claim = try DiskClaim(disk.disk, logger: logger)
            defer { claim.close() }
            try claim.wipeSignatures(head: 16 << 20)
        } catch {
            throw error.kind == .failed ? .failed("cannot wipe \(disk.device): \(error)") : .refused("refused: \(error)")
        }
    }
}
