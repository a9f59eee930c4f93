import Exec
import Foundation
import Seed

/// The configuration files of NFS-Ganesha and keepalived, from the seed (pure: tested by table).
public enum NFSConfig {
    /// Where NFS-Ganesha keeps its client recovery records: the `.aquarium` pool, this namespace, one object per node.
    public static let recoveryNamespace = "nfs"

    /// The recovery node id of the floating address's NFS server, the same on every NFS node: the server that takes
    /// the address over reads its predecessor's client records and gives those clients a grace period to reclaim
    /// their opens and locks. Not a possible host name (`_`), so never a node's own id.
    public static let floatingNode = "virtual_ip"
    /// Its Ceph user, shared by the NFS nodes: the MDS hands a session over (NFS-Ganesha's reclaim) only to the same user.
    public static let floatingUser = "nfs.\(floatingNode)"

    /// The capabilities of an NFS server's Ceph user: CephFS, and its client recovery records in the cluster's own pool.
    static func caps(filesystem: String) -> [String] {
        ["mon", "allow r", "mds", "allow rw", "osd",
         "allow rw tag cephfs data=\(filesystem), allow rw pool=\(ClusterEventLog.pool) namespace=\(recoveryNamespace)"]
    }

    static func floatingLog(_ layout: Layout) -> String { layout.path("/var/log/ganesha/ganesha-floating.log") }

    static func logSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// NFS-Ganesha listens even when an export could not be made (CephFS not mounted): clients get NFS4ERR_NOENT or
    /// NFS4ERR_SERVERFAULT. Its log from byte `offset` (its size before this start) says so: the line, or nil.
    static func exportFailure(log path: String, from offset: Int) -> String? {
        let log = (Files.read(path) ?? "").utf8.dropFirst(offset)
        guard let line = String(decoding: log, as: UTF8.self).split(separator: "\n")
            .first(where: { $0.contains("Could not create export") || $0.contains("Unable to mount Ceph cluster") }) else { return nil }
        return String(line.split(separator: "]", maxSplits: 1).last ?? line)
    }

    /// The floating address's NFS server. Not started at boot: keepalived starts it where the address is.
    public static func floatingDaemon(_ layout: Layout) -> DaemonSpec {
        var daemon = DaemonSpec(name: floatingUser, executable: "ganesha.nfsd",
                                arguments: ["-F", "-f", layout.floatingGaneshaConf, "-L", floatingLog(layout),
                                            "-p", layout.path("/run/ganesha-floating.pid"), "-N", "NIV_EVENT"],
                                configPath: layout.floatingGaneshaConf)
        daemon.atBoot = false
        return daemon
    }

    /// NFS-Ganesha's configuration on node `node` (its Ceph user is `nfs.NODE`). The node's name is also its recovery
    /// node id, which NFS-Ganesha otherwise takes from the host name and uses in the CephFS session identity
    /// (`ganesha-NODEID-EXPORTID`): two servers with one host name (seen: network namespaces on one machine) took each
    /// other's sessions and the second could not mount CephFS ("Unable to mount Ceph cluster").
    public static func ganesha(_ service: Seed.NFS, filesystem: String, paths: [String: String], node: String,
                               cephConf: String, bind: String?) -> String {
        let user = "nfs.\(node)"
        let minors = service.versions.compactMap { $0.split(separator: ".").last.map(String.init) }
        var lines = ["# Written by aquarium-provision from the seed's services.nfs; rewritten on every run.",
                     "NFS_CORE_PARAM {", "    Enable_NLM = false;", "    Enable_RQUOTA = false;", "    Protocols = 4;",
                     "    NFS_Port = \(Seed.NFS.port);"]
        if let bind { lines.append("    Bind_addr = \(bind);") }
        lines += ["}", "NFSv4 {", "    RecoveryBackend = rados_ng;", "    Minor_Versions = \(minors.joined(separator: ", "));", "}",
                  "RADOS_KV {", "    ceph_conf = \(quoted(cephConf));", "    userid = \(quoted(user));",
                  "    pool = \(quoted(ClusterEventLog.pool));", "    namespace = \(quoted(recoveryNamespace));",
                  "    nodeid = \(quoted(node));", "}",
                  "MDCACHE {", "    Dir_Chunk = 0;", "}",
                  "CEPH {", "    Ceph_Conf = \(quoted(cephConf));", "}"]
        for (index, export) in service.exports.enumerated() {
            let access = export.access == .rw ? "RW" : "RO"
            lines += ["EXPORT {", "    Export_ID = \(index + 1);", "    Path = \(quoted(paths[export.name] ?? "/"));",
                      "    Pseudo = \(quoted("/" + export.name));", "    Protocols = 4;", "    Transports = TCP;",
                      "    SecType = sys;", "    Squash = No_Root_Squash;", "    Attr_Expiration_Time = 0;",
                      "    Access_Type = \(export.clients.isEmpty ? access : "None");",
                      "    FSAL {", "        Name = CEPH;", "        User_Id = \(quoted(user));",
                      "        Filesystem = \(quoted(filesystem));", "    }"]
            if !export.clients.isEmpty {
                lines += ["    CLIENT {", "        Clients = \(export.clients.map(\.description).joined(separator: ", "));",
                          "        Access_Type = \(access);", "    }"]
            }
            lines.append("}")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// This program, as keepalived should start it.
    public static var selfExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/usr/bin/aquarium-provision"
    }

    /// `takeover` runs when this node takes the address, `release` when it loses it (or keepalived stops).
    public static func keepalived(address: IPAddress, prefixLength: Int, interface: String, routerID: Int, priority: Int,
                                  name: String, takeover: [String], release: [String]) -> String {
        let run = release.joined(separator: " ")
        let notify = "\n    notify_master \"\(takeover.joined(separator: " "))\"" + "\n    notify_backup \"\(run)\""
            + "\n    notify_fault \"\(run)\"" + "\n    notify_stop \"\(run)\""
        return """
        # Written by aquarium-provision from the seed's services.nfs.virtual_ip; rewritten on every run.
        global_defs {
            router_id aquarium-\(name)
            enable_script_security
            script_user root
        }
        vrrp_instance aquarium_nfs {
            state BACKUP
            interface \(interface)
            virtual_router_id \(routerID)
            priority \(priority)
            advert_int 1
            virtual_ipaddress {
                \(address)/\(prefixLength) dev \(interface)
            }\(notify)
        }

        """
    }

    /// 1...255 from the cluster's fsid: the same on every node of the cluster, rarely the same as a neighbour's.
    public static func routerID(fsid: String) -> Int {
        Int(fsid.utf8.reduce(UInt32(2166136261)) { ($0 ^ UInt32($1)) &* 16777619 } % 255) + 1
    }

    public struct Link: Equatable, Sendable {
        public var name: String
        public var prefixLength: Int
    }

    /// The `Bind_addr` of an NFS-Ganesha configuration this program wrote (the floating server's: its address).
    static func bindAddress(in config: String) -> IPAddress? {
        value("Bind_addr", in: config).flatMap(IPAddress.init)
    }

    /// The CephFS file system of the first export of a configuration this program wrote.
    static func filesystem(in config: String) -> String? {
        value("Filesystem", in: config).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
    }

    /// `KEY = VALUE;` on a line of its own (the first).
    static func value(_ key: String, in config: String) -> String? {
        for line in config.split(separator: "\n") {
            let text = line.trimmingCharacters(in: .whitespaces)
            guard text.hasPrefix(key + " = "), text.hasSuffix(";") else { continue }
            return String(text.dropFirst(key.count + 3).dropLast())
        }
        return nil
    }

    /// True when an interface of this node holds `address` (keepalived put it here).
    static func holds(_ address: IPAddress) -> Bool {
        interface(holding: address, in: (try? Command("ip", ["-j", "address", "show"]).run())?.output ?? "") != nil
    }

    /// The interface holding `address`, from `ip -j address show`.
    public static func interface(holding address: IPAddress, in json: String) -> Link? {
        guard let links = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else { return nil }
        for link in links {
            guard let name = link["ifname"] as? String else { continue }
            for entry in link["addr_info"] as? [[String: Any]] ?? [] {
                if let local = entry["local"] as? String, IPAddress(local) == address, let prefix = entry["prefixlen"] as? Int {
                    return Link(name: name, prefixLength: prefix)
                }
            }
        }
        return nil
    }

    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
