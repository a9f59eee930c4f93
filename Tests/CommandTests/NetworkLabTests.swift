import Exec
import Foundation
import TestSupport
import Testing

/// The multi-node harness itself: hosts reach each other on the lab's networks and nothing else.
@Suite struct NetworkLabTests {
    @Test("three hosts reach each other over IPv4 and IPv6, the cluster network too; no route leaves the lab; all removed",
          .requires(programs: ["ip", "ping"]))
    func labNetworks() throws {
        var namespaces: [String] = []
        try NetworkLab.with(hosts: 3, clusterNetwork: true) { lab in
            namespaces = lab.hosts.map(\.namespace)
            let (first, third) = (lab.hosts[0], lab.hosts[2])
            for target in [third.publicIPv4, third.publicIPv6, third.clusterIPv4] {
                let ping = try first.command("ping", ["-c", "1", "-W", "5", target]).run(acceptedStatuses: Set(0...255))
                #expect(ping.status == 0, "\(first.name) → \(target): \(ping.output)\(ping.errorOutput)")
            }
            // No default route: an outside address is unreachable at once (no packet is sent to find that out).
            for outside in ["192.0.2.1", "2001:db8::1"] {
                let route = try first.command("ip", ["route", "get", outside]).run(acceptedStatuses: Set(0...255))
                #expect(route.status != 0 && route.errorOutput.contains("unreachable"), "\(route.output)\(route.errorOutput)")
            }
            // A process started in a host runs there and is killed with it.
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", first.namespace, "sleep", "300"]
            try process.run()
            var seen = false
            for _ in 0..<50 where !seen { seen = !lab.pids(in: first).isEmpty; if !seen { usleep(100_000) } }
            #expect(seen, "the sleeper is not in \(first.namespace)")
            lab.killAll(in: first)
            process.waitUntilExit()
            #expect(lab.pids(in: first).isEmpty)
        }
        let left = try Command("ip", ["netns", "list"]).run().output
        for namespace in namespaces { #expect(!left.contains(namespace), "\(namespace) was left behind") }
    }
}
