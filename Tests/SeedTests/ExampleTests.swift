import Foundation
@testable import Seed
import Testing

/// Every seed the project ships or documents.
enum ExampleFiles {
    struct File {
        let path: String
        let text: String
    }

    /// The shipped example and every seed under docs/ and image/: a YAML file whose top level has `version:` and
    /// `host:` (other YAML files there, such as image descriptions, are not seeds).
    static func all() throws -> [File] {
        var files = [File(path: "Sources/Seed/Resources/example-seed.yaml",
                          text: try Fixture.read("Sources/Seed/Resources/example-seed.yaml"))]
        for top in ["docs", "image"] {
            let directory = URL(fileURLWithPath: Fixture.root + "/" + top).resolvingSymlinksInPath().path
            let paths = (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String] ?? [])
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
            for path in paths {
                let text = try Fixture.read(top + "/" + path)
                let lines = text.split(separator: "\n")
                if lines.contains(where: { $0.hasPrefix("version:") }), lines.contains(where: { $0.hasPrefix("host:") }) {
                    files.append(File(path: top + "/" + path, text: text))
                }
            }
        }
        return files
    }

    /// The ```yaml blocks of docs/seed.md.
    static func documentBlocks() throws -> [String] {
        let text = try Fixture.read("docs/seed.md")
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```yaml" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append((current ?? []).joined(separator: "\n") + "\n")
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }
}

@Suite("Shipped and documented seeds")
struct ExampleTests {
    @Test("every shipped or documented seed file validates")
    func filesValidate() throws {
        let files = try ExampleFiles.all()
        #expect(files.count >= 4)
        for file in files {
            do {
                _ = try SeedLoader.load(path: Fixture.root + "/" + file.path)
            } catch {
                Issue.record("\(file.path) does not validate:\n\(error)")
            }
        }
    }

    @Test("docs/seed.md shows the shipped example, and its complete examples validate")
    func documentExample() throws {
        let blocks = try ExampleFiles.documentBlocks()
        #expect(blocks.first == (try SeedResources.example()), "the first yaml block of docs/seed.md is the example")
        for block in blocks where block.hasPrefix("version: 1") || block.contains("\nversion: 1") {  // complete seeds
            #expect(issues(of: block, file: "docs/seed.md").isEmpty, "\(block)")
        }
    }

    @Test("the example reads as documented, with defaults applied")
    func exampleModel() throws {
        let seed = try SeedLoader.parse(try SeedResources.example(), file: "example-seed.yaml")
        #expect(seed.version == 1)
        #expect(seed.host.hostname == "node-01")
        #expect(seed.host.timezone == "Etc/UTC")
        #expect(seed.host.ntpServers == ["10.0.0.1"])
        #expect(seed.host.users.map(\.name) == ["aquarium"])
        #expect(seed.host.users.first?.sshAuthorizedKeys.count == 1)
        #expect(seed.network.interfaces.count == 2)
        #expect(seed.network.interfaces[0].selector == .name("eno1"))
        #expect(seed.network.interfaces[0].dhcp)
        #expect(seed.network.interfaces[1].addresses.map(\.description) == ["10.1.0.11/24"])
        #expect(seed.network.interfaces[1].gateway == IPAddress("10.1.0.1"))
        #expect(seed.network.interfaces[1].mtu == 9000)
        #expect(seed.network.publicNetwork?.description == "10.0.0.0/24")
        #expect(seed.network.clusterNetwork?.description == "10.1.0.0/24")
        #expect(seed.disks.system.match.minSize == 100_000_000_000)
        #expect(seed.disks.system.match.maxSize == 2_000_000_000_000)
        #expect(seed.disks.system.match.transport == [.nvme, .sata])
        #expect(seed.disks.system.match.rotational == false)
        #expect(seed.disks.system.prefer == .smallest)
        #expect(seed.disks.system.wipe == .never)
        #expect(seed.disks.system.filesystem == .xfs)
        #expect(seed.disks.storage.match == DiskMatch(rotational: true))
        #expect(seed.cluster.name == "ceph")
        #expect(seed.cluster.role == .bootstrap)
        #expect(seed.cluster.join == nil)
        #expect(seed.cluster.services.rbd?.pools == ["rbd"])
        #expect(seed.cluster.services.rgw?.port == 7480)
        #expect(seed.cluster.services.cephfs?.name == "cephfs")
        #expect(seed.cluster.telemetry == false)
    }

    @Test("defaults of a minimal seed")
    func defaults() throws {
        let seed = try SeedLoader.parse(Fixture.minimal, file: "s.yaml")
        #expect(seed.disks.system.match == DiskMatch(minSize: 10 * 1024 * 1024 * 1024))
        #expect(seed.disks.system.prefer == .smallest)
        #expect(seed.disks.system.wipe == .never)
        #expect(seed.disks.system.filesystem == .xfs)
        #expect(seed.disks.storage.match.isEmpty)
        #expect(seed.disks.storage.wipe == .never)
        #expect(seed.network == Seed.Network())
        #expect(seed.host.users.isEmpty)
        #expect(seed.cluster.name == "ceph")
        #expect(seed.cluster.services == Seed.Services())
        let withMatch = try SeedLoader.parse(Fixture.minimal(plus: "disks:\n  system:\n    match: {rotational: false}\n"),
                                             file: "s.yaml")
        #expect(withMatch.disks.system.match.minSize == Seed.SystemDisk.defaultMinSize)
        let services = try SeedLoader.parse(SeedCases.valid.first { $0.name == "services with defaults" }?.yaml ?? "",
                                            file: "s.yaml")
        #expect(services.cluster.services == Seed.Services(rbd: .init(pools: ["rbd"]), rgw: .init(port: 7480),
                                                           cephfs: .init(name: "cephfs"), dashboard: .init(port: 8443)))
        #expect(services.cluster.telemetry)
    }

    @Test("join seeds carry the address and token; a MAC is normalised")
    func joinAndMAC() throws {
        let seed = try SeedLoader.parse(Fixture.withCluster("""
            network:
              interfaces:
                - mac: "52:54:00:AB:CD:EF"
                  dhcp: true
            cluster:
              role: join
              join: {address: "fd00::11", token: a1b2-c3d4-e5f6-a7b8}

            """), file: "s.yaml")
        #expect(seed.cluster.role == .join)
        #expect(seed.cluster.join == Seed.Join(address: try #require(IPAddress("fd00::11")), token: "a1b2-c3d4-e5f6-a7b8"))
        #expect(seed.network.interfaces.first?.selector == .mac("52:54:00:ab:cd:ef"))
    }

    @Test("secrets are listed and redacted; SSH keys are not secrets")
    func redaction() throws {
        let text = Fixture.withCluster("""
            cluster:
              role: join
              join: {address: 10.0.0.11, token: a1b2-c3d4-e5f6-a7b8}

            """).replacingOccurrences(of: "  hostname: node-01\n", with: """
              hostname: node-01
              users:
                - name: ops
                  password_hash: "\(Fixture.yescryptHash)"
                  ssh_authorized_keys: ["\(Fixture.ed25519Key)"]

            """)
        let seed = try SeedLoader.parse(text, file: "s.yaml")
        #expect(Set(seed.secrets) == [Fixture.yescryptHash, "a1b2-c3d4-e5f6-a7b8"])
        let redacted = seed.redacted()
        #expect(redacted.host.users.first?.passwordHash == Seed.redactionMarker)
        #expect(redacted.cluster.join?.token == Seed.redactionMarker)
        #expect(redacted.host.users.first?.sshAuthorizedKeys == [Fixture.ed25519Key])
        let description = seed.redactedDescription
        #expect(!description.contains(Fixture.yescryptHash) && !description.contains("a1b2-c3d4"))
        #expect(description.contains("\"password_hash\" : \"<redacted>\""))
        #expect(description.contains("\"ssh_authorized_keys\""))
        #expect(description.contains("\"min_size\" : 10737418240"))
        #expect(seed.redact("token=a1b2-c3d4-e5f6-a7b8 ok") == "token=<redacted> ok")
    }

    @Test("the dashboard's private key is a secret: listed, redacted, never described")
    func dashboardKeyRedaction() throws {
        let text = Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    dashboard:\n      certificate: |\n"
            + SeedCases.pemCertificate + "      private_key: |\n" + SeedCases.pemRSAKey)
        let seed = try SeedLoader.parse(text, file: "s.yaml")
        let key = try #require(seed.cluster.services.dashboard?.privateKey)
        #expect(seed.secrets.contains(key))
        #expect(seed.redacted().cluster.services.dashboard?.privateKey == Seed.redactionMarker)
        #expect(seed.redacted().cluster.services.dashboard?.certificate == seed.cluster.services.dashboard?.certificate)
        let body = try #require(key.split(separator: "\n").first { !$0.hasPrefix("-----") })
        #expect(!seed.redactedDescription.contains(body) && seed.redact("key: \(body)") == "key: <redacted>")
    }
}
