import Exec
import Foundation
import Seed

/// Joining: the bootstrap node's `join-token` step, and the steps of a `role: join` node, which runs no monitor,
/// manager or service: it adds its storage disks as OSDs of the cluster whose monitor the seed names.
extension Provisioner {
    // MARK: bootstrap node

    /// Keeps the join key as the cluster's record says. The first run after the cluster formed records when the key
    /// expires (24 hours later); while it is valid the step creates `client.aquarium-join` (or sets back changed caps)
    /// and writes the token `FSID.KEY.EXPIRES` mode 0600 to `/var/lib/aquarium/join-token`; once it has expired or
    /// was revoked the step removes the entity (the monitors refuse the key from then on) and the token file. The token
    /// never appears in the step's detail, events or logs.
    func joinTokenStep() throws(ProvisionError) -> StepOutcome {
        let keys = JoinKeys(tools: tools)
        let now = Date()
        var actions: [String] = []
        let record: JoinKeyRecord
        if let existing = try keys.record() {
            record = existing
        } else {
            let lifetime = rack?.joinKeyLifetime ?? JoinKeyRecord.defaultLifetime
            record = JoinKeyRecord(expires: Int(now.timeIntervalSince1970) + lifetime)
            try keys.save(record)
            actions.append("the join key expires at \(JoinKeyRecord.timeText(record.expires))")
        }
        if let reason = record.unusableReason(at: now) {
            if try keys.removeEntity() {
                actions.append("removed \(JoinToken.entity) (its key \(reason))")
                events.append(ProvisionEvent(event: "join-key.removed", step: "join-token", detail: reason))
            }
            if FileManager.default.fileExists(atPath: layout.joinTokenFile) {
                do { try FileManager.default.removeItem(atPath: layout.joinTokenFile) } catch {
                    throw .failed("cannot remove \(layout.joinTokenFile): \(error.localizedDescription)")
                }
                actions.append("removed \(layout.joinTokenFile)")
            }
            return StepOutcome(changed: !actions.isEmpty, detail: (actions.isEmpty ? "" : actions.joined(separator: "; ") + "; ")
                + "no join key (\(reason)): `aquarium-provision join-token --rotate` makes a new one")
        }
        let (key, ensured) = try keys.ensureEntity()
        actions += ensured
        let token = JoinToken(fsid: identity.fsid, key: key, expires: record.expires)
        if try Files.write(token.text + "\n", to: layout.joinTokenFile, mode: 0o600) {
            actions.append("wrote \(layout.joinTokenFile)")
        }
        return StepOutcome(changed: !actions.isEmpty,
                          detail: (actions.isEmpty ? "" : actions.joined(separator: "; ") + "; ")
                            + "`aquarium-provision join-token` prints it (valid until \(JoinKeyRecord.timeText(record.expires)))")
    }

    // MARK: joining node

    /// The cluster from the token, the monitor from the seed, this node's own address and ports; writes ceph.conf and
    /// the join entity's keyring.
    func joinIdentity() throws(ProvisionError) -> StepOutcome {
        guard let token = joinToken else {
            throw .invalidInput("role: join needs cluster.join with the address and token of the cluster to join")
        }
        let target: JoinTarget
        var monitors: [MonitorAddress]?
        if let rack {
            // A rack's storage node: every monitor of the rack, each at port 3300 (or --base-port, as the monitors).
            monitors = rackMonitors(rack)
            target = JoinTarget(address: rack.monitors[0].address, port: options.basePort ?? 3300)
        } else if let join = seed.cluster.join {
            target = JoinTarget(address: join.address, port: options.monPort ?? state.identity?.join?.port ?? 3300)
        } else {
            throw .invalidInput("role: join needs cluster.join with the address and token of the cluster to join")
        }
        let previous = state.identity
        if let previous, previous.fsid != token.fsid, !state.osdIds.isEmpty {
            let osds = state.osdIds.values.sorted().map { "osd.\($0)" }.joined(separator: ", ")
            throw .refused("this node already holds \(osds) of cluster \(previous.fsid); the seed's token is for cluster "
                + "\(token.fsid). Restore the old token, or take the disks out of the old cluster first")
        }
        if previous?.fsid != token.fsid {
            // Decisions about disks only hold within one cluster.
            state.osdUUIDs = [:]
            state.osdIds = [:]
        }
        let node: (address: IPAddress, publicNetwork: String, clusterNetwork: String, basePort: Int)
        if let previous, previous.join != nil {
            node = (previous.address, previous.publicNetwork, previous.clusterNetwork, previous.basePort)
        } else {
            node = try decideNodeAddress(for: "this node's OSDs")
        }
        let decided = ClusterIdentity(fsid: token.fsid, name: seed.cluster.name, daemonId: daemonId, address: node.address,
                                      basePort: node.basePort, publicNetwork: node.publicNetwork,
                                      clusterNetwork: node.clusterNetwork, launcher: options.launcher,
                                      join: target, monitors: monitors)
        var changed = false
        if decided != previous {
            state.identity = decided
            try saveState()
            changed = true
        }
        let conf = CephConfig.render(decided, layout: layout, rgwPort: nil, learned: LearnedMonitors.load(layout))
        if try Files.write(conf, to: layout.cephConf) { changed = true }
        let keyring = "[\(JoinToken.entity)]\n\tkey = \(token.key)\n"
        if try Files.write(keyring, to: layout.joinKeyring, mode: 0o600) { changed = true }
        try Files.makeDirectory(layout.cephLog)
        try Files.makeDirectory(layout.cephRun)
        try Files.makeDirectory(layout.crashDir)
        var detail = "fsid \(token.fsid), mon \(decided.monHost)"
        let services = [seed.cluster.services.rbd.map { _ in "rbd" }, seed.cluster.services.rgw.map { _ in "rgw" },
                        seed.cluster.services.cephfs.map { _ in "cephfs" }, seed.cluster.services.dashboard.map { _ in "dashboard" }]
            .compactMap { $0 }
        if !services.isEmpty {
            detail += "; services (\(services.joined(separator: ", "))) run on a monitor node, not here"
        }
        return StepOutcome(changed: changed, detail: detail)
    }

    /// Checks that the monitor answers the join entity and belongs to the token's cluster, before anything is created.
    func joinCluster() throws(ProvisionError) -> StepOutcome {
        guard let target = identity.join else { throw .failed("the identity step did not record the cluster to join") }
        var result = try askFSID()
        if rack != nil {
            // A rack boots at once: the monitors may not have a quorum yet. Wait for one, with backoff, saying so.
            let deadline = Date().addingTimeInterval(options.rackTimeout)
            var delay = 1.0
            var said = false
            while Self.noMonitorAnswered(result), Date() < deadline {
                if !said {
                    let what = "a monitor quorum of the rack at \(identity.monHost)"
                    logger.notice("waiting up to \(Int(options.rackTimeout)) s for \(what)")
                    events.append(ProvisionEvent(event: "quorum.waiting", step: "join", detail: what))
                    said = true
                }
                usleep(useconds_t(delay * 1_000_000))
                delay = min(delay * 2, 10)
                result = try askFSID()
            }
        }
        let text = (result.errorOutput + result.output).lowercased()
        if result.status == 0 {
            let object = try? CephJSON.decode(CephJSON.FSID.self, from: result.standardOutput).get()
            guard let fsid = object?.fsid?.lowercased() else {
                throw .failed("the monitor at \(target.endpoint) answered `ceph fsid` without an fsid: \(result.output.prefix(200))")
            }
            guard fsid == identity.fsid else {
                throw .refused("the cluster at \(target.endpoint) is \(fsid), but cluster.join.token is for cluster "
                    + "\(identity.fsid); nothing was created. Check cluster.join.address, or copy the token again with "
                    + "`aquarium-provision join-token` on that cluster's bootstrap node")
            }
            return StepOutcome(changed: false, detail: "cluster \(fsid) answers at \(target.endpoint)")
        }
        if result.status == 13 || text.contains("permission denied") || text.contains("access denied") {
            throw .refused("the monitor at \(target.endpoint) does not accept cluster.join.token (its key is not the "
                + "cluster's \(JoinToken.entity) key: a token of another cluster, one rotated or revoked since, or one "
                + "past its expiry); nothing was created. Make a new one with `aquarium-provision join-token --rotate` "
                + "on a monitor node")
        }
        if Self.noMonitorAnswered(result) {
            if rack != nil {
                throw .failed("no monitor quorum answered at \(identity.monHost) within \(Int(options.rackTimeout)) s; "
                    + "boot the monitor nodes (cluster.rack.monitors) and check that this node reaches them; nothing was created")
            }
            throw .failed("no monitor answers at \(target.endpoint) (cluster.join.address, port \(target.port)); check that "
                + "the bootstrap node is up and reachable from here and that the address is right"
                + (options.launcher == .process ? " (process launcher: pass the bootstrap cluster's base port with --mon-port)" : "")
                + "; nothing was created")
        }
        throw .failed("cannot reach the cluster at \(target.endpoint): `ceph fsid` exited \(result.status): "
            + String(result.errorOutput.suffix(300)))
    }

    /// `ceph fsid` as the join entity, with a short connect timeout.
    func askFSID() throws(ProvisionError) -> CommandResult {
        try tools.run("ceph", ["--connect-timeout", "10", "fsid", "--format", "json"], timeout: 30, accepted: Set(0...255))
    }

    /// True when `ceph` gave up waiting for a monitor (none up, or no quorum yet).
    static func noMonitorAnswered(_ result: CommandResult) -> Bool {
        let text = (result.errorOutput + result.output).lowercased()
        return result.status == 124 || result.status == 137 || text.contains("timed out")
    }
}
