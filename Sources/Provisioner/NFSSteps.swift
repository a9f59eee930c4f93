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
        let server = FloatingNFSServer(address: address, filesystem: filesystem, nodeAddress: identity.address,
                                       layout: layout, launcher: launcher, tools: tools, logger: logger)
        let lock = try FloatingServerLock(layout)
        defer { lock.release() }
        if try Files.write(config, to: layout.floatingGaneshaConf), try server.stop(holding: lock) != nil {
            actions.append("wrote \(layout.floatingGaneshaConf)")
        }
        if try server.start(holding: lock) { actions.append("started the NFS server of \(address)") }
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
