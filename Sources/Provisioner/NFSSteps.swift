import ArgumentParser
import CommandSupport
import Exec
import Foundation
import JSONCoding
import Logging
import Seed

/// `services.nfs`: CephFS subvolumes exported over NFSv4 by NFS-Ganesha (FSAL_CEPH), on the node that runs the services
/// and, in a rack, on every monitor node (each with an MDS of its own, standby until the active one is lost). With a
/// `virtual_ip`, keepalived (VRRP on the public network) keeps that address on one of them.
extension Provisioner {
    /// Single node: this node. Rack: every monitor node.
    var runsNFS: Bool { rack == nil || seed.cluster.role == .monitor }

    var nfsEntity: String { "client.nfs.\(identity.daemonId)" }

    func nfs() throws(ProvisionError) -> StepOutcome {
        guard let service = seed.cluster.services.nfs, let cephfs = seed.cluster.services.cephfs else {
            return StepOutcome(changed: false, detail: "not in the seed")
        }
        guard runsNFS else { return StepOutcome(changed: false, detail: "runs on the monitor nodes") }
        var actions: [String] = []
        if !runsServices {
            // The file system is made by the rack's first monitor node; this one serves it too, with a standby MDS.
            try CephTools.wait("the file system \(cephfs.name) (made by \(rack?.monitors.first?.shortName ?? "?"))",
                               seconds: options.rackTimeout) {
                (try tools.json([CephJSON.FileSystem].self, ["fs", "ls"], timeout: 20) ?? []).contains { $0.name == cephfs.name }
            }
            actions += try ensureMDS()
        }
        let ganesha = ganeshaDaemon
        if !launcher.isRunning(ganesha) {
            // A stopped or killed NFS-Ganesha leaves its CephFS session open, holding capabilities that block every
            // other client of those files (`ceph fs subvolume` below included) until the MDS closes it minutes later.
            // Nothing of this node's NFS entity runs now: evict its sessions first.
            evictNFSSessions(cephfs.name)
        }
        var paths: [String: String] = [:]
        for export in service.exports {
            let (path, changes) = try subvolume(export, in: cephfs.name)
            paths[export.name] = path
            actions += changes
        }
        fault("nfs", .mid)
        if try ensureKeyring(nfsEntity, caps: NFSConfig.caps(filesystem: cephfs.name), at: layout.keyring(nfsEntity)) {
            actions.append("created the key of \(nfsEntity)")
        }
        // With a floating address this node's own server listens on the node's address only: the floating address is
        // the floating server's.
        let bind: String? = service.virtualIP == nil && options.launcher == .systemd ? nil : identity.address.description
        let config = NFSConfig.ganesha(service, filesystem: cephfs.name, paths: paths, node: identity.daemonId,
                                       cephConf: layout.cephConf, bind: bind)
        try Files.makeDirectory(layout.path("/var/log/ganesha"))
        let configChanged = try Files.write(config, to: layout.ganeshaConf)
        if configChanged && launcher.isRunning(ganesha) {
            try launcher.stop(ganesha)
            evictNFSSessions(cephfs.name)
            actions.append("wrote \(layout.ganeshaConf)")
        }
        let checked = bind ?? identity.address.description
        if !launcher.isRunning(ganesha) && Ports.isListening(host: checked, port: Seed.NFS.port) {
            throw .failed("port \(Seed.NFS.port) on \(checked) is taken by another program (a kernel NFS server?); "
                + "NFS-Ganesha cannot listen there. Stop it, or remove services.nfs from the seed")
        }
        let logStart = NFSConfig.logSize(ganeshaLog)
        let started = try launcher.ensureRunning(ganesha)
        try CephTools.wait("NFS-Ganesha to listen on \(checked):\(Seed.NFS.port)", seconds: 60) {
            Ports.isListening(host: checked, port: Seed.NFS.port)
        }
        if started {
            // NFS-Ganesha listens even when an export could not be made (CephFS not mounted): clients would get
            // NFS4ERR_NOENT. Its log since this start says so.
            if let failure = NFSConfig.exportFailure(log: ganeshaLog, from: logStart) {
                throw .failed("NFS-Ganesha started without an export: \(failure); see \(ganeshaLog)")
            }
            actions.append("started NFS-Ganesha")
        }
        if let address = service.virtualIP {
            actions += try floatingServer(service, address: address, filesystem: cephfs.name, paths: paths)
            actions += try virtualAddress(address)
        }
        let exports = service.exports.map { "/" + $0.name }.joined(separator: ", ")
        let shown = (service.virtualIP ?? identity.address).description
        return StepOutcome(changed: !actions.isEmpty,
                           detail: actions.isEmpty ? "\(exports) on \(shown)" : actions.joined(separator: "; "))
    }

    /// Closes the CephFS sessions of this node's NFS entity (none of its processes runs when this is called). Found by
    /// the entity its client names: a session an MDS rebuilt from its journal has no auth name (see `nfs-takeover`).
    func evictNFSSessions(_ filesystem: String) {
        _ = try? tools.run("ceph", ["tell", "mds.\(filesystem):0", "client", "evict", "client_metadata.entity_id=nfs.\(identity.daemonId)"],
                           timeout: 30)
    }

    /// The NFS server of the floating address: its key and configuration on every NFS node; it runs on the node that
    /// holds the address, started by keepalived (`nfs-takeover`) and stopped when the address leaves (`nfs-release`).
    /// Here it is restarted when its configuration changed, and started when this node holds the address without it.
    func floatingServer(_ service: Seed.NFS, address: IPAddress, filesystem: String,
                        paths: [String: String]) throws(ProvisionError) -> [String] {
        var actions: [String] = []
        let entity = "client.\(NFSConfig.floatingUser)"
        if try ensureKeyring(entity, caps: NFSConfig.caps(filesystem: filesystem), at: layout.keyring(entity)) {
            actions.append("created the key of \(entity)")
        }
        let config = NFSConfig.ganesha(service, filesystem: filesystem, paths: paths, node: NFSConfig.floatingNode,
                                       cephConf: layout.cephConf, bind: address.description)
        let daemon = NFSConfig.floatingDaemon(layout)
        let lock = try FloatingServerLock(layout)
        defer { lock.release() }
        if try Files.write(config, to: layout.floatingGaneshaConf), launcher.isRunning(daemon) {
            try launcher.stop(daemon)
            actions.append("wrote \(layout.floatingGaneshaConf)")
        }
        if NFSConfig.holds(address) && !launcher.isRunning(daemon) {
            // Its session from before (stopped above, or exited) holds capabilities until it is evicted.
            _ = NFSRecovery.evictFloating(at: identity.address.description, filesystem: filesystem, tools: tools)
            if try launcher.ensureRunning(daemon) { actions.append("started the NFS server of \(address)") }
        }
        return actions
    }

    var ganeshaLog: String { layout.path("/var/log/ganesha/ganesha.log") }

    var ganeshaDaemon: DaemonSpec {
        DaemonSpec(name: "nfs.\(identity.daemonId)", executable: "ganesha.nfsd",
                   arguments: ["-F", "-f", layout.ganeshaConf, "-L", ganeshaLog,
                               "-p", layout.path("/run/ganesha.pid"), "-N", "NIV_EVENT"],
                   configPath: layout.ganeshaConf)
    }

    var keepalivedDaemon: DaemonSpec {
        DaemonSpec(name: "keepalived", executable: "keepalived",
                   arguments: ["-n", "-l", "-P", "-f", layout.keepalivedConf, "-p", layout.path("/run/keepalived.pid"),
                               "-r", layout.path("/run/keepalived-vrrp.pid")],
                   configPath: layout.keepalivedConf)
    }

    /// The CephFS subvolume `export.name` (made when missing, its quota set to the seed's) and its path.
    func subvolume(_ export: Seed.NFSExport, in filesystem: String) throws(ProvisionError) -> (String, [String]) {
        var actions: [String] = []
        let info = try? tools.json(SubvolumeInfo.self, ["fs", "subvolume", "info", filesystem, export.name], timeout: 60)
        if let info = info ?? nil {
            if info.quota != export.size {
                try tools.run("ceph", ["fs", "subvolume", "resize", filesystem, export.name,
                                       export.size.map(String.init) ?? "inf"], timeout: 60)
                actions.append("set the quota of \(export.name) to " + (export.size.map { "\($0) bytes" } ?? "none"))
            }
        } else {
            try tools.run("ceph", ["fs", "subvolume", "create", filesystem, export.name]
                          + (export.size.map { ["--size", String($0)] } ?? []), timeout: 60)
            actions.append("created the subvolume \(export.name)")
        }
        let path = try tools.run("ceph", ["fs", "subvolume", "getpath", filesystem, export.name], timeout: 60)
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard path.hasPrefix("/") else { throw .failed("ceph fs subvolume getpath \(filesystem) \(export.name) printed '\(path)'") }
        return (path, actions)
    }

    /// What `ceph fs subvolume info` says that we use: the quota (`bytes_quota`, a number or "infinite").
    struct SubvolumeInfo: Decodable {
        var quota: UInt64?
        enum CodingKeys: String, CodingKey { case bytesQuota = "bytes_quota" }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            quota = try? container.decode(UInt64.self, forKey: .bytesQuota)
        }
    }

    /// An MDS of this node's own (standby while another is active).
    func ensureMDS() throws(ProvisionError) -> [String] {
        var actions: [String] = []
        let id = identity.daemonId
        if try ensureKeyring("mds.\(id)", caps: ["mon", "allow profile mds", "osd", "allow rw tag cephfs *=*", "mds", "allow",
                                                 "mgr", "allow profile mds"], at: layout.mdsData(id) + "/keyring") {
            actions.append("created the key of mds.\(id)")
        }
        if try launcher.ensureRunning(daemon("mds", id)) { actions.append("started mds.\(id)") }
        return actions
    }

    /// keepalived with the floating address on the interface that holds this node's public address. The rack's first
    /// monitor node has the highest priority and takes the address back when it returns (VRRP preemption).
    func virtualAddress(_ address: IPAddress) throws(ProvisionError) -> [String] {
        var actions: [String] = []
        guard let link = NFSConfig.interface(holding: identity.address, in: (try? Command("ip", ["-j", "address", "show"]).run())?.output ?? "")
        else {
            throw .failed("no interface holds this node's address \(identity.address); the NFS virtual address "
                + "\(address) is announced on that interface")
        }
        let monitors = rack?.monitors.map(\.shortName) ?? [identity.daemonId]
        let rank = monitors.firstIndex(of: identity.daemonId) ?? 0
        // Taking the address over: NFS-Ganesha on a node that died keeps its CephFS session (and the capabilities of
        // the files it had open) for minutes, and for as long as it takes when an MDS took a rank over meanwhile
        // (NFSRecovery); the new holder evicts the sessions of the peers that no longer answer.
        // It then starts the floating address's NFS server, which its clients reclaim their locks from; whoever loses
        // the address stops its own.
        let peers = (rack?.monitors ?? []).filter { $0.shortName != identity.daemonId }.map { "\($0.shortName)=\($0.address)" }
        let common = ["--root", layout.root.isEmpty ? "/" : layout.root, "--cluster", layout.cluster, "--verbose", "--log", layout.nfsTakeoverLog,
                      "--filesystem", seed.cluster.services.cephfs?.name ?? "cephfs"]
        var takeover = [NFSConfig.selfExecutable, "nfs-takeover"] + common + ["--floating-address", address.description]
        for peer in peers { takeover += ["--peer", peer] }
        let config = NFSConfig.keepalived(address: address, prefixLength: link.prefixLength, interface: link.name,
                                          routerID: NFSConfig.routerID(fsid: identity.fsid), priority: 200 - 10 * rank,
                                          name: identity.daemonId, takeover: takeover,
                                          release: [NFSConfig.selfExecutable, "nfs-release"] + common)
        try Files.makeDirectory((layout.keepalivedConf as NSString).deletingLastPathComponent)
        let keepalived = keepalivedDaemon
        if try Files.write(config, to: layout.keepalivedConf), launcher.isRunning(keepalived) {
            try launcher.stop(keepalived)
            actions.append("wrote \(layout.keepalivedConf)")
        }
        if try launcher.ensureRunning(keepalived) { actions.append("started keepalived for \(address) on \(link.name)") }
        // Whoever holds it (this node after about three advertisement intervals, or another NFS node), the
        // address must answer on the NFS port: its holder's `nfs-takeover` starts the floating server, after giving
        // the previous holder's up to 30 s to stop.
        if address.family == .v4 {
            try CephTools.wait("the NFS virtual address \(address) to answer on port \(Seed.NFS.port)", seconds: 120) {
                Ports.isListening(host: address.description, port: Seed.NFS.port)
            }
        }
        return actions
    }
}

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

    /// Sends standard error to `path` (appended; keepalived discards a notify script's output), after a dated line.
    static func appendLog(to path: String?, _ line: String) throws {
        guard let path else { return }
        try Files.makeDirectory((path as NSString).deletingLastPathComponent)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw ValidationError("--log \(path): \(String(cString: strerror(errno)))") }
        dup2(descriptor, STDERR_FILENO)
        close(descriptor)
        FileHandle.standardError.write(Data("\(ISO8601DateFormatter().string(from: Date())) \(line)\n".utf8))
    }

    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

/// `aquarium-provision nfs-takeover`: run by keepalived on the node that has just taken the NFS floating address
/// (`notify_master`). NFS-Ganesha keeps its CephFS session 300 s after its node died, and with it the capabilities of
/// the files it had open: clients of the new holder would wait that long for them, and an MDS that took a rank over
/// meanwhile waits for the session until it is evicted (NFSRecovery). Every peer whose NFS port does not
/// answer (three tries, two seconds apart) has the sessions of its NFS entity evicted (and blocklisted: a peer that was
/// only cut off cannot write behind the new holder's back). Peers that answer are left alone.
public struct NFSTakeoverCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "nfs-takeover",
        abstract: "Run by keepalived when this node takes the NFS floating address: evict the CephFS sessions of dead NFS peers.",
        discussion: """
            Example:
              aquarium-provision nfs-takeover --peer node-2=192.0.2.12   # keepalived
            """,
        shouldDisplay: false)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions

    @Option(help: "The CephFS file system the exports are on.")
    public var filesystem: String = "cephfs"

    @Option(name: .customLong("peer"), help: "Another NFS node as NAME=ADDRESS (repeatable).")
    public var peers: [String] = []

    @Option(help: ArgumentHelp("Append the log to this file (keepalived discards a notify script's output).", valueName: "file"))
    public var log: String?

    @Option(help: ArgumentHelp("The floating address: start its NFS server on this node once the dead peers' sessions are gone.",
                               valueName: "address"))
    public var floatingAddress: String?

    /// How long a dead peer's eviction is retried; the NFS nodes' `maintenance watch` keeps looking afterwards.
    static let evictionDeadline: Double = 300
    /// How long a live previous holder of the address has to stop its floating server (keepalived told it to).
    static let handOverDeadline: Double = 30

    public init() {}

    public func run() throws {
        let layout = Layout(root: rootOptions.root, cluster: rootOptions.cluster)
        try NFSConfig.appendLog(to: log, "nfs-takeover \(peers.joined(separator: " "))")
        let logger = global.logger("aquarium.provision")
        let events = EventLog(path: layout.eventsFile)
        let tools = CephTools(layout: layout, logger: logger)
        // Held from here: an `nfs-release` keepalived runs meanwhile (the address left again) waits, then stops what
        // this started (seen in the QEMU rack: node 2 took the address, node 1 took it back a second later, and node
        // 2's release ran before its takeover started the server).
        let lock = floatingAddress == nil ? nil : try FloatingServerLock(layout)
        defer { lock?.release() }
        let target = "mds.\(filesystem):0"
        var evicted: [String] = [], failed: [String] = []
        for peer in peers {
            let parts = peer.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, IPAddress(parts[1]) != nil else {
                throw ValidationError("--peer \(peer): expected NAME=ADDRESS")
            }
            let (name, address) = (parts[0], parts[1])
            if NFSRecovery.answers(address) { continue }
            logger.notice("NFS peer \(name) (\(address)) does not answer on port \(Seed.NFS.port): evicting the sessions of nfs.\(name)")
            // The dead peer often held the active MDS too: then rank 0 is failing over while this runs and the eviction
            // fails until a standby has taken the rank; the peer's session survives the failover and keeps this
            // node's clients waiting (seen in RackTests: the read through the floating address hung for 240 s, and
            // evicting by hand released it at once). Try again for a while.
            let deadline = Date().addingTimeInterval(Self.evictionDeadline)
            var lastFailure = ""
            repeat {
                // By session id, found by `client_metadata.entity_id` (see `NFSRecovery.evict`): the MDS that took rank
                // 0 over rebuilt node 1's session from its journal without its auth name (seen in RackTests).
                guard let list = NFSRecovery.sessionList(target, tools: tools),
                      let sessions = NFSRecovery.deadNodeSessions(name: name, address: address, sessionList: list) else {
                    lastFailure = "cannot list the sessions of rank 0 of \(filesystem)"
                    logger.info("evicting nfs.\(name): \(lastFailure); trying again (the MDS may be failing over)")
                    sleep(5)
                    continue
                }
                if sessions.isEmpty {
                    // Complete only once the MDS has replayed its journal: in up:replay the sessions only the journal
                    // holds are not listed yet.
                    if NFSRecovery.hasReplayed(filesystem: filesystem, rank: 0, tools: tools) {
                        lastFailure = ""
                        break
                    }
                    lastFailure = "rank 0 of \(filesystem) has not replayed its journal yet"
                    logger.info("evicting nfs.\(name): no session listed, but \(lastFailure); looking again")
                    sleep(3)
                    continue
                }
                for id in sessions {
                    let result = NFSRecovery.evict(session: id, from: target, tools: tools)
                    lastFailure = result?.status == 0 ? "the MDS accepted the eviction of session \(id) but still lists it"
                        : "status \(result?.status ?? -1): \(result?.errorOutput.suffix(300) ?? "ceph did not run")"
                    logger.info("evicting session \(id) of nfs.\(name): status \(result?.status ?? -1)")
                }
                sleep(2)
            } while Date() < deadline
            if lastFailure.isEmpty {
                evicted.append(name)
            } else {
                logger.warning("could not evict nfs.\(name) within \(Int(Self.evictionDeadline)) s: \(lastFailure)")
                failed.append(name)
            }
        }
        var detail = evicted.isEmpty ? "took the floating address" : "took the floating address; evicted the NFS sessions of "
            + evicted.joined(separator: ", ")
        if !failed.isEmpty { detail += "; could not evict the NFS sessions of " + failed.joined(separator: ", ") }
        var started = false
        if let floatingAddress {
            guard let address = IPAddress(floatingAddress) else { throw ValidationError("--floating-address \(floatingAddress): not an IP address") }
            do {
                started = try startFloatingServer(address, layout: layout, tools: tools, logger: logger)
                if started { detail += "; started its NFS server (its clients reclaim their opens and locks in the grace period)" }
            } catch {
                detail += "; could not start its NFS server: \(error)"
                events.append(ProvisionEvent(event: "nfs.takeover", changed: !evicted.isEmpty, detail: detail))
                throw error
            }
        }
        events.append(ProvisionEvent(event: "nfs.takeover", changed: !evicted.isEmpty || started, detail: detail))
        print(evicted.isEmpty ? "no NFS peer to evict" : "evicted the NFS sessions of " + evicted.joined(separator: ", "))
    }

    /// Starts the floating address's NFS server here, unless it runs. Its sessions elsewhere go first: a dead holder's
    /// were evicted with its node; a live one (the address moved back to a node of higher priority) stops its server
    /// when keepalived tells it (`nfs-release`), and what is left after `handOverDeadline` is evicted. Then the server
    /// reads the recovery records its predecessor wrote (the same node id) and opens its grace period.
    func startFloatingServer(_ address: IPAddress, layout: Layout, tools: CephTools, logger: Logger) throws -> Bool {
        guard let identity = try ProvisionState.load(layout.stateFile).identity else {
            throw ValidationError("\(layout.stateFile) has no cluster identity: this node was never provisioned")
        }
        let launcher = Launchers.make(identity.launcher, layout: layout, logger: logger)
        let daemon = NFSConfig.floatingDaemon(layout)
        // keepalived runs `nfs-takeover` and `nfs-release` at once when the address comes and goes within a moment
        // (seen while a rack forms): one at a time (the caller holds FloatingServerLock), and the server is started
        // only while the address is still here.
        if launcher.isRunning(daemon) { return false }
        for attempt in 1...Self.startAttempts {
            waitForOtherFloatingServers(tools: tools, logger: logger)
            guard NFSConfig.holds(address) else {
                logger.notice("\(address) left this node before its NFS server started; not starting it")
                return false
            }
            let logStart = NFSConfig.logSize(NFSConfig.floatingLog(layout))
            let started = try launcher.ensureRunning(daemon)
            try launcher.confirmStarted()
            var gone = false
            try CephTools.wait("the floating NFS server to listen on \(address):\(Seed.NFS.port)", seconds: 60) {
                gone = !NFSConfig.holds(address)
                return gone || Ports.isListening(host: address.description, port: Seed.NFS.port)
            }
            if gone {
                // The address left while the server started: a second floating server would take the new holder's
                // CephFS session (NFS-Ganesha's reclaim of its predecessor's session).
                logger.notice("\(address) left this node while its NFS server started; stopping it")
                try launcher.stop(daemon)
                _ = NFSRecovery.evictFloating(at: identity.address.description, filesystem: filesystem, tools: tools)
                return false
            }
            // Seen in the QEMU rack: the floating server of a node the address had just left was still starting, with
            // the same session id, and this one could not mount CephFS ("Unable to mount Ceph cluster"); it listened
            // without its exports. Stopped, and started again once the other one is gone.
            if let failure = NFSConfig.exportFailure(log: NFSConfig.floatingLog(layout), from: logStart) {
                logger.warning("the floating NFS server started without its exports (attempt \(attempt) of \(Self.startAttempts)): \(failure)")
                try launcher.stop(daemon)
                _ = NFSRecovery.evictFloating(at: identity.address.description, filesystem: filesystem, tools: tools)
                continue
            }
            logger.notice("started the floating NFS server on \(address)")
            return started
        }
        throw ProvisionError.failed("the floating NFS server started without its exports \(Self.startAttempts) times; "
            + "see \(NFSConfig.floatingLog(layout))")
    }

    static let startAttempts = 3

    /// Waits up to `handOverDeadline` for the floating server's sessions elsewhere to go, then evicts what is left.
    func waitForOtherFloatingServers(tools: CephTools, logger: Logger) {
        let target = "mds.\(filesystem):0"
        let deadline = Date().addingTimeInterval(Self.handOverDeadline)
        var left: [(id: Int, address: String?)] = []
        repeat {
            guard let list = NFSRecovery.sessionList(target, tools: tools),
                  let sessions = NFSRecovery.sessions(of: NFSConfig.floatingUser, sessionList: list) else {
                sleep(2)
                continue
            }
            left = sessions
            if left.isEmpty { break }
            logger.info("the floating NFS server still has sessions at \(left.map { $0.address ?? "?" }); waiting for them to close")
            sleep(2)
        } while Date() < deadline
        for session in left {
            logger.notice("evicting session \(session.id) of \(NFSConfig.floatingUser) at \(session.address ?? "?")")
            _ = NFSRecovery.evict(session: session.id, from: target, tools: tools)
        }
    }
}

/// `aquarium-provision nfs-release`: run by keepalived when this node loses the NFS floating address (or keepalived
/// stops): stops the floating address's NFS server here, so that the new holder's takes its clients over.
public struct NFSReleaseCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "nfs-release",
        abstract: "Run by keepalived when this node loses the NFS floating address: stop its NFS server here.",
        discussion: """
            Example:
              aquarium-provision nfs-release --filesystem cephfs   # keepalived
            """,
        shouldDisplay: false)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions

    @Option(help: ArgumentHelp("Append the log to this file (keepalived discards a notify script's output).", valueName: "file"))
    public var log: String?

    @Option(help: "The CephFS file system the exports are on.")
    public var filesystem: String = "cephfs"

    public init() {}

    public func run() throws {
        let layout = Layout(root: rootOptions.root, cluster: rootOptions.cluster)
        try NFSConfig.appendLog(to: log, "nfs-release")
        let logger = global.logger("aquarium.provision")
        guard let identity = try ProvisionState.load(layout.stateFile).identity else { return }
        let launcher = Launchers.make(identity.launcher, layout: layout, logger: logger)
        let daemon = NFSConfig.floatingDaemon(layout)
        let lock = try FloatingServerLock(layout)
        defer { lock.release() }
        guard launcher.isRunning(daemon) else { return }
        try launcher.stop(daemon)
        // NFS-Ganesha keeps its CephFS session after it stopped (for a reclaim by itself): the new holder's server
        // would wait for it. Evicted here at once (the new holder's takeover evicts it after 30 s otherwise).
        let evicted = NFSRecovery.evictFloating(at: identity.address.description, filesystem: filesystem,
                                                tools: CephTools(layout: layout, logger: logger)) ?? []
        logger.notice("stopped the floating NFS server; evicted its sessions \(evicted)")
        EventLog(path: layout.eventsFile).append(ProvisionEvent(event: "nfs.release", changed: true,
                                                                detail: "lost the floating address; stopped its NFS server"))
        print("stopped the floating NFS server")
    }
}

/// Held while the floating address's NFS server is started or stopped on this node (an exclusive `flock` on
/// `ROOT/run/aquarium/nfs-floating.lock`): by the `nfs` step, `nfs-takeover` and `nfs-release`.
final class FloatingServerLock {
    private var descriptor: Int32

    init(_ layout: Layout) throws(ProvisionError) {
        let path = layout.pidDir + "/nfs-floating.lock"
        try Files.makeDirectory(layout.pidDir)
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .failed("cannot open \(path): \(String(cString: strerror(errno)))") }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                throw .failed("cannot lock \(path): \(reason)")
            }
        }
    }

    func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
