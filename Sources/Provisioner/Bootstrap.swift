import Exec
import Foundation
import Disks
import Logging
import NodeContract
import Seed

/// Where a run dies on purpose (`--fault-inject STEP[:WHEN]` or `AQUARIUM_FAULT_INJECT`), to prove that a rerun
/// converges. `before`: at the start of the step; `mid`: part-way (where a step has an interesting middle: keys,
/// mon-mkfs, osds, rgw, replication); `after` (default): once the step's actions are done but before it is recorded.
public struct FaultPoint: Equatable, Sendable, CustomStringConvertible {
    public enum When: String, Sendable, CaseIterable { case before, mid, after }
    public var step: String
    public var when: When

    public init(step: String, when: When = .after) {
        self.step = step
        self.when = when
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let step = parts.first, !step.isEmpty else { return nil }
        if parts.count == 2 {
            guard let when = When(rawValue: parts[1]) else { return nil }
            self.init(step: step, when: when)
        } else {
            self.init(step: step)
        }
    }

    public var description: String { "\(step):\(when.rawValue)" }
}

/// What one step did.
public struct StepResult: Codable, Equatable, Sendable {
    public var step: String
    public var changed: Bool
    public var detail: String?
}

/// What `run` prints with `--json`.
public struct RunReport: Codable, Equatable, Sendable {
    public var fsid: String?
    public var steps: [StepResult]
    /// True when any step changed something on the node.
    public var changed: Bool
    public var health: String?
}

/// Provisioning options beyond the seed and node record.
public struct ProvisionOptions: Sendable {
    public var launcher: LauncherKind
    /// Process launcher: the first of 100 ports this cluster may use on 127.0.0.1 (chosen when nil; remembered).
    public var basePort: Int?
    public var fault: FaultPoint?
    /// How long to wait for the cluster to report health after the services started.
    public var healthTimeout: Double
    /// `role: join`: the port of the monitor at `cluster.join.address` (default: remembered, else 3300). Clusters of
    /// the process launcher listen on their base port instead.
    public var monPort: Int?

    public init(launcher: LauncherKind = .systemd, basePort: Int? = nil, fault: FaultPoint? = nil, healthTimeout: Double = 300,
                monPort: Int? = nil) {
        self.launcher = launcher
        self.basePort = basePort
        self.fault = fault
        self.healthTimeout = healthTimeout
        self.monPort = monPort
    }
}

/// Configures the host and bootstraps a Ceph cluster from the seed (`role: bootstrap`) or adds this node's disks to one
/// as OSDs (`role: join`, in Join.swift), one idempotent step at a time.
/// Each step looks at the node first (files, daemons, the cluster's own view) and acts only on what is missing,
/// so a rerun on a healthy node changes nothing and a rerun after a crash picks up where it stopped.
public final class Provisioner {
    public static let bootstrapSteps = ["host", "identity", "keys", "monmap", "mon-mkfs", "mon", "cluster-settings",
                                        "mgr", "join-token", "osds", "rbd", "cephfs", "rgw", "replication", "telemetry",
                                        "health"]
    public static let joinSteps = ["host", "identity", "join", "osds", "health"]
    public static let s3AdminUser = "aquarium-admin"

    let seed: Seed
    let record: NodeRecord
    public let layout: Layout
    let options: ProvisionOptions
    let logger: Logger
    let launcher: any DaemonLauncher
    let tools: CephTools
    let events: EventLog
    var state: ProvisionState
    /// `role: join`: the seed's token, read before any step runs.
    var joinToken: JoinToken?
    /// The node record's storage disks found on this machine (by identity) by the preflight.
    var storageDisks: [ResolvedDisk] = []

    public init(seed: Seed, record: NodeRecord, root: String, options: ProvisionOptions, logger: Logger) throws(ProvisionError) {
        self.seed = seed
        self.record = record
        self.layout = Layout(root: root, cluster: seed.cluster.name)
        self.options = options
        self.logger = logger
        self.launcher = Launchers.make(options.launcher, layout: layout, logger: logger)
        self.tools = CephTools(layout: layout, logger: logger, client: seed.cluster.role == .join ? JoinToken.entity : nil)
        self.events = EventLog(path: layout.eventsFile)
        self.state = try ProvisionState.load(layout.stateFile)
        if let identity = state.identity, identity.launcher != options.launcher {
            throw .invalidInput("this root was provisioned with --launcher \(identity.launcher.rawValue); "
                + "rerun with the same launcher (\(layout.stateFile))")
        }
    }

    var identity: ClusterIdentity {
        // Set by the identity step, which runs before every step that reads it.
        state.identity ?? ClusterIdentity(fsid: "", name: seed.cluster.name, daemonId: "a", address: "127.0.0.1",
                                          basePort: 0, publicNetwork: "", clusterNetwork: "", launcher: options.launcher)
    }

    var daemonId: String { CephConfig.daemonId(hostname: seed.host.hostname) }

    // MARK: run

    /// Runs every step; returns what each did. `onStep` sees each result as it completes.
    public func run(onStep: (StepResult) -> Void = { _ in }) throws(ProvisionError) -> RunReport {
        events.append(ProvisionEvent(event: "run.started", detail: "role \(seed.cluster.role.rawValue), launcher \(options.launcher.rawValue)"))
        var results: [StepResult] = []
        do throws(ProvisionError) {
            let steps: [(String, () throws(ProvisionError) -> StepResult)]
            switch seed.cluster.role {
            case .bootstrap:
                steps = [("host", host), ("identity", makeIdentity), ("keys", keys), ("monmap", monmap),
                         ("mon-mkfs", monMkfs), ("mon", mon), ("cluster-settings", clusterSettings), ("mgr", mgr),
                         ("join-token", joinTokenStep), ("osds", osds), ("rbd", rbd), ("cephfs", cephfs), ("rgw", rgw),
                         ("replication", replication), ("telemetry", telemetry), ("health", health)]
            case .join:
                guard let join = seed.cluster.join else {
                    throw .invalidInput("role: join needs cluster.join with the address and token of the cluster to join")
                }
                // A malformed token stops the run before anything is touched (exit 2).
                joinToken = try JoinToken(parsing: join.token)
                steps = [("host", host), ("identity", joinIdentity), ("join", joinCluster), ("osds", osds),
                         ("health", health)]
            }
            try preflightDisks()
            for (name, body) in steps {
                fault(name, .before)
                events.append(ProvisionEvent(event: "step.started", step: name))
                let result: StepResult
                do {
                    result = try body()
                } catch {
                    events.append(ProvisionEvent(event: "step.failed", step: name, detail: error.description))
                    throw error
                }
                fault(name, .after)
                events.append(ProvisionEvent(event: result.changed ? "step.done" : "step.unchanged", step: name,
                                             changed: result.changed, detail: result.detail))
                state.markCompleted(name)
                try state.save(layout.stateFile)
                results.append(result)
                onStep(result)
            }
        } catch {
            events.append(ProvisionEvent(event: "run.failed", detail: error.description))
            throw error
        }
        let changed = results.contains(where: \.changed)
        let health = results.first(where: { $0.step == "health" })?.detail
        events.append(ProvisionEvent(event: "run.finished", changed: changed, detail: health))
        return RunReport(fsid: state.identity?.fsid, steps: results, changed: changed, health: health)
    }

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

    func fault(_ step: String, _ when: FaultPoint.When) {
        guard let fault = options.fault, fault.step == step, fault.when == when else { return }
        logger.notice("fault injection: dying at \(fault)")
        events.append(ProvisionEvent(event: "fault.injected", step: step, detail: fault.description))
        kill(getpid(), SIGKILL)
        while true { pause() }
    }

    func saveState() throws(ProvisionError) { try state.save(layout.stateFile) }

    // MARK: steps

    func host() throws(ProvisionError) -> StepResult {
        let changed = try HostConfigurator(layout: layout, seed: seed).apply()
        var detail = changed.isEmpty ? [] : ["wrote " + changed.joined(separator: ", ")]
        if layout.root.isEmpty && options.launcher == .systemd {
            // On the node itself the running system follows the files now, not at the next boot: the monitor binds to
            // the seed's static address in the next steps.
            if changed.contains(where: { $0.hasPrefix("/etc/systemd/network/") }) {
                if (try? Command("networkctl", ["reload"]).run()) != nil {
                    detail.append("reloaded systemd-networkd")
                } else {
                    logger.warning("networkctl reload failed: the new network configuration applies at the next boot")
                }
            }
            if RunningHost.name() != seed.host.hostname, RunningHost.set(seed.host.hostname) {
                detail.append("set the running host name")
            }
        }
        return StepResult(step: "host", changed: !changed.isEmpty, detail: detail.isEmpty ? nil : detail.joined(separator: "; "))
    }

    func makeIdentity() throws(ProvisionError) -> StepResult {
        var decided = false
        if state.identity == nil {
            let node = try decideNodeAddress(for: "the monitor")
            state.identity = ClusterIdentity(fsid: existingFSID() ?? UUID().uuidString.lowercased(), name: seed.cluster.name,
                                             daemonId: daemonId, address: node.address, basePort: node.basePort,
                                             publicNetwork: node.publicNetwork, clusterNetwork: node.clusterNetwork,
                                             launcher: options.launcher)
            try saveState()
            decided = true
        }
        let conf = CephConfig.render(identity, layout: layout, rgwPort: seed.cluster.services.rgw?.port)
        let written = try Files.write(conf, to: layout.cephConf)
        try Files.makeDirectory(layout.cephLog)
        try Files.makeDirectory(layout.cephRun)
        try Files.makeDirectory(layout.crashDir)
        return StepResult(step: "identity", changed: decided || written,
                          detail: "fsid \(identity.fsid), mon \(identity.monAddressVector)")
    }

    /// Where this node's daemons bind: 127.0.0.1 in a free port range (process launcher), else the node's address in
    /// the seed's public network. `who` names what needs the address, for the message.
    func decideNodeAddress(for who: String) throws(ProvisionError)
        -> (address: String, publicNetwork: String, clusterNetwork: String, basePort: Int) {
        switch options.launcher {
        case .process:
            guard let port = options.basePort ?? Ports.findFreeRange() else {
                throw .failed("no range of 100 free ports on 127.0.0.1 found; pass --base-port")
            }
            return ("127.0.0.1", "127.0.0.0/8", "127.0.0.0/8", port)
        case .systemd:
            guard let network = seed.network.publicNetwork else {
                throw .invalidInput("the seed has no network.public_network; \(who) needs an address in it")
            }
            guard let own = NodeAddresses.find(in: network, seed: seed) else {
                throw .failed("this node has no address in the public network \(network); check the seed's "
                    + "network.interfaces and that the links are up")
            }
            if layout.root.isEmpty, !NodeAddresses.local().contains(own) {
                // A static address of the seed that systemd-networkd is still configuring (the host step reloaded it).
                do {
                    try CephTools.wait("the seed's address \(own) to be configured", seconds: 90) {
                        NodeAddresses.local().contains(own)
                    }
                } catch {
                    throw .failed("the seed's address \(own) (network.interfaces) is on no interface of this node after "
                        + "90 s; check the interface's name or mac in the seed against `ip -br link`, and that its link is up")
                }
            }
            return (own, network.description, seed.network.clusterNetwork?.description ?? network.description,
                    options.basePort ?? 3300)
        }
    }

    /// An fsid already on the node (a configuration file from an earlier run whose state file was lost).
    func existingFSID() -> String? {
        guard let text = Files.read(layout.cephConf) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0] == "fsid", UUID(uuidString: parts[1]) != nil { return parts[1] }
        }
        return nil
    }

    var monDataComplete: Bool {
        let data = layout.monData(identity.daemonId)
        return Files.exists(data + "/keyring") && Files.exists(data + "/kv_backend") && Files.exists(data + "/store.db")
    }

    static func hasKey(_ path: String) -> Bool { Files.read(path)?.contains("key = ") ?? false }

    func keys() throws(ProvisionError) -> StepResult {
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
                throw .failed("ceph-authtool could not create the monitor keyring \(temporary): \(error)")
            }
            chmod(temporary, 0o600)
            guard rename(temporary, layout.monKeyring) == 0 else { throw .failed("cannot rename \(temporary)") }
            made.append("mon.")
        }
        return StepResult(step: "keys", changed: !made.isEmpty, detail: made.isEmpty ? nil : "created " + made.joined(separator: ", "))
    }

    /// `ceph-authtool --create-keyring` into a temporary file, renamed into place (mode 0600).
    func authtool(_ path: String, _ arguments: [String]) throws(ProvisionError) {
        let temporary = path + ".new"
        unlink(temporary)
        try Files.makeDirectory((path as NSString).deletingLastPathComponent)
        do {
            try Command("ceph-authtool", ["--create-keyring", temporary] + arguments).run()
        } catch {
            throw .failed("ceph-authtool could not create \(path): \(error)")
        }
        chmod(temporary, 0o600)
        guard rename(temporary, path) == 0 else { throw .failed("cannot rename \(temporary) to \(path)") }
    }

    func monmap() throws(ProvisionError) -> StepResult {
        if monDataComplete { return StepResult(step: "monmap", changed: false, detail: "the monitor exists") }
        if let printed = try? Command("monmaptool", ["--print", layout.monmap]).run(), printed.output.contains(identity.fsid) {
            return StepResult(step: "monmap", changed: false)
        }
        let temporary = layout.monmap + ".new"
        unlink(temporary)
        do {
            try Command("monmaptool", ["--create", "--fsid", identity.fsid, "--addv", identity.daemonId,
                                       identity.monAddressVector, temporary]).run()
        } catch {
            throw .failed("monmaptool could not create \(temporary): \(error)")
        }
        guard rename(temporary, layout.monmap) == 0 else { throw .failed("cannot rename \(temporary)") }
        return StepResult(step: "monmap", changed: true, detail: "mon.\(identity.daemonId) at \(identity.monAddressVector)")
    }

    func monMkfs() throws(ProvisionError) -> StepResult {
        if monDataComplete { return StepResult(step: "mon-mkfs", changed: false) }
        let data = layout.monData(identity.daemonId)
        let temporary = data + ".mkfs"
        try? FileManager.default.removeItem(atPath: temporary)
        // A directory left by an interrupted earlier attempt holds nothing the monitor ever served.
        try? FileManager.default.removeItem(atPath: data)
        try Files.makeDirectory(temporary)
        try tools.run("ceph-mon", ["--mkfs", "-i", identity.daemonId, "--mon-data", temporary, "--monmap", layout.monmap,
                                   "--keyring", layout.monKeyring])
        fault("mon-mkfs", .mid)
        guard rename(temporary, data) == 0 else { throw .failed("cannot rename \(temporary) to \(data)") }
        return StepResult(step: "mon-mkfs", changed: true, detail: data)
    }

    func daemon(_ type: String, _ id: String, extra: [String] = []) -> DaemonSpec {
        let executable: String
        var arguments = ["--cluster", layout.cluster, "-c", layout.cephConf]
        switch type {
        case "rgw":
            executable = "radosgw"
            arguments += ["-n", "client.rgw.\(id)", "-f"]
            return DaemonSpec(name: "client.rgw.\(id)", executable: executable, arguments: arguments + extra,
                              configPath: layout.cephConf)
        default:
            executable = "ceph-\(type)"
            arguments += ["-i", id, "-f"]
        }
        return DaemonSpec(name: "\(type).\(id)", executable: executable, arguments: arguments + extra, configPath: layout.cephConf)
    }

    func mon() throws(ProvisionError) -> StepResult {
        let started = try launcher.ensureRunning(daemon("mon", identity.daemonId))
        try CephTools.wait("the monitor to form a quorum", seconds: 60) {
            let status = try tools.json(["quorum_status"], timeout: 20) as? [String: Any]
            return ((status?["quorum_names"] as? [String]) ?? []).contains(identity.daemonId)
        }
        return StepResult(step: "mon", changed: started, detail: started ? "started mon.\(identity.daemonId)" : nil)
    }

    func clusterSettings() throws(ProvisionError) -> StepResult {
        let dump = (try tools.json(["config", "dump"]) as? [[String: Any]]) ?? []
        // The pool defaults only for a new cluster; once set, the `replication` step grows them.
        let fresh = ReplicationDefaults.parse(dump).size == nil
        // Set once: a value already in the database (an operator's tuning, say) is kept, not fought on every run.
        // `assimilate-conf` below would not overwrite it either.
        var missing: [(who: String, option: String, value: String)] = []
        var kept: [String] = []
        for setting in CephConfig.clusterSettings + (fresh ? CephConfig.singleNodeReplication : []) {
            let current = dump.first { ($0["section"] as? String) == setting.who && ($0["name"] as? String) == setting.option }
            if let value = current?["value"] as? String {
                if value != setting.value { kept.append("\(setting.who)/\(setting.option)=\(value)") }
            } else {
                missing.append(setting)
            }
        }
        if missing.isEmpty {
            return StepResult(step: "cluster-settings", changed: false,
                              detail: kept.isEmpty ? nil : "kept the cluster's own " + kept.joined(separator: ", "))
        }
        // One round trip for all of them (each `ceph` invocation costs about half a second).
        var text = ""
        for who in Set(missing.map(\.who)).sorted() {
            text += "[\(who)]\n" + missing.filter { $0.who == who }.map { "\t\($0.option) = \($0.value)\n" }.joined()
        }
        let input = layout.bootstrapDir + "/settings.conf"
        try Files.write(text, to: input, mode: 0o600)
        try tools.run("ceph", ["config", "assimilate-conf", "-i", input, "-o", "/dev/null"])
        return StepResult(step: "cluster-settings", changed: true,
                          detail: missing.map { "\($0.who)/\($0.option)=\($0.value)" }.joined(separator: ", "))
    }

    /// Writes `entity`'s keyring (creating the key with `caps` when the monitor has none) unless the file holds one.
    func ensureKeyring(_ entity: String, caps: [String], at path: String) throws(ProvisionError) -> Bool {
        if Self.hasKey(path) { return false }
        try Files.makeDirectory((path as NSString).deletingLastPathComponent)
        let temporary = path + ".new"
        // Created 0600 before ceph writes the key into it (it keeps an existing file's mode).
        try Files.createPrivate(temporary)
        try tools.run("ceph", ["auth", "get-or-create", entity] + caps + ["-o", temporary])
        chmod(temporary, 0o600)
        guard rename(temporary, path) == 0 else { throw .failed("cannot rename \(temporary) to \(path)") }
        return true
    }

    func mgr() throws(ProvisionError) -> StepResult {
        let id = identity.daemonId
        let keyed = try ensureKeyring("mgr.\(id)", caps: ["mon", "allow profile mgr", "osd", "allow *", "mds", "allow *"],
                                      at: layout.mgrData(id) + "/keyring")
        // Not waited for here: the OSDs do not need it, so they are created while it starts; `health` waits for it.
        let started = try launcher.ensureRunning(daemon("mgr", id))
        return StepResult(step: "mgr", changed: keyed || started, detail: started ? "started mgr.\(id)" : nil)
    }

    // MARK: OSDs

    func osdDump() throws(ProvisionError) -> [[String: Any]] {
        ((try tools.json(["osd", "dump"]) as? [String: Any])?["osds"] as? [[String: Any]]) ?? []
    }

    func osds() throws(ProvisionError) -> StepResult {
        let disks = storageDisks
        if disks.isEmpty && !record.storageDisks.isEmpty {
            throw .failed("none of the node record's storage disks is on this machine ("
                + record.storageDisks.map(\.displayName).joined(separator: ", ") + "); see `aquarium-provision status`")
        }
        if disks.isEmpty {
            throw .invalidInput(seed.cluster.role == .join
                ? "the node record lists no storage disks; a joining node adds its storage disks as OSDs, without any it has nothing to add"
                : "the node record lists no storage disks; a bootstrap node needs at least one OSD")
        }
        var actions: [String] = []
        var ids: [Int] = []
        var mkfs: [(Int, Command)] = []
        for disk in disks {
            let prepared = try prepareOSD(disk)
            ids.append(prepared.id)
            if let action = prepared.action { actions.append(action) }
            if let command = prepared.mkfs { mkfs.append((prepared.id, command)) }
        }
        // ceph-osd --mkfs writes a whole bluestore per disk: the disks are independent, so all at once.
        let jobs = mkfs
        let failures = ConcurrentResults(count: jobs.count)
        let layout = layout
        DispatchQueue.concurrentPerform(iterations: jobs.count) { index in
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
        for id in ids where try launcher.ensureRunning(daemon("osd", String(id))) { actions.append("started osd.\(id)") }
        try CephTools.wait("OSDs \(ids.map { "osd.\($0)" }.joined(separator: ", ")) to come up", seconds: 120) {
            let up = Set(try osdDump().filter { ($0["up"] as? Int) == 1 }.compactMap { $0["osd"] as? Int })
            return ids.allSatisfy(up.contains)
        }
        return StepResult(step: "osds", changed: !actions.isEmpty,
                          detail: actions.isEmpty ? "osd " + ids.map(String.init).joined(separator: ", ") : actions.joined(separator: "; "))
    }

    /// Makes `disk` a bluestore OSD of this cluster unless it already is one: its id, what was done, and the
    /// `ceph-osd --mkfs` still to run (nil when the disk already holds the finished OSD).
    func prepareOSD(_ disk: ResolvedDisk) throws(ProvisionError) -> (id: Int, action: String?, mkfs: Command?) {
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
        if remembered != nil, let osd = try osdDump().first(where: { ($0["uuid"] as? String)?.lowercased() == uuid }) {
            existing = osd["osd"] as? Int
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
            let output = try tools.run("ceph", ["osd", "new", uuid, "-i", "-"], input: secrets).output
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
                // Written directly (0600 from the start): a key never goes on a command line.
                unlink(temporary)
                try Files.write("[osd.\(id)]\n\tkey = \(key)\n", to: temporary, mode: 0o600)
            } else if identity.join == nil {
                try Files.createPrivate(temporary)
                try tools.run("ceph", ["auth", "get", "osd.\(id)", "-o", temporary])
            } else {
                throw .failed("the keyring of osd.\(id) is missing from \(data) and its bluestore label on \(disk.device) "
                    + "holds no key (an OSD made before keys were kept there); copy it from the bootstrap node with "
                    + "`ceph auth get osd.\(id) -o \(data)/keyring`, then rerun")
            }
            chmod(temporary, 0o600)
            guard rename(temporary, data + "/keyring") == 0 else { throw .failed("cannot write \(data)/keyring") }
            changed = true
        }
        return changed
    }

    // MARK: services

    func pools() throws(ProvisionError) -> Set<String> {
        Set((try tools.json(["osd", "pool", "ls"]) as? [String]) ?? [])
    }

    func rbd() throws(ProvisionError) -> StepResult {
        guard let service = seed.cluster.services.rbd else { return StepResult(step: "rbd", changed: false, detail: "not in the seed") }
        var actions: [String] = []
        let existing = try pools()
        for pool in service.pools {
            if !existing.contains(pool) {
                try tools.run("ceph", ["osd", "pool", "create", pool])
                actions.append("created pool \(pool)")
            }
            let applications = (try tools.json(["osd", "pool", "application", "get", pool]) as? [String: Any]) ?? [:]
            if applications["rbd"] == nil {
                try tools.run("rbd", ["pool", "init", pool], timeout: 180)
                actions.append("initialised \(pool) for RBD")
            }
        }
        return StepResult(step: "rbd", changed: !actions.isEmpty,
                          detail: actions.isEmpty ? "pools " + service.pools.joined(separator: ", ") : actions.joined(separator: "; "))
    }

    func cephfs() throws(ProvisionError) -> StepResult {
        guard let service = seed.cluster.services.cephfs else { return StepResult(step: "cephfs", changed: false, detail: "not in the seed") }
        var actions: [String] = []
        let filesystems = (try tools.json(["fs", "ls"]) as? [[String: Any]]) ?? []
        if !filesystems.contains(where: { ($0["name"] as? String) == service.name }) {
            let metadata = "cephfs.\(service.name).meta"
            let data = "cephfs.\(service.name).data"
            let existing = try pools()
            for pool in [metadata, data] where !existing.contains(pool) {
                try tools.run("ceph", ["osd", "pool", "create", pool])
            }
            try tools.run("ceph", ["fs", "new", service.name, metadata, data])
            actions.append("created file system \(service.name)")
        }
        let id = identity.daemonId
        if try ensureKeyring("mds.\(id)", caps: ["mon", "allow profile mds", "osd", "allow rw tag cephfs *=*", "mds", "allow",
                                                 "mgr", "allow profile mds"], at: layout.mdsData(id) + "/keyring") {
            actions.append("created the key of mds.\(id)")
        }
        if try launcher.ensureRunning(daemon("mds", id)) { actions.append("started mds.\(id)") }
        try CephTools.wait("an active MDS for \(service.name)", seconds: 90) {
            let dump = try tools.json(["fs", "dump"], timeout: 20) as? [String: Any]
            let systems = (dump?["filesystems"] as? [[String: Any]]) ?? []
            let map = systems.first { (($0["mdsmap"] as? [String: Any])?["fs_name"] as? String) == service.name }?["mdsmap"] as? [String: Any]
            let info = (map?["info"] as? [String: Any]) ?? [:]
            return info.values.contains { (($0 as? [String: Any])?["state"] as? String) == "up:active" }
        }
        return StepResult(step: "cephfs", changed: !actions.isEmpty, detail: actions.isEmpty ? service.name : actions.joined(separator: "; "))
    }

    var rgwHost: String { options.launcher == .process ? identity.address : "127.0.0.1" }

    func rgw() throws(ProvisionError) -> StepResult {
        guard let service = seed.cluster.services.rgw else { return StepResult(step: "rgw", changed: false, detail: "not in the seed") }
        var actions: [String] = []
        let id = identity.daemonId
        if try ensureKeyring("client.rgw.\(id)", caps: ["mon", "allow rw", "osd", "allow rwx", "mgr", "allow rw"],
                             at: layout.rgwData(id) + "/keyring") {
            actions.append("created the key of client.rgw.\(id)")
        }
        let spec = daemon("rgw", id)
        if !launcher.isRunning(spec) && Ports.isListening(host: rgwHost, port: service.port) {
            throw .failed("port \(service.port) on \(rgwHost) is taken by another program; RGW cannot listen there. "
                + "Free it or change cluster.services.rgw.port in the seed")
        }
        if try launcher.ensureRunning(spec) { actions.append("started client.rgw.\(id) on port \(service.port)") }
        try CephTools.wait("RGW to listen on \(rgwHost):\(service.port)", seconds: 120) {
            Ports.isListening(host: rgwHost, port: service.port)
        }
        fault("rgw", .mid)
        let keys = try s3AdminKeys()
        let endpoint = "http://\(options.launcher == .process ? identity.address : (NodeAddresses.primary(seed: seed) ?? identity.address)):\(service.port)"
        let credentials = S3Credentials(endpoint: endpoint, user: Self.s3AdminUser, accessKey: keys.access, secretKey: keys.secret)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(credentials) else { throw .failed("cannot encode the S3 credentials") }
        if try Files.write(data, to: layout.s3CredentialsFile, mode: 0o600) {
            actions.append("wrote \(layout.s3CredentialsFile)")
        }
        if keys.created { actions.append("created the S3 user \(Self.s3AdminUser)") }
        return StepResult(step: "rgw", changed: !actions.isEmpty, detail: actions.isEmpty ? endpoint : actions.joined(separator: "; "))
    }

    func s3AdminKeys() throws(ProvisionError) -> (access: String, secret: String, created: Bool) {
        func parse(_ output: String) -> (String, String)? {
            guard let object = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
                  let keys = object["keys"] as? [[String: Any]],
                  let first = keys.first(where: { ($0["user"] as? String) == Self.s3AdminUser }) ?? keys.first,
                  let access = first["access_key"] as? String, let secret = first["secret_key"] as? String else { return nil }
            return (access, secret)
        }
        let info = try tools.run("radosgw-admin", ["user", "info", "--uid", Self.s3AdminUser], timeout: 120, accepted: [0, 2, 22])
        if info.status == 0, let keys = parse(info.output) { return (keys.0, keys.1, false) }
        let created = try tools.run("radosgw-admin", ["user", "create", "--uid", Self.s3AdminUser,
                                                      "--display-name", "Aquarium administrator", "--admin"], timeout: 120)
        guard let keys = parse(created.output) else { throw .failed("radosgw-admin user create printed no keys") }
        return (keys.0, keys.1, true)
    }

    func waitForManager() throws(ProvisionError) {
        try CephTools.wait("the manager to become available", seconds: 90) {
            let stat = try tools.json(["mgr", "stat"], timeout: 20) as? [String: Any]
            return (stat?["available"] as? Bool) == true
        }
    }

    /// Ceph's telemetry module (a manager module that is always on, reporting nothing until opted in): opted in
    /// with `cluster.telemetry: true`, off otherwise; a rerun after the seed changed turns it off again.
    func telemetry() throws(ProvisionError) -> StepResult {
        try waitForManager()
        let status = try tools.json(["telemetry", "status"], timeout: 30) as? [String: Any]
        let enabled = (status?["enabled"] as? Bool) == true
        let wanted = seed.cluster.telemetry
        if enabled == wanted {
            return StepResult(step: "telemetry", changed: false, detail: wanted ? "on (license sharing-1-0)" : "off")
        }
        if wanted {
            try tools.run("ceph", ["telemetry", "on", "--license", Self.telemetryLicense], timeout: 60)
            return StepResult(step: "telemetry", changed: true, detail: "turned on (license \(Self.telemetryLicense))")
        }
        try tools.run("ceph", ["telemetry", "off"], timeout: 60)
        return StepResult(step: "telemetry", changed: true, detail: "turned off (cluster.telemetry is false)")
    }

    static let telemetryLicense = "sharing-1-0"

    func health() throws(ProvisionError) -> StepResult {
        var last = ""
        // A joined node may not ask the manager (its key only has the OSD bootstrap profile); the monitor's health
        // covers what matters to it.
        if identity.join == nil { try waitForManager() }
        do {
            try CephTools.wait("HEALTH_OK (or only expected single-node warnings)", seconds: options.healthTimeout, interval: 1) {
                let health = try tools.json(["health"], timeout: 20) as? [String: Any]
                let status = health?["status"] as? String ?? "?"
                let checks = Set(((health?["checks"] as? [String: Any]) ?? [:]).keys)
                last = status + (checks.isEmpty ? "" : " " + checks.sorted().joined(separator: ","))
                if status == "HEALTH_OK" { return true }
                return status == "HEALTH_WARN" && checks.isSubset(of: CephConfig.expectedSingleNodeChecks)
            }
        } catch {
            // Say what the cluster reported last (a node down: OSD_DOWN, PG_DEGRADED, ...); `ceph health detail` says more.
            throw last.isEmpty ? error : .failed("\(error.description); the cluster reports \(last) (see `ceph health detail`)")
        }
        if state.bootstrappedAt == nil {
            state.bootstrappedAt = ISO8601DateFormatter().string(from: Date())
            try saveState()
            events.append(ProvisionEvent(event: identity.join == nil ? "node.bootstrapped" : "node.joined",
                                         detail: "cluster \(identity.fsid): \(last)"))
        }
        return StepResult(step: "health", changed: false, detail: last)
    }
}

/// The S3 administrator's credentials, written mode 0600 to `/var/lib/aquarium/s3-admin.json`.
public struct S3Credentials: Codable, Equatable, Sendable {
    public var endpoint: String
    public var user: String
    public var accessKey: String
    public var secretKey: String
}

/// This node's addresses, for the systemd launcher.
/// The running system's host name (the kernel's), as opposed to /etc/hostname.
enum RunningHost {
    static func name() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func set(_ name: String) -> Bool {
        name.withCString { sethostname($0, strlen($0)) } == 0
    }
}

enum NodeAddresses {
    /// A static address of the seed in `network`, else an address of a local interface in it.
    static func find(in network: IPNetwork, seed: Seed) -> String? {
        if let configured = seed.network.interfaces.flatMap(\.addresses).first(where: { network.contains($0.address) }) {
            return configured.address.description
        }
        return local().first { IPAddress($0).map(network.contains) ?? false }
    }

    static func primary(seed: Seed) -> String? {
        seed.network.publicNetwork.flatMap { find(in: $0, seed: seed) }
    }

    static func local() -> [String] {
        var result: [String] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            if let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) {
                var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    var inAddress = pointer.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &inAddress, &buffer, socklen_t(INET_ADDRSTRLEN))
                }
                result.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            cursor = entry.pointee.ifa_next
        }
        return result
    }
}

/// Results written from concurrent workers, one slot each.
final class ConcurrentResults: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [String?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: String) {
        lock.lock(); slots[index] = value; lock.unlock()
    }

    var values: [String?] { lock.lock(); defer { lock.unlock() }; return slots }
}
