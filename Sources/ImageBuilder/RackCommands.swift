import ArgumentParser
import CommandSupport
import Foundation
import Seed

// `aquarium-image rack ...`: a whole rack's seeds, made offline from one rack file (docs/rack.md). The logic is in
// RackSeeds.swift and the Seed library (RackLoader); these commands parse arguments and print.

/// The `rack` command group.
public struct RackCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rack",
        abstract: "Make every node's seed of a rack from one rack file, offline (docs/rack.md).",
        discussion: """
            Write rack.yaml, check it with `rack validate`, make the seeds with `rack seeds rack.yaml --output rack/`, \
            then put them all on one image with `seed inject IMAGE --seeds-dir rack/seeds`. \
            Exit codes: 0 success, 1 runtime failure, 2 invalid rack file or usage, 3 refused.

            Examples:
              aquarium-image rack schema > rack.schema.json   # for the editor
              aquarium-image rack validate rack.yaml          # where the monitors go
              aquarium-image rack seeds rack.yaml --output rack/
              aquarium-image seed inject out/aquarium.raw --seeds-dir rack/seeds
              aquarium-image flash out/aquarium.raw /dev/sdX /dev/sdY
            """,
        subcommands: [RackSeedsCommand.self, RackValidateCommand.self, RackSchemaCommand.self])

    public init() {}
}

public struct RackSeedsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "seeds",
        abstract: "Write DIR/secrets.yaml and one seed per node, DIR/seeds/<serial or MAC>.yaml (all mode 0600).",
        discussion: """
            The secrets (the cluster's fsid, the monitor, admin and join keys) are made once; when DIR/secrets.yaml \
            exists it is read and reused, so seeds made again (for a node added later) belong to the same cluster. \
            Monitor nodes' seeds hold every key, storage nodes' seeds only the join key. Each seed is read back and \
            validated before it is written; with --sign-key each is signed as `seed sign` does (FILE.sig).

            Examples:
              aquarium-image rack seeds rack.yaml --output rack/
              aquarium-image rack seeds rack.yaml --output rack/ --sign-key ops
              aquarium-image seed inject out/aquarium.raw --seeds-dir rack/seeds
            """)

    @OptionGroup public var global: GlobalOptions

    @Argument(help: "The rack file (docs/rack.md).")
    public var rackFile: String

    @Option(name: [.short, .long], help: "The directory for secrets.yaml and seeds/ (made with mode 0700 when missing).")
    public var output: String

    @Option(name: .customLong("sign-key"), help: "Sign every seed with this private key from `seed keygen`.")
    public var signKey: String?

    @Flag(name: .long, help: "Print the report as JSON (docs/rack.md).")
    public var json = false

    public init() {}

    public func run() throws {
        // The key first: an unreadable or unprotected key stops the command before anything is written.
        let privateKey = try signKey.map { path throws -> SeedPrivateKey in try SeedSignature.readPrivateKey(path: path) }
        let report = try RackSeedWriter(logger: global.logger("aquarium.image.rack"))
            .write(rackFile: rackFile, outputDirectory: output, signingKey: privateKey)
        try OutputFormatter(json: json).print(report)
    }
}

public struct RackValidateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a rack file and print where the monitors go; writes nothing.",
        discussion: """
            Examples:
              aquarium-image rack validate rack.yaml
              aquarium-image rack validate rack.yaml --json
              aquarium-image rack seeds rack.yaml --output rack/   # then the seeds
            """)

    @OptionGroup public var global: GlobalOptions

    @Argument(help: "The rack file.")
    public var rackFile: String

    @Flag(name: .long, help: "Print the placement as JSON.")
    public var json = false

    public init() {}

    public func run() throws {
        let rack = try RackLoader.load(path: rackFile)
        try OutputFormatter(json: json).print(RackPlacementReport(rackFile: rackFile, rack: rack))
    }
}

public struct RackSchemaCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema of rack files, for editors.",
        discussion: """
            `rack validate` checks more than the schema can express (networks, duplicates, monitor names).

            Example:
              aquarium-image rack schema > rack.schema.json   # for the editor
            """)

    @OptionGroup public var global: GlobalOptions

    public init() {}

    public func run() throws {
        FileHandle.standardOutput.write(Data(try SeedResources.rackSchema().utf8))
    }
}
