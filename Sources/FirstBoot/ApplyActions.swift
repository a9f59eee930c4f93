import Disks
import Foundation
import NodeContract
import Seed

/// One `apply` run as it goes through the plan's actions: the disk, what earlier actions decided, what ran.
struct ActionRun {
    let disk: Disk
    let mode: SystemDiskMode
    /// The state partition's device node.
    let partition: String
    let loaded: LoadedSeed
    let inventory: Inventory
    let storageDisks: [PlannedDisk]
    let runner: StepRunner
    /// The step journal on the disk (no record: a disk that is only mounted).
    var journal: DeviceJournal
    /// The identities of the layout: from the journal (create, resume) or from the disk (reuse).
    var identity: ApplyEngine.Identity?
    var record: NodeRecord?
    var stepsRun: [String] = []
    var actions: [PlanAction] = []
    var handoff: String?
    /// The whole disk's BSD lock, held until the state partition is mounted.
    var diskLock: BlockDeviceLock?

    init(disk: Disk, mode: SystemDiskMode, partition: String, loaded: LoadedSeed, inventory: Inventory,
         storageDisks: [PlannedDisk], runner: StepRunner) {
        self.disk = disk
        self.mode = mode
        self.partition = partition
        self.loaded = loaded
        self.inventory = inventory
        self.storageDisks = storageDisks
        self.runner = runner
        self.journal = DeviceJournal(device: disk.path, record: nil)
    }
}

/// Executing a plan: each action is one step of the shared `StepRunner` (fault points `before` and `after`); the
/// disk steps are journalled on the disk before and after they run, and the destructive ones (wipe ... mkfs) are
/// skipped once an earlier run finished them. Mount, layout and record are idempotent and run on every boot.
extension ApplyEngine {
    static let skippedWhenDone: Set<ApplyStep> = [.wipe, .partition, .identities, .mkfs]

    func execute(_ action: PlanAction, _ run: inout ActionRun) throws {
        let step = action.step
        let runner = run.runner
        run.actions.append(action)
        switch action {
        case .setIdentities, .format, .mount:
            // udev keeps off the disk (no partition table re-read, no probing) from the table's identities until the
            // state partition is mounted: see `BlockDeviceLock`. Not earlier: Debian's libparted runs `udevadm settle`
            // when it commits the table, which would wait for udev's postponed work on the locked disk (120 s, twice,
            // seen on a QEMU boot).
            if run.diskLock == nil {
                do {
                    run.diskLock = try BlockDeviceLock(path: run.disk.path)
                } catch {
                    throw error.kind == .busy ? ApplyError(.refused, "refused: \(error.message)") : ApplyError(.runtime, error.message)
                }
            }
        default:
            break
        }
        if case .mount = action {
            // The partition's device node (the kernel told by BLKPG, or partx after a crash) before the mount step.
            runner.fault(ApplyStep.partitionNode.rawValue, .before)
            try ensurePartitionNode(disk: run.disk.path, partition: run.partition)
            runner.fault(ApplyStep.partitionNode.rawValue, .after)
        }
        let shape = RunStep(step.rawValue, recorded: ApplyStep.journalled.contains(step),
                            skipWhenDone: Self.skippedWhenDone.contains(step))
        var journal = run.journal
        let ran: Void? = try runner.run(shape, record: &journal) { journal in
            logger.info("step \(step.rawValue)")
            try perform(action, &run, journal: &journal)
        }
        run.journal = journal
        if ran != nil && step != .journal && step != .complete { run.stepsRun.append(step.rawValue) }
    }

    /// The work of one action.
    func perform(_ action: PlanAction, _ run: inout ActionRun, journal: inout DeviceJournal) throws {
        let disk = run.disk
        let seed = run.loaded.seed
        switch action {
        case .journal:
            journal = DeviceJournal(device: disk.path, record: try startJournal(disk: disk, mode: run.mode, seed: seed))
            run.identity = try identities(disk: disk, journal: journal.record, seed: seed)
        case .wipeSignatures:
            // Each destructive step holds the disk exclusively and first checks it is still the planned disk.
            try exclusively(disk) { claim in
                try claim.wipeSignatures()
                // The wipe cleared the journal slots too (no older journal survives): this run's record goes back.
                try journal.rewrite()
            }
        case .partition:
            try exclusively(disk) { _ in try createTable(disk) }
        case .setIdentities:
            let identity = try run.identity ?? identities(disk: disk, journal: journal.record, seed: seed)
            try exclusively(disk) { _ in try setIdentities(disk, identity) }
        case .format:
            let identity = try run.identity ?? identities(disk: disk, journal: journal.record, seed: seed)
            // mkfs claims the partition itself: check the disk, release it, format.
            try exclusively(disk, writable: false) { _ in }
            try makeFilesystem(partition: run.partition, disk: disk, identity)
        case .mount(_, let reuse):
            var identity = try run.identity ?? identities(disk: disk, journal: journal.record, seed: seed)
            try mountState(partition: run.partition, filesystem: identity.filesystem)
            if reuse, let recorded = try verifyOwner(seed: seed) {
                // The record on the disk is the node's identity (the journal may be gone).
                identity.nodeUUID = recorded.nodeUUID
                identity.createdAt = recorded.createdAt
            }
            run.identity = identity
            // Mounted: the partition is in use, so a re-read cannot remove it any more.
            run.diskLock?.release()
            run.diskLock = nil
        case .layout:
            let identity = try run.identity ?? identities(disk: disk, journal: journal.record, seed: seed)
            try layout(filesystemUUID: identity.filesystemUUID, filesystem: identity.filesystem)
        case .writeRecord:
            let identity = try run.identity ?? identities(disk: disk, journal: journal.record, seed: seed)
            // The record is rewritten on every boot (paths and storage disks may change); createdAt is kept.
            let record = NodeRecord(
                nodeUUID: identity.nodeUUID, hostname: seed.host.hostname, cluster: seed.cluster.name,
                seedSHA256: run.loaded.sha256,
                systemDisk: .init(stableIdentity: disk.stableIdentity, path: disk.path, wwn: disk.wwn, serial: disk.serial,
                                  byId: disk.byId, diskGUID: identity.diskGUID,
                                  partitionUUIDs: [AquariumLayout.partitionName: identity.partitionUUID],
                                  filesystem: identity.filesystem, filesystemUUID: identity.filesystemUUID),
                storageDisks: run.storageDisks.map {
                    DiskIdentity(stableIdentity: $0.stableIdentity, path: $0.path, wwn: $0.wwn, serial: $0.serial,
                                 byId: $0.byId, sizeBytes: $0.sizeBytes)
                },
                bootMedia: run.inventory.disks.first(where: \.isBootMedia).map(DiskIdentity.init),
                seedPath: "/" + NodeRecord.seedRelativePath, createdAt: identity.createdAt, updatedAt: timestamp())
            // The verified seed for the Provisioner (it holds secrets: mode 0600), then the record that names it.
            try writeAtomically(inRoot("/" + NodeRecord.seedRelativePath), run.loaded.data, mode: 0o600)
            run.record = try writeNodeRecord(record)
        case .complete:
            try journal.complete(at: timestamp())
        case .handoff:
            run.handoff = options.handoff ? Handoff.start(logger: logger, freshState: run.mode == .create) : "handoff skipped (--no-handoff)"
        }
    }
}
