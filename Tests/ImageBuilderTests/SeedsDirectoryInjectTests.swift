import Exec
import Foundation
import ImageBuilder
import Seed
import Testing
import TestSupport

/// `seed inject TARGET --seeds-dir DIR` with the seeds `rack seeds` writes (RackFiles in RackSeedsTests.swift).
@Suite("seed inject --seeds-dir: every seed of a directory onto the seed volume", .serialized)
struct SeedsDirectoryInjectTests {
    static let mtools = ["MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1"]

    func read(_ target: String, _ offset: UInt64, _ path: String) throws -> Data? {
        let result = try Command("mtype", ["-i", "\(target)@@\(offset)", "::/" + path], environment: Self.mtools)
            .run(acceptedStatuses: Set(0...255))
        return result.status == 0 ? result.standardOutput : nil
    }

    func rackSeeds(in directory: String, nodes: Int = 3, signingKey: SeedPrivateKey? = nil) throws -> RackSeedsReport {
        let rackFile = directory + "/rack.yaml"
        try RackFiles.write(RackFiles.rack(nodes: nodes), rackFile)
        return try RackSeedWriter().write(rackFile: rackFile, outputDirectory: directory + "/rack", signingKey: signingKey)
    }

    @Test("what a seeds directory may hold: seeds and their signatures; the rest is refused naming the file")
    func directoryRules() throws {
        try withTemporaryDirectory { directory in
            let seeds = directory + "/seeds"
            try FileManager.default.createDirectory(atPath: seeds, withIntermediateDirectories: true)
            let empty = #expect(throws: ImageError.self) { try SeedInjector.readSeedsDirectory(seeds) }
            #expect(empty?.kind == .invalidInput && empty?.message.contains("holds no seeds") == true)

            let report = try rackSeeds(in: directory)
            let made = directory + "/rack/seeds"
            let entries = try SeedInjector.readSeedsDirectory(made)
            #expect(entries.map(\.volumePath) == report.nodes.map(\.seed).sorted())
            #expect(entries.allSatisfy { $0.signatureFile == nil })

            try RackFiles.write("notes\n", made + "/README")
            let stray = #expect(throws: ImageError.self) { try SeedInjector.readSeedsDirectory(made) }
            #expect(stray?.subject == made + "/README" && stray?.message.contains("is not a seed (NAME.yaml)") == true)
            try FileManager.default.removeItem(atPath: made + "/README")

            try RackFiles.write("aquarium-seed-ed25519-signature x y\n", made + "/gone.yaml.sig")
            let orphan = #expect(throws: ImageError.self) { try SeedInjector.readSeedsDirectory(made) }
            #expect(orphan?.message.contains("is a signature without its seed") == true)
            try FileManager.default.removeItem(atPath: made + "/gone.yaml.sig")

            try RackFiles.write(try String(contentsOfFile: made + "/SN-1.yaml", encoding: .utf8), made + "/sn-1.yaml")
            let sameOnFAT = #expect(throws: ImageError.self) { try SeedInjector.readSeedsDirectory(made) }
            #expect(sameOnFAT?.message.contains("the same file as") == true, "\(sameOnFAT?.message ?? "")")
            try FileManager.default.removeItem(atPath: made + "/sn-1.yaml")

            try RackFiles.write("version: 1\nhost:\n  hostname: Bad_Name\ncluster:\n  role: bootstrap\n", made + "/a.yaml")
            try RackFiles.write("version: 2\nhost:\n  hostname: ok\ncluster:\n  role: bootstrap\n", made + "/b.yaml")
            let invalid = #expect(throws: SeedValidationError.self) { try SeedInjector.readSeedsDirectory(made) }
            #expect(Set(invalid?.issues.map(\.file) ?? []) == [made + "/a.yaml", made + "/b.yaml"], "every invalid seed is named")
            #expect(invalid?.description.contains("\(made)/a.yaml:3:13: host.hostname:") == true, "\(invalid?.description ?? "")")
        }
    }

    @Test("into an image file: every seed (and signature) in seeds/, read back with mtype; refusals write nothing",
          .requires(root: false, programs: ImageFixtures.programs + ["mdel"]))
    func imageFile() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "r")
            let image = result.artifacts.image
            let offset = try #require(result.assembly.partition(.seed)).offsetBytes
            let report = try rackSeeds(in: directory, nodes: 4)
            let seeds = directory + "/rack/seeds"

            let run = try Products.run("aquarium-image", ["seed", "inject", image, "--seeds-dir", seeds])
            #expect(run.status == 0, "\(run.errorOutput)")
            #expect(run.output.contains("wrote 4 seeds to seeds/ on the AQUASEED volume"), "\(run.output)")
            #expect(run.output.contains("no signature required"))
            for entry in report.nodes {
                #expect(try read(image, offset, entry.seed) == FileManager.default.contents(atPath: try #require(entry.file)),
                        "\(entry.seed)")
            }
            let copy = directory + "/seed.fat"
            let part = try #require(result.assembly.partition(.seed))
            try ImageFixtures.extract(image, offset: part.offsetBytes, count: part.sizeBytes, to: copy)
            #expect(try Command("fsck.vfat", ["-n", copy]).run(acceptedStatuses: Set(0...255)).status == 0)

            // A seed that does not validate: exit 2 naming it, nothing written.
            try RackFiles.write("version: 1\nhost:\n  hostname: node9\ncluster:\n  role: leader\n", seeds + "/SN-9.yaml")
            let invalid = try Products.run("aquarium-image", ["seed", "inject", image, "--seeds-dir", seeds])
            #expect(invalid.status == 2)
            #expect(invalid.errorOutput.contains("\(seeds)/SN-9.yaml:5:9: cluster.role:"), "\(invalid.errorOutput)")
            #expect(try read(image, offset, "seeds/SN-9.yaml") == nil)
            try FileManager.default.removeItem(atPath: seeds + "/SN-9.yaml")

            let empty = directory + "/empty"
            try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
            let none = try Products.run("aquarium-image", ["seed", "inject", image, "--seeds-dir", empty])
            #expect(none.status == 2 && none.errorOutput.contains("holds no seeds"), "\(none.errorOutput)")

            let both = try Products.run("aquarium-image", ["seed", "inject", image, report.nodes[0].file ?? "", "--seeds-dir", seeds])
            #expect(both.status == 2 && both.errorOutput.contains("not both"), "\(both.errorOutput)")
            let named = try Products.run("aquarium-image", ["seed", "inject", image, "--seeds-dir", seeds, "--as", "seed.yaml"])
            #expect(named.status == 2 && named.errorOutput.contains("--as names where one seed goes"), "\(named.errorOutput)")
            let neither = try Products.run("aquarium-image", ["seed", "inject", image])
            #expect(neither.status == 2)

            // The single-seed form still works next to it.
            let single = try Products.run("aquarium-image", ["seed", "inject", image, report.nodes[0].file ?? "", "--as", "seed.yaml"])
            #expect(single.status == 0, "\(single.errorOutput)")
        }
    }

    @Test("into a flashed loop device; a mounted stick is refused (exit 3)",
          .requires(programs: ImageFixtures.programs + ["losetup", "partx", "mount", "umount", "mdel"]))
    func loopDevice() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "l")
            let offset = try #require(result.assembly.partition(.seed)).offsetBytes
            let report = try rackSeeds(in: directory, nodes: 2)
            let seeds = directory + "/rack/seeds"
            try LoopDevice.with(.init(sizeBytes: 160 << 20)) { loop in
                let flashed = try Products.run("aquarium-image", ["flash", "--quiet", "--yes-non-removable", result.artifacts.image, loop.path])
                try #require(flashed.status == 0, "\(flashed.errorOutput)")
                let run = try Products.run("aquarium-image", ["seed", "inject", loop.path, "--seeds-dir", seeds])
                #expect(run.status == 0, "\(run.errorOutput)")
                for entry in report.nodes {
                    #expect(try read(loop.path, offset, entry.seed) == FileManager.default.contents(atPath: try #require(entry.file)))
                }

                try loop.rescanPartitions()
                defer { _ = try? Command("partx", ["--delete", loop.path]).run() }
                let mountpoint = directory + "/mnt"
                try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
                try Command("mount", ["-o", "ro", loop.path + "p2", mountpoint]).run()
                defer { _ = try? Command("umount", [mountpoint]).run() }
                let mounted = try Products.run("aquarium-image", ["seed", "inject", loop.path, "--seeds-dir", seeds])
                #expect(mounted.status == 3)
                #expect(mounted.errorOutput.contains("is mounted at \(mountpoint)"), "\(mounted.errorOutput)")
            }
        }
    }

    @Test("an image that trusts a seed key takes a signed seeds directory, and refuses an unsigned one (exit 3)",
          .requires(root: false, programs: ImageFixtures.programs + ["mdel"]))
    func signedDirectory() throws {
        try withTemporaryDirectory { directory in
            let keys = directory + "/keys"
            try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
            let publicKey = try SeedSignature.writeKeyPair(privateKeyPath: keys + "/ops", publicKeyPath: keys + "/ops.pub")
            let result = try ImageFixtures.assemble(in: directory, tag: "s") { root in
                let trusted = root + "/" + StickContent.trustedSeedKeysDirectory
                try FileManager.default.createDirectory(atPath: trusted, withIntermediateDirectories: true)
                try FileManager.default.copyItem(atPath: keys + "/ops.pub", toPath: trusted + "/ops.pub")
            }
            let image = result.artifacts.image
            let offset = try #require(result.assembly.partition(.seed)).offsetBytes
            let seeds = directory + "/rack/seeds"

            _ = try rackSeeds(in: directory)
            let unsigned = try Products.run("aquarium-image", ["seed", "inject", image, "--seeds-dir", seeds])
            #expect(unsigned.status == 3, "\(unsigned.errorOutput)")
            #expect(unsigned.errorOutput.contains("has no signature"))
            #expect(try read(image, offset, "seeds/SN-1.yaml") == nil, "an unsigned seed was written")

            let report = try rackSeeds(in: directory, signingKey: try SeedSignature.readPrivateKey(path: keys + "/ops"))
            let signed = try Products.run("aquarium-image", ["seed", "inject", image, "--seeds-dir", seeds])
            #expect(signed.status == 0, "\(signed.errorOutput)")
            #expect(signed.output.contains("(3 with signatures)") && signed.output.contains(publicKey.fingerprint), "\(signed.output)")
            for entry in report.nodes {
                let file = try #require(entry.file)
                #expect(try read(image, offset, entry.seed + ".sig") == FileManager.default.contents(atPath: file + ".sig"))
            }
        }
    }
}
