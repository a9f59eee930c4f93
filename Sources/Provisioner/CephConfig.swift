import Foundation
import Seed

/// How daemons are run: systemd units on a node, supervised child processes on loopback for tests and development.
public enum LauncherKind: String, Sendable, CaseIterable, Codable {
    case systemd
    case process
}

/// Everything about the cluster this node bootstraps that must stay the same across reruns. Persisted in the state
/// file the first time it is decided.
public struct ClusterIdentity: Codable, Equatable, Sendable {
    /// The networks of a process-launcher cluster on 127.0.0.1.
    public static let loopbackNetwork = "127.0.0.0/8"

    public var fsid: String
    /// Ceph cluster name (the seed's `cluster.name`).
    public var name: String
    /// The mon, mgr, mds and rgw daemon id: the short host name.
    public var daemonId: String
    /// The address the monitor and the other daemons bind to; typed until it is rendered (the state file holds its text).
    public var address: IPAddress
    /// The monitor's msgr2 port; msgr1 is the next port. Daemons bind in `basePort+10 ... basePort+99`.
    public var basePort: Int
    public var publicNetwork: String
    public var clusterNetwork: String
    public var launcher: LauncherKind
    /// Set on a node that joined a cluster (`role: join`): the monitor it was told about. Such a node runs no monitor;
    /// `address` and `basePort` are its own (its OSDs bind there).
    public var join: JoinTarget?
    /// A rack node (`cluster.rack`): every monitor of the rack, each listening on `basePort` at its address. Nil on a
    /// node of a cluster made by `role: bootstrap` (one monitor: this node's, or the one it joined).
    public var monitors: [MonitorAddress]?

    public init(fsid: String, name: String, daemonId: String, address: IPAddress, basePort: Int, publicNetwork: String,
                clusterNetwork: String, launcher: LauncherKind, join: JoinTarget? = nil, monitors: [MonitorAddress]? = nil) {
        self.fsid = fsid
        self.name = name
        self.daemonId = daemonId
        self.address = address
        self.basePort = basePort
        self.publicNetwork = publicNetwork
        self.clusterNetwork = clusterNetwork
        self.launcher = launcher
        self.join = join
        self.monitors = monitors
    }


    /// `mon_host` for ceph.conf: every monitor of a rack; else this node's own monitor, or the one it joined.
    public var monHost: String {
        if let monitors, !monitors.isEmpty { return monitors.map { addressVector($0.address) }.joined(separator: ",") }
        return join?.monHost ?? monAddressVector
    }

    /// `mon_initial_members` on a node with a monitor: the rack's monitors, or this one.
    public var initialMembers: String { monitors.map { $0.map(\.name).joined(separator: ",") } ?? daemonId }

    /// The node's role as `status` shows it: bootstrap or join (a cluster of one monitor), monitor or storage (a rack).
    public var role: String {
        monitors == nil ? (join == nil ? "bootstrap" : "join") : (join == nil ? "monitor" : "storage")
    }

    /// True on a node that runs a monitor.
    public var runsMonitor: Bool { join == nil }

    public var monV2Port: Int { basePort }
    public var monV1Port: Int { basePort + 1 }
    /// The monitor's address vector, `[v2:10.0.0.1:3300,v1:10.0.0.1:3301]` (IPv6 in brackets:
    /// `[v2:[fd00::1]:3300,v1:[fd00::1]:3301]`).
    public var monAddressVector: String { addressVector(address) }

    func addressVector(_ address: IPAddress) -> String {
        "[v2:\(address.endpoint(port: monV2Port)),v1:\(address.endpoint(port: monV1Port))]"
    }
}

/// One monitor of a rack: its daemon id (the host's short name) and address.
public struct MonitorAddress: Codable, Equatable, Sendable {
    public var name: String
    public var address: IPAddress

    public init(name: String, address: IPAddress) {
        self.name = name
        self.address = address
    }
}

/// A monitor of the cluster a node joins: the seed's `cluster.join.address` and the port (3300, or `--mon-port`).
public struct JoinTarget: Codable, Equatable, Sendable {
    public var address: IPAddress
    public var port: Int

    public init(address: IPAddress, port: Int) {
        self.address = address
        self.port = port
    }

    /// `ADDRESS:PORT`, IPv6 in brackets.
    public var endpoint: String { address.endpoint(port: port) }
    /// msgr2 only: the monitor hands out its full address vector once connected.
    public var monHost: String { "[v2:\(endpoint)]" }
}

/// Renders `ceph.conf`. Only what the daemons need before they can reach the monitor lives here (fsid, mon_host,
/// networks, paths, ports); cluster-wide settings such as pool defaults go into the monitor's configuration database
/// (`ceph config set`), where they can change as the cluster grows.
public enum CephConfig {
    /// `learned`: the monitor map as this node's `maintenance watch` last saw it; when it is of this cluster, `mon_host`
    /// lists its monitors instead of the seed's (which `node remove` and a replacement monitor make out of date).
    public static func render(_ identity: ClusterIdentity, layout: Layout, rgwPort: Int?, rgwHTTPSPort: Int? = nil,
                              dashboard: Bool = false, learned: LearnedMonitors? = nil) -> String {
        var global: [(String, String)] = [("fsid", identity.fsid)]
        if identity.runsMonitor { global.append(("mon_initial_members", identity.initialMembers)) }
        global += [
            ("mon_host", learned?.monHost(fsid: identity.fsid) ?? identity.monHost),
            ("public_network", identity.publicNetwork),
            ("cluster_network", identity.clusterNetwork),
            ("auth_cluster_required", "cephx"),
            ("auth_service_required", "cephx"),
            ("auth_client_required", "cephx"),
        ]
        if identity.address.family == .v6 {
            // Ceph's messengers bind IPv4 unless told: an IPv6 public network needs both switches.
            global += [("ms_bind_ipv6", "true"), ("ms_bind_ipv4", "false")]
        }
        // No pool defaults here: a daemon's configuration file outranks the monitor's configuration database, so
        // sizes written here would pin the monitor to them when the `replication` step grows them. The
        // `cluster-settings` step puts them in the database before any pool exists.
        if identity.launcher == .process {
            // Several clusters (tests, benchmarks, developers) share this machine: bind in our own port range, with
            // every path under the root; on loopback, to the one address. A node in a network namespace of its own
            // (`--seed-network`) picks its addresses from the networks, as on a real node: the OSDs' back addresses
            // on the cluster network.
            if identity.publicNetwork == ClusterIdentity.loopbackNetwork {
                global += [("public_addr", identity.address.description), ("cluster_addr", identity.address.description)]
            }
            global += [
                ("ms_bind_port_min", String(identity.basePort + 10)),
                ("ms_bind_port_max", String(identity.basePort + 99)),
                // Development machines share one disk with everything else: warn about the monitor's disk late.
                ("mon_data_avail_warn", "5"),
                ("mon_data_avail_crit", "2"),
            ]
        }
        global += [
            ("run_dir", layout.cephRun),
            ("admin_socket", layout.cephRun + "/$cluster-$name.asok"),
            ("log_file", layout.cephLog + "/$cluster-$name.log"),
            ("crash_dir", layout.crashDir),
            ("mon_data", layout.path("/var/lib/ceph/mon/$cluster-$id")),
            ("mgr_data", layout.path("/var/lib/ceph/mgr/$cluster-$id")),
            ("osd_data", layout.path("/var/lib/ceph/osd/$cluster-$id")),
            ("mds_data", layout.path("/var/lib/ceph/mds/$cluster-$id")),
            ("keyring", layout.etcCeph + "/$cluster.$name.keyring"),
        ]
        var text = "# Written by aquarium-provision; rewritten on every run. Cluster settings live in `ceph config`.\n"
        text += section("global", global)
        text += section("mon", [
            ("keyring", layout.path("/var/lib/ceph/mon/$cluster-$id/keyring")),
            // The managers' first modules, read when the monitors make the cluster's first manager map: Ceph's default
            // without `restful`, which Aquarium does not use and which cannot load beside the dashboard on Debian 12
            // (both need python3-cryptography, a PyO3 extension that loads once per process): with it on, every
            // cluster on a node that has ceph-mgr-dashboard reports MGR_MODULE_DEPENDENCY.
            ("mgr_initial_modules", "iostat nfs"),
        ])
        text += section("mgr", [
            ("keyring", layout.path("/var/lib/ceph/mgr/$cluster-$id/keyring")),
            // Modules a manager never loads: Ceph's default, and the dashboard unless the seed asks for it (importing
            // it costs every manager start time and CPU, and its Python dependencies clash with other modules').
            ("mgr_disabled_modules", dashboard ? "diskprediction_local" : "diskprediction_local dashboard"),
        ])
        text += section("osd", [
            ("keyring", layout.path("/var/lib/ceph/osd/$cluster-$id/keyring")),
            // Each node is its own CRUSH host, named as in the seed (not the machine's current host name, which the
            // host step may only have written for the next boot, and which test "nodes" on one machine share).
            ("crush_location", "root=default host=\(identity.daemonId)"),
        ])
        text += section("mds", [("keyring", layout.path("/var/lib/ceph/mds/$cluster-$id/keyring"))])
        if let rgwPort {
            text += section("client.rgw.\(identity.daemonId)", [
                ("keyring", layout.rgwData(identity.daemonId) + "/keyring"),
                ("rgw_data", layout.rgwData(identity.daemonId)),
                ("rgw_frontends", rgwFrontends(identity, layout: layout, port: rgwPort, httpsPort: rgwHTTPSPort)),
            ])
        }
        return text
    }

    /// RGW's `rgw_frontends`: plain HTTP on `port`, HTTPS on `httpsPort` with the certificate beside ceph.conf.
    public static func rgwFrontends(_ identity: ClusterIdentity, layout: Layout, port: Int, httpsPort: Int?) -> String {
        var endpoint = identity.launcher == .process ? "endpoint=\(identity.address.endpoint(port: port))" : "port=\(port)"
        if let https = httpsPort {
            endpoint += identity.launcher == .process ? " ssl_endpoint=\(identity.address.endpoint(port: https))" : " ssl_port=\(https)"
            endpoint += " ssl_certificate=\(layout.rgwCertificate) ssl_private_key=\(layout.rgwPrivateKey)"
        }
        return "beast \(endpoint)"
    }

    static func section(_ name: String, _ options: [(String, String)]) -> String {
        "\n[\(name)]\n" + options.map { "\t\($0.0) = \($0.1)\n" }.joined()
    }

    /// Cluster-wide settings in the monitor's configuration database, set by the `cluster-settings` step when absent
    /// (a value the cluster already has, an operator's tuning say, is kept).
    public static let clusterSettings: [(who: String, option: String, value: String)] = [
        // Pools of size 1 (one node) need it; it stays once they grow (it only permits size 1, it sets nothing).
        ("global", "mon_allow_pool_size_one", "true"),
        // Small pools; the autoscaler grows them with the data.
        ("global", "osd_pool_default_pg_num", "8"),
        ("global", "osd_pool_default_pgp_num", "8"),
        ("mon", "auth_allow_insecure_global_id_reclaim", "false"),
    ]

    /// Pool defaults of a new cluster (one node), set by `cluster-settings` only while the configuration database has
    /// no `osd_pool_default_size`: from then on the `replication` step owns them and grows them as hosts join.
    public static let singleNodeReplication: [(who: String, option: String, value: String)] = [
        ("global", "osd_pool_default_size", "1"),
        ("global", "osd_pool_default_min_size", "1"),
        // Size 1 is what a single node can do; do not warn about it on every `ceph -s` (removed once pools grow).
        ("global", "mon_warn_on_pool_no_redundancy", "false"),
    ]

    /// Health checks a freshly bootstrapped single node may show without anything being wrong.
    public static let expectedSingleNodeChecks: Set<String> = ["POOL_NO_REDUNDANCY"]

    /// Health checks a host in maintenance causes (`maintenance enter`, `reboot`): its noout flag, its OSDs and
    /// monitor down, fewer copies until it is back. Accepted by the health step only while a CRUSH host has noout set.
    public static let maintenanceChecks: Set<String> = ["OSD_FLAGS", "OSD_DOWN", "OSD_HOST_DOWN", "PG_DEGRADED", "MON_DOWN"]

    /// Whether a health report is good enough for the health step: HEALTH_OK, expected single-node warnings, or the
    /// warnings of hosts in maintenance while some are (`hostsInMaintenance`, from `ceph osd dump`'s noout groups).
    public static func healthAcceptable(status: String, checks: Set<String>, hostsInMaintenance: [String]) -> Bool {
        if status == "HEALTH_OK" { return true }
        guard status == "HEALTH_WARN" else { return false }
        if checks.isSubset(of: expectedSingleNodeChecks) { return true }
        return !hostsInMaintenance.isEmpty && checks.isSubset(of: expectedSingleNodeChecks.union(maintenanceChecks))
    }

    /// The short host name as a daemon id (`node-01.example.com` -> `node-01`).
    public static func daemonId(hostname: String) -> String {
        let short = hostname.split(separator: ".").first.map(String.init) ?? hostname
        let cleaned = short.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
        return cleaned.isEmpty ? "a" : cleaned
    }
}
