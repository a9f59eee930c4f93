import ArgumentParser
import CommandSupport
import Foundation
import ImageBuilder
@testable import Seed
import Testing
import TestSupport

/// `aquarium-image seed ...`, driven in-process through the command tree and end to end through the executable.
@Suite("seed commands")
struct SeedCommandTests {
    /// Runs `seed ARGS` in-process; returns the exit status AquariumMain would use.
    func run(_ arguments: [String]) -> Int32 {
        do {
            var command = try SeedCommand.parseAsRoot(arguments)
            try command.run()
            return 0
        } catch {
            if let coded = error as? AquariumExitCoded { return coded.exitCode.rawValue }
            let code = SeedCommand.exitCode(for: error)
            return code == .validationFailure ? 2 : code.rawValue
        }
    }

    @Test("validate exits 0 for valid seeds and 2 when any is invalid")
    func validate() throws {
        try withTemporaryDirectory { directory in
            let good = directory + "/good.yaml"
            let bad = directory + "/bad.yaml"
            try Fixture.minimal.write(toFile: good, atomically: true, encoding: .utf8)
            try Fixture.minimal(plus: "disks:\n  system:\n    wipe: yes\n").write(toFile: bad, atomically: true, encoding: .utf8)
            #expect(run(["validate", good]) == 0)
            #expect(run(["validate", good, bad]) == 2)
            #expect(run(["validate", directory + "/missing.yaml"]) == 2)
            #expect(run(["validate"]) == 2)
        }
    }

    @Test("keygen, sign and verify: exit codes and files")
    func signing() throws {
        try withTemporaryDirectory { directory in
            let key = directory + "/ops"
            let seed = directory + "/seed.yaml"
            try Fixture.minimal.write(toFile: seed, atomically: true, encoding: .utf8)
            #expect(run(["keygen", "--output", key, "--comment", "ops"]) == 0)
            #expect(run(["keygen", "--output", key]) == 2, "overwrote a key")
            #expect(run(["verify", "--public-key", key + ".pub", seed]) == 3, "an unsigned seed verified")
            #expect(run(["sign", "--key", key, seed]) == 0)
            #expect(FileManager.default.fileExists(atPath: seed + ".sig"))
            #expect(run(["verify", "--public-key", key + ".pub", seed]) == 0)
            let trusted = directory + "/trusted"
            try FileManager.default.createDirectory(atPath: trusted, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: key + ".pub", toPath: trusted + "/ops.pub")
            #expect(run(["verify", "--trusted-keys", trusted, seed]) == 0)
            try (Fixture.minimal + "\n").write(toFile: seed, atomically: true, encoding: .utf8)
            #expect(run(["verify", "--public-key", key + ".pub", seed]) == 3, "a changed seed verified")
            #expect(run(["verify", seed]) == 2, "verify without keys")

            let invalid = directory + "/invalid.yaml"
            try "version: 2\n".write(toFile: invalid, atomically: true, encoding: .utf8)
            #expect(run(["sign", "--key", key, invalid]) == 2, "signed an invalid seed")
            #expect(!FileManager.default.fileExists(atPath: invalid + ".sig"))
        }
    }

    @Test("the executable: seed validate prints file:line:column errors, example and schema print the resources")
    func executable() throws {
        let wired = ImageCommand.configuration.subcommands.contains { ObjectIdentifier($0) == ObjectIdentifier(SeedCommand.self) }
        try #require(wired, "SeedCommand is not yet a subcommand of ImageCommand (Sources/ImageBuilder/ImageCommand.swift)")
        try withTemporaryDirectory { directory in
            let example = try Products.run("aquarium-image", ["seed", "example"])
            #expect(example.status == 0)
            #expect(example.output == (try SeedResources.example()))
            let schema = try Products.run("aquarium-image", ["seed", "schema"])
            #expect(schema.status == 0)
            #expect(schema.output == (try Fixture.read("docs/seed.schema.json")))

            let good = directory + "/node-01.yaml"
            try example.output.write(toFile: good, atomically: true, encoding: .utf8)
            let valid = try Products.run("aquarium-image", ["seed", "validate", good])
            #expect(valid.status == 0)
            #expect(valid.output == "\(good): valid\n")

            let bad = directory + "/bad.yaml"
            try Fixture.minimal(plus: "disks:\n  system:\n    wipe: yes\n").write(toFile: bad, atomically: true, encoding: .utf8)
            let invalid = try Products.run("aquarium-image", ["seed", "validate", good, bad])
            #expect(invalid.status == 2)
            #expect(invalid.output == "\(good): valid\n")
            #expect(invalid.errorOutput.contains("\(bad):8:11: disks.system.wipe: 'yes' is not one of never, aquarium, always\n"))
            #expect(invalid.errorOutput.contains("1 of 2 seed files invalid"))

            let key = directory + "/ops"
            let keygen = try Products.run("aquarium-image", ["seed", "keygen", "--output", key])
            #expect(keygen.status == 0)
            let privateKey = try SeedSignature.readPrivateKey(path: key)
            #expect(!keygen.output.contains(privateKey.rawKey.base64EncodedString()), "keygen printed the private key")
            #expect(keygen.output.contains(privateKey.publicKey.fingerprint))
            #expect(try Products.run("aquarium-image", ["seed", "sign", "--key", key, good]).status == 0)
            let verified = try Products.run("aquarium-image", ["seed", "verify", "--public-key", key + ".pub", good])
            #expect(verified.status == 0)
            #expect(verified.output.contains("signature good"))
        }
    }
}
