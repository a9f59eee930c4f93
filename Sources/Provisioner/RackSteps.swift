import Exec
import Foundation
import Seed

/// The steps of a rack node (`role: monitor` or `role: storage`, `cluster.rack`): the cluster was decided offline by
/// `aquarium-image rack seeds` (fsid, monitors, keys), so the monitor nodes can each make their monitor from the same
/// monmap and keyring, in any order and at the same time, and form a quorum once a majority of them is up; the storage
/// nodes join with the join key as soon as a monitor answers. Each node waits for what it needs, with backoff, saying
/// what it waits for, up to `options.rackTimeout`.
extension Provisioner {
    var rack: Seed.Rack? { seed.cluster.rack }

    /// The rack's monitors as the identity keeps them.
    func rackMonitors(_ rack: Seed.Rack) -> [MonitorAddress] {
        rack.monitors.map { MonitorAddress(name: CephConfig.daemonId(hostname: $0.host), address: $0.address) }
    }

    func requireRackLauncher() throws(ProvisionError) {
        if options.launcher == .process && !options.seedNetwork {
            throw .invalidInput("role: \(seed.cluster.role.rawValue) (a rack node) binds at its address in the rack's "
                + "public network: with --launcher process, pass --seed-network (each test node in a network namespace "
                + "of its own)")
        }
    }

    /// Monitor node: the rack's fsid and monitors, this node's address (which must be its monitor's in the rack
    /// file), ceph.conf listing every monitor.
    func rackIdentity() throws(ProvisionError) -> StepOutcome {
        guard let rack, let mine = rack.monitor(forHost: seed.host.hostname) else {
            throw .invalidInput("role: monitor needs cluster.rack listing this host (\(seed.host.hostname)) among its monitors")
        }
        try requireRackLauncher()
        let previous = state.identity
        if let previous, previous.fsid != rack.fsid, monDataComplete {
            throw .refused("this node already runs mon.\(previous.daemonId) of cluster \(previous.fsid); the seed is for "
                + "cluster \(rack.fsid). Nothing was changed: a node serves one cluster")
        }
        let node = try decideNodeAddress(for: "the monitor")
        guard node.address == mine.address else {
            throw .failed("this node's address in \(node.publicNetwork) is \(node.address), but the rack's monitor list "
                + "puts mon.\(mine.shortName) at \(mine.address) (cluster.rack.monitors); fix the node's network or make "
                + "the rack's seeds again")
        }
        let decided = ClusterIdentity(fsid: rack.fsid, name: seed.cluster.name, daemonId: daemonId, address: node.address,
                                      basePort: node.basePort, publicNetwork: node.publicNetwork,
                                      clusterNetwork: node.clusterNetwork, launcher: options.launcher,
                                      monitors: rackMonitors(rack))
        var changed = false
        if decided != previous {
            state.identity = decided
            try saveState()
            changed = true
        }
        if try Files.write(CephConfig.render(decided, layout: layout, rgwPort: runsServices ? seed.cluster.services.rgw?.port : nil,
                                             rgwHTTPSPort: runsServices ? seed.cluster.services.rgw?.https?.port : nil,
                                             dashboard: seed.cluster.services.dashboard != nil,
                                             learned: LearnedMonitors.load(layout)),
                           to: layout.cephConf) {
            changed = true
        }
        try Files.makeDirectory(layout.cephLog)
        try Files.makeDirectory(layout.cephRun)
        try Files.makeDirectory(layout.crashDir)
        return StepOutcome(changed: changed, detail: "fsid \(rack.fsid), mon.\(daemonId) of \(rack.monitors.count): "
            + decided.monHost)
    }

    /// The services (RBD pools, CephFS, RGW) are made by one monitor node, the rack's first.
    var runsServices: Bool {
        guard let rack else { return true }
        return rack.monitors.first?.shortName == daemonId
    }

    /// Monitor node: the admin keyring and the monitor's mkfs keyring from the seed's keys (the same on every monitor
    /// node), with the join entity so storage nodes can join as soon as a quorum forms.
    func rackKeys() throws(ProvisionError) -> StepOutcome {
        guard let rack, let monitorKey = rack.monitorKey, let adminKey = rack.adminKey else {
            throw .invalidInput("role: monitor needs cluster.rack.monitor_key and admin_key")
        }
        let admin = Keyring.entry("client.admin", key: adminKey, caps: Keyring.adminCaps)
        var made: [String] = []
        try Files.makeDirectory(layout.bootstrapDir, mode: 0o700)
        try Files.makeDirectory(layout.etcCeph)
        if try Files.write(admin, to: layout.adminKeyring, mode: 0o600) { made.append(layout.adminKeyring) }
        let monitor = Keyring.entry("mon.", key: monitorKey, caps: ["mon", "allow *"]) + admin
            + Keyring.entry(JoinToken.entity, key: rack.joinKey, caps: JoinToken.caps)
        if !monDataComplete, try Files.write(monitor, to: layout.monKeyring, mode: 0o600) { made.append(layout.monKeyring) }
        return StepOutcome(changed: !made.isEmpty, detail: made.isEmpty ? nil : "wrote " + made.joined(separator: ", "))
    }

    /// Monitor node: the initial monmap with every monitor of the rack (the same on every monitor node).
    func rackMonmap() throws(ProvisionError) -> StepOutcome {
        if monDataComplete { return StepOutcome(changed: false, detail: "the monitor exists") }
        let monitors = identity.monitors ?? []
        let names = monitors.map(\.name)
        if let printed = try? Command("monmaptool", ["--print", layout.monmap]).run(),
           printed.output.contains(identity.fsid), names.allSatisfy({ printed.output.contains("mon.\($0)") }) {
            return StepOutcome(changed: false)
        }
        let temporary = layout.monmap + ".new"
        unlink(temporary)
        var arguments = ["--create", "--fsid", identity.fsid]
        for monitor in monitors { arguments += ["--addv", monitor.name, identity.addressVector(monitor.address)] }
        do {
            try Command("monmaptool", arguments + [temporary]).run()
        } catch {
            throw .failedBecause("monmaptool could not create \(temporary): \(error)", cause: error)
        }
        try Files.publish(temporary, to: layout.monmap)
        return StepOutcome(changed: true, detail: "\(monitors.count) monitors: " + names.joined(separator: ", "))
    }

    /// Waits until this node's monitor is in a quorum. Several monitors form one only once a majority of them is up:
    /// until then this says, with backoff, what the monitor sees (from its admin socket, which answers without a
    /// quorum), and fails after `options.rackTimeout` with the same.
    func waitForQuorum() throws(ProvisionError) {
        let monitors = identity.monitors ?? []
        let socket = layout.cephRun + "/\(layout.cluster)-mon.\(identity.daemonId).asok"
        let deadline = Date().addingTimeInterval(monitors.count > 1 ? options.rackTimeout : 60)
        var delay = 0.5
        var said = ""
        var last = "no answer on \(socket) yet"
        while true {
            if let result = try? Command("ceph", ["--admin-daemon", socket, "mon_status"], timeout: 15).run(),
               case .success(let status?) = CephJSON.decode(CephJSON.MonStatus.self, from: result.standardOutput) {
                let state = status.state ?? "?"
                if state == "leader" || state == "peon" { return }
                let seen = status.outsideQuorum ?? []
                last = "mon.\(identity.daemonId) is \(state); a quorum needs \(monitors.count / 2 + 1) of the "
                    + "\(monitors.count) monitors (\(monitors.map(\.name).joined(separator: ", ")))"
                    + (seen.isEmpty ? "" : "; up and waiting: \(seen.sorted().joined(separator: ", "))")
                if last != said {
                    logger.notice("waiting for a monitor quorum: \(last)")
                    events.append(ProvisionEvent(event: "quorum.waiting", step: "mon", detail: last))
                    said = last
                }
            }
            if Date() > deadline {
                throw .failed("no monitor quorum after \(Int(options.rackTimeout)) s: \(last). Boot the other monitor "
                    + "nodes, or check that they reach each other on port \(identity.monV2Port) in \(identity.publicNetwork)")
            }
            usleep(useconds_t(delay * 1_000_000))
            delay = min(delay * 2, 10)
        }
    }

    /// Storage node: the rack's join key as a token (its expiry is the cluster's to enforce), read before any step.
    func rackJoinToken() throws(ProvisionError) -> JoinToken {
        guard let rack else {
            throw .invalidInput("role: storage needs cluster.rack with the rack's fsid, monitors and join key")
        }
        try requireRackLauncher()
        return JoinToken(fsid: rack.fsid, key: rack.joinKey)
    }
}

/// Keyring files as Ceph writes them.
enum Keyring {
    static let adminCaps = ["mds", "allow *", "mgr", "allow *", "mon", "allow *", "osd", "allow *"]

    /// `[entity]`, its key and caps (service, capability pairs).
    static func entry(_ entity: String, key: String, caps: [String]) -> String {
        var text = "[\(entity)]\n\tkey = \(key)\n"
        for index in stride(from: 0, to: caps.count - 1, by: 2) {
            text += "\tcaps \(caps[index]) = \"\(caps[index + 1])\"\n"
        }
        return text
    }
}
