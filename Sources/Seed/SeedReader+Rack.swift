import Foundation
import Yams

/// `cluster.rack`: the part of a rack node's seed that `aquarium-image rack seeds` writes (docs/rack.md).
extension SeedReader {
    static let rackKeys = ["fsid", "monitors", "join_key", "monitor_key", "admin_key", "join_key_lifetime"]

    func readRack(_ node: Node, _ path: KeyPath, role: ClusterRole?) -> Seed.Rack? {
        guard let fields = mapping(node, path, keys: Self.rackKeys) else { return nil }
        let fsid = required(fields, "fsid").flatMap { checked($0, path.key("fsid"), SeedSyntax.fsidProblem) }
        var monitors: [Seed.RackMonitor] = []
        let monitorsPath = path.key("monitors")
        if let node = required(fields, "monitors"), let items = list(node, monitorsPath, of: "monitors") {
            if items.isEmpty || items.count > 7 {
                report(node.mark, monitorsPath, "lists \(items.count) monitors; a rack has 1 to 7 (3 from 3 nodes on, "
                       + "5 from 5)")
            }
            var hosts: Set<String> = []
            var addresses: Set<IPAddress> = []
            for (index, item) in items.enumerated() {
                let itemPath = monitorsPath.index(index)
                guard let monitor = mapping(item, itemPath, keys: ["host", "address"]) else { continue }
                let host = required(monitor, "host").flatMap { checked($0, itemPath.key("host"), SeedSyntax.hostnameProblem) }
                let address = required(monitor, "address").flatMap { self.address($0, itemPath.key("address")) }
                guard let host, let address else { continue }
                let entry = Seed.RackMonitor(host: host, address: address)
                if !hosts.insert(entry.shortName).inserted {
                    report(item.mark, itemPath.key("host"), "monitor host '\(entry.shortName)' is listed twice")
                }
                if !addresses.insert(address).inserted {
                    report(item.mark, itemPath.key("address"), "monitor address \(address) is listed twice")
                }
                monitors.append(entry)
            }
        }
        func key(_ name: String) -> String? {
            fields[name].flatMap { checked($0, path.key(name), secret: true, SeedSyntax.cephxKeyProblem) }
        }
        let joinKey = required(fields, "join_key").flatMap { _ in key("join_key") }
        let monitorKey = key("monitor_key")
        let adminKey = key("admin_key")
        let lifetime = fields["join_key_lifetime"].flatMap { self.lifetime($0, path.key("join_key_lifetime")) }
        switch role {
        case .monitor?:
            for name in ["monitor_key", "admin_key"] where fields[name] == nil {
                report(fields.node.mark, path.key(name), "required key is missing: a monitor node needs the monitor "
                       + "and admin keys (`aquarium-image rack seeds` writes them into monitor nodes' seeds)")
            }
        case .storage?:
            for name in ["monitor_key", "admin_key", "join_key_lifetime"] where fields[name] != nil {
                report(fields.keyMark(name), path.key(name), "is only for monitor nodes; a storage node's seed must "
                       + "not hold it (a stolen stick would yield the whole cluster): remove it")
            }
        default: break
        }
        guard let fsid, let joinKey, !monitors.isEmpty else { return nil }
        return Seed.Rack(fsid: fsid.lowercased(), monitors: monitors, joinKey: joinKey, monitorKey: monitorKey,
                         adminKey: adminKey, joinKeyLifetime: lifetime)
    }

    /// A lifetime such as `24h`, in seconds.
    func lifetime(_ node: Node, _ path: KeyPath) -> Int? {
        parsed(node, path) { text in
            SeedSyntax.lifetime(text).map { .success($0) } ?? .failure(Problem(
                "'\(SeedSyntax.printable(text))' is not a lifetime: a whole number and a unit, s, m, h or d "
                + "(for example 90m, 24h or 7d)"))
        }
    }

    /// The checks across sections: a monitor node is one of the monitors, a storage node is none of them, and every
    /// monitor address is in the public network, which a rack node must name.
    func checkRack(_ cluster: Seed.Cluster, host: Seed.Host, network: Seed.Network, _ clusterNode: Node) {
        guard cluster.role.isRack, let rack = cluster.rack, !host.hostname.isEmpty else { return }
        let path = KeyPath().key("cluster").key("rack").key("monitors")
        let mark = rackMonitorsMark(clusterNode)
        let names = rack.monitors.map(\.shortName).joined(separator: ", ")
        let mine = rack.monitor(forHost: host.hostname)
        if cluster.role == .monitor && mine == nil {
            report(mark, path, "this node (host.hostname \(host.hostname)) has role: monitor but is not one of the "
                   + "rack's monitors (\(names)); make the seeds again with `aquarium-image rack seeds`")
        }
        if cluster.role == .storage, let mine {
            report(mark, path, "this node (host.hostname \(host.hostname)) has role: storage but is the monitor "
                   + "\(mine.shortName); a monitor node has role: monitor")
        }
        guard let publicNetwork = network.publicNetwork else {
            report(nil, KeyPath().key("network").key("public_network"), "required key is missing: a rack node "
                   + "(role: \(cluster.role.rawValue)) needs the public network its monitors are in")
            return
        }
        for monitor in rack.monitors where !publicNetwork.contains(monitor.address) {
            report(mark, path, "monitor \(monitor.shortName)'s address \(monitor.address) is not in network.public_network "
                   + "\(publicNetwork)")
        }
        if let mine, cluster.role == .monitor {
            let statics = network.interfaces.flatMap(\.addresses).map(\.address).filter(publicNetwork.contains)
            if !statics.isEmpty && !statics.contains(mine.address) {
                report(mark, path, "this monitor's address \(mine.address) is not among this node's static addresses "
                       + "in \(publicNetwork) (\(statics.map(\.description).joined(separator: ", ")))")
            }
        }
    }

    private func rackMonitorsMark(_ clusterNode: Node) -> Mark? {
        guard case .mapping(let cluster) = clusterNode,
              let rack = cluster.first(where: { $0.key.string == "rack" })?.value,
              case .mapping(let fields) = rack else { return clusterNode.mark }
        return fields.first(where: { $0.key.string == "monitors" })?.value.mark ?? rack.mark
    }
}
