import Exec
import Foundation
import TestSupport
import Seed
import Testing
@testable import Provisioner

/// Two "nodes" on this machine, each its own root with the process launcher in its own port range and one loop
/// device: A bootstraps (with telemetry on), B joins it with A's token. Every daemon of both roots is stopped and
/// both loop devices detached at the end, also when a check fails.
@Suite(.serialized) struct JoinTests {
    static let programs = ["ceph", "ceph-mon", "ceph-mgr", "ceph-osd", "ceph-authtool", "monmaptool", "ceph-bluestore-tool",
                           "rados", "blkid", "wipefs", "timeout", "tar", "grep"]
    static var disk: LoopDevice.Options { LoopDevice.Options(sizeBytes: 8 << 30) }

    struct Node {
        var directory: String
        var hostname: String
        var root: String { directory + "/root" }
        var seed: String { directory + "/seed.yaml" }
        var record: String { directory + "/node.json" }
        var conf: String { root + "/etc/ceph/ceph.conf" }
        var events: EventLog { EventLog(path: root + "/var/lib/aquarium/events.jsonl") }

        init(directory: String, hostname: String, disk: LoopDevice) throws {
            self.directory = directory
            self.hostname = hostname
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try NodeRecordFixture.write(to: record, hostname: hostname, storage: [disk], seed: seed)
        }

        func provision(_ arguments: [String]) throws -> CommandResult {
            try Command(try Products.path("aquarium-provision"), arguments).run(acceptedStatuses: Set(0...255))
        }

        func run(_ extra: [String] = []) throws -> CommandResult {
            try provision(["run", "--seed", seed, "--node-record", record, "--root", root, "--launcher", "process"] + extra)
        }

        func writeSeed(_ cluster: String) throws {
            try "version: 1\nhost:\n  hostname: \(hostname)\ncluster:\n\(cluster)"
                .write(toFile: seed, atomically: true, encoding: .utf8)
        }

        func writeJoinSeed(token: String) throws {
            try writeSeed("  role: join\n  join:\n    address: 127.0.0.1\n    token: \"\(token)\"\n")
        }

        var state: ProvisionState { get throws { try ProvisionState.load(root + "/var/lib/aquarium/provision-state.json") } }

        func pid(_ daemon: String) throws -> Int32 {
            try #require(Int32(try String(contentsOfFile: root + "/run/aquarium/ceph-\(daemon).pid", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)))
        }
    }

    /// Through node A's admin key.
    @discardableResult
    static func admin(_ a: Node, _ tool: String, _ arguments: [String]) throws -> CommandResult {
        try Command("timeout", ["120", tool, "-c", a.conf] + arguments).run()
    }

    static func json(_ a: Node, _ arguments: [String]) throws -> Any {
        try JSONSerialization.jsonObject(with: try admin(a, "ceph", arguments + ["--format", "json"]).standardOutput)
    }

    static func osds(_ a: Node) throws -> [[String: Any]] {
        ((try json(a, ["osd", "dump"]) as? [String: Any])?["osds"] as? [[String: Any]]) ?? []
    }

    /// Every pool's [size, min_size].
    static func pools(_ a: Node) throws -> [String: [Int]] {
        Dictionary(uniqueKeysWithValues: PoolReplication.parse(try json(a, ["osd", "pool", "ls", "detail"])).map { ($0.name, [$0.size, $0.minSize]) })
    }

    static func defaults(_ a: Node) throws -> ReplicationDefaults {
        ReplicationDefaults.parse(try json(a, ["config", "dump"]))
    }

    static func report(_ result: CommandResult) throws -> RunReport {
        try JSONDecoder().decode(RunReport.self, from: result.standardOutput)
    }

    static func isEmpty(_ loop: LoopDevice) throws -> Bool {
        try Command("blkid", ["-p", loop.path]).run(acceptedStatuses: [0, 2]).status == 2
    }

    /// Bootstrap A, join B with A's token (after refusing a malformed token, one of another cluster and one with an
    /// unknown key), data through both OSDs, reruns change nothing, status and support bundle on B, telemetry on and
    /// off on A, A's rerun grows the pools to size 2; a third node C joins and A's rerun, killed half way through growing
    /// the pools to 3/2, is finished by the next run; B's stop stops only B and shrinks nothing.
    @Test(.requires(programs: JoinTests.programs)) func joinASecondNode() throws {
        let started = Date()
        try withTemporaryDirectory { directory in
            try LoopDevice.withMany([Self.disk, Self.disk, Self.disk]) { loops in
                let a = try Node(directory: directory + "/a", hostname: "node-a", disk: loops[0])
                let b = try Node(directory: directory + "/b", hostname: "node-b", disk: loops[1])
                defer {
                    _ = try? b.provision(["stop", "--root", b.root])
                    _ = try? a.provision(["stop", "--root", a.root])
                }

                // 1. A bootstraps a minimal cluster (mon, mgr, one OSD) with telemetry opted in.
                try a.writeSeed("  role: bootstrap\n  telemetry: true\n")
                let bootstrapped = try a.run(["--json"])
                try #require(bootstrapped.status == 0, "\(bootstrapped.errorOutput)")
                let aReport = try Self.report(bootstrapped)
                #expect(aReport.steps.map(\.step) == Provisioner.bootstrapSteps)
                #expect(aReport.steps.first { $0.step == "telemetry" }.map { $0.changed && ($0.detail ?? "").contains("on") } == true)
                #expect(aReport.steps.first { $0.step == "join-token" }?.changed == true)
                let telemetryOn = try Self.json(a, ["telemetry", "status"]) as? [String: Any]
                #expect(telemetryOn?["enabled"] as? Bool == true)
                let fsid = try #require(try a.state.identity?.fsid)
                let monPort = try #require(try a.state.identity?.basePort)

                // The token: printed by join-token, FSID.KEY.EXPIRES, mode 0600, the key of client.aquarium-join.
                let printed = try a.provision(["join-token", "--root", a.root])
                #expect(printed.status == 0, "\(printed.errorOutput)")
                let tokenText = printed.output.trimmingCharacters(in: .whitespacesAndNewlines)
                let token = try JoinToken(parsing: tokenText)
                #expect(token.fsid == fsid)
                #expect(tokenText.count >= 16 && tokenText.count <= 256)
                let key = try Self.admin(a, "ceph", ["auth", "get-key", JoinToken.entity]).output
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(token.key == key)
                var info = stat()
                #expect(stat(a.root + "/var/lib/aquarium/join-token", &info) == 0 && info.st_mode & 0o777 == 0o600)
                let caps = try Self.admin(a, "ceph", ["auth", "get", JoinToken.entity]).output
                #expect(caps.contains("caps mon = \"allow profile bootstrap-osd, allow command") && caps.contains("caps osd = \"allow rw pool=.aquarium\""), "\(caps)")
                // Not in A's status, events or run output.
                let aStatus = try a.provision(["status", "--root", a.root, "--json"])
                for text in [aStatus.output, bootstrapped.output, bootstrapped.errorOutput,
                             try String(contentsOfFile: a.events.path, encoding: .utf8)] {
                    #expect(!text.contains(token.key))
                }

                // 2. Bad tokens are refused before anything is created.
                try b.writeJoinSeed(token: "a1b2-c3d4-e5f6-a7b8")
                let malformed = try b.run(["--mon-port", String(monPort)])
                #expect(malformed.status == 2, "\(malformed.errorOutput)")
                #expect(malformed.errorOutput.contains("cluster.join.token") && malformed.errorOutput.contains("join-token"),
                        "\(malformed.errorOutput)")
                #expect(!malformed.errorOutput.contains("a1b2-c3d4-e5f6-a7b8"))
                #expect(!FileManager.default.fileExists(atPath: b.conf))

                let otherFSID = "11111111-2222-4333-8444-555555555555"
                try b.writeJoinSeed(token: "\(otherFSID).\(token.key)")
                let otherCluster = try b.run(["--mon-port", String(monPort)])
                #expect(otherCluster.status == 3, "\(otherCluster.errorOutput)")
                #expect(otherCluster.errorOutput.contains("127.0.0.1:\(monPort)") && otherCluster.errorOutput.contains(fsid)
                        && otherCluster.errorOutput.contains(otherFSID), "\(otherCluster.errorOutput)")

                let unknownKey = try Command("ceph-authtool", ["--gen-print-key"]).run().output
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                try b.writeJoinSeed(token: "\(fsid).\(unknownKey)")
                let rejected = try b.run(["--mon-port", String(monPort)])
                #expect(rejected.status == 3, "\(rejected.errorOutput)")
                #expect(rejected.errorOutput.contains("does not accept cluster.join.token"), "\(rejected.errorOutput)")
                #expect(!rejected.errorOutput.contains(unknownKey))
                // Nothing created: one OSD in the cluster, B's disk untouched, no daemon under B.
                #expect(try Self.osds(a).count == 1)
                #expect(try Self.isEmpty(loops[1]))
                #expect(((try? FileManager.default.contentsOfDirectory(atPath: b.root + "/run/aquarium")) ?? []).isEmpty)

                // 3. B joins with the right token. A first run dies between `ceph osd new` and mkfs: the half-made OSD
                // is removed by the next run (`osd purge-new`; the join entity may not read its key) and made again.
                try b.writeJoinSeed(token: tokenText)
                do {
                    let killed = try b.run(["--mon-port", String(monPort), "--fault-inject", "osds:mid"])
                    Issue.record("the run with --fault-inject osds:mid did not die: status \(killed.status) \(killed.errorOutput)")
                } catch let error as CommandError {
                    #expect(error.reason?.contains("signal 9") == true, "\(error)")
                }
                #expect(try Self.osds(a).count == 2)
                let joined = try b.run(["--json", "--mon-port", String(monPort)])
                try #require(joined.status == 0, "\(joined.errorOutput)")
                let bReport = try Self.report(joined)
                #expect(bReport.steps.map(\.step) == Provisioner.joinSteps)
                #expect(bReport.fsid == fsid)
                #expect(bReport.health == "HEALTH_OK")
                #expect(!joined.output.contains(token.key) && !joined.errorOutput.contains(token.key))

                // Two OSDs up, each in its own CRUSH host named after its node.
                let osds = try Self.osds(a)
                #expect(osds.count == 2 && osds.allSatisfy { ($0["up"] as? Int) == 1 && ($0["in"] as? Int) == 1 }, "\(osds)")
                let tree = (try Self.json(a, ["osd", "tree"]) as? [String: Any])?["nodes"] as? [[String: Any]] ?? []
                let hosts = Dictionary(uniqueKeysWithValues: tree.filter { ($0["type"] as? String) == "host" }
                    .map { ($0["name"] as? String ?? "?", ($0["children"] as? [Int]) ?? []) })
                let aOSD = try #require(try a.state.osdIds[NodeRecordFixture.identity(loops[0])])
                let bOSD = try #require(try b.state.osdIds[NodeRecordFixture.identity(loops[1])])
                #expect(hosts == ["node-a": [aOSD], "node-b": [bOSD]], "\(hosts)")
                #expect(!(try Self.isEmpty(loops[1])))
                // B's OSD binds in B's own port range, A's in A's.
                let bBase = try #require(try b.state.identity?.basePort)
                #expect(bBase != monPort)
                let bConf = try String(contentsOfFile: b.conf, encoding: .utf8)
                #expect(bConf.contains("\tms_bind_port_min = \(bBase + 10)\n") && bConf.contains("mon_host = [v2:127.0.0.1:\(monPort)]"))
                #expect(!bConf.contains("mon_initial_members"))
                #expect(try b.state.identity?.join == JoinTarget(address: IPAddress("127.0.0.1")!, port: monPort))
                var keyringInfo = stat()
                #expect(stat(b.root + "/etc/ceph/ceph.client.aquarium-join.keyring", &keyringInfo) == 0
                        && keyringInfo.st_mode & 0o777 == 0o600)

                // Data through a pool of the grown cluster: one object per PG so both OSDs hold some.
                try Self.admin(a, "ceph", ["osd", "pool", "create", "jointest", "8"])
                try Self.admin(a, "ceph", ["osd", "pool", "application", "enable", "jointest", "rados"])
                let payload = a.directory + "/payload"
                try Data("written through both nodes' OSDs".utf8).write(to: URL(fileURLWithPath: payload))
                for index in 0..<16 { try Self.admin(a, "rados", ["-p", "jointest", "put", "object-\(index)", payload]) }
                for index in [0, 15] {
                    let back = a.directory + "/back"
                    try? FileManager.default.removeItem(atPath: back)
                    try Self.admin(a, "rados", ["-p", "jointest", "get", "object-\(index)", back])
                    #expect(try Data(contentsOf: URL(fileURLWithPath: back)) == Data(contentsOf: URL(fileURLWithPath: payload)))
                }
                // CRUSH places the objects on both hosts' OSDs (from the OSD map itself, not the manager's statistics).
                var primaries: Set<Int> = []
                for index in 0..<16 where primaries.count < 2 {
                    let map = try Self.json(a, ["osd", "map", "jointest", "object-\(index)"]) as? [String: Any]
                    if let primary = map?["acting_primary"] as? Int { primaries.insert(primary) }
                }
                #expect(primaries == [aOSD, bOSD], "objects only on \(primaries)")

                // 4. A rerun of B changes nothing (and needs no --mon-port: it is remembered).
                let before = b.events.read().count
                let rerun = try b.run(["--json", "--health-timeout", "60"])
                #expect(rerun.status == 0, "\(rerun.errorOutput)")
                let rerunReport = try Self.report(rerun)
                #expect(rerunReport.changed == false, "\(rerunReport.steps.filter(\.changed))")
                let newEvents = Array(b.events.read().dropFirst(before))
                #expect(newEvents.filter { $0.event == "step.unchanged" }.map { $0.step ?? "" } == Provisioner.joinSteps)
                #expect(b.events.read().contains { $0.event == "node.joined" })

                // 5. status on B: the joined cluster, B's own daemon, its disk.
                let bStatus = try b.provision(["status", "--root", b.root, "--json"])
                #expect(bStatus.status == 0, "\(bStatus.errorOutput)")
                let status = try JSONDecoder().decode(StatusReport.self, from: bStatus.standardOutput)
                #expect(status.role == "join" && status.fsid == fsid && status.health == "HEALTH_OK")
                #expect(status.monitors == ["node-a"])
                #expect(status.daemons.map(\.name) == ["osd.\(bOSD)"] && status.daemons.allSatisfy(\.running))
                #expect(status.osds.first { $0.id == bOSD }?.disk == NodeRecordFixture.identity(loops[1]))
                #expect(!bStatus.output.contains(token.key))

                // The support bundle of B holds neither the token nor any key.
                let bundle = b.directory + "/bundle.tar.gz"
                let written = try b.provision(["support-bundle", "--root", b.root, "--output", bundle, "--seed", b.seed,
                                               "--node-record", b.record])
                #expect(written.status == 0, "\(written.errorOutput)")
                let extracted = b.directory + "/bundle"
                try FileManager.default.createDirectory(atPath: extracted, withIntermediateDirectories: true)
                try Command("tar", ["-xzf", bundle, "-C", extracted]).run()
                let listing = try Command("tar", ["-tzf", bundle]).run().output
                #expect(listing.contains("ceph-osd-tree.txt") && listing.contains("status.json") && !listing.contains("keyring"))
                let osdKey = Redactor.keyringKeys(try String(contentsOfFile: b.root + "/var/lib/ceph/osd/ceph-\(bOSD)/keyring",
                                                             encoding: .utf8))
                for secret in [tokenText, token.key] + osdKey {
                    let found = try Command("grep", ["-rlF", secret, extracted]).run(acceptedStatuses: [0, 1]).output
                    #expect(found.isEmpty, "a secret is in \(found)")
                }

                // 6. A's rerun grows the pools to B's host (2 hosts: size 2, min_size 1), and turns telemetry off (the seed
                // changed); nothing else changes and health is OK once the second copies are made.
                #expect(try Self.pools(a) == [".aquarium": [1, 1], "device_health_metrics": [1, 1], "jointest": [1, 1]])
                try a.writeSeed("  role: bootstrap\n  telemetry: false\n")
                // The first growing run dies in the middle of the step (`replication:mid`: the pools' sizes are set, the
                // min_sizes and the warning not yet): the next run finishes the job and ends where an unbroken run would.
                do {
                    let killed = try a.run(["--fault-inject", "replication:mid"])
                    Issue.record("the run with --fault-inject replication:mid did not die: status \(killed.status) \(killed.errorOutput)")
                } catch let error as CommandError {
                    #expect(error.reason?.contains("signal 9") == true, "\(error)")
                }
                #expect(try Self.pools(a) == [".aquarium": [2, 1], "device_health_metrics": [2, 1], "jointest": [2, 1]], "sizes are set before replication:mid")
                let grown = try a.run(["--json", "--health-timeout", "120"])
                #expect(grown.status == 0, "\(grown.errorOutput)")
                let grownReport = try Self.report(grown)
                // Telemetry changes (the crashed run died before it); replication may still have its last action to do.
                let changedSteps = grownReport.steps.filter(\.changed).map(\.step)
                #expect(changedSteps == ["replication", "telemetry"] || changedSteps == ["telemetry"], "\(grownReport.steps.filter(\.changed))")
                #expect(grownReport.steps.first { $0.step == "replication" }?.detail?.contains("2 hosts with OSDs") == true)
                #expect(grownReport.health == "HEALTH_OK")
                #expect(try Self.pools(a) == [".aquarium": [2, 1], "device_health_metrics": [2, 1], "jointest": [2, 1]])
                #expect(try Self.defaults(a) == ReplicationDefaults(size: 2, minSize: 1, noRedundancyWarningOff: false))
                // Each object now has a copy on both hosts.
                let acting = (try Self.json(a, ["osd", "map", "jointest", "object-0"]) as? [String: Any])?["acting"] as? [Int]
                #expect(Set(acting ?? []) == [aOSD, bOSD], "\(acting ?? [])")
                let telemetryOff = try Self.json(a, ["telemetry", "status"]) as? [String: Any]
                #expect(telemetryOff?["enabled"] as? Bool == false)
                // Nothing left to grow: a rerun changes nothing.
                let again = try a.run(["--json", "--health-timeout", "60"])
                #expect(again.status == 0, "\(again.errorOutput)")
                let againReport = try Self.report(again)
                #expect(againReport.changed == false, "\(againReport.steps.filter(\.changed))")

                // 6b. A third node C joins: three CRUSH hosts hold OSDs, so the target is Ceph's 3/2. The first growing
                // run dies at `replication:mid`, after the defaults (min_size first) and the pools' sizes are set and
                // before the min_sizes: the monitor itself gives a pool whose size changes the min_size that
                // osd_pool_default_min_size (now 2) says, so the pools are already 3/2, and the state file still holds
                // the min_size each pool was to get. The next run finds nothing left to do and clears that.
                let c = try Node(directory: directory + "/c", hostname: "node-c", disk: loops[2])
                defer { _ = try? c.provision(["stop", "--root", c.root]) }
                try c.writeJoinSeed(token: tokenText)
                let cJoined = try c.run(["--json", "--mon-port", String(monPort)])
                try #require(cJoined.status == 0, "\(cJoined.errorOutput)")
                let cOSD = try #require(try c.state.osdIds[NodeRecordFixture.identity(loops[2])])
                do {
                    let killed = try a.run(["--fault-inject", "replication:mid"])
                    Issue.record("the run with --fault-inject replication:mid did not die: status \(killed.status) \(killed.errorOutput)")
                } catch let error as CommandError {
                    #expect(error.reason?.contains("signal 9") == true, "\(error)")
                }
                let poolsAtCrash = try Self.pools(a)
                #expect(poolsAtCrash == [".aquarium": [3, 2], "device_health_metrics": [3, 2], "jointest": [3, 2]], "\(poolsAtCrash)")
                #expect(try Self.defaults(a) == ReplicationDefaults(size: 3, minSize: 2, noRedundancyWarningOff: false))
                #expect(try a.state.replicationPending == [".aquarium": 2, "device_health_metrics": 2, "jointest": 2])
                let third = try a.run(["--json", "--health-timeout", "180"])
                #expect(third.status == 0, "\(third.errorOutput)")
                let thirdReport = try Self.report(third)
                let replicationStep = thirdReport.steps.first { $0.step == "replication" }
                #expect(replicationStep?.detail == "3 hosts with OSDs: size 3, min_size 2", "\(replicationStep?.detail ?? "")")
                #expect(thirdReport.health == "HEALTH_OK")
                #expect(try Self.pools(a) == [".aquarium": [3, 2], "device_health_metrics": [3, 2], "jointest": [3, 2]])
                #expect(try a.state.replicationPending == nil, "the saved min_sizes are cleared once every pool has them")
                // The object's placement group maps to all three OSDs. HEALTH_OK can be read while it still peers with
                // two (CI saw [1, 2] once on a loaded machine): give peering up to a minute.
                var actingThree: [Int] = []
                for _ in 0..<30 {
                    actingThree = (try Self.json(a, ["osd", "map", "jointest", "object-0"]) as? [String: Any])?["acting"] as? [Int] ?? []
                    if Set(actingThree) == [aOSD, bOSD, cOSD] { break }
                    sleep(2)
                }
                #expect(Set(actingThree) == [aOSD, bOSD, cOSD], "\(actingThree)")

                // 7. B's stop stops B's OSD only.
                let onB = try #require(try (0..<16).first { index in
                    ((try Self.json(a, ["osd", "map", "jointest", "object-\(index)"]) as? [String: Any])?["acting_primary"] as? Int) == bOSD
                })
                let aPids = try ["mon.node-a", "mgr.node-a", "osd.\(aOSD)"].map(a.pid) + [try c.pid("osd.\(cOSD)")]
                let bPid = try b.pid("osd.\(bOSD)")
                let stopped = try b.provision(["stop", "--root", b.root])
                #expect(stopped.status == 0 && stopped.output.contains("osd.\(bOSD)"), "\(stopped.output)")
                #expect(!ProcessLauncher.alive(bPid))
                for pid in aPids { #expect(ProcessLauncher.alive(pid), "A's or C's pid \(pid) was stopped") }
                try CephTools.wait("osd.\(bOSD) to be marked down", seconds: 30) {
                    let now = try Self.osds(a)
                    return now.contains { ($0["osd"] as? Int) == bOSD && ($0["up"] as? Int) == 0 }
                        && now.contains { ($0["osd"] as? Int) == aOSD && ($0["up"] as? Int) == 1 }
                }

                // 8. With B down, the other copies keep an object whose primary was on B readable, and A's rerun shrinks nothing: B's
                // host still holds an OSD in the CRUSH map. Health is not OK (B's OSD is down), which the run reports.
                let back = a.directory + "/back"
                try? FileManager.default.removeItem(atPath: back)
                try Self.admin(a, "rados", ["-p", "jointest", "get", "object-\(onB)", back])
                #expect(try Data(contentsOf: URL(fileURLWithPath: back)) == Data(contentsOf: URL(fileURLWithPath: payload)))
                let beforeDown = a.events.read().count
                let degraded = try a.run(["--health-timeout", "1"])
                #expect(degraded.status == 1, "\(degraded.errorOutput)")
                #expect(degraded.errorOutput.contains("HEALTH_OK") && degraded.errorOutput.contains("OSD_DOWN"), "\(degraded.errorOutput)")
                let downEvents = Array(a.events.read().dropFirst(beforeDown))
                #expect(downEvents.contains { $0.event == "step.unchanged" && $0.step == "replication" }, "\(downEvents)")
                #expect(try Self.pools(a) == [".aquarium": [3, 2], "device_health_metrics": [3, 2], "jointest": [3, 2]])
                #expect(try Self.defaults(a) == ReplicationDefaults(size: 3, minSize: 2, noRedundancyWarningOff: false))
            }
        }
        // Reported, not asserted: a timed expectation fails on a loaded machine (speed is bench/provision.sh's job;
        // scripts/run-tests bounds the whole run).
        print("JoinTests.joinASecondNode took \(Int(Date().timeIntervalSince(started))) s")
    }
}
