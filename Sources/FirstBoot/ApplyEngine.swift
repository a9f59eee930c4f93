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
}
