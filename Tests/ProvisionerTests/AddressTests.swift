import Foundation
import Seed
import Testing
@testable import Provisioner

/// Addresses stay typed (`IPAddress`) across the Provisioner and are rendered at the edge: the monitor's address vector,
/// `mon_host` of a joined node, the RGW endpoint; the node's address is chosen among IPv4 and IPv6 addresses alike.
@Suite struct AddressTests {
    static func identity(_ address: String, basePort: Int = 3300) -> ClusterIdentity {
        ClusterIdentity(fsid: "c1548103-2615-4764-ae5d-1ab67261fb22", name: "ceph", daemonId: "node-01",
                        address: IPAddress(address)!, basePort: basePort, publicNetwork: "", clusterNetwork: "",
                        launcher: .systemd)
    }

    @Test(arguments: [
        ("10.0.0.1", 3300, "[v2:10.0.0.1:3300,v1:10.0.0.1:3301]"),
        ("127.0.0.1", 41000, "[v2:127.0.0.1:41000,v1:127.0.0.1:41001]"),
        ("fd00::1", 3300, "[v2:[fd00::1]:3300,v1:[fd00::1]:3301]"),
        ("FD00:0:0::0A", 3300, "[v2:[fd00::a]:3300,v1:[fd00::a]:3301]"),
        ("2001:db8::10", 6789, "[v2:[2001:db8::10]:6789,v1:[2001:db8::10]:6790]"),
    ])
    func monitorAddressVector(address: String, basePort: Int, expected: String) {
        let identity = Self.identity(address, basePort: basePort)
        #expect(identity.monAddressVector == expected)
        #expect(identity.monHost == expected)
    }

    @Test(arguments: [
        ("10.0.0.1", 3300, "10.0.0.1:3300", "[v2:10.0.0.1:3300]"),
        ("fd00::11", 3300, "[fd00::11]:3300", "[v2:[fd00::11]:3300]"),
        ("::1", 41000, "[::1]:41000", "[v2:[::1]:41000]"),
    ])
    func joinTarget(address: String, port: Int, endpoint: String, monHost: String) {
        let target = JoinTarget(address: IPAddress(address)!, port: port)
        #expect(target.endpoint == endpoint)
        #expect(target.monHost == monHost)
    }

    /// The process launcher on loopback pins the daemons to the one address; in a network namespace of its own
    /// (`--seed-network`) it leaves the choice to the networks, as on a node. RGW's endpoint is the address either way.
    @Test(arguments: [
        ("127.0.0.1", ClusterIdentity.loopbackNetwork, "\tpublic_addr = 127.0.0.1\n", "beast endpoint=127.0.0.1:8080"),
        ("10.0.0.1", "10.0.0.0/24", nil, "beast endpoint=10.0.0.1:8080"),
        ("fd00::1", "fd00::/64", nil, "beast endpoint=[fd00::1]:8080"),
    ] as [(String, String, String?, String)])
    func cephConfRendersTheAddress(address: String, network: String, publicAddr: String?, frontend: String) {
        var identity = Self.identity(address)
        identity.launcher = .process
        identity.publicNetwork = network
        identity.clusterNetwork = network
        let text = CephConfig.render(identity, layout: Layout(root: "/tmp/r"), rgwPort: 8080)
        if let publicAddr {
            #expect(text.contains(publicAddr) && text.contains("\tcluster_addr = \(address)\n"))
        } else {
            #expect(!text.contains("public_addr") && !text.contains("cluster_addr"))
            #expect(text.contains("\tpublic_network = \(network)\n") && text.contains("\tcluster_network = \(network)\n"))
        }
        #expect(text.contains("\trgw_frontends = \(frontend)\n"))
    }

    /// The state file keeps the address as text: a file written before the address was typed still reads.
    @Test(arguments: ["10.0.0.1", "fd00::1"])
    func identityRoundTripsThroughTheStateFileText(address: String) throws {
        let identity = Self.identity(address)
        let data = try JSONEncoder().encode(identity)
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        #expect(object?["address"] as? String == address)
        #expect(try JSONDecoder().decode(ClusterIdentity.self, from: data) == identity)
        var bad = object ?? [:]
        bad["address"] = "not-an-address"
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ClusterIdentity.self, from: JSONSerialization.data(withJSONObject: bad))
        }
    }

    @Test(arguments: [
        // network, the seed's static addresses, the host's addresses, the choice
        ("10.0.0.0/24", ["10.0.0.5"], ["10.0.0.9"], "10.0.0.5"),
        ("10.0.0.0/24", [], ["127.0.0.1", "fd00::9", "10.0.0.9"], "10.0.0.9"),
        ("fd00::/64", [], ["127.0.0.1", "10.0.0.9", "fe80::1", "fd00::9"], "fd00::9"),
        ("fd00::/64", ["fd00::5", "10.0.0.5"], ["fd00::9"], "fd00::5"),
        ("fd00::/64", ["10.0.0.5"], ["10.0.0.9"], nil),
        ("192.168.1.0/24", [], [], nil),
    ] as [(String, [String], [String], String?)])
    func nodeAddressChoice(network: String, configured: [String], local: [String], expected: String?) {
        let chosen = NodeAddresses.choose(in: IPNetwork(network)!, configured: configured.map { IPAddress($0)! },
                                          local: local.map { IPAddress($0)! })
        #expect(chosen == expected.map { IPAddress($0)! })
    }

    @Test func socketAddressesOfBothFamiliesAreRead() {
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr)
        let four = withUnsafePointer(to: &v4) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { NodeAddresses.address(of: $0) }
        }
        #expect(four == IPAddress("192.0.2.7"))
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        inet_pton(AF_INET6, "fd00:1::11", &v6.sin6_addr)
        let six = withUnsafePointer(to: &v6) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { NodeAddresses.address(of: $0) }
        }
        #expect(six == IPAddress("fd00:1::11"))
        var other = sockaddr()
        other.sa_family = sa_family_t(AF_PACKET)
        #expect(NodeAddresses.address(of: &other) == nil)
        // This machine has loopback; it is found among the local addresses.
        #expect(NodeAddresses.local().contains(IPAddress("127.0.0.1")!))
    }
}
