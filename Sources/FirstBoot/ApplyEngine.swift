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
    /// The plan's actions as this run went through them, in order (executed, or finished by an earlier run).
    public var actions: [PlanAction]
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
        var (plan, inventory) = try plan(seed: seed)
        if plan.systemDisk != nil, let refusal = plan.refusal {
            throw ApplyError(.refused, "refused: \(refusal). " + SystemDiskPlanner.render(plan))
        }
        for check in plan.requirements where !check.met {
            logger.warning("this node runs below its hardware requirements: \(check.description)")
        }
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
        if mode == .reuse { plan = try planWithRecord(plan, disk: disk, seed: seed, inventory: inventory) }

        // Exactly the plan's actions, in order, each one step of the runner (journalled on the disk while the disk
        // is being prepared).
        var run = ActionRun(disk: disk, mode: mode, partition: partitionPath(disk.path, 1), loaded: loaded,
                            inventory: inventory, storageDisks: plan.storageDisks,
                            runner: StepRunner(faultPoint: options.faultPoint))
        defer { run.diskLock?.release() }
        for action in plan.actions { try execute(action, &run) }
        guard let record = run.record else {
            throw ApplyError(.runtime, "internal error: the plan for \(system.displayPath) wrote no node record")
        }
        return ApplyResult(plan: plan, mode: mode, record: record, stepsRun: run.stepsRun, actions: run.actions,
                           handoff: run.handoff ?? "handoff skipped (not in the plan)")
    }

    /// A later boot's plan: the storage disks the node record on the system disk lists have become OSDs (bluestore)
    /// since, and stay this node's storage disks. The record is on the state filesystem, so this mounts it (the
    /// plan's own first action, which runs again as a no-op) and plans once more with that record, before any action
    /// runs; only the storage choice can change (the system disk was chosen by its layout).
    func planWithRecord(_ plan: Plan, disk: Disk, seed: Seed, inventory: Inventory) throws -> Plan {
        let partition = partitionPath(disk.path, 1)
        try ensurePartitionNode(disk: disk.path, partition: partition)
        let filesystem = AquariumLayout.statePartition(of: disk)?.fsType ?? plan.filesystem
        try mountState(partition: partition, filesystem: filesystem)
        guard let recorded = try verifyOwner(seed: seed) else { return plan }
        let known = Set(recorded.storageDisks.map(\.stableIdentity))
        if known.isEmpty { return plan }
        let bound = seed.host.machine != nil  // a mismatch was refused before
        let again = SystemDiskPlanner.plan(seed: seed, inventory: inventory, options: plannerOptions([:], known, bound: bound))
        return again.systemDisk?.path == plan.systemDisk?.path && again.systemDisk?.mode == .reuse ? again : plan
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
}
