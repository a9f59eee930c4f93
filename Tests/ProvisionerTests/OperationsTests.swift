import Exec
import Foundation
import TestSupport
import Testing
@testable import Provisioner

/// Day-two operations on a rack in network namespaces (3 monitor nodes, 1 storage node, the process launcher): each
/// node runs its own `maintenance watch` as the aquarium-maintenance service does. Every daemon, watcher, namespace and
/// loop device is gone at the end, also when a check fails.
@Suite(.serialized) struct OperationsTests {
    typealias Node = RackTests.RackNode

    func provision(_ node: Node, _ arguments: [String]) throws -> CommandResult {
        try node.host.command(try node.provisioner, arguments + ["--root", node.node.root]).run(acceptedStatuses: Set(0...255))
    }

    func json(_ node: Node, _ arguments: [String]) throws -> [String: Any] {
        try #require(try node.ceph(arguments) as? [String: Any])
    }

    /// OSD ids by CRUSH host.
    func hosts(_ node: Node) throws -> [String: [Int]] {
        var hosts: [String: [Int]] = [:]
        for entry in (try json(node, ["osd", "tree"])["nodes"] as? [[String: Any]]) ?? [] where entry["type"] as? String == "host" {
            hosts[entry["name"] as? String ?? "?"] = ((entry["children"] as? [Int]) ?? []).sorted()
        }
        return hosts
    }

    func upOSDs(_ node: Node) throws -> Set<Int> {
        Set(((try json(node, ["osd", "dump"])["osds"] as? [[String: Any]]) ?? []).filter { $0["up"] as? Int == 1 }.compactMap { $0["osd"] as? Int })
    }

    func waitForHealthOK(_ node: Node, seconds: Double = 180) throws {
        let deadline = Date().addingTimeInterval(seconds)
        var last = ""
        while Date() < deadline {
            last = (try json(node, ["health"])["status"] as? String) ?? "?"
            if last == "HEALTH_OK" { return }
            sleep(2)
        }
        Issue.record("no HEALTH_OK within \(Int(seconds)) s: \(last)")
    }

    /// Every placement group active+clean: HEALTH_OK alone still allows data moving to a host that just joined, and
    /// `ok-to-stop` rightly refuses then.
    func waitForClean(_ node: Node, seconds: Double = 180) throws {
        try waitForHealthOK(node, seconds: seconds)
        let deadline = Date().addingTimeInterval(seconds)
        var last = ""
        while Date() < deadline {
            let stat = try json(node, ["pg", "stat"])
            let summary = (stat["pg_summary"] as? [String: Any]) ?? stat
            let states = (summary["num_pg_by_state"] as? [[String: Any]]) ?? []
            last = states.map { "\($0["num"] as? Int ?? 0) \($0["name"] as? String ?? "?")" }.joined(separator: ", ")
            if states.count == 1, states.first?["name"] as? String == "active+clean" { return }
            sleep(2)
        }
        Issue.record("placement groups not all active+clean within \(Int(seconds)) s: \(last)")
    }

    func clusterEvents(_ node: Node) throws -> [String] {
        let listed = try provision(node, ["events", "--json"])
        let report = try JSONDecoder().decode(ClusterEventsReport.self, from: listed.standardOutput)
        return report.events.map { "\($0.host) \($0.event) \($0.detail ?? "")" }
    }

    /// Maintenance (noout for one host only, refused when a second host would take placement groups below
    /// min_size), a reboot that ends its maintenance by itself, a failed disk replaced by a blank one that takes
    /// its OSD id, a new disk becoming an OSD, a node removed with its data kept, and the refusals of removal
    /// (min_size, quorum).
    @Test(.requires(programs: JoinTests.programs + ["ip", "rados"])) func maintenanceRebootDisksAndRemoval() throws {
        try withTemporaryDirectory { directory in
            try LoopDevice.withMany(Array(repeating: JoinTests.disk, count: 7)) { loops in
                try NetworkLab.with(hosts: 4, clusterNetwork: true) { lab in
                    let nodes = try RackTests.RackNode.make(lab, loops: loops, directory: directory)
                    var watchers: [ChildProcess] = []
                    defer {
                        for watcher in watchers { _ = watcher.terminate(grace: 5) }
                        for node in nodes.reversed() { _ = try? node.node.provision(["stop", "--root", node.node.root]) }
                    }
                    _ = try RackTests.makeSeeds(nodes, directory: directory)
                    let results = Slots<Result<CommandResult, any Error>>(count: 3)
                    let threads = nodes.prefix(3).enumerated().map { index, node in Thread { results.set(index, Result { try node.run() }) } }
                    for thread in threads { thread.start() }
                    results.waitUntilFull()
                    for result in results.values { let run = try #require(result).get(); try #require(run.status == 0, "\(run.errorOutput.suffix(3000))") }
                    let storage = nodes[3]
                    let joined = try storage.run()
                    try #require(joined.status == 0, "\(joined.errorOutput.suffix(3000))")
                    let (first, second, third) = (nodes[0], nodes[1], nodes[2])
                    try waitForClean(second)

                    // Objects written before anything happens, read back at the end.
                    let payload = directory + "/payload"
                    try Data((0..<65536).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: payload))
                    for index in 0..<8 { #expect(try second.rados(["-p", "rbd", "put", "object-\(index)", payload]).status == 0) }

                    // Each node's watcher, as the aquarium-maintenance service runs it.
                    for node in nodes {
                        watchers.append(try node.host.command(try node.provisioner, ["maintenance", "watch", "--interval", "1",
                                                                                     "--root", node.node.root]).start())
                    }

                    // 1. Maintenance of the storage node, asked on a monitor node: noout for that host only, its OSD stopped.
                    let storageOSDs = try #require(try hosts(second)["node-4"])
                    let entered = try provision(second, ["maintenance", "enter", "node-4", "--timeout", "120"])
                    #expect(entered.status == 0, "\(entered.errorOutput)")
                    let dump = try json(second, ["osd", "dump"])
                    #expect((dump["crush_node_flags"] as? [String: [String]])?["node-4"] == ["noout"], "\(dump["crush_node_flags"] ?? "-")")
                    #expect(!((dump["flags"] as? String) ?? "").contains("noout"), "noout set for the whole cluster: \(dump["flags"] ?? "")")
                    #expect(try upOSDs(second).isDisjoint(with: storageOSDs))
                    #expect(FileManager.default.fileExists(atPath: storage.node.root + "/var/lib/aquarium/maintenance.json"))
                    // A reconcile on the node in maintenance leaves its daemons stopped.
                    let quiet = try storage.run()
                    let upWhileQuiet = try upOSDs(second)
                    #expect(quiet.status == 0 && upWhileQuiet.isDisjoint(with: storageOSDs), "\(quiet.errorOutput)")
                    // A reconcile on another node meanwhile passes its health step: the warnings are node-4's maintenance.
                    let reconciled = try second.run(["--json"])
                    #expect(reconciled.status == 0, "\(reconciled.errorOutput.suffix(3000))")
                    let healthDetail = try JoinTests.report(reconciled).steps.first { $0.step == "health" }?.detail ?? ""
                    #expect(healthDetail.hasPrefix("HEALTH_WARN") && healthDetail.hasSuffix("in maintenance: node-4"), "\(healthDetail)")

                    // A rolling update needs HEALTH_OK first: refused, nothing asked of any node.
                    let unhealthy = try provision(second, ["update", "--rolling", "/nonexistent/aquarium.raw.zst", "--health-timeout", "5"])
                    #expect(unhealthy.status == 3 && unhealthy.errorOutput.contains("not healthy"), "\(unhealthy.status) \(unhealthy.errorOutput)")
                    #expect(try second.rados(["-p", ".aquarium", "ls"]).output.split(separator: "\n").allSatisfy { !$0.hasPrefix("update.") })

                    // 2. A second host now would take placement groups below min_size: refused, nothing changed.
                    let refused = try provision(second, ["maintenance", "enter", "node-3", "--timeout", "30"])
                    #expect(refused.status == 3 && refused.errorOutput.contains("min_size"), "\(refused.status) \(refused.errorOutput)")
                    #expect((try json(second, ["osd", "dump"])["crush_node_flags"] as? [String: [String]])?["node-3"] == nil)
                    #expect(try upOSDs(second).isSuperset(of: try #require(try hosts(second)["node-3"])))

                    // 3. Maintenance ends: the watcher starts the OSD again, noout goes.
                    let exited = try provision(second, ["maintenance", "exit", "node-4", "--timeout", "120"])
                    #expect(exited.status == 0, "\(exited.errorOutput)")
                    #expect(try upOSDs(second).isSuperset(of: storageOSDs))
                    #expect(((try json(second, ["osd", "dump"])["crush_node_flags"] as? [String: [String]]) ?? [:]).isEmpty)
                    try waitForClean(second)

                    // 3b. A rolling update goes node by node, storage nodes first, and stops at the first that fails:
                    // node 4's watch cannot write the image (these nodes did not boot from a stick) and says why.
                    let rolling = try provision(second, ["update", "--rolling", "/nonexistent/aquarium.raw.zst", "--timeout", "120"])
                    #expect(rolling.status == 1, "\(rolling.status) \(rolling.errorOutput)")
                    #expect(rolling.errorOutput.contains("node-4: the update failed")
                            && rolling.errorOutput.contains("not updated: node-1, node-3, node-2"), "\(rolling.errorOutput)")
                    #expect(try second.rados(["-p", ".aquarium", "ls"]).output.split(separator: "\n").allSatisfy { !$0.hasPrefix("update.") })
                    #expect(try upOSDs(second).isSuperset(of: storageOSDs), "the failed update stopped nothing")

                    // 4. A monitor node reboots itself: maintenance, daemons stopped; the boot's run ends the maintenance.
                    let reboot = try provision(third, ["reboot", "--no-reboot"])
                    #expect(reboot.status == 0, "\(reboot.errorOutput)")
                    var quorum: [String] = []
                    for _ in 0..<30 {
                        quorum = try json(second, ["quorum_status"])["quorum_names"] as? [String] ?? []
                        if Set(quorum) == ["node-1", "node-2"] { break }
                        sleep(2)
                    }
                    #expect(Set(quorum) == ["node-1", "node-2"], "\(quorum)")
                    lab.killAll(in: third.host)  // the machine restarts (its watcher with it)
                    let boot = try third.run(["--json"])
                    #expect(boot.status == 0, "\(boot.errorOutput.suffix(2000))")
                    #expect(try JoinTests.report(boot).steps.first { $0.step == "maintenance" }?.changed == true)
                    #expect(!FileManager.default.fileExists(atPath: third.node.root + "/var/lib/aquarium/maintenance.json"))
                    #expect(((try json(second, ["osd", "dump"])["crush_node_flags"] as? [String: [String]]) ?? [:]).isEmpty)
                    watchers.append(try third.host.command(try third.provisioner, ["maintenance", "watch", "--interval", "1",
                                                                                   "--root", third.node.root]).start())

                    // 5. The storage node's disk fails (its OSD dies) and a blank disk takes its place: the same OSD id.
                    let failedID = try #require(storageOSDs.first)
                    kill(try storage.node.pid("osd.\(failedID)"), SIGKILL)
                    try second.host.command("timeout", ["60", "ceph", "-c", second.node.conf, "osd", "down", String(failedID)]).run()
                    try NodeRecordFixture.write(to: storage.node.record, hostname: "node-4", storage: [loops[4]], seed: storage.node.seed)
                    let replaced = try storage.run()
                    #expect(replaced.status == 0, "\(replaced.errorOutput.suffix(3000))")
                    #expect(try hosts(second)["node-4"] == [failedID])
                    #expect(try upOSDs(second).contains(failedID))
                    #expect(storage.node.events.read().contains { $0.event == "disk.replaced" && ($0.detail ?? "").contains("osd.\(failedID)") })

                    // 6. A new blank disk on node 2 becomes an OSD at its next run.
                    let before = try hosts(second)
                    try NodeRecordFixture.write(to: second.node.record, hostname: "node-2", storage: [loops[1], loops[5]], seed: second.node.seed)
                    let grown = try second.run()
                    #expect(grown.status == 0, "\(grown.errorOutput.suffix(3000))")
                    let after = try hosts(second)
                    #expect(after["node-2"]?.count == 2 && after["node-2"]?.first == before["node-2"]?.first, "\(after)")
                    try waitForClean(second)

                    // 6b. That disk fails too, and the operator names its replacement: refused while the OSD is up,
                    // then the same id on the new disk.
                    let newID = try #require(after["node-2"]?.last)
                    let early = try provision(second, ["disk", "replace", String(newID), loops[6].path, "--node-record", second.node.record])
                    #expect(early.status == 3 && early.errorOutput.contains("is up"), "\(early.status) \(early.errorOutput)")
                    kill(try second.node.pid("osd.\(newID)"), SIGKILL)
                    try second.host.command("timeout", ["60", "ceph", "-c", second.node.conf, "osd", "down", String(newID)]).run()
                    let named = try provision(second, ["disk", "replace", String(newID), loops[6].path, "--node-record", second.node.record])
                    #expect(named.status == 0, "\(named.errorOutput)")
                    let swapped = try second.run()
                    #expect(swapped.status == 0, "\(swapped.errorOutput.suffix(3000))")
                    #expect(try hosts(second)["node-2"] == after["node-2"])
                    #expect(try upOSDs(second).contains(newID))
                    try waitForClean(second)

                    // 7. The storage node is removed: its data moves first, nothing is lost; it never starts again. The
                    // join key is gone by then (as a day after the rack formed): the node reads the request with its OSD's key.
                    let revoked = try provision(second, ["join-token", "--revoke"])
                    #expect(revoked.status == 0, "\(revoked.errorOutput)")
                    let removed = try provision(second, ["node", "remove", "node-4", "--timeout", "300"])
                    #expect(removed.status == 0, "\(removed.errorOutput.suffix(3000))")
                    #expect(try hosts(second)["node-4"] == nil)
                    #expect((try json(second, ["osd", "dump"])["osds"] as? [[String: Any]])?.contains { $0["osd"] as? Int == failedID } == false)
                    for index in 0..<8 {
                        let file = directory + "/read-\(index)"
                        #expect(try third.rados(["-p", "rbd", "get", "object-\(index)", file]).status == 0)
                        #expect(FileManager.default.contents(atPath: file) == FileManager.default.contents(atPath: payload), "object-\(index)")
                    }
                    let again = try storage.run()
                    #expect(again.status == 3 && again.errorOutput.contains("removed"), "\(again.errorOutput)")
                    try waitForClean(second)

                    // 8. Refusals: a pool that needs 3 copies on 3 hosts keeps node 3; without quorum nothing is removed.
                    try second.host.command("timeout", ["60", "ceph", "-c", second.node.conf, "osd", "pool", "set", "rbd", "min_size", "3"]).run()
                    let detail = try #require(try second.ceph(["osd", "pool", "ls", "detail"]) as? [[String: Any]])
                    let rbd = detail.first { $0["pool_name"] as? String == "rbd" }
                    #expect(rbd?["size"] as? Int == 3 && rbd?["min_size"] as? Int == 3, "\(String(describing: rbd))")
                    let lastCopy = try provision(second, ["node", "remove", "node-3", "--timeout", "60"])
                    #expect(lastCopy.status == 3 && lastCopy.errorOutput.contains("pool rbd"), "\(lastCopy.errorOutput)")
                    try second.host.command("timeout", ["60", "ceph", "-c", second.node.conf, "osd", "pool", "set", "rbd", "min_size", "2"]).run()
                    lab.killAll(in: first.host)
                    var left: [String] = []
                    for _ in 0..<45 {
                        left = try json(second, ["quorum_status"])["quorum_names"] as? [String] ?? []
                        if Set(left) == ["node-2", "node-3"] { break }
                        sleep(2)
                    }
                    try #require(Set(left) == ["node-2", "node-3"], "\(left)")
                    let noQuorum = try provision(second, ["node", "remove", "node-3", "--timeout", "60"])
                    #expect(noQuorum.status == 3 && noQuorum.errorOutput.contains("quorum"), "\(noQuorum.errorOutput)")
                    #expect(try hosts(second)["node-3"] != nil)

                    // Every operation is in the cluster's log.
                    let log = try clusterEvents(second)
                    #expect(log.contains { $0.hasPrefix("node-4 update.failed ") }, "\(log.suffix(20))")
                    #expect(log.contains { $0.hasPrefix("node-2 update.rolling.stopped ") && $0.contains("node-4") }, "\(log.suffix(20))")
                    for event in ["maintenance.entered", "maintenance.exited", "disk.replaced", "disk.replace.requested", "osd.destroyed",
                                  "node.remove.started", "node.removed"] {
                        #expect(log.contains { $0.contains(" \(event) ") }, "no \(event) in \(log.suffix(20))")
                    }
                    #expect(log.contains { $0.hasPrefix("node-3 maintenance.exited") && $0.contains("reboot") }, "\(log.suffix(20))")
                }
            }
        }
    }
}
