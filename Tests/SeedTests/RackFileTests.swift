import Exec
import Foundation
@testable import Seed
import Testing
import TestSupport

/// Rack file fixtures: `base` is a valid two-node rack; its lines are
///  1 version, 2 cluster, 3 public_network, 4 nodes, 5-8 node1 (hostname, serial, interface, address),
///  9-11 node2 (hostname, mac, address).
enum RackFixture {
    static let base = """
        version: 1
        cluster:
          public_network: 10.77.0.0/24
        nodes:
          - hostname: node1
            serial: ABC1
            interface: eno1
            address: 10.77.0.1/24
          - hostname: node2
            mac: "52:54:00:00:00:02"
            address: 10.77.0.2/24

        """

    /// `base` with `extra` cluster lines after line 3 (so the nodes move down by their count).
    static func withCluster(_ extra: String) -> String {
        base.replacingOccurrences(of: "  public_network: 10.77.0.0/24\n", with: "  public_network: 10.77.0.0/24\n" + extra)
    }

    /// `base` with `text` replaced by `replacement` (exactly once).
    static func replacing(_ text: String, with replacement: String) -> String {
        precondition(base.components(separatedBy: text).count == 2, "'\(text)' is not in the base rack once")
        return base.replacingOccurrences(of: text, with: replacement)
    }

    /// `base` followed by `extra` (which starts at line 12).
    static func plus(_ extra: String) -> String { base + extra }

    /// A deterministic random number generator for tests (xorshift).
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        init(seed: UInt64) { state = seed | 1 }
        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
    }
}

/// A rack file that is refused: the same shape as a seed's (`InvalidCase`).
typealias RackInvalidCase = InvalidCase

enum RackCases {
    static let invalid: [RackInvalidCase] = [
        RackInvalidCase(name: "version other than 1", yaml: RackFixture.replacing("version: 1", with: "version: 2"),
                        keyPath: "version", line: 1, column: 10, message: "version 2 is not supported", schema: .rejects),
        RackInvalidCase(name: "unknown cluster key with suggestion", yaml: RackFixture.withCluster("  cluster_netwrk: 10.78.0.0/24\n"),
                        keyPath: "cluster.cluster_netwrk", line: 4, column: 3, message: "unknown key; did you mean 'cluster_network'?",
                        schema: .rejects),
        RackInvalidCase(name: "public network missing", yaml: RackFixture.replacing("  public_network: 10.77.0.0/24\n", with: "  name: ceph\n"),
                        keyPath: "cluster.public_network", line: 3, column: 3, message: "required key is missing", schema: .rejects),
        RackInvalidCase(name: "public network with host bits", yaml: RackFixture.replacing("10.77.0.0/24", with: "10.77.0.5/24"),
                        keyPath: "cluster.public_network", line: 3, column: 19, message: "has host bits set", schema: .beyondSchema),
        RackInvalidCase(name: "cluster network the same as the public network", yaml: RackFixture.withCluster("  cluster_network: 10.77.0.0/24\n"),
                        keyPath: "cluster.cluster_network", line: 4, column: 20, message: "is the public network", schema: .beyondSchema),
        RackInvalidCase(name: "join key lifetime without unit", yaml: RackFixture.withCluster("  join_key_lifetime: 1 day\n"),
                        keyPath: "cluster.join_key_lifetime", line: 4, column: 22, message: "is not a lifetime", schema: .rejects),
        RackInvalidCase(name: "unknown service", yaml: RackFixture.withCluster("  services: {ftp: }\n"),
                        keyPath: "cluster.services.ftp", line: 4, column: 14, message: "unknown key", schema: .rejects),
        RackInvalidCase(name: "NFS virtual address outside the public network",
                        yaml: RackFixture.withCluster("  services: {cephfs: , nfs: {virtual_ip: 10.9.0.100, exports: [{name: a}]}}\n"),
                        keyPath: "cluster.services.nfs.virtual_ip", line: 4, column: 42, message: "is not in the public network 10.77.0.0/24",
                        schema: .beyondSchema),
        RackInvalidCase(name: "monitor that is not a node", yaml: RackFixture.withCluster("  monitors: [node9]\n"),
                        keyPath: "cluster.monitors[0]", line: 4, column: 14, message: "'node9' is not a node of this rack; did you mean",
                        schema: .beyondSchema),
        RackInvalidCase(name: "an even number of monitors", yaml: RackFixture.withCluster("  monitors: [node1, node2]\n"),
                        keyPath: "cluster.monitors", line: 4, column: 13, message: "names 2 monitors; a rack has an odd number",
                        schema: .beyondSchema),
        RackInvalidCase(name: "a monitor named twice", yaml: RackFixture.withCluster("  monitors: [node1, node1, node2]\n"),
                        keyPath: "cluster.monitors[1]", line: 4, column: 21, message: "is named twice", schema: .rejects),
        RackInvalidCase(name: "no nodes", yaml: RackFixture.base.components(separatedBy: "nodes:")[0] + "nodes: []\n",
                        keyPath: "nodes", line: 4, column: 8, message: "lists no nodes", schema: .rejects),
        RackInvalidCase(name: "nodes missing", yaml: RackFixture.base.components(separatedBy: "nodes:")[0],
                        keyPath: "nodes", line: 1, column: 1, message: "required key is missing", schema: .rejects),
        RackInvalidCase(name: "host name with uppercase", yaml: RackFixture.replacing("hostname: node1", with: "hostname: Node1"),
                        keyPath: "nodes[0].hostname", line: 5, column: 15, message: "write it in lowercase", schema: .rejects),
        RackInvalidCase(name: "unknown node key with suggestion", yaml: RackFixture.replacing("    address: 10.77.0.1/24\n", with: "    address: 10.77.0.1/24\n    adress: 10.77.0.9/24\n"),
                        keyPath: "nodes[0].adress", line: 9, column: 5, message: "did you mean 'address'?", schema: .rejects),
        RackInvalidCase(name: "duplicate host name", yaml: RackFixture.replacing("hostname: node2", with: "hostname: node1"),
                        keyPath: "nodes[1].hostname", line: 9, column: 15, message: "host name 'node1' is already nodes[0]'s",
                        schema: .beyondSchema),
        RackInvalidCase(name: "duplicate short name", yaml: RackFixture.replacing("hostname: node1", with: "hostname: node.a")
                            .replacingOccurrences(of: "hostname: node2", with: "hostname: node.b"),
                        keyPath: "nodes[1].hostname", line: 9, column: 15, message: "short name 'node' is already nodes[0]'s (node.a)",
                        schema: .beyondSchema),
        RackInvalidCase(name: "duplicate serial", yaml: RackFixture.replacing("    address: 10.77.0.2/24\n", with: "    address: 10.77.0.2/24\n    serial: ABC1\n"),
                        keyPath: "nodes[1].serial", line: 12, column: 13, message: "serial 'ABC1' is already nodes[0]'s", schema: .beyondSchema),
        RackInvalidCase(name: "serials that are one file on FAT", yaml: RackFixture.replacing("    address: 10.77.0.2/24\n", with: "    address: 10.77.0.2/24\n    serial: abc1\n"),
                        keyPath: "nodes[1]", line: 12, column: 13, message: "is the same file on the FAT seed volume as nodes[0]'s",
                        schema: .beyondSchema),
        RackInvalidCase(name: "duplicate MAC", yaml: RackFixture.replacing("    interface: eno1\n", with: "    mac: \"52:54:00:00:00:02\"\n"),
                        keyPath: "nodes[1].mac", line: 10, column: 10, message: "MAC 52:54:00:00:00:02 is already nodes[0]'s",
                        schema: .beyondSchema),
        RackInvalidCase(name: "duplicate address", yaml: RackFixture.replacing("10.77.0.2/24", with: "10.77.0.1/24"),
                        keyPath: "nodes[1].address", line: 11, column: 14, message: "address 10.77.0.1 is already nodes[0]'s",
                        schema: .beyondSchema),
        RackInvalidCase(name: "address outside the public network", yaml: RackFixture.replacing("10.77.0.1/24", with: "10.78.0.1/24"),
                        keyPath: "nodes[0].address", line: 8, column: 14, message: "10.78.0.1 is not in cluster.public_network 10.77.0.0/24",
                        schema: .beyondSchema),
        RackInvalidCase(name: "address of another family", yaml: RackFixture.replacing("10.77.0.1/24", with: "\"fd00::1/64\""),
                        keyPath: "nodes[0].address", line: 8, column: 14, message: "fd00::1 is not in cluster.public_network",
                        schema: .beyondSchema),
        RackInvalidCase(name: "the network address as a node's address", yaml: RackFixture.replacing("10.77.0.1/24", with: "10.77.0.0/24"),
                        keyPath: "nodes[0].address", line: 8, column: 14, message: "is the network address of its subnet",
                        schema: .beyondSchema),
        RackInvalidCase(name: "address without prefix length", yaml: RackFixture.replacing("10.77.0.1/24", with: "10.77.0.1"),
                        keyPath: "nodes[0].address", line: 8, column: 14, message: "is not an address with a prefix length",
                        schema: .rejects),
        RackInvalidCase(name: "cluster address missing with a cluster network", yaml: RackFixture.withCluster("  cluster_network: 10.78.0.0/24\n"),
                        keyPath: "nodes[0].cluster_address", line: 6, column: 5, message: "required key is missing: the rack has cluster.cluster_network 10.78.0.0/24",
                        schema: .beyondSchema),
        RackInvalidCase(name: "cluster address without a cluster network", yaml: RackFixture.replacing("    address: 10.77.0.1/24\n", with: "    address: 10.77.0.1/24\n    cluster_address: 10.78.0.1/24\n"),
                        keyPath: "nodes[0].cluster_address", line: 9, column: 5, message: "is only for a rack with cluster.cluster_network",
                        schema: .beyondSchema),
        RackInvalidCase(name: "cluster address outside the cluster network",
                        yaml: RackFixture.withCluster("  cluster_network: 10.78.0.0/24\n")
                            .replacingOccurrences(of: "    address: 10.77.0.1/24\n", with: "    address: 10.77.0.1/24\n    cluster_address: 10.79.0.1/24\n"),
                        keyPath: "nodes[0].cluster_address", line: 10, column: 22, message: "10.79.0.1 is not in cluster.cluster_network 10.78.0.0/24",
                        schema: .beyondSchema),
        RackInvalidCase(name: "serial that is a vendor placeholder", yaml: RackFixture.replacing("serial: ABC1", with: "serial: \"To be filled by O.E.M.\""),
                        keyPath: "nodes[0].serial", line: 6, column: 13, message: "is a vendor placeholder, not a serial",
                        schema: .beyondSchema),
        RackInvalidCase(name: "serial with ':' says to use the MAC", yaml: RackFixture.replacing("serial: ABC1", with: "serial: \"AB:C1\""),
                        keyPath: "nodes[0].serial", line: 6, column: 13, message: "FAT forbids in a file name (it forbids / \\ : * ? \" < > |); name this machine's seed by its MAC instead",
                        schema: .rejects),
        RackInvalidCase(name: "serial with '/'", yaml: RackFixture.replacing("serial: ABC1", with: "serial: AB/C1"),
                        keyPath: "nodes[0].serial", line: 6, column: 13, message: "contains '/', which FAT forbids", schema: .rejects),
        RackInvalidCase(name: "serial with '*'", yaml: RackFixture.replacing("serial: ABC1", with: "serial: \"AB*C1\""),
                        keyPath: "nodes[0].serial", line: 6, column: 13, message: "contains '*', which FAT forbids", schema: .rejects),
        RackInvalidCase(name: "serial with a control character", yaml: RackFixture.replacing("serial: ABC1", with: "serial: \"AB\\tC1\""),
                        keyPath: "nodes[0].serial", line: 6, column: 13, message: "contains control characters", schema: .rejects),
        RackInvalidCase(name: "serial with a space at its end", yaml: RackFixture.replacing("serial: ABC1", with: "serial: \"ABC1 \""),
                        keyPath: "nodes[0].serial", line: 6, column: 13, message: "starts or ends with a space", schema: .beyondSchema),
        RackInvalidCase(name: "serial starting with '.'", yaml: RackFixture.replacing("serial: ABC1", with: "serial: .ABC1"),
                        keyPath: "nodes[0].serial", line: 6, column: 13, message: "starts or ends with '.'", schema: .beyondSchema),
        RackInvalidCase(name: "serial given as a number", yaml: RackFixture.replacing("serial: ABC1", with: "serial: 12345"),
                        keyPath: "nodes[0].serial", line: 6, column: 13, message: "put it in quotes", schema: .rejects),
        RackInvalidCase(name: "neither serial nor mac", yaml: RackFixture.replacing("    serial: ABC1\n", with: ""),
                        keyPath: "nodes[0]", line: 5, column: 5, message: "give serial (the DMI system serial) and/or mac", schema: .rejects),
        RackInvalidCase(name: "malformed MAC", yaml: RackFixture.replacing("\"52:54:00:00:00:02\"", with: "\"52:54:00:00:02\""),
                        keyPath: "nodes[1].mac", line: 10, column: 10, message: "is not a MAC address", schema: .rejects),
        RackInvalidCase(name: "all-zero MAC", yaml: RackFixture.replacing("\"52:54:00:00:00:02\"", with: "\"00:00:00:00:00:00\""),
                        keyPath: "nodes[1].mac", line: 10, column: 10, message: "is all zero, not a NIC's MAC address",
                        schema: .beyondSchema),
        RackInvalidCase(name: "multicast MAC", yaml: RackFixture.replacing("\"52:54:00:00:00:02\"", with: "\"01:00:5e:00:00:02\""),
                        keyPath: "nodes[1].mac", line: 10, column: 10, message: "is a multicast address", schema: .beyondSchema),
        RackInvalidCase(name: "interface and mac", yaml: RackFixture.replacing("    address: 10.77.0.2/24\n", with: "    address: 10.77.0.2/24\n    interface: eno1\n"),
                        keyPath: "nodes[1].interface", line: 12, column: 5, message: "give interface only for a node without mac", schema: .rejects),
        RackInvalidCase(name: "neither interface nor mac", yaml: RackFixture.replacing("    interface: eno1\n", with: ""),
                        keyPath: "nodes[0].interface", line: 5, column: 5, message: "a node without mac needs interface", schema: .rejects),
        RackInvalidCase(name: "interface name too long", yaml: RackFixture.replacing("interface: eno1", with: "interface: enp0s31f6abcdefgh"),
                        keyPath: "nodes[0].interface", line: 7, column: 16, message: "is not a valid interface name", schema: .rejects),
        RackInvalidCase(name: "gateway outside the subnet", yaml: RackFixture.replacing("    address: 10.77.0.1/24\n", with: "    address: 10.77.0.1/24\n    gateway: 10.99.0.1\n"),
                        keyPath: "nodes[0].gateway", line: 9, column: 14, message: "10.99.0.1 is outside the node's subnet 10.77.0.0/24",
                        schema: .beyondSchema),
        RackInvalidCase(name: "gateway that is the node's address", yaml: RackFixture.replacing("    address: 10.77.0.1/24\n", with: "    address: 10.77.0.1/24\n    gateway: 10.77.0.1\n"),
                        keyPath: "nodes[0].gateway", line: 9, column: 14, message: "is this node's own address", schema: .beyondSchema),
        RackInvalidCase(name: "a node's disks override with a bad wipe", yaml: RackFixture.replacing("    address: 10.77.0.1/24\n", with: "    address: 10.77.0.1/24\n    disks: {storage: {wipe: yes}}\n"),
                        keyPath: "nodes[0].disks.storage.wipe", line: 9, column: 29, message: "'yes' is not one of never, aquarium, always",
                        schema: .rejects),
        RackInvalidCase(name: "defaults.host.hostname is per node", yaml: RackFixture.plus("defaults:\n  host:\n    hostname: x\n"),
                        keyPath: "defaults.host.hostname", line: 14, column: 5, message: "is per node: give it as nodes[].hostname",
                        schema: .rejects),
        RackInvalidCase(name: "defaults.host.machine is per node", yaml: RackFixture.plus("defaults:\n  host:\n    machine: {serial: X}\n"),
                        keyPath: "defaults.host.machine", line: 14, column: 5, message: "give nodes[].serial and/or nodes[].mac",
                        schema: .rejects),
        RackInvalidCase(name: "defaults.network.public_network is the rack's", yaml: RackFixture.plus("defaults:\n  network:\n    public_network: 10.77.0.0/24\n"),
                        keyPath: "defaults.network.public_network", line: 14, column: 5, message: "give it as cluster.public_network",
                        schema: .rejects),
        RackInvalidCase(name: "defaults.network.interfaces are per node", yaml: RackFixture.plus("defaults:\n  network:\n    interfaces: []\n"),
                        keyPath: "defaults.network.interfaces", line: 14, column: 5, message: "are per node", schema: .rejects),
        RackInvalidCase(name: "defaults with the seed's rules: a plaintext password", yaml: RackFixture.plus("defaults:\n  host:\n    users:\n      - name: ops\n        password_hash: hunter2\n"),
                        keyPath: "defaults.host.users[0].password_hash", line: 16, column: 24, message: "plaintext password, which is refused",
                        schema: .rejects),
        RackInvalidCase(name: "defaults with the seed's rules: unknown time zone", yaml: RackFixture.plus("defaults:\n  host:\n    timezone: Mars/Olympus_Mons\n"),
                        keyPath: "defaults.host.timezone", line: 14, column: 15, message: "is not a known time zone", schema: .beyondSchema),
        RackInvalidCase(name: "defaults.disks with a bad wipe", yaml: RackFixture.plus("defaults:\n  disks:\n    system:\n      wipe: yes\n"),
                        keyPath: "defaults.disks.system.wipe", line: 15, column: 13, message: "'yes' is not one of never, aquarium, always",
                        schema: .rejects),
        RackInvalidCase(name: "defaults.expires not a time", yaml: RackFixture.plus("defaults:\n  expires: tomorrow\n"),
                        keyPath: "defaults.expires", line: 13, column: 12, message: "is not an RFC 3339 time", schema: .rejects),
        RackInvalidCase(name: "unknown defaults section with suggestion", yaml: RackFixture.plus("defaults:\n  disk: {}\n"),
                        keyPath: "defaults.disk", line: 13, column: 3, message: "did you mean 'disks'?", schema: .rejects),
        RackInvalidCase(name: "empty file", yaml: "# nothing\n",
                        keyPath: "", line: 1, column: 1, message: "the file is empty", schema: .notJSON),
        RackInvalidCase(name: "duplicate key", yaml: RackFixture.withCluster("  public_network: 10.77.0.0/24\n"),
                        keyPath: "cluster.public_network", line: 4, column: 3, message: "duplicate key: already given at line 3, column 3",
                        schema: .notJSON),
        RackInvalidCase(name: "anchors and aliases", yaml: RackFixture.replacing("address: 10.77.0.1/24", with: "address: &a 10.77.0.1/24"),
                        keyPath: "nodes[0].address", line: 8, column: 14, message: "anchors and aliases", schema: .notJSON),
    ]

    static let valid: [ValidCase] = [
        ValidCase(name: "the base rack", yaml: RackFixture.base),
        ValidCase(name: "everything given", yaml: """
            version: 1
            cluster:
              name: ceph-prod
              public_network: 10.77.0.0/24
              cluster_network: 10.78.0.0/24
              join_key_lifetime: 90m
              monitors: [node3]
              services: {rbd: , rgw: {port: 8080, users: [{name: backup, buckets: [backups], quota: {max_size: 2TiB}}]}, cephfs: {name: shared}}
            defaults:
              host:
                timezone: Etc/UTC
                ntp_servers: [10.77.0.254, ntp.example.org]
                users:
                  - name: aquarium
                    ssh_authorized_keys: ["\(Fixture.ed25519Key)"]
              network:
                nameservers: [10.77.0.254]
              disks:
                system: {match: {rotational: false}, wipe: aquarium}
                storage: {match: {rotational: true}}
              expires: "2036-12-31T23:59:59Z"
            nodes:
              - hostname: node1.rack.example.org
                serial: "CZ 2041-ABC_D.1"
                interface: eno1
                address: 10.77.0.1/24
                cluster_address: 10.78.0.1/24
                gateway: 10.77.0.254
              - hostname: node2.rack.example.org
                serial: CZ2041ABCE
                mac: "52:54:00:AB:CD:02"
                address: 10.77.0.2/24
                cluster_address: 10.78.0.2/24
                disks: {storage: {match: {transport: [nvme]}, wipe: always}}
              - hostname: node3.rack.example.org
                mac: "52:54:00:00:00:03"
                address: 10.77.0.3/16
                cluster_address: 10.78.0.3/24

            """),
        ValidCase(name: "IPv6 only", yaml: """
            version: 1
            cluster:
              public_network: "fd00:77::/64"
            nodes:
              - hostname: node1
                mac: "52:54:00:00:00:01"
                address: "fd00:77::1/64"
                gateway: "fd00:77::fe"

            """),
    ]
}

@Suite("Rack files")
struct RackFileTests {
    static func issues(of text: String) -> [SeedIssue] {
        do {
            _ = try RackLoader.parse(text, file: "rack.yaml")
            return []
        } catch {
            return error.issues
        }
    }

    @Test("invalid rack files are rejected with the exact key path, line and column", arguments: RackCases.invalid)
    func rejects(_ testCase: RackInvalidCase) throws {
        let found = Self.issues(of: testCase.yaml)
        try #require(!found.isEmpty, "accepted: \(testCase.yaml)")
        let match = found.first { $0.keyPath == testCase.keyPath && $0.message.contains(testCase.message) }
        #expect(match != nil, "no issue at \(testCase.keyPath) containing \"\(testCase.message)\"; got:\n\(found.map(\.description).joined(separator: "\n"))")
        if let match {
            #expect(match.line == testCase.line && match.column == testCase.column,
                    "expected \(testCase.line):\(testCase.column), got \(match)")
            #expect(match.file == "rack.yaml")
            #expect(match.description.hasPrefix("rack.yaml:\(testCase.line):\(testCase.column): "))
        }
        #expect(!SeedValidationError(issues: found).description.contains("hunter2"), "a message repeats a secret")
    }

    @Test("valid rack files are accepted", arguments: RackCases.valid)
    func accepts(_ testCase: ValidCase) throws {
        let found = Self.issues(of: testCase.yaml)
        #expect(found.isEmpty, "\(found.map(\.description).joined(separator: "\n"))")
    }

    @Test("the rack file reads as written, with defaults and the node's disks override applied")
    func model() throws {
        let rack = try RackLoader.parse(try #require(RackCases.valid.first { $0.name == "everything given" }).yaml, file: "rack.yaml")
        #expect(rack.cluster.name == "ceph-prod")
        #expect(rack.cluster.joinKeyLifetime == 5400)
        #expect(rack.cluster.services.rgw?.port == 8080)
        #expect(rack.cluster.services.rgw?.users == [Seed.S3User(name: "backup", buckets: ["backups"], quota: Seed.S3Quota(maxSize: 2 << 40))])
        #expect(rack.cluster.services.rbd?.pools == ["rbd"])
        #expect(rack.monitors == ["node3.rack.example.org"])
        #expect(rack.nodes.map { rack.role(of: $0) } == [.storage, .storage, .monitor])
        #expect(rack.nodes.map(\.seedName) == ["CZ 2041-ABC_D.1", "CZ2041ABCE", "52-54-00-00-00-03"])
        #expect(rack.nodes[1].mac == "52:54:00:ab:cd:02")
        #expect(rack.nodes[0].interfaceSelector == .name("eno1"))
        #expect(rack.nodes[1].interfaceSelector == .mac("52:54:00:ab:cd:02"))
        #expect(rack.nodes[0].disks.system.wipe == .aquarium)
        #expect(rack.nodes[0].disks.storage.match.rotational == true)
        // node2 replaces storage only; its system disk stays the defaults'.
        #expect(rack.nodes[1].disks.system.wipe == .aquarium)
        #expect(rack.nodes[1].disks.storage.match.transport == [.nvme])
        #expect(rack.nodes[1].disks.storage.match.rotational == nil)
        #expect(rack.nodes[1].disks.storage.wipe == .always)
        #expect(rack.defaults.expires?.text == "2036-12-31T23:59:59Z")
        #expect(rack.rackMonitors == [Seed.RackMonitor(host: "node3.rack.example.org", address: try #require(IPAddress("10.77.0.3")))])
    }

    @Test("docs/examples/rack.yaml validates")
    func example() throws {
        let rack = try RackLoader.load(path: Fixture.root + "/docs/examples/rack.yaml")
        #expect(rack.nodes.count == 4)
        #expect(rack.monitors == ["node1", "node2", "node3"])
    }

    /// The demos' rack files (`make cluster-demo`, `iscsi-demo`, `nfs-demo`): a demo that boots three nodes for half an
    /// hour should not find a typo at its first step.
    @Test("the demos' rack files validate", arguments: ["cluster-demo-rack.yaml", "cluster-demo-iscsi-rack.yaml",
                                                        "cluster-demo-nfs-rack.yaml"])
    func demoRack(_ name: String) throws {
        let rack = try RackLoader.load(path: Fixture.root + "/docs/examples/" + name)
        #expect(rack.monitors == ["rack-node-1", "rack-node-2", "rack-node-3"])
    }

    @Test("the rack file shown in docs/rack.md validates")
    func documentedRack() throws {
        let text = try Fixture.read("docs/rack.md")
        let blocks = text.components(separatedBy: "```yaml\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        let rack = try #require(blocks.first { $0.hasPrefix("version: 1") }, "docs/rack.md shows no rack file")
        let read = try RackLoader.parse(rack, file: "docs/rack.md")
        #expect(read.monitors == ["node1", "node2", "node3"])
    }

    @Test("a missing rack file is reported with its name")
    func missingFile() {
        let error = #expect(throws: SeedValidationError.self) { try RackLoader.load(path: "/nonexistent/rack.yaml") }
        #expect(error?.issues.first?.file == "/nonexistent/rack.yaml")
        #expect(error?.issues.first?.message.hasPrefix("cannot read the file") == true)
    }
}

// MARK: placement

struct PlacementCase: Sendable, CustomTestStringConvertible {
    let name: String
    let nodes: [String]
    let named: [String]?
    /// The monitors placed, or nil when refused.
    let monitors: [String]?
    /// Parts of the problems when refused.
    var problems: [String] = []
    var testDescription: String { name }

    static func nodes(_ count: Int) -> [String] { (1...count).map { "n\($0)" } }
}

@Suite("Monitor placement")
struct MonitorPlacementTests {
    static let cases: [PlacementCase] = [
        PlacementCase(name: "1 node: 1 monitor", nodes: PlacementCase.nodes(1), named: nil, monitors: ["n1"]),
        PlacementCase(name: "2 nodes: 1 monitor", nodes: PlacementCase.nodes(2), named: nil, monitors: ["n1"]),
        PlacementCase(name: "3 nodes: 3 monitors", nodes: PlacementCase.nodes(3), named: nil, monitors: ["n1", "n2", "n3"]),
        PlacementCase(name: "4 nodes: 3 monitors", nodes: PlacementCase.nodes(4), named: nil, monitors: ["n1", "n2", "n3"]),
        PlacementCase(name: "5 nodes: 5 monitors", nodes: PlacementCase.nodes(5), named: nil, monitors: PlacementCase.nodes(5)),
        PlacementCase(name: "12 nodes: the first 5", nodes: PlacementCase.nodes(12), named: nil, monitors: PlacementCase.nodes(5)),
        PlacementCase(name: "file order, not name order", nodes: ["zeta", "alpha", "mid"], named: nil, monitors: ["zeta", "alpha", "mid"]),
        PlacementCase(name: "named: one of four", nodes: PlacementCase.nodes(4), named: ["n4"], monitors: ["n4"]),
        PlacementCase(name: "named: in the order named", nodes: PlacementCase.nodes(5), named: ["n5", "n1", "n3"], monitors: ["n5", "n1", "n3"]),
        PlacementCase(name: "named: seven", nodes: PlacementCase.nodes(9), named: PlacementCase.nodes(7), monitors: PlacementCase.nodes(7)),
        PlacementCase(name: "named: by short name", nodes: ["n1.rack.example", "n2.rack.example"], named: ["n2"], monitors: ["n2.rack.example"]),
        PlacementCase(name: "named: by full name", nodes: ["n1.a", "n1.b", "n3.a"], named: ["n1.b"], monitors: ["n1.b"]),
        PlacementCase(name: "named: an ambiguous short name", nodes: ["n1.a", "n1.b", "n3.a"], named: ["n1"], monitors: nil,
                      problems: ["matches n1.a, n1.b: give the full host name"]),
        PlacementCase(name: "named: two", nodes: PlacementCase.nodes(4), named: ["n1", "n2"], monitors: nil, problems: ["names 2 monitors"]),
        PlacementCase(name: "named: none", nodes: PlacementCase.nodes(4), named: [], monitors: nil, problems: ["names 0 monitors"]),
        PlacementCase(name: "named: nine", nodes: PlacementCase.nodes(9), named: PlacementCase.nodes(9), monitors: nil,
                      problems: ["names 9 monitors; a rack has an odd number from 1 to 7"]),
        PlacementCase(name: "named: more than the nodes", nodes: PlacementCase.nodes(2), named: ["n1", "n2", "n3"], monitors: nil,
                      problems: ["'n3' is not a node of this rack", "names 3 monitors but the rack has 2 nodes"]),
        PlacementCase(name: "named: twice", nodes: PlacementCase.nodes(3), named: ["n1", "n1", "n2"], monitors: nil,
                      problems: ["'n1' is named twice"]),
        PlacementCase(name: "named: not a node, with a suggestion", nodes: ["node1", "node2", "node3"], named: ["nod3"], monitors: nil,
                      problems: ["'nod3' is not a node of this rack; did you mean 'node3'?"]),
    ]

    @Test("the monitors placed or the problems", arguments: cases)
    func placement(_ testCase: PlacementCase) {
        switch MonitorPlacement.place(nodes: testCase.nodes, named: testCase.named) {
        case .success(let monitors):
            #expect(monitors == testCase.monitors, "placed \(monitors)")
        case .failure(let refused):
            #expect(testCase.monitors == nil, "refused: \(refused.problems)")
            for problem in testCase.problems {
                #expect(refused.problems.contains { $0.message.contains(problem) }, "no problem '\(problem)' in \(refused.problems)")
            }
        }
    }

    @Test("the default count is odd and grows with the rack", arguments: 1...40)
    func defaultCount(_ nodes: Int) {
        let count = MonitorPlacement.defaultCount(nodes: nodes)
        #expect(count % 2 == 1 && count <= nodes && count <= MonitorPlacement.maximum)
        #expect(count == (nodes <= 2 ? 1 : nodes <= 4 ? 3 : 5))
    }
}

// MARK: keys, secrets, names, rendering

@Suite("Rack secrets, cephx keys and rendered seeds")
struct RackSecretsTests {
    @Test("a cephx key: 28 bytes (type 1, created, length 16, the secret), 40 characters of base64 starting with AQ")
    func keyShape() throws {
        var generator = RackFixture.Generator(seed: 42)
        var copy = generator
        let created = Date(timeIntervalSince1970: 1_767_225_600.25)
        let key = CephxKey.generate(created: created, using: &generator)
        #expect(key.count == 40 && key.hasPrefix("AQ") && key.hasSuffix("=="))
        #expect(CephxKey.problem(key) == nil)
        let bytes = [UInt8](try #require(Data(base64Encoded: key)))
        #expect(bytes.count == 28)
        func little(_ range: Range<Int>) -> UInt64 { range.reversed().reduce(0) { $0 << 8 | UInt64(bytes[$1]) } }
        #expect(little(0..<2) == 1)
        #expect(little(2..<6) == 1_767_225_600)
        #expect(little(6..<10) == 250_000_000)
        #expect(little(10..<12) == 16)
        let secret = [copy.next(), copy.next()].flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        #expect(Array(bytes[12...]) == secret)
        // Fresh keys differ.
        #expect(CephxKey.generate() != CephxKey.generate())
    }

    @Test("what the key check refuses", arguments: [
        ("AQnotakey", "is not a cephx key"),
        ("AgAAuVVpAAAAABAAAAECAwQFBgcICQoLDA0ODw==", "is base64 but not a cephx key"),
        ("AQAAuVVpAAAAACAAAAECAwQFBgcICQoLDA0ODw==", "is base64 but not a cephx key"),
        ("AQAAuVVpAAAAABAAAAECAwQFBgcICQoLDA0ODw=", "is not a cephx key"),
    ])
    func keyProblems(_ key: String, _ message: String) {
        let problem = CephxKey.problem(key)
        #expect(problem?.contains(message) == true, "\(problem ?? "accepted")")
        #expect(problem?.contains(key) != true, "the message repeats the key")
    }

    @Test("ceph-authtool reads the key as the key it is", .requires(root: false, programs: ["ceph-authtool"]))
    func cephReadsTheKey() throws {
        try withTemporaryDirectory { directory in
            let key = CephxKey.generate()
            let keyring = directory + "/keyring"
            try Command("ceph-authtool", ["--create-keyring", keyring, "--name", "client.test", "--add-key", key]).run()
            let listed = try Command("ceph-authtool", [keyring, "--list"]).run()
            // ceph-authtool decodes the key and encodes it again: the same text means the same fields.
            #expect(listed.output.contains("key = \(key)\n"), "\(listed.output)")
        }
    }

    @Test("new secrets: a lowercase version 4 fsid, three different keys; the file reads back to the same secrets")
    func secretsRoundTrip() throws {
        var generator = RackFixture.Generator(seed: 7)
        let monitors = [Seed.RackMonitor(host: "node1", address: try #require(IPAddress("10.77.0.1")))]
        let secrets = RackSecrets.generate(monitors: monitors, now: Date(timeIntervalSince1970: 1_767_225_600),
                                           using: &generator)
        #expect(SeedSyntax.fsidProblem(secrets.fsid) == nil)
        #expect(Array(secrets.fsid)[14] == "4")
        #expect(Set(secrets.secrets).count == 3)
        #expect(secrets.secrets.allSatisfy { CephxKey.problem($0) == nil })
        #expect(secrets.created.text == "2026-01-01T00:00:00Z")
        let reread = try RackSecrets.parse(secrets.yamlText, file: "secrets.yaml")
        #expect(reread.fsid == secrets.fsid && reread.secrets == secrets.secrets && reread.monitors == monitors)
        #expect(reread.created.text == secrets.created.text)
        var other = RackFixture.Generator(seed: 8)
        #expect(RackSecrets.generate(monitors: monitors, using: &other).fsid != secrets.fsid)
    }

    static let secretsBase = """
        fsid: c1548103-2615-4764-ae5d-1ab67261fb22
        created: "2026-01-01T00:00:00Z"
        monitor_key: "AQAAuVVpAAAAABAAAAECAwQFBgcICQoLDA0ODw=="
        admin_key: "AQAAuVVpAAAAABAAEBESExQVFhcYGRobHB0eHw=="
        join_key: "AQAAuVVpAAAAABAAICEiIyQlJicoKSorLC0uLw=="

        """

    @Test("a malformed secrets file names the file, line and key, and never the key's value", arguments: [
        ("version: 1\n", "version", 1, 1, "unknown key"),
        (secretsBase.replacingOccurrences(of: "join_key: \"AQAAuVVpAAAAABAAICEiIyQlJicoKSorLC0uLw==\"\n", with: ""),
         "join_key", 1, 1, "required key is missing"),
        (secretsBase.replacingOccurrences(of: "AQAAuVVpAAAAABAAICEiIyQlJicoKSorLC0uLw==", with: "AQAAuVVpAAAAABAAICEiIyQl"),
         "join_key", 5, 11, "is not a cephx key"),
        (secretsBase.replacingOccurrences(of: "AQAAuVVpAAAAABAAICEiIyQlJicoKSorLC0uLw==", with: "AQAAuVVpAAAAABAAEBESExQVFhcYGRobHB0eHw=="),
         "join_key", 5, 11, "is the same key as admin_key"),
        (secretsBase.replacingOccurrences(of: "c1548103", with: "C1548103"), "fsid", 1, 7, "write the fsid in lowercase"),
        (secretsBase.replacingOccurrences(of: "\"2026-01-01T00:00:00Z\"", with: "yesterday"), "created", 2, 10, "is not an RFC 3339 time"),
        (secretsBase + "monitors: [{host: node1}]\n", "monitors[0].address", 6, 12, "required key is missing"),
    ])
    func malformedSecrets(_ text: String, _ keyPath: String, _ line: Int, _ column: Int, _ message: String) {
        let error = #expect(throws: SeedValidationError.self) { try RackSecrets.parse(text, file: "rack/secrets.yaml") }
        let issue = error?.issues.first { $0.keyPath == keyPath }
        #expect(issue?.file == "rack/secrets.yaml")
        #expect(issue?.line == line && issue?.column == column, "\(error?.description ?? "")")
        #expect(issue?.message.contains(message) == true, "\(error?.description ?? "")")
        #expect(error?.description.contains("AQAAuVVpAAAAABAAEBESExQVFhcYGRobHB0eHw") != true)
        #expect(error?.description.contains("AQAAuVVpAAAAABAAICEiIyQl") != true)
    }

    @Test("serials that cannot name a seed file say to use the MAC", arguments: [
        ("To be filled by O.E.M.", "vendor placeholder"), ("Default string", "vendor placeholder"), ("0", "vendor placeholder"),
        ("AB:12", "':'"), ("AB\\12", "'\\'"), ("A*", "'*'"), ("A?", "'?'"), ("A\"", "'\"'"), ("A<", "'<'"), ("A>", "'>'"),
        ("A|B", "'|'"), ("A/B", "'/'"), ("A\u{1}", "control characters"), ("A\u{7F}", "control characters"),
        ("Ä1", "printable ASCII"), (" A1", "space"), ("A1 ", "space"), (".A1", "'.'"), ("A1.", "'.'"), ("A..1", "'..'"),
        ("", "1 to 128 characters"), (String(repeating: "A", count: 129), "1 to 128 characters"),
    ])
    func unusableSerials(_ serial: String, _ reason: String) {
        let problem = SeedFileName.serialProblem(serial)
        #expect(problem?.contains(reason) == true, "\(problem ?? "accepted")")
        if !serial.isEmpty && serial.count <= 128 { #expect(problem?.contains("by its MAC instead") == true) }
    }

    @Test("usable serials name the seed file as they are", arguments: ["CZ2041ABCD", "SN 123-45_6.7", "a", "VMware-56 4d"])
    func usableSerials(_ serial: String) {
        #expect(SeedFileName.serialProblem(serial) == nil)
        #expect(SeedFileName.volumePath(serial) == "seeds/\(serial).yaml")
    }

    @Test("every valid seed and example renders to YAML that reads back as the same seed")
    func renderingRoundTrip() throws {
        var texts = SeedCases.valid.map { ($0.name, $0.yaml) }
        texts += try ExampleFiles.all().map { ($0.path, $0.text) }
        for (name, text) in texts {
            let seed = try SeedLoader.parse(text, file: name)
            let rendered = seed.yamlText(header: ["rendered from \(name)"])
            #expect(rendered.hasPrefix("# rendered from"))
            do {
                let reread = try SeedLoader.parse(rendered, file: name)
                #expect(reread == seed, "\(name) reads back differently:\n\(rendered)")
            } catch {
                Issue.record("\(name) renders to an invalid seed: \(error)\n\(rendered)")
            }
        }
    }

    @Test("rendered text quotes what would read as something else", arguments: [
        ("plain", "plain"), ("10.0.0.1", "10.0.0.1"), ("10.0.0.0/24", "10.0.0.0/24"), ("52:54:00:00:00:01", "\"52:54:00:00:00:01\""),
        ("fd00::1", "\"fd00::1\""), ("1234", "\"1234\""), ("1.5", "\"1.5\""), ("true", "\"true\""), ("yes", "\"yes\""),
        ("No", "\"No\""), ("null", "\"null\""), ("", "\"\""), ("-fs", "\"-fs\""), ("a b", "\"a b\""), ("a\"b\\c", "\"a\\\"b\\\\c\""),
        ("$y$j9T$x", "\"$y$j9T$x\""), ("AQAAuVVpAAAAABAAAAECAwQFBgcICQoLDA0ODw==", "\"AQAAuVVpAAAAABAAAAECAwQFBgcICQoLDA0ODw==\""),
        ("0x10", "\"0x10\""), ("/dev/disk/by-id/wwn-0x5", "/dev/disk/by-id/wwn-0x5"), ("#x", "\"#x\""),
    ])
    func quoting(_ text: String, _ expected: String) {
        #expect(YAMLText.scalar(text) == expected)
    }

    @Test("join key lifetimes render as people write them", arguments: [
        (86400, "24h"), (172_800, "48h"), (604_800, "7d"), (5400, "90m"), (90, "90s"), (3600, "1h"), (30 * 86400, "30d"),
    ])
    func lifetimes(_ seconds: Int, _ text: String) {
        #expect(SeedSyntax.lifetimeText(seconds) == text)
        #expect(SeedSyntax.lifetime(text) == seconds)
    }
}

// MARK: schema

@Suite("Rack JSON Schema")
struct RackSchemaTests {
    @Test("the repository copy docs/rack.schema.json is the shipped resource")
    func repositoryCopy() throws {
        let shipped = try SeedResources.rackSchema()
        #expect(shipped == (try Fixture.read("docs/rack.schema.json")))
        #expect(try Fixture.read("Sources/Seed/Resources/rack.schema.json") == shipped)
    }

    @Test("the schema names every key the reader knows")
    func keysAgree() throws {
        let object = try JSONSerialization.jsonObject(with: Data(try SeedResources.rackSchema().utf8)) as? [String: Any]
        let properties = object?["properties"] as? [String: Any]
        #expect(Set(properties?.keys.map { $0 } ?? []) == Set(RackReader.fileKeys))
        func keys(_ path: [String]) -> Set<String> {
            var node: Any? = object
            for key in path { node = (node as? [String: Any])?[key] }
            return Set(((node as? [String: Any])?["properties"] as? [String: Any])?.keys.map { $0 } ?? [])
        }
        #expect(keys(["properties", "cluster"]) == Set(RackReader.clusterKeys))
        #expect(keys(["properties", "defaults"]) == Set(RackReader.defaultsKeys))
        #expect(keys(["properties", "nodes", "items"]) == Set(RackReader.nodeKeys))
        #expect(keys(["properties", "defaults", "properties", "host"]) == Set(SeedReader.sharedHostKeys))
    }

    @Test("the schema agrees with the reader on the valid and invalid rack files")
    func agreement() throws {
        var instances: [Any] = []
        var labels: [(name: String, expectValid: Bool)] = []
        var texts = RackCases.valid.map { ($0.name, $0.yaml) }
        texts.append(("docs/examples/rack.yaml", try Fixture.read("docs/examples/rack.yaml")))
        for (name, text) in texts {
            instances.append(try #require(SeedLoader.jsonObject(of: text), "\(name) is not JSON"))
            labels.append((name, true))
        }
        for testCase in RackCases.invalid where testCase.schema != .notJSON {
            instances.append(try #require(SeedLoader.jsonObject(of: testCase.yaml), "\(testCase.name) is not JSON"))
            labels.append((testCase.name, testCase.schema == .beyondSchema))
        }
        let verdicts = try JSONSchemaValidator.validate(instances, schema: Fixture.root + "/docs/rack.schema.json")
        try #require(verdicts.count == labels.count)
        for (label, verdict) in zip(labels, verdicts) {
            #expect(verdict.valid == label.expectValid,
                    "\(label.name): schema says \(verdict.valid ? "valid" : "invalid") \(verdict.errors)")
        }
    }
}
