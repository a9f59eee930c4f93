import Foundation
import JSONCoding

/// A joined node's own cephx key, `client.aquarium-node.HOST`, with the join key's caps (`JoinToken.caps`): what the
/// node acts as once it has it, so it keeps working after the join key expires or is revoked (its reboots, reconciles,
/// new disks, the cluster's event log). The join key is on the stick, shared by every node and short-lived; this one
/// is on the node's system disk only (`/etc/ceph/CLUSTER.client.aquarium-node.HOST.keyring`, 0600), is the node's
/// alone, and goes with `node remove`.
///
/// A monitor node's `maintenance watch` makes it for each node that reports a release (`node.HOST`) and runs no monitor,
/// and hands it over in `nodekey.HOST` of the pool `.aquarium`, sealed as a monitor request is (`MonitorSeal`: only
/// that node's OSD key opens it); the node's own watch writes the keyring.
public struct NodeKeyDelivery: Codable, Equatable, Sendable {
    public var host: String
    /// The OSD whose key sealed it (`osd.N`, one of HOST's).
    public var osd: Int
    public var sealed: String
    public var since: String
    public var by: String
}

struct NodeKeySecret: Codable, Equatable, Sendable {
    var key: String
}

public enum NodeKey {
    public static func entity(_ host: String) -> String { "client.aquarium-node.\(host)" }
    static let purpose = "node key"
    static let objectKind = "nodekey"

    /// The hosts a monitor node should give a key: those that report a release and run no monitor, minus those that
    /// were given one (their `nodekey.HOST` exists) or are being removed.
    static func hostsNeedingKeys(objects: Set<String>, monitors: Set<String>) -> [String] {
        let reporting = objects.filter { $0.hasPrefix("node.") }.map { String($0.dropFirst("node.".count)) }
        return reporting.filter { host in
            !monitors.contains(host) && !objects.contains("\(objectKind).\(host)") && !objects.contains("removed.\(host)")
        }.sorted()
    }
}

extension Layout {
    /// A joined node's own key (`NodeKey`), where Ceph's tools find it for `--name client.aquarium-node.HOST`.
    public func nodeKeyring(_ host: String) -> String { path("/etc/ceph/\(cluster).\(NodeKey.entity(host)).keyring") }

    /// The Ceph client a node without the admin key acts as: its own key once it has one, else the join key's entity.
    public func joinedClient(host: String) -> String {
        Files.exists(nodeKeyring(host)) ? NodeKey.entity(host) : JoinToken.entity
    }
}

extension ClusterIdentity {
    /// The Ceph client this node's tools act as: the admin on a monitor node; on a joined node its own key once it has
    /// it (`NodeKey`), the join key's entity before.
    public func client(in layout: Layout) -> String {
        join == nil ? "client.admin" : layout.joinedClient(host: daemonId)
    }
}

extension Operations {
    /// On a monitor node (a `maintenance watch` round): gives each joined node without one its own key. Returns what it
    /// did; nil when no node needed one.
    func issueNodeKeys(objects: Set<String>) throws(ProvisionError) -> String? {
        guard identity.runsMonitor else { return nil }
        let monitorNames = Set(LearnedMonitors.load(layout)?.monitors.map(\.name) ?? [])
        var hosts = NodeKey.hostsNeedingKeys(objects: objects, monitors: monitorNames)
        guard !hosts.isEmpty else { return nil }
        // The monitor map decides (monitors.json may be older than a promotion).
        let (all, _) = try monitors()
        hosts = hosts.filter { !all.contains($0) }
        guard !hosts.isEmpty else { return nil }
        let crush = try crushHosts()
        var given: [String] = []
        for host in hosts {
            guard let osd = crush[host]?.sorted().first else { continue }  // its key seals the delivery: none yet
            let entity = NodeKey.entity(host)
            let created = try tools.run("ceph", ["auth", "get-or-create-key", entity] + JoinToken.caps, timeout: 60, accepted: Set(0...255))
            if created.status != 0 {
                // The entity exists with other caps (older caps): set them back, then read its key.
                try tools.run("ceph", ["auth", "caps", entity] + JoinToken.caps, timeout: 60)
            }
            let key = try self.key(of: entity)
            let sealed = try MonitorSeal.seal(NodeKeySecret(key: key), osdKey: try self.key(of: "osd.\(osd)"), fsid: identity.fsid,
                                              host: host, purpose: NodeKey.purpose)
            let delivery = NodeKeyDelivery(host: host, osd: osd, sealed: sealed, since: Self.now(), by: localHost)
            guard let data = try? JSONCoding.encoder(pretty: false).encode(delivery) else { throw .failed("cannot encode the node key") }
            try writeObject(Self.flagObject(NodeKey.objectKind, host: host), data)
            record("node.key.issued", "\(host): its own key \(entity) (the join key's caps), sealed with osd.\(osd)'s key")
            given.append(host)
        }
        return given.isEmpty ? nil : "gave " + given.joined(separator: ", ") + " a key of its own"
    }

    /// On a joined node (a `maintenance watch` round): writes its own key once a monitor node has handed it over.
    /// Returns what it did; nil when it has it already or none was handed over yet.
    func takeNodeKey(objects: Set<String>) throws(ProvisionError) -> String? {
        guard identity.join != nil, !Files.exists(layout.nodeKeyring(localHost)),
              objects.contains(Self.flagObject(NodeKey.objectKind, host: localHost)),
              let data = try readObject(Self.flagObject(NodeKey.objectKind, host: localHost)) else { return nil }
        guard let delivery = try? JSONDecoder().decode(NodeKeyDelivery.self, from: data), delivery.host == localHost else {
            throw .failed("\(ClusterEventLog.pool)/\(NodeKey.objectKind).\(localHost) is malformed; remove it (`rados -p "
                + "\(ClusterEventLog.pool) rm \(NodeKey.objectKind).\(localHost)`) and a monitor node's watch makes a new one")
        }
        let keyring = layout.osdData(delivery.osd) + "/keyring"
        guard let osdKey = Self.keyringKey(Files.read(keyring)) else {
            throw .failed("this node's key is sealed with the key of osd.\(delivery.osd), which is not on this node (\(keyring))")
        }
        let secret = try MonitorSeal.open(delivery.sealed, as: NodeKeySecret.self, osdKey: osdKey, fsid: identity.fsid,
                                          host: localHost, purpose: NodeKey.purpose)
        let entity = NodeKey.entity(localHost)
        try Files.write(Keyring.entry(entity, key: secret.key, caps: []), to: layout.nodeKeyring(localHost), mode: 0o600)
        record("node.key.taken", "\(localHost) acts as \(entity) from now on (the join key is no longer needed here)")
        return "wrote \(layout.nodeKeyring(localHost)): this node acts as \(entity) from now on"
    }
}
