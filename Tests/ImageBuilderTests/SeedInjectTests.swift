import Exec
import Foundation
import ImageBuilder
import Seed
import Testing
import TestSupport

@Suite("seed inject into the AQUASEED volume of an image file and a loop device", .serialized)
struct SeedInjectTests {
    static let mtools = ["MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1"]

    func inject(_ arguments: [String]) throws -> CommandResult {
        try Products.run("aquarium-image", ["seed", "inject"] + arguments)
    }

    func read(_ target: String, _ offset: UInt64, _ path: String) throws -> Data? {
        let result = try Command("mtype", ["-i", "\(target)@@\(offset)", "::/" + path], environment: Self.mtools)
            .run(acceptedStatuses: Set(0...255))
        return result.status == 0 ? result.standardOutput : nil
    }

    func exampleSeed(_ directory: String) throws -> String {
        let path = directory + "/node-01.yaml"
        try ImageFixtures.write(Data(try SeedResources.example().utf8), path)
        return path
    }

    @Test("into an image file: default seed.yaml, --as seeds/NAME.yaml, invalid seeds and paths refused",
          .requires(root: false, programs: ImageFixtures.programs + ["mdel"]))
    func imageFile() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "a")
            let image = result.artifacts.image
            let seedOffset = try #require(result.assembly.partition(.seed)).offsetBytes
            let seed = try exampleSeed(directory)

            let run = try inject([image, seed])
            #expect(run.status == 0, "\(run.errorOutput)")
            #expect(run.output.contains("wrote seed.yaml"))
            #expect(run.output.contains("no signature required"))
            #expect(try read(image, seedOffset, "seed.yaml") == FileManager.default.contents(atPath: seed))

            let named = try inject([image, seed, "--as", "seeds/52-54-00-12-34-56.yaml"])
            #expect(named.status == 0, "\(named.errorOutput)")
            #expect(try read(image, seedOffset, "seeds/52-54-00-12-34-56.yaml") == FileManager.default.contents(atPath: seed))
            // The volume is still a clean FAT filesystem.
            let copy = directory + "/seed.fat"
            let seedPart = try #require(result.assembly.partition(.seed))
            try ImageFixtures.extract(image, offset: seedPart.offsetBytes, count: seedPart.sizeBytes, to: copy)
            #expect(try Command("fsck.vfat", ["-n", copy]).run(acceptedStatuses: Set(0...255)).status == 0)

            // An invalid seed: exit 2 naming the problem, nothing written.
            let bad = directory + "/bad.yaml"
            try ImageFixtures.write(Data("version: 1\nhost:\n  hostname: Not_Valid\n".utf8), bad)
            let refused = try inject([image, bad, "--as", "seeds/bad.yaml"])
            #expect(refused.status == 2)
            #expect(refused.errorOutput.contains("bad.yaml"))
            #expect(try read(image, seedOffset, "seeds/bad.yaml") == nil)

            let climbing = try inject([image, seed, "--as", "../seed.yaml"])
            #expect(climbing.status == 2)
            #expect(climbing.errorOutput.contains("--as '../seed.yaml': '..' is not allowed"), "\(climbing.errorOutput)")

            // A file without our partitions.
            let plain = directory + "/plain.img"
            try ImageFixtures.write(ImageFixtures.bytes(1 << 20, seed: 5), plain)
            let noTable = try inject([plain, seed])
            #expect(noTable.status == 2)
            #expect(noTable.errorOutput.contains("has no readable GPT"))
        }
    }

    @Test("an image that trusts seed keys takes only seeds signed by them (exit 3 otherwise)",
          .requires(root: false, programs: ImageFixtures.programs + ["mdel"]))
    func signatures() throws {
        try withTemporaryDirectory { directory in
            let keys = directory + "/keys"
            try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
            try SeedSignature.writeKeyPair(privateKeyPath: keys + "/ops", publicKeyPath: keys + "/ops.pub", comment: "ops")
            try SeedSignature.writeKeyPair(privateKeyPath: keys + "/other", publicKeyPath: keys + "/other.pub", comment: "other")
            let result = try ImageFixtures.assemble(in: directory, tag: "a") { root in
                let trusted = root + "/" + StickContent.trustedSeedKeysDirectory
                try FileManager.default.createDirectory(atPath: trusted, withIntermediateDirectories: true)
                try FileManager.default.copyItem(atPath: keys + "/ops.pub", toPath: trusted + "/ops.pub")
            }
            let image = result.artifacts.image
            let seedOffset = try #require(result.assembly.partition(.seed)).offsetBytes
            let seed = try exampleSeed(directory)

            let unsigned = try inject([image, seed])
            #expect(unsigned.status == 3, "\(unsigned.errorOutput)")
            #expect(unsigned.errorOutput.contains("has no signature"))
            #expect(try read(image, seedOffset, "seed.yaml") == nil)

            let wrongKey = try SeedSignature.readPrivateKey(path: keys + "/other")
            try SeedSignature.signFile(path: seed, privateKey: wrongKey)
            let wrong = try inject([image, seed])
            #expect(wrong.status == 3, "\(wrong.errorOutput)")

            let key = try SeedSignature.readPrivateKey(path: keys + "/ops")
            try SeedSignature.signFile(path: seed, privateKey: key)
            let signed = try inject([image, seed])
            #expect(signed.status == 0, "\(signed.errorOutput)")
            #expect(signed.output.contains("signature verified"))
            #expect(try read(image, seedOffset, "seed.yaml.sig") == FileManager.default.contents(atPath: seed + ".sig"))

            // --public-key overrides the image's keys.
            let explicit = try inject([image, seed, "--public-key", keys + "/other.pub"])
            #expect(explicit.status == 3)
        }
    }

    @Test("into a flashed loop device; a mounted stick is refused",
          .requires(programs: ImageFixtures.programs + ["losetup", "partx", "mount", "umount", "mdel"]))
    func loopDevice() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "a")
            let seed = try exampleSeed(directory)
            let seedOffset = try #require(result.assembly.partition(.seed)).offsetBytes
            try LoopDevice.with(.init(sizeBytes: 160 << 20)) { loop in
                let flashed = try Products.run("aquarium-image", ["flash", "--quiet", "--yes-non-removable", result.artifacts.image, loop.path])
                try #require(flashed.status == 0, "\(flashed.errorOutput)")
                let run = try inject([loop.path, seed, "--as", "seeds/SERIAL123.yaml"])
                #expect(run.status == 0, "\(run.errorOutput)")
                #expect(try read(loop.path, seedOffset, "seeds/SERIAL123.yaml") == FileManager.default.contents(atPath: seed))
                // What a node sees: the partition's filesystem label.
                let probe = try ImageFixtures.blkid(loop.path, offset: seedOffset)
                #expect(probe["LABEL"] == "AQUASEED")

                try loop.rescanPartitions()
                defer { _ = try? Command("partx", ["--delete", loop.path]).run() }
                let mountpoint = directory + "/mnt"
                try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
                try Command("mount", ["-o", "ro", loop.path + "p2", mountpoint]).run()
                defer { _ = try? Command("umount", [mountpoint]).run() }
                let mounted = try inject([loop.path, seed])
                #expect(mounted.status == 3)
                #expect(mounted.errorOutput.contains("is mounted at \(mountpoint)"), "\(mounted.errorOutput)")
            }
        }
    }
}
