import Disks
import Exec
import FileLayer
import Foundation
import GPT
import Logging
import NodeContract
import Parted
import Seed

/// Options of one `apply` run.
public struct ApplyOptions: Sendable {
    /// The target root ("/" on a node; a temporary tree in tests). Nothing outside it is written except the
    /// chosen disk and the report directory.
    public var root: String
    /// Allow destroying what the plan says it will destroy.
    public var yes: Bool
    /// Only these kernel names are inventoried (tests restrict themselves to their own loop devices).
    public var onlyDevices: Set<String>?
    public var faultPoint: FaultPoint?
    /// Start `aquarium-provision` at the end (when it exists).
    public var handoff: Bool
    /// This machine's DMI serial and NIC addresses, which a seed's `host.machine` must name.
    public var machine: MachineFacts
    /// The time `expires` is compared with.
    public var now: Date

    public init(root: String = "/", yes: Bool = false, onlyDevices: Set<String>? = nil, faultPoint: FaultPoint? = nil,
                handoff: Bool = true, machine: MachineFacts = .current(), now: Date = Date()) {
        self.root = root
        self.yes = yes
        self.onlyDevices = onlyDevices
        self.faultPoint = faultPoint
        self.handoff = handoff
        self.machine = machine
        self.now = now
    }
}

/// What an `apply` run did.
public struct ApplyResult: Sendable {
    public var plan: Plan
    public var mode: SystemDiskMode
    public var record: NodeRecord
    /// The steps this run executed (a rerun after a crash executes only the unfinished ones).
    public var stepsRun: [String]
    public var handoff: String
}

/// Prepares (or, on later boots, only mounts) the system disk the plan chose.
public struct ApplyEngine {
    public var options: ApplyOptions
    public var logger: Logger
    /// The on-disk paths of the target root.
    let root: String

    public init(options: ApplyOptions, logger: Logger = Logger(label: "aquarium.firstboot.apply")) {
        self.options = options
        self.logger = logger
        let resolved = Self.absolute(options.root)
        self.root = resolved == "/" ? "" : (resolved.hasSuffix("/") ? String(resolved.dropLast()) : resolved)
    }

    func inRoot(_ path: String) -> String { root + path }

    /// An absolute path with symbolic links resolved (mount points in /proc/self/mountinfo are such paths).
    static func absolute(_ path: String) -> String {
        (URL(fileURLWithPath: path).standardizedFileURL.path as NSString).resolvingSymlinksInPath
    }

    /// Inventories the disks, reads their step journals and plans.
    public func plan(seed: Seed) throws -> (Plan, Inventory) {
        let scanner = InventoryScanner(options: InventoryOptions(onlyNames: options.onlyDevices), logger: logger)
        var inventory = try scanner.scan()
        FullMountTable.correct(&inventory)
        var journals: [String: JournalRecord] = [:]
        for disk in inventory.disks where !disk.isCdrom {
            if let record = StepJournal.read(device: disk.path) { journals[disk.path] = record }
        }
        // On a running node the record is at hand (the state is mounted): its storage disks are this node's OSDs.
        let known = Self.recordedStorageDisks(FileManager.default.contents(atPath: inRoot("/" + NodeRecord.relativePath)))
        let bound = seed.host.machine.map { $0.mismatch(dmiSerial: options.machine.dmiSerial, macs: options.machine.macs) == nil } ?? false
        return (SystemDiskPlanner.plan(seed: seed, inventory: inventory,
                                       options: plannerOptions(journals, known, bound: bound)), inventory)
    }

    func plannerOptions(_ journals: [String: JournalRecord], _ known: Set<String>, bound: Bool) -> PlannerOptions {
        PlannerOptions(ownMountpoints: PlannerOptions.ownMountpoints(root: root.isEmpty ? "/" : root),
                       journals: journals, knownStorageDisks: known, seedBoundToMachine: bound)
    }

    /// The stable identities of the storage disks a node record lists (none when there is no readable record).
    static func recordedStorageDisks(_ data: Data?) -> Set<String> {
        guard let data, let record = try? NodeRecord.decode(data, file: NodeRecord.relativePath) else { return [] }
        return Set(record.storageDisks.map(\.stableIdentity))
    }

    public func run(seed loaded: LoadedSeed) throws -> ApplyResult {
        let seed = loaded.seed
        // One apply per target root at a time (the unit and an operator's manual run, say): the second waits, then
        // plans from what the first left.
        let lock = try RunLock(path: inRoot("/run/aquarium-firstboot.lock"))
        defer { lock.release() }
        // A seed for another machine is refused before any disk is looked at.
        if let machine = seed.host.machine, let problem = machine.mismatch(dmiSerial: options.machine.dmiSerial,
                                                                         macs: options.machine.macs) {
            throw ApplyError(.refused, "refused: the seed \(loaded.path) is bound to another machine (\(problem)); "
                + "put this machine's own seed on the stick (seeds/<DMI serial>.yaml or seeds/<MAC with dashes>.yaml)")
        }
        let (firstPlan, inventory) = try plan(seed: seed)
        var plan = firstPlan
        guard let system = plan.systemDisk, let mode = system.mode,
              let disk = inventory.disks.first(where: { $0.path == system.path }) else {
            throw ApplyError(.refused, "refused: no system disk. " + SystemDiskPlanner.render(plan))
        }
        if let expires = seed.expires, options.now > expires.date {
            // An expired seed may still mount this node's own system disk (the node keeps booting); it prepares nothing.
            guard mode == .reuse else {
                throw ApplyError(.refused, "refused: the seed \(loaded.path) expired at \(expires.text) (expires); it would "
                    + "\(mode == .create ? "partition and format" : "finish preparing") \(system.displayPath). Make a "
                    + "fresh seed (and signature) for this node")
            }
            logger.warning("the seed \(loaded.path) expired at \(expires.text); it is used only to mount this node's system disk")
        }
        if mode == .create && !options.yes {
            throw ApplyError(.refused, "refused: apply would partition and format \(system.displayPath)"
                + (system.content.map { " (it \($0))" } ?? "") + "; run again with --yes to allow it.\n"
                + SystemDiskPlanner.render(plan))
        }
        logger.notice("system disk \(system.displayPath): \(mode.rawValue)")
        var steps: [String] = []
        var journal = try startJournal(disk: disk, mode: mode, seed: seed)
        let partition = partitionPath(disk.path, 1)

        // The disk steps are skipped once done; mount, layout and record are idempotent and run on every boot.
        let skippable: Set<ApplyStep> = [.wipe, .partition, .identities, .mkfs]
        func step(_ name: ApplyStep, _ body: () throws -> Void) throws {
            if skippable.contains(name), let record = journal, let entry = name.journalStep, record.isDone(entry) { return }
            if var record = journal {
                record.sequence += 1
                record.steps[name.rawValue] = "started"
                try StepJournal.write(device: disk.path, record: record)
                journal = record
            }
            options.faultPoint?.trigger(name, after: false)
            logger.info("step \(name.rawValue)")
            try body()
            steps.append(name.rawValue)
            options.faultPoint?.trigger(name, after: true)
            if var record = journal {
                record.sequence += 1
                record.steps[name.rawValue] = "done"
                try StepJournal.write(device: disk.path, record: record)
                journal = record
            }
        }

        // Identities: from the journal (create/resume) or from the disk itself (reuse).
        var identity = try identities(disk: disk, journal: journal, seed: seed)
        if mode != .reuse {
            // Each destructive step holds the disk exclusively and first checks it is still the planned disk.
            try step(.wipe) {
                try exclusively(disk) { claim in
                    try claim.wipeSignatures()
                    // The wipe cleared the journal slots too (no older journal survives): this run's record goes back.
                    if let record = journal { try StepJournal.write(device: disk.path, record: record) }
                }
            }
            try step(.partition) { try exclusively(disk) { _ in try createTable(disk) } }
            try step(.identities) { try exclusively(disk) { _ in try setIdentities(disk, identity) } }
            try step(.mkfs) {
                // mkfs claims the partition itself: check the disk, release it, format.
                try exclusively(disk) { _ in }
                try makeFilesystem(partition: partition, disk: disk, identity)
            }
        }
        options.faultPoint?.trigger(.partitionNode, after: false)
        try ensurePartitionNode(disk: disk.path, partition: partition)
        options.faultPoint?.trigger(.partitionNode, after: true)
        try step(.mount) { try mountState(partition: partition, filesystem: identity.filesystem) }
        if mode == .reuse, let recorded = try verifyOwner(seed: seed) {
            // The record on the disk is the node's identity (the journal may be gone).
            identity.nodeUUID = recorded.nodeUUID
            identity.createdAt = recorded.createdAt
            // Its storage disks have become OSDs since (bluestore): they stay this node's storage disks. Only the
            // storage choice can change here; the system disk was chosen by its layout.
            let known = Set(recorded.storageDisks.map(\.stableIdentity))
            if !known.isEmpty {
                let bound = seed.host.machine != nil  // a mismatch was refused above
                let again = SystemDiskPlanner.plan(seed: seed, inventory: inventory,
                                                   options: plannerOptions([:], known, bound: bound))
                if again.systemDisk?.path == plan.systemDisk?.path { plan = again }
            }
        }
        try step(.layout) { try layout(filesystemUUID: identity.filesystemUUID, filesystem: identity.filesystem) }
        var record = NodeRecord(nodeUUID: identity.nodeUUID, hostname: seed.host.hostname, cluster: seed.cluster.name,
                                seedSHA256: loaded.sha256,
                                systemDisk: .init(stableIdentity: disk.stableIdentity, path: disk.path, wwn: disk.wwn,
                                                  serial: disk.serial, byId: disk.byId, diskGUID: identity.diskGUID,
                                                  partitionUUIDs: [AquariumLayout.partitionName: identity.partitionUUID],
                                                  filesystem: identity.filesystem, filesystemUUID: identity.filesystemUUID),
                                storageDisks: plan.storageDisks.map {
                                    DiskIdentity(stableIdentity: $0.stableIdentity, path: $0.path, wwn: $0.wwn,
                                                 serial: $0.serial, byId: $0.byId, sizeBytes: $0.sizeBytes)
                                },
                                bootMedia: inventory.disks.first(where: \.isBootMedia).map(DiskIdentity.init),
                                seedPath: "/" + NodeRecord.seedRelativePath,
                                createdAt: identity.createdAt, updatedAt: timestamp())
        // The record is rewritten on every boot (paths and storage disks may change); createdAt is kept.
        try step(.record) {
            // The verified seed for the Provisioner (it holds secrets: mode 0600), then the record that names it.
            try writeAtomically(inRoot("/" + NodeRecord.seedRelativePath), loaded.data, mode: 0o600)
            record = try writeNodeRecord(record)
        }
        options.faultPoint?.trigger(.complete, after: false)
        if var current = journal, !current.isComplete {
            current.sequence += 1
            current.completedAt = timestamp()
            try StepJournal.write(device: disk.path, record: current)
            journal = current
        }
        options.faultPoint?.trigger(.complete, after: true)
        options.faultPoint?.trigger(.handoff, after: false)
        let handoff = options.handoff ? Handoff.start(logger: logger) : "handoff skipped (--no-handoff)"
        steps.append(ApplyStep.handoff.rawValue)
        options.faultPoint?.trigger(.handoff, after: true)
        return ApplyResult(plan: plan, mode: mode, record: record, stepsRun: steps, handoff: handoff)
    }

    // MARK: - journal and identities

    struct Identity {
        var nodeUUID, diskGUID, partitionUUID, filesystemUUID, filesystem, createdAt: String
    }

    func startJournal(disk: Disk, mode: SystemDiskMode, seed: Seed) throws -> JournalRecord? {
        switch mode {
        case .reuse:
            return nil
        case .resume:
            guard let record = StepJournal.read(device: disk.path) else {
                throw ApplyError(.runtime, "\(disk.path): the step journal disappeared while resuming; run again")
            }
            logger.notice("resuming the first boot recorded on \(disk.path) (node \(record.nodeUUID))")
            return record
        case .create:
            options.faultPoint?.trigger(.journal, after: false)
            // No journal older than this run may outlive its first record (a stale one could outrank it).
            try exclusively(disk) { _ in try StepJournal.clear(device: disk.path) }
            let node = UUID().uuidString.lowercased()
            let record = JournalRecord(
                sequence: 1, nodeUUID: node, hostname: seed.host.hostname, cluster: seed.cluster.name,
                diskGUID: DeterministicUUID.make("aquarium-disk/\(node)").uuidString.lowercased(),
                partitionUUID: AquariumLayout.statePartitionUUID(cluster: seed.cluster.name, hostname: seed.host.hostname),
                filesystemUUID: UUID().uuidString.lowercased(), filesystem: seed.disks.system.filesystem.rawValue,
                startedAt: timestamp(), steps: [:], completedAt: nil)
            try StepJournal.write(device: disk.path, record: record)
            options.faultPoint?.trigger(.journal, after: true)
            return record
        }
    }

    func identities(disk: Disk, journal: JournalRecord?, seed: Seed) throws -> Identity {
        if let journal {
            return Identity(nodeUUID: journal.nodeUUID, diskGUID: journal.diskGUID, partitionUUID: journal.partitionUUID,
                            filesystemUUID: journal.filesystemUUID, filesystem: journal.filesystem, createdAt: journal.startedAt)
        }
        // Reuse: what is on the disk is the truth.
        guard let state = AquariumLayout.statePartition(of: disk), let partUUID = state.uuid,
              let fsUUID = state.fsUuid, let fsType = state.fsType else {
            throw ApplyError(.runtime, "\(disk.path): the '\(AquariumLayout.partitionName)' partition has no filesystem; "
                + "wipe the disk (wipefs --all \(disk.path)) to prepare it again")
        }
        let onDisk = StepJournal.read(device: disk.path)
        let editor = try? GPTEditor(path: disk.path, sectorSize: disk.logicalSectorSize)
        return Identity(nodeUUID: onDisk?.nodeUUID ?? AquariumLayout.derivedNodeUUID(partitionUUID: partUUID),
                        diskGUID: editor?.diskGUID.uuidString.lowercased() ?? onDisk?.diskGUID ?? "",
                        partitionUUID: partUUID.lowercased(), filesystemUUID: fsUUID.lowercased(), filesystem: fsType,
                        createdAt: onDisk?.startedAt ?? timestamp())
    }

    // MARK: - disk steps

    /// Runs `body` while holding `disk` exclusively, after checking it is still the planned disk (exit 3 otherwise).
    func exclusively(_ disk: Disk, _ body: (DiskClaim) throws -> Void) throws {
        let claim: DiskClaim
        do {
            claim = try DiskClaim(disk, logger: logger)
        } catch {
            throw ApplyError(.refused, "refused: \(error.message)")
        }
        defer { claim.close() }
        try body(claim)
    }

    /// A fresh GPT with one partition over the whole disk, 1 MiB aligned; the kernel is told (BLKPG).
    func createTable(_ disk: Disk) throws {
        let device = try PartedDevice(path: disk.path)
        defer { device.close() }
        let table = try PartedDisk.fresh(on: device, type: "gpt")
        try table.append([PartitionRequest(name: AquariumLayout.partitionName, sizeBytes: nil)])
        try table.commit(informKernel: true)
    }

    /// The identities libparted cannot set: disk GUID, the /var type GUID and the derived PARTUUID.
    func setIdentities(_ disk: Disk, _ identity: Identity) throws {
        var editor = try GPTEditor(path: disk.path, sectorSize: disk.logicalSectorSize)
        guard let diskGUID = UUID(uuidString: identity.diskGUID), let partUUID = UUID(uuidString: identity.partitionUUID),
              let type = UUID(uuidString: AquariumLayout.partitionType) else {
            throw ApplyError(.runtime, "\(disk.path): the journal holds malformed GUIDs; wipe the disk and run again")
        }
        guard editor.entries.map(\.number) == [1], editor.entries[0].name == AquariumLayout.partitionName else {
            throw ApplyError(.runtime, "\(disk.path): unexpected partition table after partitioning: "
                + editor.entries.map { "\($0.number) '\($0.name)'" }.joined(separator: ", "))
        }
        editor.setDiskGUID(diskGUID)
        try editor.setPartition(number: 1, typeGUID: type, uniqueGUID: partUUID)
        try editor.write()
    }

    func makeFilesystem(partition: String, disk: Disk, _ identity: Identity) throws {
        try ensurePartitionNode(disk: disk.path, partition: partition)
        let command: Command
        switch identity.filesystem {
        case "ext4":
            command = Command("mkfs.ext4", ["-F", "-q", "-L", AquariumLayout.filesystemLabel, "-U", identity.filesystemUUID,
                                            partition])
        default:
            command = Command("mkfs.xfs", ["-f", "-q", "-L", AquariumLayout.filesystemLabel, "-m", "uuid=\(identity.filesystemUUID)",
                                           partition])
        }
        try command.run()
    }

    /// The partition node appears once the kernel knows the table (BLKPG from libparted, or partx after a crash).
    func ensurePartitionNode(disk: String, partition: String) throws {
        if waitForBlockDevice(partition, seconds: 0.5) { return }
        _ = try? Command("partx", ["--add", "--nr", "1", disk]).run(acceptedStatuses: [0, 1])
        _ = try? Command("partx", ["--update", "--nr", "1", disk]).run(acceptedStatuses: [0, 1])
        guard waitForBlockDevice(partition, seconds: 5) else {
            throw ApplyError(.runtime, "\(partition) did not appear after partitioning \(disk); check `partx --show \(disk)`")
        }
    }

    func waitForBlockDevice(_ path: String, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            var info = stat()
            if stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFBLK { return true }
            usleep(50_000)
        } while Date() < deadline
        return false
    }

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
            // On the node itself: let journald move to the persistent /var/log/journal now on the system disk.
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

/// Starting the Provisioner.
enum Handoff {
    static func start(logger: Logger) -> String {
        guard let provision = Command.resolve("aquarium-provision"),
              (try? Command(provision, ["run", "--help"]).run()) != nil else {
            let line = "handoff: node record written; aquarium-provision with a `run` subcommand is not installed yet"
            logger.notice("\(line)")
            return line
        }
        if ProcessInfo.processInfo.environment["INVOCATION_ID"] != nil {
            // Under systemd, at boot. This node's /etc (the overlay) came up after systemd read its units: reload, then
            // ask for multi-user.target again so the units enabled on earlier boots (the Ceph daemons) start like
            // any unit enabled at boot, and start the Provisioner.
            _ = try? Command("systemctl", ["daemon-reload"]).run()
            // Likewise this node's host name and network configuration (systemd-networkd read the image's).
            if let name = try? String(contentsOfFile: "/etc/hostname", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty {
                _ = name.withCString { sethostname($0, strlen($0)) }
            }
            _ = try? Command("networkctl", ["reload"]).run()
            if (try? Command("systemctl", ["start", "--no-block", "multi-user.target", "aquarium-provision.service"]).run()) != nil {
                return "handoff: started aquarium-provision.service"
            }
        }
        do {
            try Command(provision, ["run"]).run()
            return "handoff: \(provision) run finished"
        } catch {
            return "handoff: \(provision) run failed: \(error)"
        }
    }
}

/// An exclusive advisory lock on a file (flock), held until `release()`.
final class RunLock {
    private var fd: Int32

    init(path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ApplyError(.runtime, "cannot open the lock \(path): \(errnoText())") }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let reason = errnoText()
            close(fd)
            throw ApplyError(.runtime, "cannot lock \(path): \(reason)")
        }
    }

    func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}
