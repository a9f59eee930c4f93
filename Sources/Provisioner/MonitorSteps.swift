import Exec
import Foundation
import Seed

/// The monitor chain of a bootstrap node: keys, monmap, mon-mkfs, mon, cluster-settings, mgr.
extension Provisioner {
    var monDataComplete: Bool { MonitorStore.isComplete(identity.daemonId, layout: layout) }

    func keys() throws(ProvisionError) -> StepOutcome {
        var made: [String] = []
        try Files.makeDirectory(layout.bootstrapDir, mode: 0o700)
        if !Self.hasKey(layout.adminKeyring) {
            if monDataComplete {
                throw .failed("the admin keyring \(layout.adminKeyring) is missing but the monitor already exists; "
                    + "restore it (it is in the monitor's auth database: `ceph-monstore-tool`) before rerunning")
            }
            try authtool(layout.adminKeyring, ["--gen-key", "-n", "client.admin", "--cap", "mon", "allow *",
                                               "--cap", "osd", "allow *", "--cap", "mds", "allow *", "--cap", "mgr", "allow *"])
            made.append("client.admin")
        }
        fault("keys", .mid)
        if !monDataComplete && !Self.hasKey(layout.monKeyring) {
            let temporary = layout.monKeyring + ".new"
            unlink(temporary)
            do {
                try Command("ceph-authtool", ["--create-keyring", temporary, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"]).run()
                try Command("ceph-authtool", [temporary, "--import-keyring", layout.adminKeyring]).run()
            } catch {
                throw .failedBecause("ceph-authtool could not create the monitor keyring \(temporary): \(error)", cause: error)
            }
            try Files.publish(temporary, to: layout.monKeyring, mode: 0o600)
            made.append("mon.")
        }
        return StepOutcome(changed: !made.isEmpty, detail: made.isEmpty ? nil : "created " + made.joined(separator: ", "))
    }

    /// `ceph-authtool --create-keyring` into a temporary file, renamed into place (mode 0600).
    func authtool(_ path: String, _ arguments: [String]) throws(ProvisionError) {
        let temporary = path + ".new"
        unlink(temporary)
        try Files.makeDirectory((path as NSString).deletingLastPathComponent)
        do {
            try Command("ceph-authtool", ["--create-keyring", temporary] + arguments).run()
        } catch {
            throw .failedBecause("ceph-authtool could not create \(path): \(error)", cause: error)
        }
        try Files.publish(temporary, to: path, mode: 0o600)
    }

    func monmap() throws(ProvisionError) -> StepOutcome {
        if monDataComplete { return StepOutcome(changed: false, detail: "the monitor exists") }
        if let printed = try? Command("monmaptool", ["--print", layout.monmap]).run(), printed.output.contains(identity.fsid) {
            return StepOutcome(changed: false)
        }
        let temporary = layout.monmap + ".new"
        unlink(temporary)
        do {
            try Command("monmaptool", ["--create", "--fsid", identity.fsid, "--addv", identity.daemonId,
                                       identity.monAddressVector, temporary]).run()
        } catch {
            throw .failedBecause("monmaptool could not create \(temporary): \(error)", cause: error)
        }
        try Files.publish(temporary, to: layout.monmap)
        return StepOutcome(changed: true, detail: "mon.\(identity.daemonId) at \(identity.monAddressVector)")
    }

    func monMkfs() throws(ProvisionError) -> StepOutcome {
        if monDataComplete { return StepOutcome(changed: false) }
        let data = try MonitorStore.make(identity.daemonId, monmap: layout.monmap, layout: layout, tools: tools) {
            fault("mon-mkfs", .mid)
        }
        return StepOutcome(changed: true, detail: data)
    }

    func mon() throws(ProvisionError) -> StepOutcome {
        let started = try launcher.ensureRunning(daemon("mon", identity.daemonId))
        try waitForQuorum()
        return StepOutcome(changed: started, detail: started ? "started mon.\(identity.daemonId)" : nil)
    }

    func clusterSettings() throws(ProvisionError) -> StepOutcome {
        let dump = try tools.json([CephJSON.ConfigEntry].self, ["config", "dump"]) ?? []
        // The pool defaults only for a new cluster; once set, the `replication` step grows them.
        let fresh = ReplicationDefaults(configDump: dump).size == nil
        // Set once: a value already in the database (an operator's tuning, say) is kept, not fought on every run.
        // `assimilate-conf` below would not overwrite it either.
        var missing: [(who: String, option: String, value: String)] = []
        var kept: [String] = []
        for setting in CephConfig.clusterSettings + (fresh ? CephConfig.singleNodeReplication : []) {
            let current = dump.first { $0.section == setting.who && $0.name == setting.option }
            if let value = current?.value {
                if value != setting.value { kept.append("\(setting.who)/\(setting.option)=\(value)") }
            } else {
                missing.append(setting)
            }
        }
        if missing.isEmpty {
            return StepOutcome(changed: false, detail: kept.isEmpty ? nil : "kept the cluster's own " + kept.joined(separator: ", "))
        }
        // One round trip for all of them.
        var text = ""
        for who in Set(missing.map(\.who)).sorted() {
            text += "[\(who)]\n" + missing.filter { $0.who == who }.map { "\t\($0.option) = \($0.value)\n" }.joined()
        }
        try tools.run("ceph", ["config", "assimilate-conf", "-i", "-"], input: Data(text.utf8))
        return StepOutcome(changed: true, detail: missing.map { "\($0.who)/\($0.option)=\($0.value)" }.joined(separator: ", "))
    }

    /// Whether this node makes the cluster's event log pool: a node with a monitor and the admin key, in its `osds`
    /// step. The pool is made once the pool defaults are in the database (`cluster-settings`: a pool takes the
    /// defaults of its creation; made before them, a single node's would ask for 3 copies it cannot place), while
    /// the OSDs' stores are written (the monitor is idle for those seconds), before the OSDs start, so its placement
    /// groups are active by the time the run publishes.
    var makesEventPool: Bool { !seed.cluster.role.joins }

    /// Writes `entity`'s keyring (creating the key with `caps` when the monitor has none) unless the file holds one.
    func ensureKeyring(_ entity: String, caps: [String], at path: String) throws(ProvisionError) -> Bool {
        if Self.hasKey(path) { return false }
        try Files.makeDirectory((path as NSString).deletingLastPathComponent)
        // The keyring as the monitor prints it, written through the one atomic write (0600 from the start).
        let keyring = try tools.run("ceph", ["auth", "get-or-create", entity] + caps).output
        guard !Redactor.keyringKeys(keyring).isEmpty else {
            throw .failed("ceph auth get-or-create \(entity) printed no keyring")
        }
        try Files.write(keyring, to: path, mode: 0o600)
        return true
    }

    func mgr() throws(ProvisionError) -> StepOutcome {
        let id = identity.daemonId
        let keyed = try ensureKeyring("mgr.\(id)", caps: ["mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"],
                                      at: layout.mgrData(id) + "/keyring")
        // Not waited for here: the OSDs do not need it, so they are created while it starts; `health` waits for it.
        let started = try launcher.ensureRunning(daemon("mgr", id))
        return StepOutcome(changed: keyed || started, detail: started ? "started mgr.\(id)" : nil)
    }
}

/// A monitor's data directory, made by `ceph-mon --mkfs` from a monmap and the mkfs keyring (`layout.monKeyring`) in a
/// temporary directory renamed into place: an interrupted mkfs never leaves a store that looks complete. Used by the
/// `mon-mkfs` step and by a node asked to run a replacement monitor.
enum MonitorStore {
    /// Whether mon.ID's data directory is a finished store (what `make` leaves).
    static func isComplete(_ id: String, layout: Layout) -> Bool {
        let data = layout.monData(id)
        return Files.exists(data + "/keyring") && Files.exists(data + "/kv_backend") && Files.exists(data + "/store.db")
    }

    /// Returns the data directory. `beforeRename` runs between the mkfs and the rename (the step's fault point).
    static func make(_ id: String, monmap: String, layout: Layout, tools: CephTools,
                     beforeRename: () -> Void = {}) throws(ProvisionError) -> String {
        let data = layout.monData(id)
        let temporary = data + ".mkfs"
        try? FileManager.default.removeItem(atPath: temporary)
        // A directory left by an interrupted earlier attempt holds nothing the monitor ever served.
        try? FileManager.default.removeItem(atPath: data)
        try Files.makeDirectory(temporary)
        try tools.run("ceph-mon", ["--mkfs", "-i", id, "--mon-data", temporary, "--monmap", monmap, "--keyring", layout.monKeyring])
        beforeRename()
        guard rename(temporary, data) == 0 else { throw .failed("cannot rename \(temporary) to \(data)") }
        return data
    }
}
