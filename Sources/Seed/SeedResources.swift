import Foundation

/// The files shipped with the `Seed` module: the JSON Schemas of seeds and rack files, and the documented example.
///
/// They live in the module's resource bundle (`aquarium_Seed.resources`, installed next to the executable). Only
/// build-host commands (`aquarium-image seed schema|example`, `rack schema`) and tests read them; parsing and validation never do,
/// so a FirstBoot binary copied without the bundle still validates seeds.
public enum SeedResources {
    public static let schemaFileName = "seed.schema.json"
    public static let exampleFileName = "example-seed.yaml"
    public static let rackSchemaFileName = "rack.schema.json"

    public struct Missing: Error, CustomStringConvertible {
        public let name: String
        public var description: String {
            "the resource \(name) is missing: install aquarium_Seed.resources next to the executable"
        }
    }

    /// The JSON Schema of seed files v1 (also docs/seed.schema.json).
    public static func schema() throws -> String { try text(schemaFileName) }

    /// The JSON Schema of rack files v1 (also docs/rack.schema.json).
    public static func rackSchema() throws -> String { try text(rackSchemaFileName) }

    /// The commented example seed (also shown in docs/seed.md).
    public static func example() throws -> String { try text(exampleFileName) }

    static func text(_ name: String) throws -> String {
        guard let url = url(name), let data = try? Data(contentsOf: url),
              let text = String(validating: data, as: UTF8.self) else {
            throw Missing(name: name)
        }
        return text
    }

    static func url(_ name: String) -> URL? {
        // Beside the executable first (an installed tool, or a binary in .build/). Then SwiftPM's accessor, which
        // also knows the build directory; note that it stops the process when the bundle is nowhere.
        let besideExecutable = Bundle.main.bundleURL.appendingPathComponent("aquarium_Seed.resources")
            .appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: besideExecutable.path) { return besideExecutable }
        return Bundle.module.url(forResource: name, withExtension: nil)
    }
}
