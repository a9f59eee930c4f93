import Exec
import Foundation
import TestSupport
import Testing
@testable import Provisioner

/// Nodes as hosts of their own: each in a network namespace of a NetworkLab (private bridges, no route out), the
/// process launcher binding in the seed's networks (`--seed-network`) on the default ports, as on a real node. Every
/// daemon is stopped, the namespaces removed and the loop devices detached at the end, also when a check fails.
@Suite(.serialized) struct LabTests {
    static let network = """
        network:
          public_network: \(NetworkLab.publicNetwork)
          cluster_network: \(NetworkLab.clusterNetwork)

        """

    struct LabNode {
        var node: JoinTests.Node
        var host: NetworkLab.Host

        func run(_ extra: [String] = []) throws -> CommandResult {
            try host.command(try Products.path("aquarium-provision"),
                             ["run", "--seed", node.seed, "--node-record", node.record, "--root", node.root,
                              "--launcher", "process", "--seed-network"] + extra)
                .run(acceptedStatuses: Set(0...255))
        }

        func writeSeed(_ cluster: String, network: String = LabTests.network) throws {
            try "version: 1\nhost:\n  hostname: \(node.hostname)\n\(network)cluster:\n\(cluster)"
                .write(toFile: node.seed, atomically: true, encoding: .utf8)
        }
    }

    /// A bootstraps while its address comes only seconds after the run started (as from a slow DHCP server) and waits
    /// for it; B joins A at 10.77.0.1:3300 from its own host; the OSDs' front addresses are their hosts' public ones
    /// and their back addresses on the cluster network; C, whose address never comes, fails after its bound with
    /// the reason, having created nothing.
    @Test(.requires(programs: JoinTests.programs + ["ip"])) func lateAddressJoinAndClusterNetwork() throws {
        try withTemporaryDirectory { directory in
            try LoopDevice.withMany([JoinTests.disk, JoinTests.disk, JoinTests.disk]) { loops in
                try NetworkLab.with(hosts: 3, clusterNetwork: true) { lab in
                    let nodes = try (0..<3).map { index in
                        LabNode(node: try JoinTests.Node(directory: directory + "/\(index + 1)", hostname: lab.hosts[index].name,
                                                         disk: loops[index]),
                                host: lab.hosts[index])
                    }
                    let (a, b, c) = (nodes[0], nodes[1], nodes[2])
                    defer {
                        for node in nodes.reversed() { _ = try? node.node.provision(["stop", "--root", node.node.root]) }
                    }
                    func admin(_ arguments: [String]) throws -> Any {
                        let result = try a.host.command("timeout", ["120", "ceph", "-c", a.node.conf] + arguments + ["--format", "json"]).run()
                        return try JSONSerialization.jsonObject(with: result.standardOutput)
                    }

                    // 1. A's public address is not there when its run starts; it comes 5 s later.
                    try Command("ip", ["-n", a.host.namespace, "address", "del", a.host.publicIPv4 + "/24", "dev", "eth0"]).run()
                    try a.writeSeed("  role: bootstrap\n")
                    let adder = Thread {
                        sleep(5)
                        _ = try? Command("ip", ["-n", a.host.namespace, "address", "add", a.host.publicIPv4 + "/24", "dev", "eth0"]).run()
                    }
                    adder.start()
                    let bootstrapped = try a.run(["--json"])
                    try #require(bootstrapped.status == 0, "\(bootstrapped.errorOutput)")
                    #expect(a.node.events.read().contains { $0.event == "address.waiting" && ($0.detail ?? "").contains("10.77.0.0/24") })
                    #expect(try a.node.state.identity?.address.description == "10.77.0.1")
                    let conf = try String(contentsOfFile: a.node.conf, encoding: .utf8)
                    #expect(conf.contains("mon_host = [v2:10.77.0.1:3300,v1:10.77.0.1:3301]") || conf.contains("10.77.0.1:3300"), "\(conf)")

                    // 2. B joins from its own host, with the monitor's default port.
                    let token = try a.node.provision(["join-token", "--root", a.node.root]).output
                        .trimmingCharacters(in: .whitespacesAndNewlines)
                    try b.writeSeed("  role: join\n  join:\n    address: \(a.host.publicIPv4)\n    token: \"\(token)\"\n")
                    let joined = try b.run(["--json"])
                    try #require(joined.status == 0, "\(joined.errorOutput)")
                    #expect(try JoinTests.report(joined).health == "HEALTH_OK")

                    // 3. Each OSD: front address its host's public one, back address on the cluster network.
                    let osds = ((try admin(["osd", "dump"]) as? [String: Any])?["osds"] as? [[String: Any]]) ?? []
                    #expect(osds.count == 2)
                    var fronts: [String] = []
                    for osd in osds {
                        let front = osd["public_addr"] as? String ?? ""
                        let back = osd["cluster_addr"] as? String ?? ""
                        fronts.append(String(front.split(separator: ":").first ?? ""))
                        #expect(back.hasPrefix("10.78.0."), "osd.\(osd["osd"] ?? "?") back address \(back)")
                    }
                    #expect(Set(fronts) == ["10.77.0.1", "10.77.0.2"], "\(fronts)")

                    // The cluster's view from either host, the joined one too: two CRUSH hosts with one OSD each, up and
                    // in, and the raw capacity of both disks. The manager's statistics (`ceph df`) take a few seconds to
                    // count a new OSD, so the capacity is asked again for up to 60 s until it does.
                    for node in [a, b] {
                        var report: StatusReport?
                        var json: [String: Any]?
                        let deadline = Date().addingTimeInterval(60)
                        repeat {
                            let status = try node.host.command(try Products.path("aquarium-provision"),
                                                               ["status", "--root", node.node.root, "--json"])
                                .run(acceptedStatuses: Set(0...255))
                            #expect(status.status == 0, "\(status.errorOutput)")
                            report = try JSONDecoder().decode(StatusReport.self, from: status.standardOutput)
                            json = try JSONSerialization.jsonObject(with: status.standardOutput) as? [String: Any]
                            if (report?.capacity?.rawTotalBytes ?? 0) > 8 << 30 { break }
                            sleep(2)
                        } while Date() < deadline
                        let hosts = report?.hosts ?? []
                        #expect(hosts.map(\.name) == ["node-1", "node-2"] && hosts.allSatisfy { $0.osds.count == 1 && $0.up == 1 && $0.in == 1 },
                                "\(hosts)")
                        let total = try #require(report?.capacity?.rawTotalBytes, "\(node.host.name) reports no capacity")
                        #expect(total >= 2 * (8 << 30) * 9 / 10 && total <= 2 * (8 << 30), "\(node.host.name): \(total)")
                        #expect(json?.keys.contains("capacity") == true, "capacity is null, not missing, where unknown")
                    }

                    // 4. C's address never comes: it fails after its bound, saying why, and creates nothing.
                    try Command("ip", ["-n", c.host.namespace, "address", "del", c.host.publicIPv4 + "/24", "dev", "eth0"]).run()
                    try c.writeSeed("  role: join\n  join:\n    address: \(a.host.publicIPv4)\n    token: \"\(token)\"\n")
                    let stranded = try c.run(["--address-timeout", "3"])
                    #expect(stranded.status == 1, "\(stranded.errorOutput)")
                    #expect(stranded.errorOutput.contains("no address in the public network 10.77.0.0/24 after 3 s"), "\(stranded.errorOutput)")
                    #expect(try JoinTests.isEmpty(loops[2]))
                    #expect(((try admin(["osd", "dump"]) as? [String: Any])?["osds"] as? [[String: Any]])?.count == 2)
                }
            }
        }
    }
}
