import Foundation
import Seed
import TestSupport
import Testing
@testable import Provisioner

/// The NFS-Ganesha and keepalived configurations made from `services.nfs` (the daemons themselves run in ClusterTests
/// and RackTests).
@Suite struct NFSConfigTests {
    static let paths = ["shared": "/volumes/_nogroup/shared/0307199b", "media": "/volumes/_nogroup/media/e67dbb0c"]

    func render(_ service: Seed.NFS, bind: String? = "10.0.0.11") -> String {
        NFSConfig.ganesha(service, filesystem: "cephfs", paths: Self.paths, node: "node-01", cephConf: "/etc/ceph/ceph.conf",
                          bind: bind)
    }

    @Test func exportsWithAccessAndClients() throws {
        let media = Seed.NFSExport(name: "media", access: .ro, clients: [try #require(IPNetwork("10.0.0.0/24"))])
        let text = render(Seed.NFS(exports: [Seed.NFSExport(name: "shared"), media]))
        let exports: [String] = Array(text.components(separatedBy: "EXPORT {").dropFirst())
        try #require(exports.count == 2, "\(text)")
        #expect(exports[0].contains("Export_ID = 1;") && exports[0].contains("Path = \"/volumes/_nogroup/shared/0307199b\";")
                && exports[0].contains("Pseudo = \"/shared\";") && exports[0].contains("Access_Type = RW;")
                && !exports[0].contains("CLIENT"), "\(exports[0])")
        // A client list: nobody else gets in (export Access_Type None), the listed networks get the export's access.
        // The networks are unquoted: NFS-Ganesha reads a quoted "10.0.0.0/24" as a host name (found: NFS4ERR_NOENT).
        #expect(exports[1].contains("Export_ID = 2;") && exports[1].contains("    Access_Type = None;")
                && exports[1].contains("Clients = 10.0.0.0/24;") && exports[1].contains("        Access_Type = RO;"), "\(exports[1])")
        for export in exports {
            #expect(export.contains("Name = CEPH;") && export.contains("User_Id = \"nfs.node-01\";")
                    && export.contains("Filesystem = \"cephfs\";") && export.contains("Protocols = 4;"), "\(export)")
        }
        #expect(text.contains("Ceph_Conf = \"/etc/ceph/ceph.conf\";") && text.contains("Bind_addr = 10.0.0.11;"))
        // Recovery records in RADOS under the node's own id (not the host name, which NFS-Ganesha would use for its
        // CephFS session identity: servers sharing one took each other's sessions).
        #expect(text.contains("RecoveryBackend = rados_ng;") && text.contains("nodeid = \"node-01\";")
                && text.contains("userid = \"nfs.node-01\";") && text.contains("pool = \".aquarium\";"), "\(text)")
    }

    @Test(arguments: [
        (["4.1", "4.2"], "Minor_Versions = 1, 2;"),
        (["4.0", "4.1", "4.2"], "Minor_Versions = 0, 1, 2;"),
        (["4.2"], "Minor_Versions = 2;"),
    ])
    func versions(_ versions: [String], _ line: String) {
        #expect(render(Seed.NFS(versions: versions, exports: [Seed.NFSExport(name: "shared")])).contains(line))
    }

    @Test func noBindAddressOnASystemdNodeWithoutAVirtualAddress() {
        // Without a floating address a node's server listens on every address (on a node: systemd launcher).
        let text = render(Seed.NFS(exports: [Seed.NFSExport(name: "shared")]), bind: nil)
        #expect(!text.contains("Bind_addr"))
    }

    /// The floating address's server: every NFS node renders the same recovery node id and Ceph user (the next holder
    /// reads its predecessor's client records; the MDS hands a session over only to the same user), bound to the
    /// floating address, and not started at boot (keepalived starts it where the address is).
    @Test func floatingServer() throws {
        let text = NFSConfig.ganesha(Seed.NFS(exports: [Seed.NFSExport(name: "shared")]), filesystem: "cephfs", paths: Self.paths,
                                     node: NFSConfig.floatingNode, cephConf: "/etc/ceph/ceph.conf", bind: "10.77.0.100")
        #expect(text.contains("nodeid = \"virtual_ip\";") && text.contains("userid = \"nfs.virtual_ip\";")
                && text.contains("User_Id = \"nfs.virtual_ip\";") && text.contains("Bind_addr = 10.77.0.100;"), "\(text)")
        // What a `maintenance watch` round reads back from it.
        #expect(NFSConfig.bindAddress(in: text) == IPAddress("10.77.0.100") && NFSConfig.filesystem(in: text) == "cephfs")
        #expect(NFSConfig.bindAddress(in: render(Seed.NFS(exports: [Seed.NFSExport(name: "shared")]), bind: nil)) == nil)
        let layout = Layout(root: "/tmp/r")
        let daemon = NFSConfig.floatingDaemon(layout)
        #expect(daemon.configPath == "/tmp/r/etc/ganesha/ganesha-floating.conf" && !daemon.atBoot
                && daemon.arguments.contains("/tmp/r/run/ganesha-floating.pid") && layout.daemonConfigs.contains(daemon.configPath))
        let unit = SystemdLauncher.renderUnit(daemon, cluster: "ceph")
        #expect(!unit.contains("[Install]") && unit.contains("Restart=no\n") && unit.contains("ExecStart="), "\(unit)")
        var own = daemon
        own.atBoot = true
        #expect(SystemdLauncher.renderUnit(own, cluster: "ceph").hasSuffix("TimeoutStopSec=60\n\n[Install]\nWantedBy=multi-user.target\n"))
    }

    @Test func keepalived() throws {
        let text = NFSConfig.keepalived(address: try #require(IPAddress("10.77.0.100")), prefixLength: 24, interface: "eth0",
                                        routerID: 42, priority: 190, name: "node-2",
                                        takeover: ["/usr/bin/aquarium-provision", "nfs-takeover", "--root", "/", "--peer", "node-1=10.77.0.1"],
                                        release: ["/usr/bin/aquarium-provision", "nfs-release", "--root", "/"])
        for line in ["virtual_router_id 42", "priority 190", "interface eth0", "10.77.0.100/24 dev eth0", "state BACKUP",
                     "router_id aquarium-node-2", "script_user root",
                     "notify_master \"/usr/bin/aquarium-provision nfs-takeover --root / --peer node-1=10.77.0.1\"",
                     "notify_backup \"/usr/bin/aquarium-provision nfs-release --root /\"",
                     "notify_fault \"/usr/bin/aquarium-provision nfs-release --root /\"",
                     "notify_stop \"/usr/bin/aquarium-provision nfs-release --root /\""] {
            #expect(text.contains(line), "\(line) in \(text)")
        }
    }

    @Test func routerIDIsStableAndInRange() {
        let fsids = (0..<200).map { _ in UUID().uuidString.lowercased() }
        for fsid in fsids {
            let id = NFSConfig.routerID(fsid: fsid)
            #expect((1...255).contains(id) && id == NFSConfig.routerID(fsid: fsid))
        }
        #expect(Set(fsids.map(NFSConfig.routerID)).count > 100, "router ids spread over 1...255")
    }

    @Test func interfaceHoldingAnAddress() throws {
        let json = """
        [{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
         {"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.77.0.2","prefixlen":24},
                                                   {"family":"inet6","local":"fd77::2","prefixlen":64}]}]
        """
        #expect(NFSConfig.interface(holding: try #require(IPAddress("10.77.0.2")), in: json) == NFSConfig.Link(name: "eth0", prefixLength: 24))
        #expect(NFSConfig.interface(holding: try #require(IPAddress("fd77::2")), in: json) == NFSConfig.Link(name: "eth0", prefixLength: 64))
        #expect(NFSConfig.interface(holding: try #require(IPAddress("10.77.0.9")), in: json) == nil)
        #expect(NFSConfig.interface(holding: try #require(IPAddress("10.77.0.2")), in: "not json") == nil)
    }
}

/// `nfs-takeover` and `nfs-release` (run by keepalived at once when the address comes and goes) start and stop the
/// floating server one at a time.
@Suite struct FloatingServerLockTests {
    @Test func oneHolderAtATime() throws {
        try withTemporaryDirectory { directory in
            let layout = Layout(root: directory)
            let first = try FloatingServerLock(layout)
            let taken = Slots<Date>(count: 1)
            let thread = Thread {
                if let second = try? FloatingServerLock(layout) {
                    taken.set(0, Date())
                    second.release()
                }
            }
            thread.start()
            sleep(1)
            let released = Date()
            first.release()
            taken.waitUntilFull()
            let when = try #require(taken.values[0])
            #expect(when >= released, "the second holder got the lock while the first held it")
            #expect(FileManager.default.fileExists(atPath: directory + "/run/aquarium/nfs-floating.lock"))
        }
    }
}

/// NFS-Ganesha listens even when it could not make an export; its log since the start says so (lines from a QEMU rack).
@Suite struct NFSExportFailureTests {
    @Test func onlyTheLogSinceThisStartCounts() throws {
        try withTemporaryDirectory { directory in
            let log = directory + "/ganesha-floating.log"
            let earlier = "01/12/2026 02:10:00 : epoch 1 : rack-node-1 : ganesha.nfsd-9[main] create_export :FSAL :CRIT :Unable to mount Ceph cluster for /volumes/a.\n"
            try earlier.write(toFile: log, atomically: true, encoding: .utf8)
            let offset = NFSConfig.logSize(log)
            #expect(offset == earlier.utf8.count)
            #expect(NFSConfig.exportFailure(log: log, from: 0)?.contains("Unable to mount Ceph cluster") == true)
            let fine = "01/12/2026 02:11:21 : epoch 2 : rack-node-1 : ganesha.nfsd-10[main] nfs_start :NFS STARTUP :EVENT :NFS SERVER INITIALIZED\n"
            try (earlier + fine).write(toFile: log, atomically: true, encoding: .utf8)
            #expect(NFSConfig.exportFailure(log: log, from: offset) == nil)
            let failed = "01/12/2026 02:11:20 : epoch 2 : rack-node-1 : ganesha.nfsd-10[main] fsal_cfg_commit :CONFIG :CRIT :Could not create export for (/shared)\n"
            try (earlier + failed + fine).write(toFile: log, atomically: true, encoding: .utf8)
            #expect(NFSConfig.exportFailure(log: log, from: offset) == " fsal_cfg_commit :CONFIG :CRIT :Could not create export for (/shared)")
            #expect(NFSConfig.exportFailure(log: directory + "/missing.log", from: 0) == nil)
        }
    }
}
