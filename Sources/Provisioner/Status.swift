import CommandSupport
import Exec
import Foundation
import JSONCoding
import Logging

/// What `aquarium-provision status --json` prints (documented in docs/provisioner.md).
public struct StatusReport: Codable, Equatable, Sendable, CommandOutput {
    public struct OSD: Codable, Equatable, Sendable {
        public var id: Int
        public var up: Bool
        public var `in`: Bool
        /// The storage disk it was created on (from the state file).
        public var disk: String?
    }

    /// A CRUSH host and its OSDs: the cluster's view, the same from every node.
    public struct Host: Codable, Equatable, Sendable {
        public var name: String
        public var osds: [Int]
        public var up: Int
        public var `in`: Int
    }

    /// Raw capacity and each pool's use (`ceph df`); null when the cluster does not answer.
    public struct Capacity: Codable, Equatable, Sendable {
        public struct Pool: Codable, Equatable, Sendable {
            public var name: String
            public var storedBytes: UInt64
            public var maxAvailBytes: UInt64
        }

        public var rawUsedBytes: UInt64
        public var rawTotalBytes: UInt64
        public var pools: [Pool]
    }

    public struct Services: Codable, Equatable, Sendable {
        public var rbdPools: [String]
        public var cephfs: [String]
        /// `http://ADDRESS:PORT`, when RGW was set up.
        public var s3Endpoint: String?
        /// The file holding the S3 administrator's keys (mode 0600); the keys themselves are never printed.
        public var s3CredentialsFile: String?
    }

    public var cluster: String
    /// `bootstrap` or `join` (a node that added its OSDs to the cluster of another node's monitor).
    public var role: String?
    public var fsid: String?
    /// `HEALTH_OK`, `HEALTH_WARN`, `HEALTH_ERR`, or `UNREACHABLE` when the monitor does not answer.
    public var health: String
    public var checks: [String: String]
    public var monitors: [String]
    public var launcher: String?
    public var daemons: [RunningDaemon]
    public var osds: [OSD]
    public var services: Services
    public var bootstrappedAt: String?
    /// Storage disks of the node record that the last run did not find on this machine (skipped, never replaced).
    public var missingDisks: [String] = []
    public var hosts: [Host] = []
    @Nullable public var capacity: Capacity? = nil
    /// Every node's image release and tools, as each last reported to the cluster.
    public var nodes: [NodeVersion] = []
    /// Hosts with a maintenance request (`maintenance`) or removed (`removed`), by host.
    public var maintenance: [String: String] = [:]
    /// What the operator should know: the nodes run different image releases.
    public var warnings: [String] = []
}

public enum StatusCollector {
    /// Each CRUSH host with OSDs, with how many of them are up and in.
    static func hosts(tree: CephJSON.OSDTree, osds: [StatusReport.OSD]) -> [StatusReport.Host] {
        let byId = Dictionary(osds.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return (tree.nodes ?? []).filter { $0.type == "host" }.compactMap { node in
            guard let name = node.name else { return nil }
            let ids = (node.children ?? []).filter { $0 >= 0 }.sorted()
            return StatusReport.Host(name: name, osds: ids, up: ids.filter { byId[$0]?.up == true }.count,
                                     in: ids.filter { byId[$0]?.in == true }.count)
        }.sorted { $0.name < $1.name }
    }

    public static func collect(root: String, cluster: String, logger: Logger) -> StatusReport {
        let layout = Layout(root: root, cluster: cluster)
        let state = (try? ProvisionState.load(layout.stateFile)) ?? ProvisionState()
        // A joined node asks as its join entity, which may read the maps and health but not the manager or CephFS.
        let tools = CephTools(layout: layout, logger: logger, client: state.identity?.client(in: layout))
        let launcherKind = state.identity?.launcher ?? .process
        let daemons = Launchers.make(launcherKind, layout: layout, logger: logger).running()
        var report = StatusReport(cluster: cluster, role: state.identity.map(\.role),
                                  fsid: state.identity?.fsid, health: "UNREACHABLE", checks: [:],
                                  monitors: [], launcher: state.identity?.launcher.rawValue, daemons: daemons, osds: [],
                                  services: StatusReport.Services(rbdPools: [], cephfs: [], s3Endpoint: nil, s3CredentialsFile: nil),
                                  bootstrappedAt: state.bootstrappedAt)
        report.missingDisks = state.missingDisks ?? []
        guard Files.exists(layout.cephConf) else { return report }
        let diskById = Dictionary(state.osdIds.map { ($0.value, $0.key) }, uniquingKeysWith: { first, _ in first })
        // A monitor that does not answer within a few seconds is reported as unreachable, not waited for.
        if let status = try? tools.json(CephJSON.Status.self, ["--connect-timeout", "5", "status"], timeout: 15) {
            report.health = status.health?.status ?? "UNKNOWN"
            for (name, check) in status.health?.checks ?? [:] {
                report.checks[name] = check.message ?? ""
            }
            report.monitors = status.quorumNames ?? []
        }
        if report.health != "UNREACHABLE" {
            if let dump = try? tools.json(CephJSON.OSDDump.self, ["osd", "dump"], timeout: 15) {
                report.osds = (dump.osds ?? []).compactMap { osd in
                    guard let id = osd.osd else { return nil }
                    return StatusReport.OSD(id: id, up: osd.up == 1, in: osd.in == 1, disk: diskById[id])
                }
                report.services.rbdPools = (dump.pools ?? []).filter { $0.applications?.contains("rbd") == true }
                    .compactMap(\.poolName).sorted()
                if let tree = try? tools.json(CephJSON.OSDTree.self, ["osd", "tree"], timeout: 15) {
                    report.hosts = Self.hosts(tree: tree, osds: report.osds)
                }
            }
            if let df = try? tools.json(CephJSON.DF.self, ["df"], timeout: 15), let stats = df.stats {
                report.capacity = StatusReport.Capacity(
                    rawUsedBytes: stats.totalUsedRawBytes ?? 0, rawTotalBytes: stats.totalBytes ?? 0,
                    pools: (df.pools ?? []).compactMap { pool in
                        pool.name.map { StatusReport.Capacity.Pool(name: $0, storedBytes: pool.stats?.stored ?? 0,
                                                                   maxAvailBytes: pool.stats?.maxAvail ?? 0) }
                    }.sorted { $0.name < $1.name })
            }
            if let filesystems = try? tools.json([CephJSON.FileSystem].self, ["fs", "ls"], timeout: 15) {
                report.services.cephfs = filesystems.compactMap(\.name)
            }
            let log = ClusterEventLog(tools: tools)
            if let maintenance = try? log.maintenance() { report.maintenance = maintenance }
            if let nodes = try? log.versions() {
                report.nodes = nodes
                if let warning = NodeVersion.mixedWarning(nodes.filter { report.maintenance[$0.host] != "removed" }) {
                    report.warnings.append(warning)
                }
            }
        }
        if let data = FileManager.default.contents(atPath: layout.s3CredentialsFile),
           let credentials = try? JSONDecoder().decode(S3Credentials.self, from: data) {
            report.services.s3Endpoint = credentials.endpoint
            report.services.s3CredentialsFile = layout.s3CredentialsFile
        }
        return report
    }

    public static func render(_ report: StatusReport) -> String {
        var lines: [String] = []
        lines.append("cluster   \(report.cluster) \(report.fsid ?? "(not bootstrapped)")\(report.role == "join" ? " (joined)" : "")")
        lines.append("health    \(report.health)")
        for (name, message) in report.checks.sorted(by: { $0.key < $1.key }) { lines.append("          \(name): \(message)") }
        lines.append("mons      \(report.monitors.isEmpty ? "-" : report.monitors.joined(separator: ", "))")
        // The floating address's NFS server runs only where the address is.
        let daemonText = report.daemons.map {
            "\($0.name)\($0.running ? "" : $0.name == NFSConfig.floatingUser ? " (standby: the address is elsewhere)" : " (not running)")"
        }
        lines.append("daemons   \(daemonText.isEmpty ? "-" : daemonText.joined(separator: ", ")) [\(report.launcher ?? "-")]")
        let osdText = report.osds.map { "osd.\($0.id) \($0.up ? "up" : "down")/\($0.in ? "in" : "out")\($0.disk.map { " on \($0)" } ?? "")" }
        lines.append("osds      \(osdText.isEmpty ? "-" : osdText.joined(separator: ", "))")
        let hostText = report.hosts.map { "\($0.name) \($0.up)/\($0.osds.count) up, \($0.in) in" }
        lines.append("hosts     \(hostText.isEmpty ? "-" : hostText.joined(separator: "; "))")
        if let capacity = report.capacity {
            lines.append("capacity  \(Self.bytes(capacity.rawUsedBytes)) of \(Self.bytes(capacity.rawTotalBytes)) raw used"
                + capacity.pools.map { "; \($0.name) \(Self.bytes($0.storedBytes)) stored" }.joined())
        }
        if !report.missingDisks.isEmpty {
            lines.append("missing   \(report.missingDisks.joined(separator: ", ")) (storage disks not on this machine; skipped)")
        }
        if !report.nodes.isEmpty {
            lines.append("images    " + report.nodes.map { "\($0.host) \($0.release ?? "-")" }.joined(separator: ", "))
        }
        if !report.maintenance.isEmpty {
            lines.append("maint.    " + report.maintenance.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", "))
        }
        for warning in report.warnings { lines.append("WARNING   \(warning)") }
        lines.append("rbd       \(report.services.rbdPools.isEmpty ? "-" : report.services.rbdPools.joined(separator: ", "))")
        lines.append("cephfs    \(report.services.cephfs.isEmpty ? "-" : report.services.cephfs.joined(separator: ", "))")
        lines.append("s3        \(report.services.s3Endpoint ?? "-")\(report.services.s3CredentialsFile.map { " (keys in \($0))" } ?? "")")
        return lines.joined(separator: "\n")
    }

    /// 1.5 GiB, 300 MiB, 12 KiB, 5 B.
    static func bytes(_ value: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var amount = Double(value)
        var unit = 0
        while amount >= 1024 && unit < units.count - 1 { amount /= 1024; unit += 1 }
        return unit == 0 ? "\(value) B" : String(format: "%.1f %@", amount, units[unit])
    }
}

extension StatusReport {
    public var text: String { StatusCollector.render(self) + "\n" }
}
