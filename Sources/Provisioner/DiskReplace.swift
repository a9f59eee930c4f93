import ArgumentParser
import CommandSupport
import Disks
import Foundation
import NodeContract

extension Operations {
    /// `disk replace OSD-ID DEVICE`: the node record names DEVICE instead of the failed disk of OSD-ID, so the next
    /// `run` destroys OSD-ID (once its data is whole elsewhere) and makes DEVICE an OSD with the same id. Refused
    /// (exit 3) when OSD-ID is up (its disk works), when DEVICE holds anything, or is the system disk or boot media.
    public func replaceDisk(osd id: Int, device: String, nodeRecord: String) throws(ProvisionError) -> String {
        let state = try ProvisionState.load(layout.stateFile)
        guard let oldKey = state.osdIds.first(where: { $0.value == id })?.key else {
            let own = state.osdIds.values.sorted().map { "osd.\($0)" }
            throw .invalidInput("osd.\(id) is not on this node (its OSDs: \(own.isEmpty ? "none" : own.joined(separator: ", "))); "
                + "run `disk replace` on the node that holds it")
        }
        if try upOSDs().contains(id) {
            throw .refused("osd.\(id) is up: its disk (\(oldKey)) still works. Replace a disk only once its OSD is down; to "
                + "take a working disk out, `aquarium-provision maintenance enter` the host first")
        }
        var node: NodeRecord
        do { node = try NodeRecord.load(path: nodeRecord) } catch { throw .invalidInput("\(error)") }
        let inventory = try StorageDiskCheck.inventory(logger: logger)
        let wanted = (try? FileManager.default.destinationOfSymbolicLink(atPath: device)).map {
            $0.hasPrefix("/") ? $0 : ((device as NSString).deletingLastPathComponent as NSString).appendingPathComponent($0)
        } ?? device
        guard let disk = inventory.disks.first(where: { $0.path == device || $0.path == wanted || $0.byId.contains(device) }) else {
            throw .invalidInput("\(device) is not a disk of this machine (`aquarium-firstboot inventory` lists them)")
        }
        let identity = DiskIdentity(disk)
        if node.storageDisks.contains(where: { $0.stableIdentity == identity.stableIdentity }) {
            throw .invalidInput("\(device) is already one of this node's storage disks")
        }
        let resolved = ResolvedDisk(key: identity.stableIdentity, stablePath: disk.byId.sorted().first ?? disk.path,
                                    device: disk.path, disk: disk)
        try StorageDiskCheck.checkNotInUse(resolved, record: node, inventory: inventory)
        let (probed, label) = StorageDiskCheck.probe(disk)
        guard case .empty = StorageDiskCheck.content(probed, label: label) else {
            throw .refused("\(device) is not blank (it holds a partition table, a filesystem or an OSD); nothing was written. "
                + "A replacement disk must be empty: if what is on it may go, wipe it yourself (`wipefs -a \(device)`)")
        }
        node.storageDisks.removeAll { $0.stableIdentity == oldKey }
        node.storageDisks.append(identity)
        let data: Data
        do { data = try node.encoded() } catch { throw .failed("cannot encode the node record: \(error)") }
        try Files.write(data, to: nodeRecord, mode: 0o644)
        record("disk.replace.requested", "osd.\(id): \(device) (\(identity.stableIdentity)) replaces \(oldKey) in the node record; "
            + "the next run gives it the id")
        return identity.stableIdentity
    }
}

public struct DiskCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "disk", abstract: "Replace a failed storage disk.",
        discussion: """
            Examples:
              aquarium-provision status                 # which OSD is down
              aquarium-provision disk replace 3 /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
              aquarium-provision run                    # or wait for the timer
            """,
        subcommands: [Replace.self])

    public init() {}

    public struct Replace: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "replace",
            abstract: "Put a blank DEVICE in the place of OSD-ID's failed disk; the next run gives it the same OSD id.",
            discussion: """
                On the node that holds the OSD. Refused (exit 3) while the OSD is up or when DEVICE is not blank. The \
                next `run` (the boot's, the reconcile timer's, or one by hand) marks the old OSD out, waits until its \
                data is whole on the other hosts, destroys it (keeping the id) and creates the OSD on DEVICE.

                Example:
                  aquarium-provision disk replace 3 /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
                """)

        @OptionGroup public var global: GlobalOptions
        @OptionGroup public var rootOptions: RootOptions
        @Argument(help: "The OSD whose disk failed.") public var osd: Int
        @Argument(help: "The blank disk to use instead (a /dev path or a by-id link).") public var device: String
        @Option(name: .long, help: "FirstBoot's node record.") public var nodeRecord: String = "/var/lib/aquarium/node.json"

        public init() {}

        public func run() throws {
            let operations = try rootOptions.operations(global)
            let identity = try operations.replaceDisk(osd: osd, device: device, nodeRecord: nodeRecord)
            print("\(device) (\(identity)) replaces the disk of osd.\(osd); the next `aquarium-provision run` creates osd.\(osd) on it")
        }
    }
}
