import Foundation
import Yams

/// The rack file v1 schema (docs/rack.md) on the seed reader: `defaults` and `cluster.services` are read by the seed's
/// own section readers, so they take exactly the seed's syntax and give the same messages.
final class RackReader: SeedReader {
    static let fileKeys = ["version", "cluster", "defaults", "nodes"]
    static let clusterKeys = ["name", "public_network", "cluster_network", "join_key_lifetime", "monitors", "services"]
    static let defaultsKeys = ["host", "network", "disks", "expires"]
    static let nodeKeys = ["hostname", "serial", "mac", "address", "cluster_address", "interface", "gateway", "disks"]

    /// Keys of a seed's host and network sections that a rack gives per node or in `cluster`, with where they go.
    static let perNodeHostKeys = [
        "hostname": "is per node: give it as nodes[].hostname",
        "machine": "is per node: give nodes[].serial and/or nodes[].mac",
        "reinstall": "is not made by rack seeds; add host.reinstall to the one seed that needs it",
    ]
    static let perNodeNetworkKeys = [
        "interfaces": "are per node: give nodes[].address (and cluster_address, interface, gateway)",
        "public_network": "is the rack's: give it as cluster.public_network",
        "cluster_network": "is the rack's: give it as cluster.cluster_network",
    ]

    init(file: String, document: SeedLoader.Document, options: SeedLoader.Options) {
        super.init(file: file, document: document, options: options, documentKind: "rack files")
    }

    func readRackFile() -> RackFile? {
        guard let rootNode = document.root else {
            report(nil, KeyPath(), "the file is empty; a rack file needs at least version, cluster.public_network and "
                   + "nodes (see docs/rack.md and docs/examples/rack.yaml)")
            return nil
        }
        guard let root = mapping(rootNode, KeyPath(), keys: Self.fileKeys) else { return nil }
        let path = KeyPath()
        readVersion(root)
        var monitorNodes: [(name: String, node: Node)]?
        var monitorsNode: Node?
        let cluster = required(root, "cluster").flatMap { node in
            readRackCluster(node, path.key("cluster"), monitors: &monitorNodes, monitorsNode: &monitorsNode)
        }
        let defaults = root["defaults"].map { readDefaults($0, path.key("defaults")) } ?? RackFile.Defaults()
        var nodes: [RackFile.Node] = []
        var complete = false
        if let node = required(root, "nodes") {
            (nodes, complete) = readNodes(node, path.key("nodes"), cluster: cluster, defaults: defaults)
        }
        var monitors: [String] = []
        // Placed when every node has its own host name (other problems of a node do not change where the monitors go).
        if complete, cluster != nil, monitorsNode == nil || monitorNodes != nil,
           Set(nodes.map(\.shortName)).count == nodes.count {
            switch MonitorPlacement.place(nodes: nodes.map(\.hostname), named: monitorNodes?.map(\.name)) {
            case .success(let placed): monitors = placed
            case .failure(let refused):
                let monitorsPath = path.key("cluster").key("monitors")
                for problem in refused.problems {
                    if let index = problem.index, let item = monitorNodes?[index] {
                        report(item.node.mark, monitorsPath.index(index), problem.message)
                    } else {
                        report(monitorsNode?.mark, monitorsPath, problem.message)
                    }
                }
            }
        }
        guard issues.isEmpty, let cluster, complete, !monitors.isEmpty else {
            if issues.isEmpty { report(nil, path, "the rack file could not be read; this is a bug of aquarium-image") }
            return nil
        }
        return RackFile(version: 1, cluster: cluster, defaults: defaults, nodes: nodes, monitors: monitors)
    }

    // MARK: cluster

    func readRackCluster(_ node: Node, _ path: KeyPath, monitors: inout [(name: String, node: Node)]?,
                         monitorsNode: inout Node?) -> RackFile.Cluster? {
        guard let fields = mapping(node, path, keys: Self.clusterKeys) else { return nil }
        var name = "ceph"
        if let node = fields["name"] {
            name = checked(node, path.key("name"), SeedSyntax.clusterNameProblem) ?? name
        }
        let publicNetwork = required(fields, "public_network").flatMap { cidr($0, path.key("public_network")) }
        let clusterNetwork = fields["cluster_network"].flatMap { cidr($0, path.key("cluster_network")) }
        if let publicNetwork, let clusterNetwork, publicNetwork == clusterNetwork, let node = fields["cluster_network"] {
            report(node.mark, path.key("cluster_network"), "is the public network; leave cluster_network out to use the "
                   + "public network for both")
        }
        let lifetime = fields["join_key_lifetime"].flatMap { self.lifetime($0, path.key("join_key_lifetime")) }
        if let node = fields["monitors"] {
            monitorsNode = node
            if let items = list(node, path.key("monitors"), of: "host names of nodes") {
                var named: [(name: String, node: Node)] = []
                for (index, item) in items.enumerated() {
                    if let host = checked(item, path.key("monitors").index(index), SeedSyntax.hostnameProblem) {
                        named.append((host, item))
                    }
                }
                if named.count == items.count { monitors = named }
            }
        }
        let services = fields["services"].map { readServices($0, path.key("services")) } ?? Seed.Services()
        checkVirtualIP(services, publicNetwork: publicNetwork, servicesNode: fields["services"], path: path.key("services"))
        guard let publicNetwork else { return nil }
        return RackFile.Cluster(name: name, publicNetwork: publicNetwork, clusterNetwork: clusterNetwork,
                                joinKeyLifetime: lifetime, namedMonitors: monitors?.map(\.name), services: services)
    }

    // MARK: defaults

    func readDefaults(_ node: Node, _ path: KeyPath) -> RackFile.Defaults {
        var defaults = RackFile.Defaults()
        guard let fields = mapping(node, path, keys: Self.defaultsKeys) else { return defaults }
        if let node = fields["host"] {
            let hostPath = path.key("host")
            if let host = perNodeChecked(node, hostPath, keys: Self.sharedHostKeys, perNode: Self.perNodeHostKeys) {
                var shared = Seed.Host(hostname: "")
                readSharedHostFields(host, hostPath, into: &shared)
                defaults.timezone = shared.timezone
                defaults.ntpServers = shared.ntpServers
                defaults.users = shared.users
                defaults.requirements = shared.requirements
            }
        }
        if let node = fields["network"] {
            let networkPath = path.key("network")
            if let network = perNodeChecked(node, networkPath, keys: ["nameservers"], perNode: Self.perNodeNetworkKeys),
               let node = network["nameservers"],
               let items = list(node, networkPath.key("nameservers"), of: "IP addresses") {
                defaults.nameservers = items.enumerated().compactMap { index, item in
                    address(item, networkPath.key("nameservers").index(index))
                }
            }
        }
        if let node = fields["disks"] { defaults.disks = readDisks(node, path.key("disks")) }
        if let node = fields["expires"] { defaults.expires = readTime(node, path.key("expires")) }
        return defaults
    }

    /// A mapping with `keys`, where a key of `perNode` is refused with its own message (where to give it instead).
    func perNodeChecked(_ node: Node, _ path: KeyPath, keys: [String], perNode: [String: String]) -> Fields? {
        guard let fields = mapping(node, path, keys: keys + perNode.keys.sorted()) else { return nil }
        for (key, message) in perNode.sorted(by: { $0.key < $1.key }) where fields[key] != nil {
            report(fields.keyMark(key), path.key(key), message)
        }
        return fields
    }

    // MARK: nodes

    /// The nodes that have a host name and an address (problems of their other keys reported), and whether every item
    /// of the list is one. Duplicates are checked among them.
    func readNodes(_ node: Node, _ path: KeyPath, cluster: RackFile.Cluster?, defaults: RackFile.Defaults)
        -> ([RackFile.Node], Bool) {
        guard let items = list(node, path, of: "nodes") else { return ([], false) }
        if items.isEmpty {
            report(node.mark, path, "lists no nodes; a rack has at least one")
            return ([], false)
        }
        var nodes: [RackFile.Node] = []
        var hosts: [String: Int] = [:]
        var serials: [String: Int] = [:]
        var macs: [String: Int] = [:]
        var addresses: [IPAddress: Int] = [:]
        var seedNames: [String: Int] = [:]
        for (index, item) in items.enumerated() {
            let itemPath = path.index(index)
            guard let rackNode = readNode(item, itemPath, cluster: cluster, defaults: defaults) else { continue }
            func mark(_ key: String) -> Mark? { item.mapping?[key]?.mark ?? item.mark }
            if let first = hosts[rackNode.shortName] {
                let full = nodes.first { $0.shortName == rackNode.shortName }?.hostname ?? rackNode.shortName
                report(mark("hostname"), itemPath.key("hostname"), full == rackNode.hostname
                       ? "host name '\(full)' is already nodes[\(first)]'s; give every node its own name"
                       : "short name '\(rackNode.shortName)' is already nodes[\(first)]'s (\(full)); monitors and "
                         + "CRUSH hosts go by short names, so they must differ")
            } else {
                hosts[rackNode.shortName] = index
            }
            var sameMachine = false
            if let serial = rackNode.serial {
                if let first = serials[serial] {
                    sameMachine = true
                    report(mark("serial"), itemPath.key("serial"), "serial '\(serial)' is already nodes[\(first)]'s")
                } else {
                    serials[serial] = index
                }
            }
            if let mac = rackNode.mac {
                if let first = macs[mac] {
                    sameMachine = true
                    report(mark("mac"), itemPath.key("mac"), "MAC \(mac) is already nodes[\(first)]'s")
                } else {
                    macs[mac] = index
                }
            }
            for (key, address) in [("address", rackNode.address), ("cluster_address", rackNode.clusterAddress)] {
                guard let address else { continue }
                if let first = addresses[address.address] {
                    report(mark(key), itemPath.key(key), "address \(address.address) is already nodes[\(first)]'s")
                } else {
                    addresses[address.address] = index
                }
            }
            // The seed volume is FAT: names that differ only in case are one file.
            let seedName = rackNode.seedName.lowercased()
            if rackNode.serial == nil && rackNode.mac == nil {
                // No name (already reported).
            } else if let first = seedNames[seedName], !sameMachine {
                report(mark(rackNode.serial != nil ? "serial" : "mac"), itemPath, "its seed "
                       + "\(SeedFileName.volumePath(rackNode.seedName)) is the same file on the FAT seed volume as "
                       + "nodes[\(first)]'s (FAT ignores case); give one of them mac instead of serial")
            } else {
                seedNames[seedName] = index
            }
            nodes.append(rackNode)
        }
        return (nodes, nodes.count == items.count)
    }

    /// The node, when it has a host name and an address; every problem is reported, so a node may be returned with
    /// problems (for the checks across nodes) but the file is then refused.
    func readNode(_ node: Node, _ path: KeyPath, cluster: RackFile.Cluster?, defaults: RackFile.Defaults)
        -> RackFile.Node? {
        guard let fields = mapping(node, path, keys: Self.nodeKeys) else { return nil }
        let hostname = required(fields, "hostname").flatMap {
            checked($0, path.key("hostname"), SeedSyntax.hostnameProblem)
        }
        let serial = fields["serial"].flatMap { checked($0, path.key("serial"), SeedFileName.serialProblem) }
        let mac: String? = fields["mac"].flatMap { node in
            parsed(node, path.key("mac")) { text in
                guard let mac = SeedSyntax.normalizedMAC(text) else {
                    return .failure(Problem("'\(SeedSyntax.printable(text))' is not a MAC address such as 52:54:00:12:34:56"))
                }
                // FirstBoot looks a seed up by the MACs of the machine's NICs, which are unicast and not all zero.
                let allZero = mac == "00:00:00:00:00:00"
                let multicast = (UInt8(mac.prefix(2), radix: 16) ?? 0) & 1 == 1
                if allZero || multicast {
                    return .failure(Problem("\(mac) is \(allZero ? "all zero" : "a multicast address"), not a NIC's "
                                            + "MAC address (`ip link` shows them)"))
                }
                return .success(mac)
            }
        }
        if fields["serial"] == nil && fields["mac"] == nil {
            report(node.mark, path, "give serial (the DMI system serial) and/or mac (a NIC's MAC address): the node's "
                   + "seed is bound to its machine and named after it on the stick")
        }
        let address = required(fields, "address").flatMap { interfaceAddress($0, path.key("address")) }
        if let address, let cluster, !cluster.publicNetwork.contains(address.address), let node = fields["address"] {
            report(node.mark, path.key("address"), "\(address.address) is not in cluster.public_network "
                   + "\(cluster.publicNetwork)")
        }
        var clusterAddress: InterfaceAddress?
        if let node = fields["cluster_address"] {
            clusterAddress = interfaceAddress(node, path.key("cluster_address"))
            if let cluster, let clusterAddress {
                if let network = cluster.clusterNetwork {
                    if !network.contains(clusterAddress.address) {
                        report(node.mark, path.key("cluster_address"), "\(clusterAddress.address) is not in "
                               + "cluster.cluster_network \(network)")
                    }
                } else {
                    report(fields.keyMark("cluster_address"), path.key("cluster_address"), "is only for a rack with "
                           + "cluster.cluster_network; give the cluster network, or remove cluster_address")
                }
            }
        } else if let network = cluster?.clusterNetwork {
            report(node.mark, path.key("cluster_address"), "required key is missing: the rack has cluster.cluster_network "
                   + "\(network), so every node needs its address in it")
        }
        var interface: String?
        if let node = fields["interface"] {
            interface = checked(node, path.key("interface"), SeedSyntax.interfaceNameProblem)
            if fields["mac"] != nil {
                report(fields.keyMark("interface"), path.key("interface"), "give interface only for a node without mac: "
                       + "with mac the addresses go on the NIC with that MAC; remove one of them")
            }
        } else if fields["mac"] == nil {
            report(node.mark, path.key("interface"), "required key is missing: a node without mac needs interface (e.g. "
                   + "eno1), the NIC its addresses go on")
        }
        var gateway: IPAddress?
        if let node = fields["gateway"], let value = self.address(node, path.key("gateway")) {
            gateway = value
            let own = [address, clusterAddress].compactMap { $0 }.filter { $0.address.family == value.family }
            if own.contains(where: { $0.address == value }) {
                report(node.mark, path.key("gateway"), "\(value) is this node's own address, not a gateway")
            } else if let address, !own.contains(where: { $0.network.contains(value) }) {
                report(node.mark, path.key("gateway"), own.isEmpty
                       ? "\(value) is not of the family of the node's address \(address)"
                       : "\(value) is outside the node's subnet\(own.count > 1 ? "s" : "") "
                         + own.map { $0.network.description }.joined(separator: ", "))
            }
        }
        var disks = defaults.disks
        if let node = fields["disks"] {
            // The node's system, storage and models sections replace those of defaults.disks; what it leaves out stays.
            let own = readDisks(node, path.key("disks"))
            if node.mapping?["system"] != nil { disks.system = own.system }
            if node.mapping?["storage"] != nil { disks.storage = own.storage }
            if node.mapping?["models"] != nil { disks.models = own.models }
        }
        guard let hostname, let address else { return nil }
        return RackFile.Node(hostname: hostname, serial: serial, mac: mac, address: address,
                             clusterAddress: clusterAddress, interface: interface, gateway: gateway, disks: disks)
    }
}

/// The secrets file of a rack (`DIR/secrets.yaml`, written by `aquarium-image rack seeds`).
final class RackSecretsReader: DiagnosingReader {
    static let keys = ["fsid", "created", "monitor_key", "admin_key", "join_key", "monitors"]

    init(file: String, document: SeedLoader.Document) {
        super.init(file: file, document: document, documentKind: "rack secrets files")
    }

    func readSecrets() -> RackSecrets? {
        guard let rootNode = document.root else {
            report(nil, KeyPath(), "the file is empty; a rack's secrets file holds fsid, created and the monitor, admin "
                   + "and join keys (remove it to make new secrets for a new cluster)")
            return nil
        }
        guard let fields = mapping(rootNode, KeyPath(), keys: Self.keys) else { return nil }
        let path = KeyPath()
        let fsid = required(fields, "fsid").flatMap { checked($0, path.key("fsid"), SeedSyntax.fsidProblem) }
        let created: SeedTime? = required(fields, "created").flatMap { node in
            parsed(node, path.key("created")) { text in
                SeedTime(rfc3339: text).map { .success($0) }
                    ?? .failure(Problem("'\(SeedSyntax.printable(text))' is not an RFC 3339 time such as "
                                        + "2026-12-31T23:59:59Z"))
            }
        }
        func key(_ name: String) -> String? {
            required(fields, name).flatMap { checked($0, path.key(name), secret: true, SeedSyntax.cephxKeyProblem) }
        }
        let monitorKey = key("monitor_key")
        let adminKey = key("admin_key")
        let joinKey = key("join_key")
        let named = [("monitor_key", monitorKey), ("admin_key", adminKey), ("join_key", joinKey)]
        for (index, (name, value)) in named.enumerated() {
            if let value, let other = named.prefix(index).first(where: { $0.1 == value }) {
                report(fields[name]?.mark, path.key(name), "is the same key as \(other.0); every key must be its own")
            }
        }
        var monitors: [Seed.RackMonitor]?
        if let node = fields["monitors"], let items = list(node, path.key("monitors"), of: "monitors") {
            var read: [Seed.RackMonitor] = []
            for (index, item) in items.enumerated() {
                let itemPath = path.key("monitors").index(index)
                guard let monitor = mapping(item, itemPath, keys: ["host", "address"]) else { continue }
                let host = required(monitor, "host").flatMap { checked($0, itemPath.key("host"), SeedSyntax.hostnameProblem) }
                let address = required(monitor, "address").flatMap { node in
                    parsed(node, itemPath.key("address")) { text in
                        IPAddress(text).map { .success($0) } ?? .failure(Problem(
                            "'\(SeedSyntax.printable(text))' is not an IP address such as 10.0.0.1 or fd00::1"))
                    }
                }
                if let host, let address { read.append(Seed.RackMonitor(host: host, address: address)) }
            }
            if items.isEmpty { report(node.mark, path.key("monitors"), "is empty; leave it out or list the monitors") }
            monitors = read
        }
        guard issues.isEmpty, let fsid, let created, let monitorKey, let adminKey, let joinKey else { return nil }
        return RackSecrets(fsid: fsid, created: created, monitorKey: monitorKey, adminKey: adminKey, joinKey: joinKey,
                           monitors: monitors)
    }
}
