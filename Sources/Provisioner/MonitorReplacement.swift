import Crypto
import Foundation
import JSONCoding
import Seed

/// A request for HOST to run a monitor (object `monitor.HOST` of the pool `.aquarium`), written by `node remove` when
/// the removed node's monitor leaves fewer monitors than the rack's rule wants. The monitor and admin keys it carries
/// are sealed (AES-GCM) with a key derived from HOST's own OSD key, which only HOST and the monitors know: the join
/// key, which can read the pool, cannot open them.
public struct MonitorRequest: Codable, Equatable, Sendable {
    public var host: String
    /// The OSD whose key sealed the keys (`osd.N`, one of HOST's).
    public var osd: Int
    /// nonce ‖ ciphertext ‖ tag, base64.
    public var sealed: String
    public var since: String
    public var by: String
}

/// The keys a new monitor node needs: the monitor's (`mon.`) and the admin's.
struct MonitorSecrets: Codable, Equatable, Sendable {
    var monitorKey: String
    var adminKey: String
}

/// Seals and opens what a monitor node hands one node through the pool `.aquarium` (a `MonitorRequest`'s keys, a
/// `NodeKeyDelivery`'s key). The key: HKDF-SHA256 of one of that node's OSD cephx secrets, salted with the fsid, bound
/// to the host and the purpose; the fsid and host are also the authenticated data, so nothing sealed can be replayed to
/// another host, cluster or purpose. Only the node (its OSD keyring) and the monitors (`auth get-key`) can open it.
enum MonitorSeal {
    static func key(osdKey: String, fsid: String, host: String, purpose: String = "monitor request") throws(ProvisionError) -> SymmetricKey {
        guard let secret = Data(base64Encoded: osdKey), !secret.isEmpty else {
            throw .failed("the key of the OSD that seals the \(purpose) is not a cephx key")
        }
        return HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: secret), salt: Data(fsid.utf8),
                                      info: Data("aquarium \(purpose) for \(host)".utf8), outputByteCount: 32)
    }

    static func seal<T: Encodable>(_ value: T, osdKey: String, fsid: String, host: String,
                                   purpose: String = "monitor request") throws(ProvisionError) -> String {
        let key = try key(osdKey: osdKey, fsid: fsid, host: host, purpose: purpose)
        do {
            let plain = try JSONEncoder().encode(value)
            guard let combined = try AES.GCM.seal(plain, using: key, authenticating: Data("\(fsid) \(host)".utf8)).combined else {
                throw ProvisionError.failed("AES-GCM gave no combined form")
            }
            return combined.base64EncodedString()
        } catch {
            throw .failed("cannot seal the \(purpose) for \(host): \(error)")
        }
    }

    static func open<T: Decodable>(_ sealed: String, as type: T.Type = MonitorSecrets.self, osdKey: String, fsid: String, host: String,
                                   purpose: String = "monitor request") throws(ProvisionError) -> T {
        let key = try key(osdKey: osdKey, fsid: fsid, host: host, purpose: purpose)
        guard let data = Data(base64Encoded: sealed) else { throw .failed("the \(purpose) for \(host) is not base64") }
        do {
            let box = try AES.GCM.SealedBox(combined: data)
            let plain = try AES.GCM.open(box, using: key, authenticating: Data("\(fsid) \(host)".utf8))
            return try JSONDecoder().decode(T.self, from: plain)
        } catch {
            throw .failed("the \(purpose) for \(host) cannot be opened with this node's OSD key (made for another node, "
                + "another cluster, or changed): \(error)")
        }
    }
}

extension Operations {
    /// Whether the monitors left after a removal fall short of the rack's rule for the nodes left
    /// (`MonitorPlacement.defaultCount`: 1 for 1-2 nodes, 3 for 3-4, 5 from 5 on).
    static func replacementNeeded(monitorsLeft: Int, nodesLeft: Int) -> Bool {
        monitorsLeft < MonitorPlacement.defaultCount(nodes: nodesLeft)
    }

    /// The node that gets the replacement monitor: the first host (by name) that runs no monitor, is not in
    /// maintenance and whose OSDs are all up (its key seals the request, so it needs one).
    static func replacementCandidate(hosts: [String: [Int]], monitors: [String], upOSDs: Set<Int>,
                                     inMaintenance: Set<String>, excluding removed: String) -> (host: String, osd: Int)? {
        for host in hosts.keys.sorted() where host != removed && !monitors.contains(host) && !inMaintenance.contains(host) {
            guard let osds = hosts[host], let first = osds.first, osds.allSatisfy(upOSDs.contains) else { continue }
            return (host, first)
        }
        return nil
    }

    /// After `node remove` took a monitor away: asks an eligible node to run a monitor when the rule wants one more,
    /// and waits until it is in the quorum. Returns what it did (nil when no replacement was needed).
    func placeReplacementMonitor(removed host: String, timeout: Double) throws(ProvisionError) -> String? {
        let monitorsLeft = try monitors().all
        let hosts = try crushHosts().filter { $0.key != host }
        let nodesLeft = Set(hosts.keys).union(monitorsLeft).count
        guard Self.replacementNeeded(monitorsLeft: monitorsLeft.count, nodesLeft: nodesLeft) else { return nil }
        let dump = try tools.json(CephJSON.OSDDump.self, ["osd", "dump"], timeout: 60)
        let maintained = Set(dump?.hostsWithNoout ?? [])
        guard let candidate = Self.replacementCandidate(hosts: hosts, monitors: monitorsLeft, upOSDs: try upOSDs(),
                                                        inMaintenance: maintained, excluding: host) else {
            let text = "\(monitorsLeft.count) monitors remain for \(nodesLeft) nodes and no node can take another (each "
                + "needs its OSDs up and no maintenance); add a node or end a maintenance, then place one by `node remove` "
                + "of another node or by hand"
            record("monitor.replacement.none", text, changed: false)
            return text
        }
        let secrets = MonitorSecrets(monitorKey: try key(of: "mon."), adminKey: try key(of: "client.admin"))
        let sealed = try MonitorSeal.seal(secrets, osdKey: try key(of: "osd.\(candidate.osd)"), fsid: identity.fsid,
                                          host: candidate.host)
        let request = MonitorRequest(host: candidate.host, osd: candidate.osd, sealed: sealed, since: Self.now(), by: localHost)
        guard let data = try? JSONCoding.encoder(pretty: false).encode(request) else { throw .failed("cannot encode the monitor request") }
        try writeObject(Self.flagObject("monitor", host: candidate.host), data)
        record("monitor.replacement.requested", "\(candidate.host) is asked to run a monitor in place of mon.\(host) "
            + "(\(monitorsLeft.count) monitors for \(nodesLeft) nodes)")
        say("asked \(candidate.host) to run a monitor in place of mon.\(host); waiting for it to join the quorum")
        var last = ""
        do {
            try CephTools.wait("mon.\(candidate.host) to join the quorum", seconds: timeout, interval: 2) {
                let (all, quorum) = try monitors()
                last = "monitors " + all.joined(separator: ", ") + ", in quorum " + quorum.sorted().joined(separator: ", ")
                return quorum.contains(candidate.host)
            }
        } catch {
            throw .failed("\(error.description) (\(last)); \(candidate.host)'s `maintenance watch` (aquarium-maintenance.service) "
                + "makes the monitor: see its journal. The request stays in \(ClusterEventLog.pool)/monitor.\(candidate.host)")
        }
        return "mon.\(candidate.host) placed in place of mon.\(host): \(last)"
    }

    /// An entity's cephx key (`ceph auth get-key`), on a monitor node.
    func key(of entity: String) throws(ProvisionError) -> String {
        let key = try tools.run("ceph", ["auth", "get-key", entity], timeout: 60).output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !key.isEmpty else { throw .failed("`ceph auth get-key \(entity)` printed no key") }
        return key
    }

    // MARK: the node that is asked

    /// On the node asked to run a monitor (its `maintenance watch`): opens the request with its OSD's key, writes the
    /// keys, makes its monitor from the current monmap and starts it at its address (it joins the monmap), and becomes a monitor node (its
    /// identity, ceph.conf and later runs). Returns what it did; nil when there is no request for this node.
    func takeMonitorRequest() throws(ProvisionError) -> String? {
        guard identity.join != nil, let data = try readObject(Self.flagObject("monitor", host: localHost)) else { return nil }
        guard let request = try? JSONDecoder().decode(MonitorRequest.self, from: data), request.host == localHost else {
            throw .failed("the monitor request \(ClusterEventLog.pool)/monitor.\(localHost) is malformed; remove it (`rados -p "
                + "\(ClusterEventLog.pool) rm monitor.\(localHost)`) and run `node remove` again")
        }
        let keyring = layout.osdData(request.osd) + "/keyring"
        guard let osdKey = Self.keyringKey(Files.read(keyring)) else {
            throw .failed("the monitor request for \(localHost) is sealed with the key of osd.\(request.osd), which is not on this "
                + "node (\(keyring))")
        }
        let secrets = try MonitorSeal.open(request.sealed, osdKey: osdKey, fsid: identity.fsid, host: localHost)
        try Files.write(Keyring.entry("client.admin", key: secrets.adminKey, caps: Keyring.adminCaps), to: layout.adminKeyring, mode: 0o600)
        try Files.makeDirectory(layout.bootstrapDir)
        try Files.write(Keyring.entry("mon.", key: secrets.monitorKey, caps: ["mon", "allow *"])
                        + Keyring.entry("client.admin", key: secrets.adminKey, caps: Keyring.adminCaps), to: layout.monKeyring, mode: 0o600)
        let admin = CephTools(layout: layout, logger: logger)
        var promoted = identity
        promoted.join = nil
        let vector = promoted.monAddressVector
        let (all, _) = try monitors(using: admin)
        if !MonitorStore.isComplete(localHost, layout: layout) {
            let map = layout.monmap + ".current"
            try admin.run("ceph", ["mon", "getmap", "-o", map], timeout: 60)
            _ = try MonitorStore.make(localHost, monmap: map, layout: layout, tools: admin)
            unlink(map)
        }
        // This node is a monitor node from now on: the admin key, every monitor in ceph.conf, its runs keep the monitor.
        let others = (identity.monitors ?? []).filter { $0.name != localHost && all.contains($0.name) }
        promoted.monitors = others + [MonitorAddress(name: localHost, address: identity.address)]
        var state = try ProvisionState.load(layout.stateFile)
        state.identity = promoted
        try state.save(layout.stateFile)
        try Files.write(CephConfig.render(promoted, layout: layout, rgwPort: nil, learned: LearnedMonitors.load(layout)), to: layout.cephConf)
        // Not in the monmap yet: started at its address vector, the monitor asks the quorum to take it in (`ceph mon
        // add` takes one address, not the v2 and v1 pair on this node's ports). Later starts find it in the monmap.
        _ = try launcher.ensureRunning(DaemonSpec.ceph("mon", localHost, layout: layout,
                                                       extra: all.contains(localHost) ? [] : ["--public-addrv", vector]))
        try launcher.confirmStarted()
        try CephTools.wait("mon.\(localHost) to join the quorum", seconds: 180, interval: 2) {
            try monitors(using: admin).quorum.contains(localHost)
        }
        let text = "\(localHost) runs mon.\(localHost) at \(vector), asked by \(request.by) at \(request.since); it is a monitor node now"
        // As the admin it is now (the join key may no longer be accepted): the request goes, the event is recorded.
        let asMonitor = try Operations(root: layout.root, cluster: layout.cluster, logger: logger, say: say)
        try asMonitor.removeFlag("monitor", host: localHost)
        asMonitor.record("monitor.placed", text)
        // ceph.conf lists the monitors of the map it just joined (the one learned before did not have it).
        _ = try? asMonitor.followMonitors()
        return text
    }

    /// The key of a keyring file's first entry.
    static func keyringKey(_ text: String?) -> String? {
        guard let text else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0] == "key", !parts[1].isEmpty { return parts[1] }
        }
        return nil
    }
}

extension Provisioner {
    /// The identity step of a node that runs a monitor since `node remove` asked it to: the identity it saved then
    /// (no join target, every monitor), checked against the seed's cluster, and its ceph.conf.
    func promotedIdentity() throws(ProvisionError) -> StepOutcome {
        guard let identity = state.identity, identity.runsMonitor else {
            throw .failed("this node has no monitor identity in \(layout.stateFile)")
        }
        let seedFSID = rack?.fsid ?? joinTokenFSID
        if let seedFSID, seedFSID != identity.fsid {
            throw .refused("this node runs a monitor of cluster \(identity.fsid), but its seed is for cluster \(seedFSID); "
                + "put back the seed of its cluster, or remove the node from its cluster first (`node remove`)")
        }
        var changed = try Files.write(CephConfig.render(identity, layout: layout, rgwPort: nil, dashboard: seed.cluster.services.dashboard != nil,
                                                          learned: LearnedMonitors.load(layout)), to: layout.cephConf)
        for directory in [layout.cephLog, layout.cephRun, layout.crashDir] where !Files.exists(directory) {
            try Files.makeDirectory(directory)
            changed = true
        }
        return StepOutcome(changed: changed, detail: "fsid \(identity.fsid), mon.\(identity.daemonId) (placed by `node remove`), "
            + "mon \(identity.monHost)")
    }

    /// The cluster a `role: join` seed's token names, when it parses.
    var joinTokenFSID: String? { seed.cluster.join.flatMap { try? JoinToken(parsing: $0.token) }?.fsid }
}
