/// One thing wrong with a seed file, at a place a person can go to.
public struct SeedIssue: Sendable, Equatable, CustomStringConvertible {
    /// The file as the user named it (or a label such as `<stdin>`).
    public var file: String
    /// 1-based line.
    public var line: Int
    /// 1-based column, counted in Unicode scalars.
    public var column: Int
    /// Where in the document, e.g. `disks.system.wipe` or `network.interfaces[1].gateway`; empty for syntax errors.
    public var keyPath: String
    /// What is wrong and, where it helps, what to write instead. Never contains a secret value.
    public var message: String

    public init(file: String, line: Int, column: Int, keyPath: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    /// `seed.yaml:14:7: disks.system.wipe: 'yes' is not one of never, aquarium, always`
    public var description: String {
        keyPath.isEmpty ? "\(file):\(line):\(column): \(message)" : "\(file):\(line):\(column): \(keyPath): \(message)"
    }
}

/// A seed file that cannot be used, with every problem found (not just the first). Exit status 2.
public struct SeedValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Sorted by line and column; never empty.
    public var issues: [SeedIssue]

    public init(issues: [SeedIssue]) {
        self.issues = issues
    }

    /// One issue per line.
    public var description: String {
        issues.map(\.description).joined(separator: "\n")
    }

    /// The exit status for an invalid seed, as `AquariumExit.invalidInput`.
    public static let exitStatus: Int32 = 2
}
