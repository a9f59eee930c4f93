import Exec
import Foundation
import TestSupport
import Testing
@testable import Provisioner

/// A rack formed from rack seeds: nodes in network namespaces of their own (a NetworkLab), each run by the process
/// launcher in its seed's networks. Every daemon is stopped, the namespaces removed and the loop devices detached at
/// the end, also when a check fails.
@Suite(.serialized) struct RackTests {
    /// The rack's cluster as `aquarium-image rack seeds` decided it (its `secrets.yaml`).
    struct RackSecrets {
        var fsid: String
        var monitorKey: String
        var adminKey: String
        var joinKey: String

        init(file: String) throws {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            func value(_ key: String) throws -> String {
                let line = try #require(text.split(separator: "\n").first { $0.hasPrefix(key + ": ") }, "no \(key) in \(file)")
                return line.dropFirst(key.count + 2).trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
            }
            fsid = try value("fsid")
            monitorKey = try value("monitor_key")
            adminKey = try value("admin_key")
            joinKey = try value("join_key")
        }
    }

    /// Writes a rack file for the lab's hosts (serials RACK-N, static addresses on eth0, the cluster network unless
    /// IPv6, an RBD pool), makes the seeds with `aquarium-image rack seeds` and gives each node its own.
    static func makeSeeds(_ nodes: [RackNode], directory: String, ipv6: Bool = false,
                          services: String = "    rbd:\n") throws -> RackSecrets {
        var rack = "version: 1\ncluster:\n"
        rack += ipv6 ? "  public_network: \(NetworkLab.publicNetworkIPv6)\n"
            : "  public_network: \(NetworkLab.publicNetwork)\n  cluster_network: \(NetworkLab.clusterNetwork)\n"
        rack += "  services:\n" + services + "nodes:\n"
        for node in nodes {
            let host = node.host
            rack += "  - {hostname: \(host.name), serial: RACK-\(host.index), interface: eth0, "
                + (ipv6 ? "address: \"\(host.publicIPv6)/64\"}\n"
                    : "address: \(host.publicIPv4)/24, cluster_address: \(host.clusterIPv4)/24}\n")
        }
        try rack.write(toFile: directory + "/rack.yaml", atomically: true, encoding: .utf8)
        let made = try Command(try Products.path("aquarium-image"), ["rack", "seeds", directory + "/rack.yaml",
                                                                      "--output", directory + "/rack"])
            .run(acceptedStatuses: Set(0...255))
        try #require(made.status == 0, "\(made.errorOutput)")
        for node in nodes {
            try? FileManager.default.removeItem(atPath: node.node.seed)
            try FileManager.default.copyItem(atPath: directory + "/rack/seeds/RACK-\(node.host.index).yaml", toPath: node.node.seed)
        }
        return try RackSecrets(file: directory + "/rack/secrets.yaml")
    }

    struct RackNode {
        var node: JoinTests.Node
        var host: NetworkLab.Host

        var provisioner: String { get throws { try Products.path("aquarium-provision") } }

        /// One node per lab host, each with the loop device of the same index as its storage disk.
        static func make(_ lab: NetworkLab, loops: [LoopDevice], directory: String) throws -> [RackNode] {
            try lab.hosts.indices.map { index in
                RackNode(node: try JoinTests.Node(directory: directory + "/\(index + 1)", hostname: lab.hosts[index].name,
                                                  disk: loops[index]),
                         host: lab.hosts[index])
            }
        }

        func run(_ extra: [String] = []) throws -> CommandResult {
            try host.command(try provisioner, ["run", "--seed", node.seed, "--node-record", node.record, "--root", node.root,
                                               "--launcher", "process", "--seed-network", "--rack-timeout", "300"] + extra)
                .run(acceptedStatuses: Set(0...255))
        }

        /// `ceph ARGS --format json` as this node's client (the admin on a monitor node).
        func ceph(_ arguments: [String]) throws -> Any {
            let result = try host.command("timeout", ["60", "ceph", "-c", node.conf] + arguments + ["--format", "json"]).run()
            return try JSONSerialization.jsonObject(with: result.standardOutput)
        }

        func rados(_ arguments: [String]) throws -> CommandResult {
            try host.command("timeout", ["60", "rados", "-c", node.conf] + arguments).run(acceptedStatuses: Set(0...255))
        }
    }

    /// Three monitor nodes started at once in random order form one cluster: 3 monitors in quorum, a manager on each
    /// (one active), 3 CRUSH hosts, pools at 3/2, HEALTH_OK. All processes of the first monitor's node are killed:
    /// objects are still written and read from another node, health names the lost host and monitor, and a reconcile
    /// on another monitor node still grows a new pool. The first node comes back (HEALTH_OK, objects intact); a
    /// storage node with a foreign cluster's fsid is refused with nothing created; a fourth node joins later.
    @Test(.requires(programs: JoinTests.programs + ["ip", "rados"])) func threeMonitorsFormLoseTheFirstAndGrow() throws {
        try withTemporaryDirectory { directory in
            try LoopDevice.withMany(Array(repeating: JoinTests.disk, count: 4)) { loops in
                try NetworkLab.with(hosts: 4, clusterNetwork: true) { lab in
                    let nodes = try RackTests.RackNode.make(lab, loops: loops, directory: directory)
                    defer {
                        for node in nodes.reversed() { _ = try? node.node.provision(["stop", "--root", node.node.root]) }
                    }
                    // Four nodes in the rack file: the first three are its monitors, the fourth a storage node.
                    // NFS on the three monitor nodes, its floating address held by one of them (4.0 too: the client
                    // here is libnfs, which speaks NFSv4.0 only; this kernel has no NFS client).
                    let secrets = try Self.makeSeeds(nodes, directory: directory, services: """
                            rbd:
                            cephfs:
                            nfs:
                              virtual_ip: \(Self.nfsAddress)
                              versions: [4.0, 4.1, 4.2]
                              exports: [{name: shared}]

                        """)

                    // 1. The three monitor nodes at once, in random order.
                    let order = Array(nodes.prefix(3)).shuffled()
                    let results = Slots<Result<CommandResult, any Error>>(count: 3)
                    let threads = order.enumerated().map { index, node in
                        Thread { results.set(index, Result { try node.run(["--json"]) }) }
                    }
                    for thread in threads { thread.start() }
                    results.waitUntilFull()
                    for (index, result) in results.values.enumerated() {
                        let run = try #require(result).get()
                        #expect(run.status == 0, "\(order[index].host.name): \(run.errorOutput.suffix(3000))")
                    }
                    let second = nodes[1]
                    let quorum = (try second.ceph(["quorum_status"]) as? [String: Any])?["quorum_names"] as? [String] ?? []
                    #expect(Set(quorum) == ["node-1", "node-2", "node-3"], "\(quorum)")
                    let mgr = try second.ceph(["mgr", "dump"]) as? [String: Any]
                    let standbys = (mgr?["standbys"] as? [[String: Any]])?.count ?? 0
                    #expect(mgr?["available"] as? Bool == true && standbys == 2, "active \(mgr?["active_name"] ?? "?"), \(standbys) standbys")
                    #expect(try hostsWithOSDs(second) == ["node-1", "node-2", "node-3"])
                    let pools = try poolSizes(second)
                    #expect(!pools.isEmpty && pools.values.allSatisfy { $0 == [3, 2] }, "\(pools)")
                    let settled = try healthOK(second)
                    #expect(settled.status == "HEALTH_OK", "\(settled.checks)")
                    // The OSDs replicate on the cluster network: their back addresses are there, their front ones public.
                    let osds = ((try second.ceph(["osd", "dump"]) as? [String: Any])?["osds"] as? [[String: Any]]) ?? []
                    #expect(osds.count == 3)
                    for osd in osds {
                        #expect((osd["cluster_addr"] as? String ?? "").hasPrefix("10.78.0."), "\(osd)")
                        #expect((osd["public_addr"] as? String ?? "").hasPrefix("10.77.0."), "\(osd)")
                    }
                    // The cluster benchmark from a monitor node: its own OSD disk read, the round trip to the other two
                    // hosts' OSDs on the public network and a TCP stream to each (taken by their maintenance watch), the
                    // scratch pool at 3 copies and gone afterwards.
                    if let bench = try Self.bench(from: second, watchers: [nodes[0], nodes[2]]) {
                        #expect(bench.peers.map(\.host) == ["node-1", "node-3"]
                                && bench.peers.allSatisfy { $0.address.hasPrefix("10.77.0.") && $0.roundTripMs > 0 }, "\(bench.peers)")
                        #expect(bench.peers.allSatisfy { ($0.streamMBps ?? 0) > 0 }, "\(bench.peers)")
                        #expect(bench.disks.count == 1 && bench.replicas == 3 && bench.radosWriteMBps > 0 && bench.rbdWriteIOPS > 0)
                        #expect(abs(bench.disksReadMBps - bench.disks[0].sequentialReadMBps * 3) < 0.001, "three hosts alike")
                        #expect(try poolSizes(second)[bench.pool] == nil, "the scratch pool \(bench.pool) was left")
                    }

                    // Node 1 holds the active MDS too (failed over to it when another node's took the rank): the
                    // case seen to fail in CI, where the MDS taking the rank over after node 1's death waited for
                    // node 1's NFS session.
                    let active = try moveRank0(to: "node-1", via: second)
                    #expect(active == "node-1", "rank 0 of cephfs is held by \(active ?? "nobody")")

                    // 1b. NFS through the floating address, from node 4 (a client on the public network): the rack's
                    // first monitor node (highest VRRP priority) holds it.
                    #expect(try nfsAddressHolders(nodes, until: { $0 == ["node-1"] }) == ["node-1"])
                    let nfsPayload = directory + "/nfs-payload"
                    try "written through the floating address".write(toFile: nfsPayload, atomically: true, encoding: .utf8)
                    let nfsCopy = try nodes[3].host.command("timeout", ["60", "nfs-cp", nfsPayload, Self.nfsURL("/shared/file")])
                        .run(acceptedStatuses: Set(0...255))
                    #expect(nfsCopy.status == 0, "\(nfsCopy.output) \(nfsCopy.errorOutput); node 1's NFS-Ganesha: \(ganeshaLog(nodes[0].node.root, floating: true))")
                    #expect(try nfsRead(nodes[3], "/shared/file") == "written through the floating address")
                    // A client on node 4 holds a write lock on a file through the floating address, renewing its lease
                    // and reclaiming the lock when its server restarts (Tests/Tools/nfs4-lock.py: NFSv4.0, as a
                    // kernel client does it; libnfs does not reclaim). Another client is denied the lock.
                    let lockLog = directory + "/nfs-lock.log"
                    let lockHolder = try nodes[3].host.command("python3", [Self.lockTool, "hold", Self.nfsAddress, "/shared/lockfile", lockLog])
                        .start()
                    defer { _ = lockHolder.terminate(grace: 5) }
                    #expect(try waitForLine(in: lockLog, containing: "locked /shared/lockfile", seconds: 60), "\(Files.read(lockLog) ?? "")")
                    #expect(try lockTest(nodes[3]) == "denied")

                    // 2. Objects written from node 2, read back from node 3.
                    let payload = directory + "/payload"
                    try Data((0..<65536).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: payload))
                    #expect(try second.rados(["-p", "rbd", "put", "before", payload]).status == 0)

                    // 3. Node 1 (the first monitor, the services' node) loses power.
                    lab.killAll(in: nodes[0].host)
                    let written = try second.rados(["-p", "rbd", "put", "during", payload])
                    #expect(written.status == 0, "\(written.errorOutput)")
                    let readBack = directory + "/read-during"
                    let read = try nodes[2].rados(["-p", "rbd", "get", "before", readBack])
                    #expect(read.status == 0 && FileManager.default.contents(atPath: readBack) == FileManager.default.contents(atPath: payload),
                            "\(read.errorOutput)")
                    // Health names the lost host and its monitor (once the monitors and OSDs noticed).
                    var detail = ""
                    let deadline = Date().addingTimeInterval(90)
                    repeat {
                        let text = try second.host.command("timeout", ["60", "ceph", "-c", second.node.conf, "health", "detail"])
                            .run(acceptedStatuses: Set(0...255)).output
                        detail = text
                        if text.contains("mon.node-1") && text.contains("node-1") && text.contains("OSD_HOST_DOWN") { break }
                        sleep(2)
                    } while Date() < deadline
                    #expect(detail.contains("MON_DOWN") && detail.contains("mon.node-1") && detail.contains("OSD_HOST_DOWN"), "\(detail)")
                    // The floating address moved to another NFS node (node 1's interface went with its power: the
                    // address is taken off it), and the client reads its file through the same address again once
                    // a standby MDS took over node 1's.
                    // (keepalived's VRRP process, killed with its parent, may already have taken it off.)
                    _ = try nodes[0].host.command("ip", ["address", "del", Self.nfsAddress + "/24", "dev", "eth0"])
                        .run(acceptedStatuses: Set(0...255))
                    let holders = try nfsAddressHolders(nodes, until: { $0.count == 1 && $0 != ["node-1"] })
                    #expect(holders == ["node-2"] || holders == ["node-3"], "\(holders)")
                    var failedOver = ""
                    var lastError = ""
                    // (The new holder's floating server opens a grace period once node 1's sessions are evicted: the
                    // read's new open waits it out.)
                    let nfsDeadline = Date().addingTimeInterval(360)
                    repeat {
                        do {
                            failedOver = try nfsRead(nodes[3], "/shared/file")
                        } catch {
                            lastError = "\(error)"
                        }
                        if failedOver == "written through the floating address" { break }
                        sleep(3)
                    } while Date() < nfsDeadline
                    let holderRoot = nodes.first { $0.host.name == holders.first }?.node.root ?? ""
                    let fsDump = (try? second.host.command("timeout", ["30", "ceph", "-c", second.node.conf, "fs", "dump"]).run().output) ?? "?"
                    let holderLog = ganeshaLog(holderRoot, floating: true)
                    // Seen once in CI: rank 0's new MDS stayed in up:clientreplay past the deadline (node 1's NFS
                    // session evicted); its sessions and the health say which client it waits for, next time.
                    var sessions = "", health = ""
                    if failedOver != "written through the floating address" {
                        sessions = (try? second.host.command("timeout", ["30", "ceph", "-c", second.node.conf, "tell", "mds.cephfs:0",
                                                                         "session", "ls"]).run(acceptedStatuses: Set(0...255)).output) ?? "?"
                        health = (try? second.host.command("timeout", ["30", "ceph", "-c", second.node.conf, "health", "detail"])
                            .run(acceptedStatuses: Set(0...255)).output) ?? "?"
                        // What the takeover did, and what the MDS daemons logged of sessions, evictions and reclaims.
                        for node in nodes.prefix(3) {
                            let logs = node.node.root + "/var/log/ceph/"
                            health += "\n\(node.host.name)'s nfs-takeover: " + ((try? String(contentsOfFile: logs + "nfs-takeover.log", encoding: .utf8)) ?? "none")
                            let mds = (try? String(contentsOfFile: logs + "ceph-mds.\(node.host.name).log", encoding: .utf8)) ?? ""
                            health += "\n\(node.host.name)'s MDS: " + mds.split(separator: "\n").filter {
                                $0.contains("vict") || $0.contains("eclaim") || $0.contains("state change") || $0.contains("reconnect")
                                    || $0.contains("session") || $0.contains("blocklist")
                            }.suffix(60).joined(separator: "\n")
                        }
                    }
                    #expect(failedOver == "written through the floating address",
                            "last error: \(lastError); \(holders)'s NFS-Ganesha: \(holderLog)\nfs dump: \(fsDump)\nMDS sessions: \(sessions)\nhealth: \(health)")
                    // The new holder evicted node 1's NFS session, retrying while the MDS rank node 1 also held failed
                    // over (a CI run: the one try failed during that failover, the session stayed, the read hung).
                    // (Its event is written once the session list no longer has the session: the read may be back first.)
                    var takeovers: [String] = []
                    let takeoverDeadline = Date().addingTimeInterval(60)
                    repeat {
                        takeovers = EventLog(path: holderRoot + "/var/lib/aquarium/events.jsonl").read()
                            .filter { $0.event == "nfs.takeover" }.compactMap(\.detail)
                        if takeovers.contains(where: { $0.contains("evicted the NFS sessions of node-1") }) { break }
                        sleep(2)
                    } while Date() < takeoverDeadline
                    let takeoverLog = (try? String(contentsOfFile: holderRoot + "/var/log/ceph/nfs-takeover.log", encoding: .utf8)) ?? ""
                    #expect(takeovers.contains { $0.contains("evicted the NFS sessions of node-1") && $0.contains("started its NFS server") },
                            "\(takeovers)\n\(takeoverLog)")
                    // The lock survived the move: its holder reclaimed it from the new holder's floating server (which
                    // read node 1's server's client records: one recovery node id for the address), and another
                    // client is still denied it. Without those records the reclaim is refused (NFS4ERR_NO_GRACE).
                    #expect(try waitForLine(in: lockLog, containing: "reclaimed the lock", seconds: 120),
                            "\(Files.read(lockLog) ?? "")\n\(holders)'s floating NFS-Ganesha: \(ganeshaLog(holderRoot, floating: true))")
                    #expect(try lockTest(nodes[3]) == "denied", "\(Files.read(lockLog) ?? "")")

                    // 4. Reconcile from node 2 with node 1 gone: a pool made at size 1 grows to 3/2; only health fails.
                    try second.host.command("timeout", ["60", "ceph", "-c", second.node.conf, "osd", "pool", "create", "late", "8"]).run()
                    try second.host.command("timeout", ["60", "ceph", "-c", second.node.conf, "osd", "pool", "set", "late", "size", "1",
                                                        "--yes-i-really-mean-it"]).run()
                    let reconcile = try second.run(["--health-timeout", "5"])
                    #expect(reconcile.status == 1 && reconcile.errorOutput.contains("HEALTH"), "\(reconcile.errorOutput)")
                    let grown = second.node.events.read().last { $0.event == "step.done" && $0.step == "replication" }
                    #expect(grown?.detail?.contains("late 1→3") == true, "\(String(describing: grown))")
                    #expect(try poolSizes(second)["late"] == [3, 2])

                    // 5. Node 1 comes back: HEALTH_OK, the objects intact on it.
                    let back = try nodes[0].run(["--json"])
                    #expect(back.status == 0, "\(back.errorOutput.suffix(2000))")
                    for name in ["before", "during"] {
                        let file = directory + "/read-\(name)-1"
                        #expect(try nodes[0].rados(["-p", "rbd", "get", name, file]).status == 0)
                        #expect(FileManager.default.contents(atPath: file) == FileManager.default.contents(atPath: payload), "\(name)")
                    }

                    // 5b. Node 1, back, takes the floating address back (the highest VRRP priority): the node that held
                    // it stops its floating server when keepalived tells it, node 1 starts its own, and the lock holder
                    // reclaims its lock a second time, now from node 1.
                    #expect(try nfsAddressHolders(nodes, until: { $0 == ["node-1"] }) == ["node-1"])
                    #expect(try waitForLine(in: lockLog, containing: "reclaimed the lock", seconds: 180, count: 2),
                            "\(Files.read(lockLog) ?? "")\nnode 1's floating NFS-Ganesha: \(ganeshaLog(nodes[0].node.root, floating: true))")
                    #expect(try lockTest(nodes[3]) == "denied", "\(Files.read(lockLog) ?? "")")
                    let releases = EventLog(path: holderRoot + "/var/lib/aquarium/events.jsonl").read().filter { $0.event == "nfs.release" }
                    #expect(!releases.isEmpty, "\(holders) did not stop its floating NFS server")

                    // 5c. Node 1's floating server dies (kill -9) while node 1 keeps the address: nothing restarts it
                    // (its unit has Restart=no: it may run only where the address is) until node 1's maintenance watch
                    // starts it again, the same way keepalived's takeover does; the lock holder reclaims its lock a
                    // third time, and another client is still denied it.
                    let floatingPidFile = nodes[0].node.root + "/run/aquarium/ceph-\(NFSConfig.floatingUser).pid"
                    let floatingPid = Int32((Files.read(floatingPidFile) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                    #expect(floatingPid > 0, "no pid in \(floatingPidFile)")
                    if floatingPid > 0 { kill(floatingPid, SIGKILL) }
                    #expect(try waitForLine(in: lockLog, containing: "lost the server", seconds: 60, count: 3), "\(Files.read(lockLog) ?? "")")
                    let restart = try nodes[0].host.command(try nodes[0].provisioner, ["maintenance", "watch", "--once", "--root", nodes[0].node.root])
                        .run(acceptedStatuses: Set(0...255))
                    #expect(restart.status == 0, "\(restart.errorOutput.suffix(2000))")
                    // (The watch records its events in the cluster's log.)
                    let listed = try nodes[0].host.command(try nodes[0].provisioner, ["events", "--root", nodes[0].node.root, "--json"])
                        .run(acceptedStatuses: Set(0...255))
                    let restarts = ((try? JSONDecoder().decode(ClusterEventsReport.self, from: listed.standardOutput))?.events ?? [])
                        .filter { $0.event == "nfs.floating.restarted" }
                    #expect(restarts.contains { $0.host == "node-1" && ($0.detail ?? "").contains("started the NFS server of \(Self.nfsAddress) again") },
                            "\(restarts.map { $0.detail ?? "" }); the watch said: \(restart.errorOutput.suffix(2000))")
                    #expect(try waitForLine(in: lockLog, containing: "reclaimed the lock", seconds: 180, count: 3),
                            "\(Files.read(lockLog) ?? "")\nnode 1's floating NFS-Ganesha: \(ganeshaLog(nodes[0].node.root, floating: true))")
                    #expect(try lockTest(nodes[3]) == "denied", "\(Files.read(lockLog) ?? "")")
                    _ = lockHolder.terminate(grace: 5)

                    // 6. A storage seed of another cluster (same key, foreign fsid) is refused; nothing is created.
                    let fourth = nodes[3]
                    let ownSeed = try String(contentsOfFile: fourth.node.seed, encoding: .utf8)
                    try ownSeed.replacingOccurrences(of: secrets.fsid, with: UUID().uuidString.lowercased())
                        .write(toFile: fourth.node.seed, atomically: true, encoding: .utf8)
                    let foreign = try fourth.run()
                    #expect(foreign.status == 3, "\(foreign.errorOutput)")
                    #expect(try JoinTests.isEmpty(loops[3]))

                    // 7. The fourth node joins later, as a storage node of the rack: 4 hosts, HEALTH_OK.
                    try ownSeed.write(toFile: fourth.node.seed, atomically: true, encoding: .utf8)
                    let joined = try fourth.run(["--json"])
                    #expect(joined.status == 0, "\(joined.errorOutput.suffix(2000))")
                    #expect(try hostsWithOSDs(second) == ["node-1", "node-2", "node-3", "node-4"])
                    #expect(try JoinTests.report(joined).health == "HEALTH_OK")
                    let conf = try String(contentsOfFile: fourth.node.conf, encoding: .utf8)
                    #expect(conf.contains("mon_host = [v2:10.77.0.1:3300,v1:10.77.0.1:3301],[v2:10.77.0.2:3300"), "\(conf)")
                    // A storage node's seed holds no monitor or admin key, and it has no admin keyring.
                    let seedText = try String(contentsOfFile: fourth.node.seed, encoding: .utf8)
                    #expect(!seedText.contains(secrets.adminKey) && !seedText.contains(secrets.monitorKey))
                    #expect(!FileManager.default.fileExists(atPath: fourth.node.root + "/etc/ceph/ceph.client.admin.keyring"))

                    // 7b. A monitor node's watch gives node 4 a key of its own (sealed with node 4's OSD key); node 4's
                    // watch writes it (0600). Then the join key is revoked: node 4's next run still succeeds, as itself.
                    let issued = try second.host.command(try second.provisioner, ["maintenance", "watch", "--once", "--root", second.node.root])
                        .run(acceptedStatuses: Set(0...255))
                    #expect(issued.status == 0, "\(issued.errorOutput)")
                    #expect(try second.rados(["-p", ".aquarium", "stat", "nodekey.node-4"]).status == 0)
                    for monitorHost in ["node-1", "node-2", "node-3"] {
                        #expect(try second.rados(["-p", ".aquarium", "stat", "nodekey.\(monitorHost)"]).status != 0, "\(monitorHost)")
                    }
                    let taken = try fourth.host.command(try fourth.provisioner, ["maintenance", "watch", "--once", "--root", fourth.node.root])
                        .run(acceptedStatuses: Set(0...255))
                    #expect(taken.status == 0, "\(taken.errorOutput)")
                    let nodeKeyring = fourth.node.root + "/etc/ceph/ceph.client.aquarium-node.node-4.keyring"
                    #expect((try? FileManager.default.attributesOfItem(atPath: nodeKeyring)[.posixPermissions] as? Int) == 0o600)
                    #expect(!taken.output.contains(secrets.joinKey) && !taken.errorOutput.contains(secrets.joinKey))
                    let revoked = try second.host.command(try second.provisioner, ["join-token", "--revoke", "--root", second.node.root])
                        .run(acceptedStatuses: Set(0...255))
                    #expect(revoked.status == 0, "\(revoked.errorOutput)")
                    let joinGone = try second.host.command("timeout", ["60", "ceph", "-c", second.node.conf, "auth", "get", "client.aquarium-join"])
                        .run(acceptedStatuses: Set(0...255))
                    #expect(joinGone.status != 0, "the join key is still there")
                    let afterRevoke = try fourth.run(["--json"])
                    #expect(afterRevoke.status == 0, "\(afterRevoke.errorOutput.suffix(2000))")
                    #expect(try JoinTests.report(afterRevoke).health == "HEALTH_OK")

                    // 8. Node 1 dies for good and is removed: its data moves to the others, and the storage node 4 (its
                    // `maintenance watch` running, as aquarium-maintenance.service does) is asked to run the third monitor.
                    let watch = try fourth.host.command(try fourth.provisioner, ["maintenance", "watch", "--interval", "1",
                                                                                 "--root", fourth.node.root]).start()
                    defer { _ = watch.terminate(grace: 5) }
                    // Its first round reads the monitor map as the storage node it is (no admin key): ceph.conf's
                    // mon_host follows the map from now on.
                    let learnedFile = fourth.node.root + "/var/lib/aquarium/monitors.json"
                    func learnedNames(_ file: String) -> [String] {
                        (FileManager.default.contents(atPath: file).flatMap { try? JSONDecoder().decode(LearnedMonitors.self, from: $0) })?
                            .monitors.map(\.name) ?? []
                    }
                    for _ in 0..<30 where learnedNames(learnedFile).isEmpty { sleep(1) }
                    #expect(learnedNames(learnedFile) == ["node-1", "node-2", "node-3"])
                    // This time without a floating address to move (keepalived stopped on nodes 2 and 3: no takeover),
                    // and node 1 holding the active MDS again: a monitor node's watch finds the MDS that took the rank
                    // waiting in up:clientreplay for node 1's NFS session, and evicts it.
                    for node in nodes[1...2] {
                        try node.host.command("pkill", ["-f", "keepalived .*-f \(node.node.root)/etc/keepalived/keepalived.conf"]).run()
                    }
                    let holding = try moveRank0(to: "node-1", via: second)
                    #expect(holding == "node-1", "rank 0 of cephfs is held by \(holding ?? "nobody")")
                    lab.killAll(in: nodes[0].host)
                    var released: [ClusterEvent] = []
                    var activeAgain: String?
                    var lastRound = ""
                    let releaseDeadline = Date().addingTimeInterval(240)
                    repeat {
                        let round = try nodes[2].host.command(try nodes[2].provisioner, ["maintenance", "watch", "--once", "--root",
                                                                                       nodes[2].node.root])
                            .run(acceptedStatuses: Set(0...255))
                        lastRound = round.errorOutput
                        let listed = try nodes[2].host.command(try nodes[2].provisioner, ["events", "--root", nodes[2].node.root, "--json"])
                            .run(acceptedStatuses: Set(0...255))
                        released = ((try? JSONDecoder().decode(ClusterEventsReport.self, from: listed.standardOutput))?.events ?? [])
                            .filter { $0.event == "nfs.session.evicted" }
                        activeAgain = try activeMDS(nodes[2])
                        if !released.isEmpty && activeAgain != nil { break }
                        sleep(3)
                    } while Date() < releaseDeadline
                    #expect(released.contains { $0.host == "node-3" && ($0.detail ?? "").contains("of nfs.node-1 (10.77.0.1") },
                            "\(released.map { $0.detail ?? "" }); node 3's last watch round: \(lastRound)")
                    #expect(activeAgain == "node-2" || activeAgain == "node-3", "rank 0 of cephfs: \(activeAgain ?? "not active")")
                    // NFS through node 3's own address, from node 4.
                    let direct = try nodes[3].host.command("timeout", ["60", "nfs-cat", "nfs://10.77.0.3/shared/file?version=4"])
                        .run(acceptedStatuses: Set(0...255))
                    #expect(direct.output == "written through the floating address", "\(direct.errorOutput)")
                    let removal = try second.host.command(try second.provisioner, ["node", "remove", "node-1", "--timeout", "300",
                                                                                   "--root", second.node.root])
                        .run(acceptedStatuses: Set(0...255))
                    #expect(removal.status == 0, "\(removal.errorOutput.suffix(3000))")
                    let monitorsNow = (try second.ceph(["quorum_status"]) as? [String: Any])?["quorum_names"] as? [String] ?? []
                    #expect(Set(monitorsNow) == ["node-2", "node-3", "node-4"], "\(monitorsNow)")
                    #expect(try hostsWithOSDs(second) == ["node-2", "node-3", "node-4"])
                    let request = try second.rados(["-p", ".aquarium", "stat", "monitor.node-4"])
                    #expect(request.status != 0, "the monitor request was not removed once done")
                    // Node 4 is a monitor node now: the admin key, its monitor kept by its runs, a manager made by them.
                    #expect(FileManager.default.fileExists(atPath: fourth.node.root + "/etc/ceph/ceph.client.admin.keyring"))
                    let promoted = try fourth.run(["--json"])
                    #expect(promoted.status == 0, "\(promoted.errorOutput.suffix(2000))")
                    let promotedReport = try JoinTests.report(promoted)
                    #expect(promotedReport.steps.map(\.step) == ["host", "identity", "mon", "mgr", "osds", "maintenance", "health"])
                    #expect(promotedReport.health == "HEALTH_OK", "\(promotedReport.health ?? "-")")
                    // Node 1's manager left the map with it; node 4's new one registers within seconds.
                    var names: [String] = []
                    for _ in 0..<45 {
                        let mgrs = try fourth.ceph(["mgr", "dump"]) as? [String: Any]
                        names = [mgrs?["active_name"] as? String ?? "?"]
                            + ((mgrs?["standbys"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
                        if Set(names) == ["node-2", "node-3", "node-4"] { break }
                        sleep(2)
                    }
                    #expect(Set(names) == ["node-2", "node-3", "node-4"], "\(names)")
                    for name in ["before", "during"] {
                        let file = directory + "/read-\(name)-4"
                        #expect(try fourth.rados(["-p", "rbd", "get", name, file]).status == 0)
                        #expect(FileManager.default.contents(atPath: file) == FileManager.default.contents(atPath: payload), "\(name)")
                    }
                    // Every node's ceph.conf follows the monitor map (node 1's monitor gone, node 4's added): node 4's
                    // watch did it, node 3's does it in its next round, and node 3's next run keeps it.
                    let followed = "mon_host = [v2:10.77.0.2:3300,v1:10.77.0.2:3301],[v2:10.77.0.3:3300,v1:10.77.0.3:3301],"
                        + "[v2:10.77.0.4:3300,v1:10.77.0.4:3301]\n"
                    for _ in 0..<30 where learnedNames(learnedFile) != ["node-2", "node-3", "node-4"] { sleep(1) }
                    #expect(try String(contentsOfFile: fourth.node.conf, encoding: .utf8).contains(followed))
                    let third = nodes[2]
                    let round = try third.host.command(try third.provisioner, ["maintenance", "watch", "--once", "--root", third.node.root])
                        .run(acceptedStatuses: Set(0...255))
                    #expect(round.status == 0, "\(round.errorOutput)")
                    #expect(learnedNames(third.node.root + "/var/lib/aquarium/monitors.json") == ["node-2", "node-3", "node-4"])
                    #expect(try String(contentsOfFile: third.node.conf, encoding: .utf8).contains(followed))
                    let rerun = try third.run()
                    #expect(rerun.status == 0, "\(rerun.errorOutput.suffix(2000))")
                    let rerunConf = try String(contentsOfFile: third.node.conf, encoding: .utf8)
                    #expect(rerunConf.contains(followed) && !rerunConf.contains("10.77.0.1:"), "\(rerunConf)")

                    // The third monitor counts: with node 2 gone too, node 3 and node 4 keep the quorum.
                    lab.killAll(in: second.host)
                    var kept: [String] = []
                    for _ in 0..<60 {
                        kept = (try? nodes[2].ceph(["quorum_status"]) as? [String: Any])?["quorum_names"] as? [String] ?? []
                        if Set(kept) == ["node-3", "node-4"] { break }
                        sleep(2)
                    }
                    #expect(Set(kept) == ["node-3", "node-4"], "\(kept)")

                    // 9. The cluster's event log, the same from a monitor node and the storage node.
                    var logs: [[ClusterEvent]] = []
                    for node in [nodes[2], fourth] {
                        let listed = try node.host.command(try node.provisioner, ["events", "--root", node.node.root, "--json"])
                            .run(acceptedStatuses: Set(0...255))
                        #expect(listed.status == 0, "\(listed.errorOutput)")
                        let report = try JSONDecoder().decode(ClusterEventsReport.self, from: listed.standardOutput)
                        #expect(report.source == "cluster")
                        logs.append(report.events)
                    }
                    #expect(logs[0] == logs[1])
                    let events = logs[0]
                    for host in ["node-1", "node-2", "node-3", "node-4"] {
                        #expect(events.contains { $0.host == host && $0.event == "run.finished" }, "no run.finished of \(host)")
                    }
                    #expect(events.contains { $0.host == "node-4" && $0.event == "node.joined" })
                    #expect(events.contains { $0.host == "node-2" && $0.event == "monitor.replacement.requested" && ($0.detail ?? "").hasPrefix("node-4") })
                    #expect(events.contains { $0.host == "node-4" && $0.event == "monitor.placed" })
                    #expect(events.contains { $0.host == "node-2" && $0.event == "node.key.issued" && ($0.detail ?? "").hasPrefix("node-4") })
                    #expect(events.contains { $0.host == "node-4" && $0.event == "node.key.taken" })
                    #expect(events.contains { $0.host == "node-2" && $0.event == "node.removed" && ($0.detail ?? "").hasPrefix("node-1") })
                    #expect(events.contains { $0.host == "node-2" && $0.event == "host.down" && ($0.detail ?? "").hasPrefix("node-1") },
                            "\(events.filter { $0.event.hasPrefix("host.") })")
                    #expect(events.contains { $0.event == "host.up" && ($0.detail ?? "").hasPrefix("node-1") })
                    #expect(events.contains { $0.host == "node-4" && $0.event == "run.failed" }, "the foreign-fsid run's refusal")
                    #expect(!events.contains { $0.event == "step.started" })
                    for event in events {
                        for secret in [secrets.adminKey, secrets.monitorKey, secrets.joinKey] {
                            #expect(!(event.detail ?? "").contains(secret))
                        }
                    }
                }
            }
        }
    }

    /// A rack over IPv6 only: one monitor node and one storage node; the monitor's address vectors in brackets, the
    /// messengers bound to IPv6, both OSDs on their hosts' IPv6 addresses, HEALTH_OK.
    @Test(.requires(programs: JoinTests.programs + ["ip"])) func ipv6Rack() throws {
        try withTemporaryDirectory { directory in
            try LoopDevice.withMany([JoinTests.disk, JoinTests.disk]) { loops in
                try NetworkLab.with(hosts: 2) { lab in
                    let nodes = try (0..<2).map { index in
                        RackNode(node: try JoinTests.Node(directory: directory + "/\(index + 1)", hostname: lab.hosts[index].name,
                                                          disk: loops[index]),
                                 host: lab.hosts[index])
                    }
                    defer {
                        for node in nodes.reversed() { _ = try? node.node.provision(["stop", "--root", node.node.root]) }
                    }
                    let (monitor, storage) = (nodes[0], nodes[1])
                    // Two nodes in the rack file: one monitor, one storage node.
                    _ = try Self.makeSeeds(nodes, directory: directory, ipv6: true)
                    // The storage node first: it waits for the monitor, which starts 12 s after the storage node asked.
                    let joined = Slots<Result<CommandResult, any Error>>(count: 1)
                    Thread { joined.set(0, Result { try storage.run(["--json"]) }) }.start()
                    let asking = Date().addingTimeInterval(60)
                    while !storage.node.events.read().contains(where: { $0.event == "step.started" && $0.step == "join" }),
                          Date() < asking {
                        usleep(200_000)
                    }
                    // `ceph` itself retries for its connect timeout (10 s); after that the node waits and says so.
                    sleep(12)
                    let formed = try monitor.run(["--json"])
                    try #require(formed.status == 0, "\(formed.errorOutput.suffix(3000))")
                    joined.waitUntilFull()
                    let run = try #require(joined.values[0]).get()
                    #expect(run.status == 0, "\(run.errorOutput.suffix(3000))")
                    #expect(storage.node.events.read().contains { $0.event == "quorum.waiting" },
                            "\(storage.node.events.read().map { "\($0.time) \($0.event) \($0.step ?? "") \($0.detail ?? "")" }.joined(separator: "\n"))")
                    let conf = try String(contentsOfFile: monitor.node.conf, encoding: .utf8)
                    #expect(conf.contains("mon_host = [v2:[fd77::1]:3300,v1:[fd77::1]:3301]"), "\(conf)")
                    #expect(conf.contains("ms_bind_ipv6 = true") && conf.contains("ms_bind_ipv4 = false"), "\(conf)")
                    let osds = ((try monitor.ceph(["osd", "dump"]) as? [String: Any])?["osds"] as? [[String: Any]]) ?? []
                    let fronts = Set(osds.compactMap { ($0["public_addr"] as? String)?.split(separator: "]").first.map { String($0.dropFirst()) } })
                    #expect(fronts == ["fd77::1", "fd77::2"], "\(osds.map { $0["public_addr"] ?? "?" })")
                    // Each run ended healthy; placement groups may still peer after the other node's last step.
                    let settled = try healthOK(monitor)
                    #expect(settled.status == "HEALTH_OK", "\(settled.checks)")
                    // The benchmark measures the round trip and a stream to the other host over IPv6.
                    if let bench = try Self.bench(from: monitor, watchers: [storage]) {
                        #expect(bench.peers.map(\.host) == [storage.host.name]
                                && bench.peers.allSatisfy { $0.address.hasPrefix("[fd77::2]:") && ($0.streamMBps ?? 0) > 0 },
                                "\(bench.peers)")
                    }
                }
            }
        }
    }

    /// `bench --seconds 1 --json` on `node` while `watchers` run their maintenance watch (as aquarium-maintenance
    /// does; stopped afterwards); nil (recorded) when it failed.
    static func bench(from node: RackNode, watchers: [RackNode]) throws -> ClusterBenchReport? {
        var running: [ChildProcess] = []
        defer { for watcher in running { _ = watcher.terminate(grace: 5) } }
        for watcher in watchers {
            running.append(try watcher.host.command(try watcher.provisioner, ["maintenance", "watch", "--interval", "1",
                                                                             "--root", watcher.node.root]).start())
        }
        let benched = try node.host.command(try node.provisioner, ["bench", "--root", node.node.root, "--seconds", "1", "--json"])
            .run(acceptedStatuses: Set(0...255))
        #expect(benched.status == 0, "\(benched.errorOutput.suffix(2000))")
        guard benched.status == 0 else { return nil }
        let report = try JSONDecoder().decode(ClusterBenchReport.self, from: benched.standardOutput)
        print("bench on \(node.host.name): \(report.summary)")
        return report
    }

    static let nfsAddress = "10.77.0.100"
    static func nfsURL(_ path: String) -> String { "nfs://\(nfsAddress)\(path)?version=4" }

    /// The NFSv4.0 lock client (hold, reclaim, test).
    static let lockTool = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Tools/nfs4-lock.py").path

    /// Whether another client may take a write lock on /shared/lockfile through the floating address: free, denied,
    /// grace (the server's grace period), or what failed.
    /// Asked again while the server is in its grace period (up to 150 s): it refuses every new lock then.
    func lockTest(_ client: RackNode) throws -> String {
        var answer = ""
        let deadline = Date().addingTimeInterval(150)
        repeat {
            answer = try client.host.command("timeout", ["60", "python3", Self.lockTool, "test", Self.nfsAddress, "/shared/lockfile"])
                .run(acceptedStatuses: Set(0...255)).output.trimmingCharacters(in: .whitespacesAndNewlines)
            if answer != "grace" { break }
            sleep(3)
        } while Date() < deadline
        return answer
    }

    /// Waits until `file` has `count` lines containing `text`; false after `seconds`.
    func waitForLine(in file: String, containing text: String, seconds: Double, count: Int = 1) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            let lines = (Files.read(file) ?? "").split(separator: "\n").filter { $0.contains(text) }
            if lines.count >= count { return true }
            if (Files.read(file) ?? "").contains("the lock is lost") { return false }
            sleep(2)
        } while Date() < deadline
        return false
    }

    /// The last lines of a node's NFS-Ganesha log (its own server's, or the floating address's) that say something
    /// (for failure messages).
    func ganeshaLog(_ root: String, floating: Bool = false) -> String {
        ((try? String(contentsOfFile: root + "/var/log/ganesha/ganesha\(floating ? "-floating" : "").log", encoding: .utf8)) ?? "")
            .split(separator: "\n").filter { !$0.contains("DBUS") && !$0.contains("krb5") && !$0.contains("keytab") }
            .suffix(30).joined(separator: "\n")
    }

    func nfsRead(_ client: RackNode, _ path: String) throws -> String {
        try client.host.command("timeout", ["30", "nfs-cat", Self.nfsURL(path)]).run().output
    }

    /// The monitor nodes whose public interface holds the NFS floating address, once `until` accepts them (VRRP needs
    /// a few advertisement intervals to settle) or after 30 s.
    func nfsAddressHolders(_ nodes: [RackNode], until done: ([String]) -> Bool) throws -> [String] {
        var holders: [String] = []
        for _ in 0..<30 {
            holders = try nodes.prefix(3).filter { node in
                try node.host.command("ip", ["-o", "address", "show", "dev", "eth0"]).run().output.contains(" \(Self.nfsAddress)/")
            }.map(\.host.name)
            if done(holders) { break }
            sleep(1)
        }
        return holders
    }

    /// The MDS daemon holding rank 0 of the first file system in `up:active`, if one does.
    func activeMDS(_ node: RackNode) throws -> String? {
        let dump = try node.ceph(["fs", "dump"]) as? [String: Any]
        let filesystem = (dump?["filesystems"] as? [[String: Any]])?.first
        let info = ((filesystem?["mdsmap"] as? [String: Any])?["info"] as? [String: [String: Any]]) ?? [:]
        return info.values.first { $0["rank"] as? Int == 0 && $0["state"] as? String == "up:active" }?["name"] as? String
    }

    /// Moves rank 0 to the MDS `name`: with `mds_join_fs` set for it, the monitors pick it when the active one is failed
    /// (`ceph mds fail`); the setting is taken out again. The holder at the end.
    func moveRank0(to name: String, via node: RackNode) throws -> String? {
        func ceph(_ arguments: [String]) throws {
            try node.host.command("timeout", ["60", "ceph", "-c", node.node.conf] + arguments).run()
        }
        func holder(until done: (String?) -> Bool) throws -> String? {
            var holder: String?
            let deadline = Date().addingTimeInterval(120)
            repeat {
                holder = try activeMDS(node)
                if done(holder) { break }
                sleep(2)
            } while Date() < deadline
            return holder
        }
        try ceph(["config", "set", "mds.\(name)", "mds_join_fs", "cephfs"])
        defer { _ = try? ceph(["config", "rm", "mds.\(name)", "mds_join_fs"]) }
        for _ in 0..<3 {
            guard let current = try holder(until: { $0 != nil }), current != name else { break }
            try ceph(["mds", "fail", current])
            _ = try holder(until: { $0 != nil && $0 != current })
        }
        return try activeMDS(node)
    }

    func hostsWithOSDs(_ node: RackNode) throws -> [String] {
        CrushHosts.withOSDs(try node.ceph(["osd", "tree"]))
    }

    /// Each replicated pool's [size, min_size].
    func poolSizes(_ node: RackNode) throws -> [String: [Int]] {
        var sizes: [String: [Int]] = [:]
        for pool in PoolReplication.parse(try node.ceph(["osd", "pool", "ls", "detail"])) where pool.replicated {
            sizes[pool.name] = [pool.size, pool.minSize]
        }
        return sizes
    }

    /// The cluster's health once it is HEALTH_OK, or the last one seen after `seconds`.
    func healthOK(_ node: RackNode, seconds: Double = 120) throws -> (status: String, checks: [String]) {
        let deadline = Date().addingTimeInterval(seconds)
        var last = try health(node)
        while last.status != "HEALTH_OK" && Date() < deadline {
            sleep(2)
            last = try health(node)
        }
        return last
    }

    func health(_ node: RackNode) throws -> (status: String, checks: [String]) {
        let object = try node.ceph(["health"]) as? [String: Any]
        return (object?["status"] as? String ?? "?", ((object?["checks"] as? [String: Any]) ?? [:]).keys.sorted())
    }
}

/// Results of threads, one slot each.
final class Slots<Value>: @unchecked Sendable {
    private let condition = NSCondition()
    private var slots: [Value?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Value) {
        condition.lock(); slots[index] = value; condition.broadcast(); condition.unlock()
    }

    func waitUntilFull() {
        condition.lock(); while slots.contains(where: { $0 == nil }) { condition.wait() }; condition.unlock()
    }

    var values: [Value?] { condition.lock(); defer { condition.unlock() }; return slots }
}
