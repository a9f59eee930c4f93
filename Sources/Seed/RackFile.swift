// The rack file v1 model: a whole rack's nodes, from which `aquarium-image rack seeds` makes every node's seed offline
// (docs/rack.md; JSON Schema Resources/rack.schema.json). Every value here has been validated by `RackLoader`.

/// A validated rack file (version 1), with defaults applied.
public struct RackFile: Sendable, Equatable {
    public var version: Int
    public var cluster: Cluster
    public var defaults: Defaults
    /// In the file's order; at least one.
    public var nodes: [Node]
    /// The host names of the monitor nodes (`MonitorPlacement`), in placement order.
    public var monitors: [String]

    public init(version: Int = 1, cluster: Cluster, defaults: Defaults = Defaults(), nodes: [Node], monitors: [String]) {
        self.version = version
        self.cluster = cluster
        self.defaults = defaults
        self.nodes = nodes
        self.monitors = monitors
    }

    /// `cluster`: what every node of the rack shares about the cluster.
    public struct Cluster: Sendable, Equatable {
        /// The Ceph cluster name, default `ceph`.
        public var name: String
        /// The Ceph public (front) network; every node's `address` is in it.
        public var publicNetwork: IPNetwork
        /// The Ceph cluster (back) network; when given every node has a `cluster_address` in it.
        public var clusterNetwork: IPNetwork?
        /// How long the join key is accepted after the cluster formed, in seconds; nil for the cluster's default (24h).
        public var joinKeyLifetime: Int?
        /// The monitor hosts as the file names them (`cluster.monitors`), or nil to place them (`MonitorPlacement`).
        public var namedMonitors: [String]?
        /// The services; written into the monitor nodes' seeds only.
        public var services: Seed.Services

        public init(name: String = "ceph", publicNetwork: IPNetwork, clusterNetwork: IPNetwork? = nil,
                    joinKeyLifetime: Int? = nil, namedMonitors: [String]? = nil, services: Seed.Services = Seed.Services()) {
            self.name = name
            self.publicNetwork = publicNetwork
            self.clusterNetwork = clusterNetwork
            self.joinKeyLifetime = joinKeyLifetime
            self.namedMonitors = namedMonitors
            self.services = services
        }
    }

    /// `defaults`: what every node's seed gets, in the seed's own syntax.
    public struct Defaults: Sendable, Equatable {
        public var timezone: String?
        public var ntpServers: [String]
        public var users: [Seed.User]
        public var nameservers: [IPAddress]
        public var disks: Seed.Disks
        public var expires: SeedTime?
        public var requirements: Seed.Requirements

        public init(timezone: String? = nil, ntpServers: [String] = [], users: [Seed.User] = [],
                    nameservers: [IPAddress] = [], disks: Seed.Disks = Seed.Disks(), expires: SeedTime? = nil,
                    requirements: Seed.Requirements = Seed.Requirements()) {
            self.timezone = timezone
            self.ntpServers = ntpServers
            self.users = users
            self.nameservers = nameservers
            self.disks = disks
            self.expires = expires
            self.requirements = requirements
        }
    }

    /// One machine of the rack.
    public struct Node: Sendable, Equatable {
        public var hostname: String
        /// The DMI system serial; usable as a file name (`SeedFileName.serialProblem`).
        public var serial: String?
        /// A NIC's MAC address, lowercase with colons. At least one of `serial` and `mac` is set.
        public var mac: String?
        /// The static address in the public network.
        public var address: InterfaceAddress
        /// The static address in the cluster network; set exactly when the rack has one.
        public var clusterAddress: InterfaceAddress?
        /// The interface's kernel name, when the node has no `mac` to select it by.
        public var interface: String?
        public var gateway: IPAddress?
        /// `defaults.disks` with this node's `disks.system` / `disks.storage` in their place.
        public var disks: Seed.Disks

        public init(hostname: String, serial: String? = nil, mac: String? = nil, address: InterfaceAddress,
                    clusterAddress: InterfaceAddress? = nil, interface: String? = nil, gateway: IPAddress? = nil,
                    disks: Seed.Disks = Seed.Disks()) {
            self.hostname = hostname
            self.serial = serial
            self.mac = mac
            self.address = address
            self.clusterAddress = clusterAddress
            self.interface = interface
            self.gateway = gateway
            self.disks = disks
        }

        /// The host name's first label: what monitors and CRUSH hosts are called.
        public var shortName: String { hostname.split(separator: ".").first.map(String.init) ?? hostname }

        /// The name of this node's seed on the stick (`seeds/<name>.yaml`): the DMI serial when given, else the MAC in
        /// its dash form.
        public var seedName: String { serial ?? SeedFileName.macName(mac ?? "") }

        /// The interface the static addresses go on: by MAC when given, else by name.
        public var interfaceSelector: Seed.InterfaceSelector {
            if let mac { return .mac(mac) }
            return .name(interface ?? "")
        }

        /// What binds the seed to this machine.
        public var machine: Seed.Machine { Seed.Machine(serial: serial, mac: mac) }
    }

    /// The role of `node`: monitor when it is one of `monitors`, else storage.
    public func role(of node: Node) -> ClusterRole {
        monitors.contains(node.hostname) ? .monitor : .storage
    }

    /// The monitors as a seed lists them: host name and public address, in placement order.
    public var rackMonitors: [Seed.RackMonitor] {
        monitors.compactMap { name in
            nodes.first { $0.hostname == name }.map { Seed.RackMonitor(host: $0.hostname, address: $0.address.address) }
        }
    }
}

/// Which nodes of a rack run a monitor. A pure function of the node names and the file's `cluster.monitors`.
public enum MonitorPlacement {
    /// The most monitors a rack has.
    public static let maximum = 7

    /// How many monitors a rack of `nodes` nodes gets when the file names none: 1 for 1-2 nodes, 3 for 3-4, 5 from 5
    /// on (an odd number, so a majority survives the loss of one monitor from 3 nodes on, of two from 5).
    public static func defaultCount(nodes: Int) -> Int {
        switch nodes {
        case ...2: 1
        case 3...4: 3
        default: 5
        }
    }

    /// Why a placement cannot be made: `index` is the entry of `cluster.monitors` it is about, when it is one.
    public struct Problem: Sendable, Equatable {
        public var index: Int?
        public var message: String
    }

    /// Every reason a named placement is refused.
    public struct Refused: Error, Sendable, Equatable {
        public var problems: [Problem]
    }

    /// The monitor hosts: those named (each the host name or short name of a node, each once, an odd number from 1 to
    /// 7 and at most the number of nodes), else the first `defaultCount` nodes in the file's order. Returns the full
    /// host names, in the order named or placed, or every problem.
    public static func place(nodes: [String], named: [String]?) -> Result<[String], Refused> {
        guard let named else { return .success(Array(nodes.prefix(defaultCount(nodes: nodes.count)))) }
        var problems: [Problem] = []
        var chosen: [String] = []
        for (index, name) in named.enumerated() {
            // The full host name, or a short name that is the first label of exactly one node's host name.
            let matches = nodes.filter { node in
                node == name || (!name.contains(".") && node.split(separator: ".").first.map(String.init) == name)
            }
            guard let host = matches.first, matches.count == 1 else {
                let hint = matches.count > 1 ? "; it matches \(matches.joined(separator: ", ")): give the full host name"
                    : Suggestions.closest(to: name, among: nodes).map { "; did you mean '\($0)'?" }
                    ?? "; the nodes are \(nodes.joined(separator: ", "))"
                problems.append(Problem(index: index, message: "'\(SeedSyntax.printable(name))' is not a node of this "
                                        + "rack\(hint)"))
                continue
            }
            if chosen.contains(host) {
                problems.append(Problem(index: index, message: "'\(name)' is named twice; name each monitor once"))
                continue
            }
            chosen.append(host)
        }
        let count = named.count
        if count == 0 || count > maximum || count % 2 == 0 {
            problems.append(Problem(index: nil, message: "names \(count) monitor\(count == 1 ? "" : "s"); a rack has an odd "
                                    + "number from 1 to \(maximum) (a majority of them must be up for the cluster to "
                                    + "work), e.g. 3"))
        } else if count > nodes.count {
            problems.append(Problem(index: nil, message: "names \(count) monitors but the rack has \(nodes.count) "
                                    + "node\(nodes.count == 1 ? "" : "s")"))
        }
        return problems.isEmpty ? .success(chosen) : .failure(Refused(problems: problems))
    }
}
