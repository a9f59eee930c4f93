import Foundation
import Seed
import TestSupport
import Testing
@testable import Provisioner

/// The pure decisions behind the day-two operations.
struct OperationsLogicTests {
    struct QuorumCase: Sendable, CustomStringConvertible {
        var monitors: [String]
        var quorum: Set<String>
        var host: String
        var removing: Bool
        var refused: Bool
        var description: String { "\(monitors) quorum \(quorum.sorted()) without \(host)\(removing ? " (removed)" : "")" }
    }

    static let quorumCases: [QuorumCase] = [
        // Three monitors, all up: one may stop or go.
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a", "b", "c"], host: "c", removing: false, refused: false),
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a", "b", "c"], host: "c", removing: true, refused: false),
        // One already down: a second may not stop, nor be removed (2 of the monmap's 2 would have to be up).
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a", "b"], host: "b", removing: false, refused: true),
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a", "b"], host: "b", removing: true, refused: true),
        // Removing the one that is down leaves two of two.
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a", "b"], host: "c", removing: true, refused: false),
        // Five monitors, one down: a second may stop.
        QuorumCase(monitors: ["a", "b", "c", "d", "e"], quorum: ["a", "b", "c", "d"], host: "d", removing: false, refused: false),
        // The only monitor.
        QuorumCase(monitors: ["a"], quorum: ["a"], host: "a", removing: false, refused: true),
        QuorumCase(monitors: ["a"], quorum: ["a"], host: "a", removing: true, refused: true),
        // A host without a monitor never matters to the quorum.
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a"], host: "storage-1", removing: true, refused: false),
    ]

    @Test(arguments: quorumCases) func quorum(_ item: QuorumCase) {
        let problem = Operations.quorumProblem(monitors: item.monitors, quorum: item.quorum, without: item.host, removing: item.removing)
        #expect((problem != nil) == item.refused, "\(problem ?? "allowed")")
        if let problem { #expect(problem.contains("mon.\(item.host)")) }
    }

    /// The health step's verdict: a host in maintenance makes its own warnings acceptable, nothing else.
    @Test(arguments: [
        ("HEALTH_OK", Set<String>(), [String](), true),
        ("HEALTH_WARN", ["POOL_NO_REDUNDANCY"], [], true),
        ("HEALTH_WARN", ["OSD_FLAGS", "OSD_DOWN", "OSD_HOST_DOWN", "PG_DEGRADED"], [], false),
        ("HEALTH_WARN", ["OSD_FLAGS", "OSD_DOWN", "OSD_HOST_DOWN", "PG_DEGRADED"], ["node-4"], true),
        ("HEALTH_WARN", ["OSD_FLAGS", "MON_DOWN"], ["node-3"], true),
        ("HEALTH_WARN", ["OSD_DOWN", "PG_AVAILABILITY"], ["node-4"], false),
        ("HEALTH_WARN", ["OSD_FLAGS", "SLOW_OPS"], ["node-4"], false),
        ("HEALTH_ERR", ["OSD_DOWN"], ["node-4"], false),
    ] as [(String, Set<String>, [String], Bool)])
    func healthVerdict(_ status: String, _ checks: Set<String>, _ maintained: [String], _ accepted: Bool) {
        #expect(CephConfig.healthAcceptable(status: status, checks: checks, hostsInMaintenance: maintained) == accepted)
    }

    /// The rack's monitor rule after a removal: 3 monitors for 3-4 nodes, 5 from 5, 1 for 1-2 (two left are not cut).
    @Test(arguments: [(2, 3, true), (3, 3, false), (2, 2, false), (1, 2, false), (4, 5, true), (4, 4, false), (0, 1, true)])
    func replacementNeeded(_ monitorsLeft: Int, _ nodesLeft: Int, _ needed: Bool) {
        #expect(Operations.replacementNeeded(monitorsLeft: monitorsLeft, nodesLeft: nodesLeft) == needed)
    }

    @Test func replacementCandidate() throws {
        let hosts = ["n1": [0], "n2": [1], "n3": [2], "s1": [3, 4], "s2": [5], "s3": []]
        let monitors = ["n2", "n3"]
        // The first host by name that runs no monitor, is not in maintenance, has OSDs and all of them up.
        let all = try #require(Operations.replacementCandidate(hosts: hosts, monitors: monitors, upOSDs: [1, 2, 3, 4, 5],
                                                               inMaintenance: [], excluding: "n1"))
        #expect(all == ("s1", 3))
        let oneDown = try #require(Operations.replacementCandidate(hosts: hosts, monitors: monitors, upOSDs: [1, 2, 3, 5],
                                                                   inMaintenance: [], excluding: "n1"))
        #expect(oneDown == ("s2", 5))
        let maintained = try #require(Operations.replacementCandidate(hosts: hosts, monitors: monitors, upOSDs: [1, 2, 3, 4, 5],
                                                                      inMaintenance: ["s1"], excluding: "n1"))
        #expect(maintained == ("s2", 5))
        #expect(Operations.replacementCandidate(hosts: hosts, monitors: monitors, upOSDs: [0, 1, 2], inMaintenance: [],
                                                excluding: "n1") == nil)
    }

    /// The monitor request's keys open only with the OSD key, fsid and host they were sealed for, and unchanged.
    @Test func monitorSeal() throws {
        let osdKey = Data((0..<16).map { UInt8($0 * 7 % 256) }).base64EncodedString()
        let otherKey = Data((0..<16).map { UInt8($0 * 11 % 256) }).base64EncodedString()
        let secrets = MonitorSecrets(monitorKey: "AQBmonitorkey==", adminKey: "AQBadminkey==")
        let sealed = try MonitorSeal.seal(secrets, osdKey: osdKey, fsid: "fsid-1", host: "node-4")
        var bytes = try #require(Data(base64Encoded: sealed))
        #expect(!sealed.contains("monitorkey") && !bytes.contains(Data("AQBadminkey".utf8)))
        #expect(try MonitorSeal.open(sealed, osdKey: osdKey, fsid: "fsid-1", host: "node-4") == secrets)
        #expect(throws: ProvisionError.self) { try MonitorSeal.open(sealed, osdKey: otherKey, fsid: "fsid-1", host: "node-4") }
        #expect(throws: ProvisionError.self) { try MonitorSeal.open(sealed, osdKey: osdKey, fsid: "fsid-2", host: "node-4") }
        #expect(throws: ProvisionError.self) { try MonitorSeal.open(sealed, osdKey: osdKey, fsid: "fsid-1", host: "node-5") }
        bytes[bytes.count / 2] ^= 1
        #expect(throws: ProvisionError.self) {
            try MonitorSeal.open(bytes.base64EncodedString(), osdKey: osdKey, fsid: "fsid-1", host: "node-4")
        }
        #expect(Operations.keyringKey("[osd.3]\n\tkey = AQBx==\n\tcaps mon = \"allow *\"\n") == "AQBx==")
        #expect(Operations.keyringKey("[osd.3]\n") == nil)
    }

    /// `maintenance enter` asks `ok-to-stop` again while placement groups move, not on a settled degraded cluster.
    @Test(arguments: [
        (["active+clean": 97], false),
        (["active+undersized+degraded": 40, "active+clean": 57], false),
        (["active+clean": 90, "peering": 7], true),
        (["active+remapped+backfilling": 3, "active+clean": 94], true),
        (["unknown": 97], true),
        (["active+clean": 97, "peering": 0], false),
    ] as [([String: Int], Bool)])
    func placementGroupsInTransition(_ states: [String: Int], _ moving: Bool) {
        #expect(Operations.inTransition(states) == moving)
    }

    /// `update --rolling`: storage nodes first, then the monitor nodes, the node running it last.
    @Test func rollingOrder() {
        #expect(Operations.rollingOrder(hosts: ["n1", "n2", "n3", "s2", "s1"], monitors: ["n1", "n2", "n3"], local: "n2")
                == ["s1", "s2", "n1", "n3", "n2"])
        #expect(Operations.rollingOrder(hosts: ["n1"], monitors: ["n1", "n2"], local: "n1") == ["n2", "n1"])
        #expect(Operations.rollingOrder(hosts: ["a"], monitors: ["a"], local: "a") == ["a"])
    }

    @Test func mixedReleases() {
        let same = [NodeVersion(host: "n1", release: "v1", tools: "t", time: "x"), NodeVersion(host: "n2", release: "v1", tools: "t", time: "x")]
        #expect(NodeVersion.mixedWarning(same) == nil)
        let mixed = same + [NodeVersion(host: "n3", release: "v2", tools: "t", time: "x"), NodeVersion(host: "n4", release: nil, tools: "t", time: "x")]
        let warning = NodeVersion.mixedWarning(mixed)
        #expect(warning?.contains("v1 on n1, n2") == true && warning?.contains("v2 on n3") == true
                && warning?.contains("unknown on n4") == true, "\(warning ?? "-")")
    }

    @Test func imageReleaseFile() throws {
        try withTemporaryDirectory { root in
            let layout = Layout(root: root)
            #expect(NodeVersion.imageRelease(layout: layout) == nil)
            try FileManager.default.createDirectory(atPath: root + "/etc/aquarium", withIntermediateDirectories: true)
            try "NAME=aquarium\nRELEASE=\"2026.11.2\"\nPROFILE=full\n".write(toFile: root + "/etc/aquarium/image-release", atomically: true, encoding: .utf8)
            #expect(NodeVersion.imageRelease(layout: layout) == "2026.11.2")
        }
    }

    /// What a node stopped for maintenance survives a restart of the tool, and `run` reads the reason from it.
    @Test func localMaintenanceFile() throws {
        try withTemporaryDirectory { root in
            let layout = Layout(root: root)
            #expect(LocalMaintenance.load(layout) == nil)
            let local = LocalMaintenance(flag: MaintenanceFlag(host: "node-3", reason: "reboot", since: "2026-11-28T20:00:00Z", by: "node-3"),
                                         stopped: [.init(name: "osd.1", argv: ["ceph-osd", "-i", "1"], unit: nil)])
            try FileManager.default.createDirectory(atPath: root + "/var/lib/aquarium", withIntermediateDirectories: true)
            try local.save(layout)
            #expect(LocalMaintenance.load(layout) == local)
        }
    }

    /// `ceph mon dump --format json` as Reef prints it (a monitor placed by `node remove` is node-4; IPv6 too).
    static let monDump = """
        {"epoch":3,"fsid":"6f1c2e0a-0000-4000-8000-000000000001","min_mon_release_name":"reef","mons":[
         {"rank":0,"name":"node-2","public_addrs":{"addrvec":[{"type":"v2","addr":"10.77.0.2:3300","nonce":0},
          {"type":"v1","addr":"10.77.0.2:3301","nonce":0}]},"addr":"10.77.0.2:3301/0","public_addr":"10.77.0.2:3301/0"},
         {"rank":1,"name":"node-4","public_addrs":{"addrvec":[{"type":"v2","addr":"10.77.0.4:3300","nonce":0},
          {"type":"v1","addr":"10.77.0.4:3301","nonce":0}]}},
         {"rank":2,"name":"node-3","public_addrs":{"addrvec":[{"type":"v2","addr":"[fd00::3]:3300","nonce":0}]}},
         {"rank":3,"name":"unplaced","public_addrs":{"addrvec":[]}}],"quorum":[0,1,2]}
        """

    @Test func learnedMonitorsFromTheMonmap() throws {
        guard case .success(let dump?) = CephJSON.decode(CephJSON.MonDump.self, from: Data(Self.monDump.utf8)) else {
            Issue.record("the mon dump did not decode")
            return
        }
        let monitors = LearnedMonitors.parse(monDump: dump)
        // Sorted by name; a monitor without an address (not placed yet) is left out; nonces dropped.
        #expect(monitors == [
            .init(name: "node-2", addresses: "[v2:10.77.0.2:3300,v1:10.77.0.2:3301]"),
            .init(name: "node-3", addresses: "[v2:[fd00::3]:3300]"),
            .init(name: "node-4", addresses: "[v2:10.77.0.4:3300,v1:10.77.0.4:3301]"),
        ])
        let learned = LearnedMonitors(fsid: dump.fsid ?? "", monitors: monitors, time: "2026-11-29T00:00:00Z")
        #expect(learned.monHost(fsid: "6f1c2e0a-0000-4000-8000-000000000001")
                == "[v2:10.77.0.2:3300,v1:10.77.0.2:3301],[v2:[fd00::3]:3300],[v2:10.77.0.4:3300,v1:10.77.0.4:3301]")
        // Another cluster's map (a reused system disk) never names this cluster's monitors.
        #expect(learned.monHost(fsid: "another") == nil)
        #expect(LearnedMonitors(fsid: "x", monitors: [], time: "").monHost(fsid: "x") == nil)
    }

    @Test(arguments: [
        // Only the mon_host line changes; indentation and every other line are kept.
        ("[global]\nfsid = x\nmon_host = [v2:10.77.0.1:3300]\npublic_network = 10.77.0.0/24\n", "[v2:10.77.0.4:3300]",
         "[global]\nfsid = x\nmon_host = [v2:10.77.0.4:3300]\npublic_network = 10.77.0.0/24\n" as String?),
        ("[global]\n\tmon host = a\n", "b", "[global]\n\tmon_host = b\n"),
        // Already so: nothing to write.
        ("mon_host = b\n", "b", nil),
        // No mon_host line (not a ceph.conf the Provisioner wrote): left alone.
        ("[global]\nfsid = x\n", "b", nil),
        // A key that merely starts with mon_host is another key.
        ("mon_host_override = a\n", "b", nil),
    ])
    func replacingMonHost(_ text: String, _ monHost: String, _ expected: String?) {
        #expect(LearnedMonitors.replacingMonHost(in: text, with: monHost) == expected)
    }

    @Test func cephConfFollowsTheLearnedMonitors() throws {
        let identity = ClusterIdentity(fsid: "f", name: "ceph", daemonId: "node-3", address: try #require(IPAddress("10.77.0.3")),
                                       basePort: 3300, publicNetwork: "10.77.0.0/24", clusterNetwork: "10.77.0.0/24",
                                       launcher: .process, monitors: [MonitorAddress(name: "node-1", address: try #require(IPAddress("10.77.0.1")))])
        let layout = Layout(root: "/nonexistent", cluster: "ceph")
        let seedOnly = CephConfig.render(identity, layout: layout, rgwPort: nil)
        #expect(seedOnly.contains("mon_host = [v2:10.77.0.1:3300,v1:10.77.0.1:3301]\n"), "\(seedOnly)")
        let learned = LearnedMonitors(fsid: "f", monitors: [.init(name: "node-4", addresses: "[v2:10.77.0.4:3300]")], time: "")
        let followed = CephConfig.render(identity, layout: layout, rgwPort: nil, learned: learned)
        #expect(followed.contains("mon_host = [v2:10.77.0.4:3300]\n"), "\(followed)")
        #expect(followed.replacingOccurrences(of: "mon_host = [v2:10.77.0.4:3300]", with: "mon_host = [v2:10.77.0.1:3300,v1:10.77.0.1:3301]")
                == seedOnly)
        var other = learned
        other.fsid = "another"
        #expect(CephConfig.render(identity, layout: layout, rgwPort: nil, learned: other) == seedOnly)
    }

    @Test(arguments: [
        // Nodes that report a release and run no monitor get a key, once; monitors and nodes being removed do not.
        (["node.a", "node.b", "node.c", "node.s1", "node.s2"], ["a", "b", "c"], ["s1", "s2"]),
        (["node.a", "node.s1", "nodekey.s1", "node.s2"], ["a"], ["s2"]),
        (["node.a", "node.s1", "removed.s1"], ["a"], [String]()),
        // Objects that merely start alike are not node reports.
        (["nodekey.s1", "node.s1", "maintenance.s2", "update.s3"], [String](), [String]()),
    ])
    func hostsNeedingKeys(_ objects: [String], _ monitors: [String], _ expected: [String]) {
        #expect(NodeKey.hostsNeedingKeys(objects: Set(objects), monitors: Set(monitors)) == expected)
    }

    @Test func nodeKeySealIsBoundToItsPurpose() throws {
        let osdKey = "AQBmYm1mAAAAABAAJnJ1bGVzIGFyZSBydWxlcw=="
        let sealed = try MonitorSeal.seal(NodeKeySecret(key: "AQCnodekey"), osdKey: osdKey, fsid: "f", host: "s1", purpose: NodeKey.purpose)
        #expect(try MonitorSeal.open(sealed, as: NodeKeySecret.self, osdKey: osdKey, fsid: "f", host: "s1", purpose: NodeKey.purpose)
                == NodeKeySecret(key: "AQCnodekey"))
        // Not as a monitor request, not for another host.
        #expect(throws: ProvisionError.self) { try MonitorSeal.open(sealed, as: NodeKeySecret.self, osdKey: osdKey, fsid: "f", host: "s1") }
        #expect(throws: ProvisionError.self) {
            try MonitorSeal.open(sealed, as: NodeKeySecret.self, osdKey: osdKey, fsid: "f", host: "s2", purpose: NodeKey.purpose)
        }
        #expect(NodeKey.entity("s1") == "client.aquarium-node.s1")
    }
}
