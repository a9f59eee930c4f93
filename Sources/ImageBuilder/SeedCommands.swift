import ArgumentParser
import CommandSupport
import Foundation
import JSONCoding
import Seed

// `aquarium-image seed ...`: write, check and sign per-node seed files. The logic is in the Seed library; these
// commands parse arguments and print.

extension SeedValidationError: AquariumExitCoded {
    public var exitCode: AquariumExit { .invalidInput }
}

extension SeedSignatureError: AquariumExitCoded {
    public var exitCode: AquariumExit { AquariumExit(rawValue: exitStatus) ?? .runtimeFailure }
}

/// The `seed` command group.
public struct SeedCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "seed",
        abstract: "Write, check and sign per-node seed files (docs/seed.md).",
        discussion: """
            A seed file tells one node what to become on its first boot. Start from `seed example`, check with \
            `seed validate`, and sign with a key from `seed keygen` when the image trusts signing keys.
            Exit codes: 0 success, 1 runtime failure, 2 invalid seed or usage, 3 signature refused.

            Examples:
              aquarium-image seed example > node-01.yaml         # then edit it
              aquarium-image seed validate node-01.yaml
              aquarium-image seed keygen --output ops            # ops and ops.pub
              aquarium-image seed sign --key ops node-01.yaml    # node-01.yaml.sig
              aquarium-image seed verify --public-key ops.pub node-01.yaml
              aquarium-image seed inject /dev/sdX node-01.yaml   # a flashed stick
            """,
        subcommands: [
            SeedValidateCommand.self,
            SeedExampleCommand.self,
            SeedNewCommand.self,
            SeedSchemaCommand.self,
            SeedKeygenCommand.self,
            SeedSignCommand.self,
            SeedVerifyCommand.self,
            SeedInjectCommand.self,
        ])

    public init() {}
}

/// Several files were processed and some failed; each failure was already printed.
struct SeedFilesFailed: Error, AquariumExitCoded, CustomStringConvertible {
    let failed: Int
    let total: Int
    let verb: String
    let exitCode: AquariumExit

    var description: String { "\(failed) of \(total) seed file\(total == 1 ? "" : "s") \(verb)" }
}

public struct SeedValidateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check seed files; print 'FILE: valid' or every problem with file, line, column and key.",
        discussion: """
            Examples:
              aquarium-image seed validate node-01.yaml
              aquarium-image seed validate seeds/*.yaml --json   # as JSON, for CI
              aquarium-image seed validate node-01.yaml --effective > node-01.json
            """)

    @Flag(name: .long, help: "Print each valid seed with defaults applied and secrets redacted, as JSON: the only thing on standard output (one file: its document; several: an object by file name).")
    public var effective = false

    @Flag(name: .long, help: "Print the result as JSON: each file, valid or not, and its problems (file, line, column, key path, message).")
    public var json = false

    @Argument(help: "Seed files to check ('-' reads standard input).")
    public var files: [String]

    public init() {}

    public func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one seed file") }
        if json && effective { throw ValidationError("--json and --effective each print their own JSON: give one") }
    }

    /// `seed validate --json`: every file checked and what is wrong with it.
    struct Report: Encodable {
        struct File: Encodable {
            var file: String
            var valid: Bool
            var problems: [Problem]
        }
        struct Problem: Encodable {
            var file: String
            var line: Int
            var column: Int
            var keyPath: String
            var message: String
        }
        var valid: Bool
        var files: [File]
    }

    public func run() throws {
        var failed = 0
        var report = Report(valid: true, files: [])
        var documents: [(String, String)] = []
        for file in files {
            do {
                let seed: Seed
                if file == "-" {
                    let data = FileHandle.standardInput.readDataToEndOfFile()
                    seed = try SeedLoader.parse(data: data, file: "<stdin>")
                } else {
                    seed = try SeedLoader.load(path: file)
                }
                report.files.append(.init(file: file, valid: true, problems: []))
                if effective {
                    printError("\(file): valid")
                    documents.append((file, seed.redactedDescription))
                } else if !json {
                    print("\(file): valid")
                }
            } catch {
                failed += 1
                report.files.append(.init(file: file, valid: false, problems: error.issues.map {
                    .init(file: $0.file, line: $0.line, column: $0.column, keyPath: $0.keyPath, message: $0.message)
                }))
                if !json { printError(error.description) }
            }
        }
        report.valid = failed == 0
        if json {
            print(try JSONCoding.text(report))
        } else if effective, !documents.isEmpty {
            if files.count == 1 {
                print(documents[0].1)
            } else {
                // One JSON object: each file's document under its name.
                let body = documents.map { name, document in
                    "  " + (try! JSONCoding.text(name, pretty: false)) + ": " + document.replacingOccurrences(of: "\n", with: "\n  ")
                }
                print("{\n" + body.joined(separator: ",\n") + "\n}")
            }
        }
        if failed > 0 {
            throw SeedFilesFailed(failed: failed, total: files.count, verb: "invalid", exitCode: .invalidInput)
        }
    }
}

public struct SeedExampleCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "example",
        abstract: "Print a commented example seed to start from.",
        discussion: """
            Examples:
              aquarium-image seed example > node-01.yaml     # then edit it
              aquarium-image seed validate node-01.yaml
            """)

    public init() {}

    public func run() throws {
        FileHandle.standardOutput.write(Data(try SeedResources.example().utf8))
    }
}

public struct SeedSchemaCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema of seed files, for editors.",
        discussion: """
            `seed validate` checks more than the schema can express (subnets, sizes, time zones, key data).

            Example:
              aquarium-image seed schema > seed.schema.json   # for the editor
            """)

    public init() {}

    public func run() throws {
        FileHandle.standardOutput.write(Data(try SeedResources.schema().utf8))
    }
}

public struct SeedKeygenCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create an Ed25519 key pair for signing seeds.",
        discussion: """
            Writes the private key to PATH with mode 0600 (it is never printed) and the public key to PATH.pub. \
            Build images with the .pub file among the trusted seed keys to make nodes refuse unsigned seeds. \
            Existing files are never overwritten.

            Examples:
              aquarium-image seed keygen --output ops --comment "ops team"
              aquarium-image seed sign --key ops node-01.yaml
            """)

    @OptionGroup public var global: GlobalOptions

    @Option(name: [.short, .long], help: "Where to write the private key; the public key goes to PATH.pub.")
    public var output = "aquarium-seed"

    @Option(name: .long, help: "A comment stored with the key, e.g. who owns it.")
    public var comment = ""

    public init() {}

    public func run() throws {
        let publicKey = try SeedSignature.writeKeyPair(privateKeyPath: output, publicKeyPath: output + ".pub",
                                                       comment: comment)
        print("wrote private key \(output) (mode 0600, keep it secret) and public key \(output).pub")
        print("fingerprint: \(publicKey.fingerprint)")
    }
}

public struct SeedSignCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Validate seed files and write a detached signature FILE.sig for each.",
        discussion: """
            Examples:
              aquarium-image seed sign --key ops node-01.yaml    # node-01.yaml.sig
              aquarium-image seed sign --key ops rack/seeds/*.yaml
              aquarium-image seed verify --public-key ops.pub node-01.yaml
            """)

    @OptionGroup public var global: GlobalOptions

    @Option(name: .long, help: "The private key file from `seed keygen`.")
    public var key: String

    @Argument(help: "Seed files to sign.")
    public var files: [String]

    @Flag(name: .long, help: "Sign a seed with wipe: always that names no machine (host.machine): any node could replay it.")
    public var unbound = false

    public init() {}

    public func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one seed file") }
    }

    public func run() throws {
        let privateKey = try SeedSignature.readPrivateKey(path: key)
        for file in files {
            let signaturePath = try SeedSigning.sign(file: file, privateKey: privateKey, unbound: unbound)
            print("\(file): signed with \(privateKey.publicKey.fingerprint), wrote \(signaturePath)")
        }
    }
}

/// What `seed sign` does to one file, also for `rack seeds --sign-key`.
public enum SeedSigning {
    /// Validates the seed at `file` and writes its detached signature `file.sig`; returns the signature's path.
    /// Refuses (exit 3) a seed with wipe: always that names no machine, unless `unbound`.
    @discardableResult
    public static func sign(file: String, privateKey: SeedPrivateKey, unbound: Bool = false) throws -> String {
        // Sign exactly the bytes that were validated.
        let data = try SeedSignature.readFile(file)
        let seed = try SeedLoader.parse(data: data, file: file)
        if seed.wipesAnything && seed.host.machine == nil && !unbound {
            // A signed seed that may wipe any disk must be bound to its machine, or a copy wipes another node.
            throw ImageError.refused(file, "has wipe: always but no host.machine: signed, it could be copied to any "
                + "node's name and wipe that node. Add host.machine (serial and/or mac) or pass --unbound")
        }
        let signature = try SeedSignature.sign(data: data, privateKey: privateKey)
        return try SeedSignature.writeSignature(signature, forSeedAt: file)
    }
}

public struct SeedVerifyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that seed files carry a valid signature FILE.sig from a trusted key.",
        discussion: """
            Examples:
              aquarium-image seed verify --public-key ops.pub node-01.yaml
              aquarium-image seed verify --trusted-keys keys/ node-01.yaml  # keys/*.pub
            """)

    @OptionGroup public var global: GlobalOptions

    @Option(name: .customLong("public-key"), help: "A trusted public key file (repeat for several).")
    public var publicKeys: [String] = []

    @Option(name: .customLong("trusted-keys"), help: "A directory of trusted *.pub files, as an image carries them.")
    public var trustedKeys: String?

    @Argument(help: "Seed files to verify.")
    public var files: [String]

    public init() {}

    public func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one seed file") }
        if publicKeys.isEmpty && trustedKeys == nil {
            throw ValidationError("give --public-key KEY.pub or --trusted-keys DIR")
        }
    }

    public func run() throws {
        var keys: [SeedPublicKey] = []
        for path in publicKeys { keys += try SeedSignature.readPublicKeys(path: path) }
        if let trustedKeys {
            let found = try SeedSignature.trustedKeys(in: trustedKeys)
            if found.isEmpty {
                throw SeedSignatureError(.malformed, path: trustedKeys, "holds no *.pub seed signing keys")
            }
            keys += found
        }
        var failed = 0
        var worst = AquariumExit.success
        for file in files {
            do {
                let data = try SeedSignature.readFile(file)
                let signer = try SeedSignature.verify(seedData: data, path: file, publicKeys: keys)
                print("\(file): signature good, signed with \(signer)")
            } catch {
                printError(error.description)
                failed += 1
                if error.exitCode.rawValue > worst.rawValue { worst = error.exitCode }
            }
        }
        if failed > 0 {
            throw SeedFilesFailed(failed: failed, total: files.count, verb: "refused", exitCode: worst)
        }
    }
}
