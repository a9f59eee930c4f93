import Foundation
import ImageBuilder
import Seed
import Testing
import TestSupport

/// Rack files for the `rack seeds` tests.
enum RackFiles {
    static func nodes(_ count: Int, from first: Int = 1) -> String {
        (first..<(first + count)).map { index in
            index % 2 == 1
                ? "  - hostname: node\(index)\n    serial: SN-\(index)\n    interface: eno1\n    address: 10.77.0.\(index)/24\n"
                    + "    cluster_address: 10.78.0.\(index)/24\n    gateway: 10.77.0.254\n"
                : "  - hostname: node\(index)\n    mac: \"52:54:00:00:00:0\(index)\"\n    address: 10.77.0.\(index)/24\n"
                    + "    cluster_address: 10.78.0.\(index)/24\n"
        }.joined()
    }

    /// A rack of `count` nodes: odd ones named by serial and eno1, even ones by MAC; services for the monitors.
    static func rack(nodes count: Int, monitors: String? = nil) -> String {
        """
        version: 1
        cluster:
          public_network: 10.77.0.0/24
          cluster_network: 10.78.0.0/24
          join_key_lifetime: 12h
        \(monitors.map { "  monitors: \($0)\n" } ?? "")  services: {rbd: , rgw: {port: 7480}}
        defaults:
          host:
            timezone: Etc/UTC
            users: [{name: aquarium, password_hash: "$y$j9T$UL.EaGvb/p0bpbwqqi0HE/$N9Rmp2Aq/q2BDjA/OKZMz1cewYSJ7SeQd0wktO0oIF7"}]
          network: {nameservers: [10.77.0.254]}
          disks: {storage: {match: {rotational: true}, wipe: aquarium}}
        nodes:

        """ + nodes(count)
    }

    static func write(_ text: String, _ path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    static func mode(_ path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }
}

@Suite("rack seeds: secrets, one seed per node, signing", .serialized)
struct RackSeedsTests {
    @Test("the rack's hardware requirements and disk model rules reach every node's seed; a node's own models replace them")
    func requirementsAndModels() throws {
        try withTemporaryDirectory { directory in
            let rackFile = directory + "/rack.yaml"
            let text = RackFiles.rack(nodes: 2)
                .replacingOccurrences(of: "    timezone: Etc/UTC\n",
                                      with: "    timezone: Etc/UTC\n    requirements: {cpu_threads: 8, memory: 16GiB, memory_per_osd: 4GiB}\n")
                .replacingOccurrences(of: "  disks: {storage: {match: {rotational: true}, wipe: aquarium}}\n",
                                      with: "  disks:\n    storage: {match: {rotational: true}, wipe: aquarium}\n"
                                        + "    models: {deny: [{model: \"Samsung SSD 870 QVO*\", reason: \"QLC: slow under load\"}]}\n")
                + "    disks: {models: {allow: [{vendor: ATA, model: \"Micron*\"}]}}\n"
            try RackFiles.write(text, rackFile)
            let report = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: directory + "/rack", signingKey: nil)
            let seeds = try report.nodes.map { try SeedLoader.load(path: try #require($0.file)) }
            #expect(seeds.count == 2)
            for seed in seeds {
                #expect(seed.host.requirements == Seed.Requirements(cpuThreads: 8, memory: 16 << 30, memoryPerOSD: 4 << 30))
                #expect(seed.disks.storage.wipe == .aquarium)
            }
            #expect(seeds[0].disks.models.deny == [Seed.DiskModelRule(model: "Samsung SSD 870 QVO*", reason: "QLC: slow under load")])
            #expect(seeds[1].disks.models == Seed.DiskModels(allow: [Seed.DiskModelRule(vendor: "ATA", model: "Micron*")]),
                    "the second node's own models replace the rack's")
        }
    }

    @Test("secrets and one seed per node: modes 0700/0600, every seed loads back, the keys each role needs and no other")
    func writesSeeds() throws {
        try withTemporaryDirectory { directory in
            let rackFile = directory + "/rack.yaml"
            try RackFiles.write(RackFiles.rack(nodes: 5), rackFile)
            let output = directory + "/out/rack"
            let report = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: output, signingKey: nil)
            #expect(!report.secretsReused)
            #expect(report.monitors == ["node1", "node2", "node3", "node4", "node5"])
            #expect(RackFiles.mode(output) == 0o700)
            #expect(RackFiles.mode(output + "/seeds") == 0o700)
            #expect(RackFiles.mode(output + "/secrets.yaml") == 0o600)
            let secrets = try RackSecrets.load(path: output + "/secrets.yaml")
            #expect(secrets.fsid == report.fsid)
            #expect(secrets.monitors?.map(\.host) == report.monitors)
            #expect(report.nodes.map(\.seed) == ["seeds/SN-1.yaml", "seeds/52-54-00-00-00-02.yaml", "seeds/SN-3.yaml",
                                                 "seeds/52-54-00-00-00-04.yaml", "seeds/SN-5.yaml"])
            for entry in report.nodes {
                let file = try #require(entry.file)
                #expect(file == output + "/" + entry.seed)
                #expect(RackFiles.mode(file) == 0o600, "\(file)")
                let seed = try SeedLoader.load(path: file)
                #expect(seed.host.hostname == entry.host)
                #expect(seed.cluster.role.rawValue == entry.role)
                #expect(seed.cluster.rack?.fsid == secrets.fsid)
                #expect(seed.cluster.rack?.joinKey == secrets.joinKey)
                #expect(seed.cluster.rack?.monitors.count == 5)
                #expect(seed.network.publicNetwork?.description == "10.77.0.0/24")
                #expect(seed.network.interfaces.first?.addresses.map(\.description) == [entry.address, entry.address.replacingOccurrences(of: "10.77.", with: "10.78.")])
                #expect(seed.host.machine == Seed.Machine(serial: entry.serial, mac: entry.mac))
                #expect(seed.host.timezone == "Etc/UTC" && seed.host.users.map(\.name) == ["aquarium"])
                #expect(seed.disks.storage.wipe == .aquarium)
            }
        }
    }

    @Test("a storage node's seed holds the join key and neither the monitor nor the admin key (nor services)")
    func storageSeedsHoldOnlyTheJoinKey() throws {
        try withTemporaryDirectory { directory in
            let rackFile = directory + "/rack.yaml"
            try RackFiles.write(RackFiles.rack(nodes: 4), rackFile)
            let report = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: directory + "/rack", signingKey: nil)
            let secrets = try RackSecrets.load(path: directory + "/rack/secrets.yaml")
            #expect(report.nodes.map(\.role) == ["monitor", "monitor", "monitor", "storage"])
            for entry in report.nodes {
                let text = try String(contentsOfFile: try #require(entry.file), encoding: .utf8)
                #expect(text.contains(secrets.joinKey))
                if entry.role == "storage" {
                    for forbidden in [secrets.monitorKey, secrets.adminKey, "monitor_key", "admin_key", "join_key_lifetime", "services"] {
                        #expect(!text.contains(forbidden), "the storage seed \(entry.seed) holds \(forbidden.prefix(12))")
                    }
                } else {
                    #expect(text.contains(secrets.monitorKey) && text.contains(secrets.adminKey))
                    #expect(text.contains("join_key_lifetime: 12h") && text.contains("services:"))
                }
            }
        }
    }

    @Test("existing secrets are read and reused: a node added later gets the same fsid and join key")
    func reusesSecrets() throws {
        try withTemporaryDirectory { directory in
            let rackFile = directory + "/rack.yaml"
            let output = directory + "/rack"
            try RackFiles.write(RackFiles.rack(nodes: 3), rackFile)
            let first = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: output, signingKey: nil)
            let secretsBytes = try Data(contentsOf: URL(fileURLWithPath: output + "/secrets.yaml"))
            let before = try SeedLoader.load(path: output + "/seeds/SN-1.yaml")

            try RackFiles.write(RackFiles.rack(nodes: 4), rackFile)
            let second = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: output, signingKey: nil)
            #expect(second.secretsReused)
            #expect(second.fsid == first.fsid)
            #expect(second.text.contains("reused the secrets in \(output)/secrets.yaml"), "\(second.text)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: output + "/secrets.yaml")) == secretsBytes)
            let added = try SeedLoader.load(path: output + "/seeds/52-54-00-00-00-04.yaml")
            #expect(added.cluster.role == .storage)
            #expect(added.cluster.rack?.joinKey == before.cluster.rack?.joinKey)
            #expect(added.cluster.rack?.monitors == before.cluster.rack?.monitors)
            #expect(try SeedLoader.load(path: output + "/seeds/SN-1.yaml") == before)
            #expect(second.warnings.isEmpty)

            // A secrets file others can read is used, with a warning.
            chmod(output + "/secrets.yaml", 0o644)
            let loose = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: output, signingKey: nil)
            #expect(loose.warnings.first?.contains("can be read by other users (mode 644)") == true, "\(loose.warnings)")
            #expect(loose.text.contains("warning: \(output)/secrets.yaml can be read by other users"))
        }
    }

    @Test("reused secrets whose monitors differ from the new placement are refused, saying how to keep them")
    func monitorsDoNotMove() throws {
        try withTemporaryDirectory { directory in
            let rackFile = directory + "/rack.yaml"
            let output = directory + "/rack"
            try RackFiles.write(RackFiles.rack(nodes: 2), rackFile)
            _ = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: output, signingKey: nil)
            let seedBefore = try Data(contentsOf: URL(fileURLWithPath: output + "/seeds/SN-1.yaml"))

            // Three nodes would get three monitors; the cluster has one.
            try RackFiles.write(RackFiles.rack(nodes: 3), rackFile)
            let error = #expect(throws: ImageError.self) {
                try RackSeedWriter().write(rackFile: rackFile, outputDirectory: output, signingKey: nil)
            }
            #expect(error?.kind == .invalidInput)
            #expect(error?.subject == rackFile)
            #expect(error?.message.contains("Name them in cluster.monitors: [node1]") == true, "\(error?.message ?? "")")
            #expect(!FileManager.default.fileExists(atPath: output + "/seeds/SN-3.yaml"), "a seed was written")
            #expect(try Data(contentsOf: URL(fileURLWithPath: output + "/seeds/SN-1.yaml")) == seedBefore)

            try RackFiles.write(RackFiles.rack(nodes: 3, monitors: "[node1]"), rackFile)
            let report = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: output, signingKey: nil)
            #expect(report.nodes.map(\.role) == ["monitor", "storage", "storage"])
        }
    }

    @Test("a malformed secrets file is refused naming the file; nothing is written")
    func malformedSecrets() throws {
        try withTemporaryDirectory { directory in
            let rackFile = directory + "/rack.yaml"
            try RackFiles.write(RackFiles.rack(nodes: 1), rackFile)
            try FileManager.default.createDirectory(atPath: directory + "/rack", withIntermediateDirectories: true)
            try RackFiles.write("fsid: not-a-uuid\n", directory + "/rack/secrets.yaml")
            let error = #expect(throws: SeedValidationError.self) {
                try RackSeedWriter().write(rackFile: rackFile, outputDirectory: directory + "/rack", signingKey: nil)
            }
            #expect(error?.issues.allSatisfy { $0.file == directory + "/rack/secrets.yaml" } == true)
            #expect(error?.description.contains("secrets.yaml:1:7: fsid: is not a cluster fsid") == true, "\(error?.description ?? "")")
            #expect(!FileManager.default.fileExists(atPath: directory + "/rack/seeds"))
        }
    }

    @Test("--sign-key: every seed signed as `seed sign` does, verified with the public key; made again unsigned, the old signatures go")
    func signing() throws {
        try withTemporaryDirectory { directory in
            let rackFile = directory + "/rack.yaml"
            try RackFiles.write(RackFiles.rack(nodes: 3), rackFile)
            let publicKey = try SeedSignature.writeKeyPair(privateKeyPath: directory + "/ops", publicKeyPath: directory + "/ops.pub")
            let key = try SeedSignature.readPrivateKey(path: directory + "/ops")
            let report = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: directory + "/rack", signingKey: key)
            #expect(report.signedWith == publicKey.fingerprint)
            let trusted = try SeedSignature.readPublicKeys(path: directory + "/ops.pub")
            for entry in report.nodes {
                let file = try #require(entry.file)
                #expect(entry.signature == file + ".sig")
                let data = try SeedSignature.readFile(file)
                #expect(try SeedSignature.verify(seedData: data, path: file, publicKeys: trusted) == publicKey)
            }
            // The same as the command line's verify.
            let verify = try Products.run("aquarium-image", ["seed", "verify", "--public-key", directory + "/ops.pub"]
                                          + report.nodes.compactMap(\.file))
            #expect(verify.status == 0, "\(verify.errorOutput)")

            let unsigned = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: directory + "/rack", signingKey: nil)
            for entry in unsigned.nodes {
                #expect(entry.signature == nil)
                #expect(!FileManager.default.fileExists(atPath: try #require(entry.file) + ".sig"))
            }
        }
    }

    @Test("seeds in the directory that the rack file did not make are named in the report, and kept")
    func otherSeeds() throws {
        try withTemporaryDirectory { directory in
            let rackFile = directory + "/rack.yaml"
            try RackFiles.write(RackFiles.rack(nodes: 2), rackFile)
            _ = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: directory + "/rack", signingKey: nil)
            try RackFiles.write(RackFiles.rack(nodes: 1), rackFile)
            let report = try RackSeedWriter().write(rackFile: rackFile, outputDirectory: directory + "/rack", signingKey: nil)
            #expect(report.otherSeeds == ["52-54-00-00-00-02.yaml"])
            #expect(report.text.contains("also holds 52-54-00-00-00-02.yaml"))
        }
    }

    @Test("the command line: rack seeds and rack validate, text and JSON, exit codes 0 and 2")
    func commandLine() throws {
        try withTemporaryDirectory { directory in
            let rackFile = directory + "/rack.yaml"
            try RackFiles.write(RackFiles.rack(nodes: 3), rackFile)
            let validate = try Products.run("aquarium-image", ["rack", "validate", rackFile])
            #expect(validate.status == 0, "\(validate.errorOutput)")
            #expect(validate.output.contains("3 monitors (node1, node2, node3)"))
            #expect(!FileManager.default.fileExists(atPath: directory + "/secrets.yaml"))

            let made = try Products.run("aquarium-image", ["rack", "seeds", rackFile, "--output", directory + "/rack"])
            #expect(made.status == 0, "\(made.errorOutput)")
            #expect(made.output.contains("made new secrets \(directory)/rack/secrets.yaml (mode 0600)"), "\(made.output)")
            #expect(made.output.contains("node2  monitor  \(directory)/rack/seeds/52-54-00-00-00-02.yaml"), "\(made.output)")
            let again = try Products.run("aquarium-image", ["rack", "seeds", "--json", rackFile, "-o", directory + "/rack"])
            #expect(again.status == 0, "\(again.errorOutput)")
            let json = try #require(try JSONSerialization.jsonObject(with: again.standardOutput) as? [String: Any])
            #expect(json["secretsReused"] as? Bool == true)
            #expect((json["nodes"] as? [[String: Any]])?.map { $0["role"] as? String } == ["monitor", "monitor", "monitor"])
            let secrets = try RackSecrets.load(path: directory + "/rack/secrets.yaml")
            for secret in secrets.secrets {
                #expect(!again.output.contains(secret) && !made.output.contains(secret), "a key was printed")
            }

            try RackFiles.write(RackFiles.rack(nodes: 3).replacingOccurrences(of: "10.77.0.2/24", with: "10.99.0.2/24"), rackFile)
            let invalid = try Products.run("aquarium-image", ["rack", "seeds", rackFile, "--output", directory + "/other"])
            #expect(invalid.status == 2)
            #expect(invalid.errorOutput.contains("\(rackFile):22:14: nodes[1].address: 10.99.0.2 is not in cluster.public_network"),
                    "\(invalid.errorOutput)")
            #expect(!FileManager.default.fileExists(atPath: directory + "/other"))
            let invalidValidate = try Products.run("aquarium-image", ["rack", "validate", rackFile])
            #expect(invalidValidate.status == 2)

            // An unprotected signing key stops the command before anything is written.
            try RackFiles.write(RackFiles.rack(nodes: 3), rackFile)
            _ = try SeedSignature.writeKeyPair(privateKeyPath: directory + "/ops", publicKeyPath: directory + "/ops.pub")
            chmod(directory + "/ops", 0o644)
            let unprotected = try Products.run("aquarium-image", ["rack", "seeds", rackFile, "-o", directory + "/signed",
                                                                  "--sign-key", directory + "/ops"])
            #expect(unprotected.status == 2, "\(unprotected.errorOutput)")
            #expect(unprotected.errorOutput.contains("run chmod 600"))
            #expect(!FileManager.default.fileExists(atPath: directory + "/signed"))

            let schema = try Products.run("aquarium-image", ["rack", "schema"])
            #expect(schema.status == 0 && schema.output.contains("Aquarium rack file, version 1"))
        }
    }
}
