import Disks
import Exec
import Foundation
import Seed

/// Storage disks and OSDs: the preflight before any step, and the `osds` step.
extension Provisioner {
    /// Refuses (exit 3) before anything runs when a storage disk is the system disk, in use, or holds data the seed
    /// does not allow wiping. A storage disk that is not on this machine (pulled, dead) is skipped and reported.
    func preflightDisks() throws(ProvisionError) {
        let inventory = try StorageDiskCheck.inventory(logger: logger)
        var missing: [String] = []
        var present: [ResolvedDisk] = []
        for identity in record.storageDisks {
            guard let resolved = try StorageDiskCheck.resolve(identity, in: inventory) else {
                missing.append(identity.displayName)
                logger.warning("the storage disk \(identity.displayName) is not on this machine; it is skipped")
                events.append(ProvisionEvent(event: "disk.missing", detail: "\(identity.displayName) (\(identity.stableIdentity), "
                    + "was \(identity.path)): not found by its identity; skipped, nothing else is used in its place"))
                continue
            }
            try StorageDiskCheck.checkNotInUse(resolved, record: record, inventory: inventory)
            let (probed, label) = StorageDiskCheck.probe(resolved.disk)
            try StorageDiskCheck.checkContent(resolved, probed: probed, label: label, seed: seed,
                                              clusterFSID: joinToken?.fsid ?? state.identity?.fsid ?? existingFSID())
            present.append(resolved)
        }
        state.missingDisks = missing.isEmpty ? nil : missing
        try saveState()
        storageDisks = present
        if present.isEmpty && !missing.isEmpty {
            // Nothing this node could add or keep; stop before anything is created or started.
            throw .failed("none of the node record's storage disks is on this machine (" + missing.joined(separator: ", ")
                + "): they are found by their identity only, never by a kernel name another disk may have now. "
                + "Attach them, or rerun FirstBoot to choose storage disks again; `aquarium-provision status` lists them")
        }
    }

    // MARK: the osds step

    /// The OSDs of `ceph osd dump`.
    func osdDump() throws(ProvisionError) -> [CephJSON.OSDDump.OSD] {
        try tools.json(CephJSON.OSDDump.self, ["osd", "dump"])?.osds ?? []
    }

    func osds() throws(ProvisionError) -> StepOutcome {
        let disks = storageDisks
        if disks.isEmpty && !record.storageDisks.isEmpty {
            throw .failed("none of the node record's storage disks is on this machine ("
                + record.storageDisks.map(\.displayName).joined(separator: ", ") + "); see `aquarium-provision status`")
        }
        if disks.isEmpty {
            throw .invalidInput(seed.cluster.role.joins
                ? "the node record lists no storage disks; a joining node adds its storage disks as OSDs, without any it has nothing to add"
                : "the node record lists no storage disks; a bootstrap node needs at least one OSD")
        }
        var actions: [String] = []
        var ids: [Int] = []
        var mkfs: [(Int, Command)] = []
        var reusable = try reusableOSDIds(present: disks)
        for disk in disks {
            let prepared = try prepareOSD(disk, reuse: &reusable)
            ids.append(prepared.id)
            if let action = prepared.action { actions.append(action) }
            if let command = prepared.mkfs { mkfs.append((prepared.id, command)) }
        }
        // ceph-osd --mkfs writes a whole bluestore per disk: the disks are independent, so all at once, and the
        // cluster's event log pool is made meanwhile (`makesEventPool`).
        let jobs = mkfs
        let failures = ConcurrentResults(count: jobs.count)
        // The pool job's outcome: [made, why it failed].
        let pool = ConcurrentResults(count: 2)
        let layout = layout
        let eventLog = makesEventPool ? ClusterEventLog(tools: tools) : nil
        DispatchQueue.concurrentPerform(iterations: jobs.count + 1) { index in
            guard index < jobs.count else {
                do throws(ProvisionError) {
                    if try eventLog?.ensurePool() == true { pool.set(0, "made") }
                } catch {
                    pool.set(1, error.description)
                }
                return
            }
            defer { unlink(layout.osdData(jobs[index].0) + "/keyfile") }
            do {
                try jobs[index].1.run()
            } catch {
                failures.set(index, "osd.\(jobs[index].0): \(error)")
            }
        }
        if let failure = failures.values.compactMap({ $0 }).first {
            throw .failed("ceph-osd --mkfs failed for \(failure); see \(layout.cephLog)")
        }
        let made = pool.values
        if let failure = made[1] {
            throw .failed("cannot make the cluster's event log pool \(ClusterEventLog.pool): \(failure)")
        }
        if made[0] != nil { actions.append("created the pool \(ClusterEventLog.pool)") }
        for id in ids where try launcher.ensureRunning(daemon("osd", String(id))) { actions.append("started osd.\(id)") }
        try CephTools.wait("OSDs \(ids.map { "osd.\($0)" }.joined(separator: ", ")) to come up", seconds: 120, interval: 0.2) {
            let up = Set(try osdDump().filter { $0.up == 1 }.compactMap(\.osd))
            return ids.allSatisfy(up.contains)
        }
        return StepOutcome(changed: !actions.isEmpty,
                          detail: actions.isEmpty ? "osd " + ids.map(String.init).joined(separator: ", ") : actions.joined(separator: "; "))
    }

    /// The ids of this node's OSDs whose disks are gone, destroyed so a new disk takes the id over: only when a
    /// present disk is new (no OSD yet), and only an OSD that is down and whose data the other hosts hold again
    /// (`osd safe-to-destroy`, after it was marked out). An OSD not safe yet is left alone and reported; the next run
    /// looks again.
    func reusableOSDIds(present: [ResolvedDisk]) throws(ProvisionError) -> [Int] {
        let presentKeys = Set(present.map(\.key))
        let gone = state.osdIds.filter { !presentKeys.contains($0.key) }.sorted { $0.value < $1.value }
        guard !gone.isEmpty, present.contains(where: { state.osdIds[$0.key] == nil }) else { return [] }
        let dump = try osdDump()
        var ids: [Int] = []
        for (key, id) in gone {
            guard let osd = dump.first(where: { $0.osd == id }) else {
                // Purged by hand: nothing to reuse, nothing to remember.
                state.osdIds[key] = nil
                state.osdUUIDs[key] = nil
                try saveState()
                continue
            }
            if osd.up == 1 { continue }
            if osd.state?.contains("destroyed") == true {
                ids.append(id)
                continue
            }
            if osd.in == 1 { try tools.run("ceph", ["osd", "out", String(id)], timeout: 60) }
            // Its placement groups recover on the other hosts first; the new disk waits for that, never for longer than
            // the health timeout (the next run goes on).
            do {
                try CephTools.wait("the data of osd.\(id) (its disk \(key) is gone) to be whole on the other hosts (ceph osd "
                                   + "safe-to-destroy); the new disk takes its id then", seconds: options.healthTimeout, interval: 2) {
                    try tools.run("ceph", ["osd", "safe-to-destroy", String(id)], timeout: 60, accepted: [0, 11, 16]).status == 0
                }
            } catch {
                events.append(ProvisionEvent(event: "disk.replace.waiting", detail: error.description))
                throw error
            }
            try tools.run("ceph", ["osd", "destroy", String(id), "--yes-i-really-mean-it"], timeout: 60)
            events.append(ProvisionEvent(event: "osd.destroyed", detail: "osd.\(id): its disk \(key) is gone and its data is whole "
                + "on the other hosts; the id is kept for the disk that replaces it"))
            ids.append(id)
        }
        return ids
    }

    /// Makes `disk` a bluestore OSD of this cluster unless it already is one: its id, what was done, and the
    /// `ceph-osd --mkfs` still to run (nil when the disk already holds the finished OSD).
    func prepareOSD(_ disk: ResolvedDisk, reuse: inout [Int]) throws(ProvisionError) -> (id: Int, action: String?, mkfs: Command?) {
        let fsid = identity.fsid
        let (probed, label) = StorageDiskCheck.probe(disk.disk)
        if let label, DiskPolicy.holdsOnlyBluestore(probed), label.clusterFSID == fsid, label.mkfsDone, let id = label.whoami {
            // Ours and complete. Make sure the data directory is there (it lives on the system disk).
            state.osdUUIDs[disk.key] = label.osdUUID
            state.osdIds[disk.key] = id
            try saveState()
            let repaired = try ensureOSDDirectory(id: id, disk: disk, primeFromLabel: true, key: nil)
            return (id, repaired ? "restored the data directory of osd.\(id)" : nil, nil)
        }
        switch StorageDiskCheck.content(probed, label: label) {
        case .empty:
            break
        case .bluestore(let label) where label.clusterFSID == fsid:
            // An interrupted mkfs of ours: start that disk over.
            try StorageDiskCheck.wipe(disk, logger: logger)
        case .bluestore, .other:
            // The one policy decides (the preflight asked it too; the disk is checked again right before the wipe).
            try StorageDiskCheck.checkContent(disk, probed: probed, label: label, seed: seed, clusterFSID: fsid)
            try StorageDiskCheck.wipe(disk, logger: logger)
        }
        // Decide the OSD's UUID before the monitor hears of it, so a rerun finds the same OSD.
        let remembered = state.osdUUIDs[disk.key]
        let uuid = remembered ?? UUID().uuidString.lowercased()
        state.osdUUIDs[disk.key] = uuid
        try saveState()
        let id: Int
        var newKey: String?
        // Only a remembered UUID can already be known to the monitor (a run that died after `ceph osd new`).
        var existing: Int?
        if remembered != nil, let osd = try osdDump().first(where: { $0.uuid?.lowercased() == uuid }) {
            existing = osd.osd
        }
        if let number = existing, identity.join != nil {
            // A joined node may not read OSD keys (`auth get`); the half-made OSD never ran, so it goes and is made
            // again (`osd purge-new` is in the join entity's profile).
            try tools.run("ceph", ["osd", "purge-new", "osd.\(number)", "--yes-i-really-mean-it"])
            existing = nil
        }
        if let number = existing {
            id = number
        } else {
            let key: String
            do {
                key = try Command("ceph-authtool", ["--gen-print-key"]).run().output.trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw .failed("ceph-authtool --gen-print-key failed: \(error)")
            }
            let secrets = Data("{\"cephx_secret\": \"\(key)\"}".utf8)
            // A destroyed OSD of this node whose disk is gone: the new disk takes its id (and CRUSH place).
            let reused = reuse.isEmpty ? nil : reuse.removeFirst()
            let output = try tools.run("ceph", ["osd", "new", uuid] + (reused.map { [String($0)] } ?? []) + ["-i", "-"],
                                       input: secrets).output
            if let reused {
                for (key, id) in state.osdIds where id == reused && key != disk.key {
                    state.osdIds[key] = nil
                    state.osdUUIDs[key] = nil
                }
                events.append(ProvisionEvent(event: "disk.replaced", detail: "osd.\(reused) is now on \(disk.device) "
                    + "(\(disk.key)): the id of the destroyed OSD whose disk is gone, reused"))
            }
            guard let number = Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw .failed("ceph osd new \(uuid) printed \(output), not an OSD id")
            }
            id = number
            newKey = key
        }
        state.osdIds[disk.key] = id
        try saveState()
        fault("osds", .mid)
        _ = try ensureOSDDirectory(id: id, disk: disk, primeFromLabel: false, key: newKey)
        let data = layout.osdData(id)
        // The bare key for --keyfile, which makes mkfs keep it in the bluestore label (`osd_key`), so
        // `ceph-bluestore-tool prime-osd-dir` can restore the keyring without asking the monitor. Removed after mkfs.
        guard let key = Redactor.keyringKeys(Files.read(data + "/keyring") ?? "").first else {
            throw .failed("\(data)/keyring holds no key")
        }
        try Files.write(key, to: data + "/keyfile", mode: 0o600)
        let mkfs = tools.command("ceph-osd", ["-i", String(id), "--mkfs", "--osd-uuid", uuid, "--osd-data", data,
                                              "--osd-objectstore", "bluestore", "--keyring", data + "/keyring",
                                              "--keyfile", data + "/keyfile"], timeout: 300)
        return (id, "created osd.\(id) on \(disk.device)", mkfs)
    }

    /// The OSD's data directory: `block` -> the disk's stable path, its keyring, and (for an existing OSD) the
    /// metadata primed from the bluestore label. Returns true when anything had to be written.
    func ensureOSDDirectory(id: Int, disk: ResolvedDisk, primeFromLabel: Bool, key: String?) throws(ProvisionError) -> Bool {
        let data = layout.osdData(id)
        var changed = false
        if !primeFromLabel {
            // Fresh mkfs: anything left by an interrupted attempt goes.
            try? FileManager.default.removeItem(atPath: data)
        }
        try Files.makeDirectory(data)
        let block = data + "/block"
        if (try? FileManager.default.destinationOfSymbolicLink(atPath: block)) != disk.stablePath {
            unlink(block)
            guard symlink(disk.stablePath, block) == 0 else {
                throw .failed("cannot link \(block) to \(disk.stablePath): \(String(cString: strerror(errno)))")
            }
            changed = true
        }
        if primeFromLabel && !Files.exists(data + "/whoami") {
            do {
                try Command("ceph-bluestore-tool", ["prime-osd-dir", "--dev", disk.stablePath, "--path", data, "--no-mon-config"]).run()
            } catch {
                throw .failed("cannot restore \(data) from the label on \(disk.device): \(error)")
            }
            changed = true
        }
        if !Self.hasKey(data + "/keyring") {
            let temporary = data + "/keyring.new"
            if let key {
                // Just created: the key is known, no round trip to the monitor.
                // Written through the one atomic write (0600 from the start): a key never goes on a command line.
                try Files.write("[osd.\(id)]\n\tkey = \(key)\n", to: data + "/keyring", mode: 0o600)
            } else if identity.join == nil {
                try Files.createPrivate(temporary)
                try tools.run("ceph", ["auth", "get", "osd.\(id)", "-o", temporary])
                try Files.publish(temporary, to: data + "/keyring", mode: 0o600)
            } else {
                throw .failed("the keyring of osd.\(id) is missing from \(data) and its bluestore label on \(disk.device) "
                    + "holds no key (an OSD made before keys were kept there); copy it from the bootstrap node with "
                    + "`ceph auth get osd.\(id) -o \(data)/keyring`, then rerun")
            }
            changed = true
        }
        return changed
    }
}
