import Disks
import Exec
import FileLayer
import Foundation
import GPT
import Logging
import NodeContract
import Parted
import Seed

/// Mounting the state filesystem, the state layout (binds, /etc overlay, mount units) and the node record.
extension ApplyEngine {
    // MARK: - mounts and layout

    var stateDirectory: String { inRoot(AquariumLayout.stateMountpoint) }

    func isMountpoint(_ path: String) -> Bool { FullMountTable.isMountpoint(path) }

    func mountState(partition: String, filesystem: String) throws {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        if isMountpoint(stateDirectory) { return }
        try Command("mount", ["-t", filesystem, partition, stateDirectory]).run()
    }

    /// A later boot must find this node's record (or none yet) on the disk it reuses; returns it when there is one.
    func verifyOwner(seed: Seed) throws -> NodeRecord? {
        let path = stateDirectory + "/" + AquariumLayout.bindDirectories[0].source + "/node.json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let record: NodeRecord
        do {
            record = try NodeRecord.decode(data, file: path)
        } catch {
            throw ApplyError(.invalid, "\(error.message). Inspect it, then remove it to continue")
        }
        if record.hostname != seed.host.hostname || record.cluster != seed.cluster.name {
            throw ApplyError(.refused, "refused: the system disk belongs to \(record.hostname) of cluster "
                + "\(record.cluster) (\(path)), not \(seed.host.hostname) of \(seed.cluster.name)")
        }
        return record
    }

    /// Bind mounts for /var/lib/aquarium, /var/lib/ceph and /var/log, an overlay for /etc, and systemd mount units.
    /// Nothing here writes to the image's own tree except creating mount point directories that do not exist yet
    /// (the image ships them, so a read-only root works).
    func layout(filesystemUUID: String, filesystem: String) throws {
        let fm = FileManager.default
        var binds: [(String, String)] = []
        for (target, source) in AquariumLayout.bindDirectories {
            let state = stateDirectory + "/" + source
            let targetPath = inRoot(target)
            do {
                try fm.createDirectory(atPath: targetPath, withIntermediateDirectories: true)
                binds.append((target, source))
            } catch {
                // E.g. /var/lib/ceph on a read-only image without Ceph: nothing there to keep.
                logger.warning("cannot create \(targetPath) (\(error)); it is not bound to the system disk")
            }
            if !fm.fileExists(atPath: state) {
                // First time: carry over what the image already has there, with its owner and mode
                // (copy to a staging name, then rename: crash-safe).
                let staging = state + ".staging"
                try? fm.removeItem(atPath: staging)
                try fm.createDirectory(atPath: (state as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                if fm.fileExists(atPath: targetPath) && !isMountpoint(targetPath) {
                    try Command("cp", ["-a", "--", targetPath, staging]).run()
                } else {
                    try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
                }
                try fm.moveItem(atPath: staging, toPath: state)
            }
        }
        for name in [AquariumLayout.etcUpper, AquariumLayout.etcWork] {
            try fm.createDirectory(atPath: stateDirectory + "/" + name, withIntermediateDirectories: true)
        }
        for (target, source) in binds where !isMountpoint(inRoot(target)) {
            try Command("mount", ["--bind", stateDirectory + "/" + source, inRoot(target)]).run()
        }
        let etc = inRoot("/etc")
        try fm.createDirectory(atPath: etc, withIntermediateDirectories: true)
        if !isMountpoint(etc) {
            try Command("mount", ["-t", "overlay", "aquarium-etc", "-o",
                                  "lowerdir=\(etc),upperdir=\(stateDirectory)/\(AquariumLayout.etcUpper),"
                                  + "workdir=\(stateDirectory)/\(AquariumLayout.etcWork)", etc]).run()
        }
        // After the overlay: the units land in this node's /etc layer on the system disk, never in the image's
        // (read-only) /etc.
        try writeUnits(filesystemUUID: filesystemUUID, filesystem: filesystem)
        if root.isEmpty {
            // On the node itself: move journald to /var/log/journal on the system disk. It has been writing to the
            // image's /var/log/journal since early boot and keeps that file open under the bind mount, where a flush
            // alone left it: the system disk's journal of a first boot ended at this step (seen on a QEMU boot).
            // Relinquishing /var closes those files; the flush then opens the system disk's and copies /run into it.
            _ = try? Command("journalctl", ["--relinquish-var"]).run()
            _ = try? Command("journalctl", ["--flush"]).run()
        }
    }

    func writeUnits(filesystemUUID: String, filesystem: String) throws {
        let units = MountUnits.units(filesystemUUID: filesystemUUID, filesystem: filesystem)
        let directory = inRoot("/etc/systemd/system")
        let wants = directory + "/local-fs.target.wants"
        try FileManager.default.createDirectory(atPath: wants, withIntermediateDirectories: true)
        for (name, text) in units {
            try writeAtomically(directory + "/" + name, Data(text.utf8))
            let link = wants + "/" + name
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == nil {
                try? FileManager.default.removeItem(atPath: link)
                try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "../" + name)
            }
        }
    }

    func writeNodeRecord(_ record: NodeRecord) throws -> NodeRecord {
        var record = record
        let path = inRoot("/" + NodeRecord.relativePath)
        if let data = FileManager.default.contents(atPath: path),
           let previous = try? NodeRecord.decode(data, file: path), previous.nodeUUID == record.nodeUUID {
            record.createdAt = previous.createdAt
        }
        try writeAtomically(path, try record.encoded())
        logger.notice("node record written to \(path)")
        return record
    }

    func partitionPath(_ diskPath: String, _ number: Int) -> String {
        diskPath + ((diskPath.last?.isNumber ?? false) ? "p" : "") + String(number)
    }
}

/// Replaces `path` with `data` atomically (the one file layer: FileLayer.AtomicFile).
func writeAtomically(_ path: String, _ data: Data, mode: mode_t = 0o644) throws {
    do {
        try AtomicFile.write(data, to: path, mode: mode)
    } catch {
        throw ApplyError(.runtime, error.description)
    }
}

/// systemd mount units that mount the state filesystem by UUID and bind the state directories early on every boot.
public enum MountUnits {
    /// systemd's path escaping for unit names ("/var/lib/aquarium-system" -> "var-lib-aquarium\x2dsystem").
    public static func escape(_ path: String) -> String {
        let trimmed = path.split(separator: "/").joined(separator: "/")
        var result = ""
        for (index, byte) in trimmed.utf8.enumerated() {
            let c = Character(UnicodeScalar(byte))
            if c == "/" { result += "-" }
            else if c.isASCII && (c.isLetter || c.isNumber || c == "_" || (c == "." && index > 0) || c == ":") { result.append(c) }
            else { result += String(format: "\\x%02x", byte) }
        }
        return result
    }

    public static func units(filesystemUUID: String, filesystem: String) -> [(String, String)] {
        let stateUnit = escape(AquariumLayout.stateMountpoint) + ".mount"
        var units: [(String, String)] = [(stateUnit, """
            # Written by aquarium-firstboot: this node's state filesystem on its system disk.
            [Unit]
            Description=Aquarium node state (system disk)
            Before=local-fs.target

            [Mount]
            What=/dev/disk/by-uuid/\(filesystemUUID)
            Where=\(AquariumLayout.stateMountpoint)
            Type=\(filesystem)
            Options=defaults

            [Install]
            WantedBy=local-fs.target

            """)]
        for (target, source) in AquariumLayout.bindDirectories {
            units.append((escape(target) + ".mount", """
                # Written by aquarium-firstboot: \(target) lives on the system disk.
                [Unit]
                Description=Aquarium state: \(target)
                Requires=\(stateUnit)
                After=\(stateUnit)
                Before=local-fs.target

                [Mount]
                What=\(AquariumLayout.stateMountpoint)/\(source)
                Where=\(target)
                Type=none
                Options=bind

                [Install]
                WantedBy=local-fs.target

                """))
        }
        return units
    }
}

/// The mounts `apply` sets up, and how to take them down again (tests, and `aquarium-firstboot unmount`).
public enum StateMounts {
    /// Unmounts /etc's overlay, the binds and the state filesystem under `root`, innermost first.
    public static func unmount(root: String) {
        let resolved = ApplyEngine.absolute(root)
        let base = resolved == "/" ? "" : resolved
        let points = [base + "/etc"] + AquariumLayout.bindDirectories.reversed().map { base + $0.target }
            + [base + AquariumLayout.stateMountpoint]
        for point in points {
            while FullMountTable.isMountpoint(point) {
                if (try? Command("umount", [point]).run()) == nil {
                    _ = try? Command("umount", ["--lazy", point]).run()
                    break
                }
            }
        }
    }
}
