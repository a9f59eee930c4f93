import Exec
import Foundation
import Testing

/// A capability a test needs (root, loop devices, a program) that this machine lacks.
/// In CI (see `Capabilities.isCI`) a missing capability is always a failure; elsewhere a test that asks for it with
/// the `.requires(...)` trait is reported as skipped.
public struct MissingCapability: Error, CustomStringConvertible {
    public var what: String
    public init(what: String) { self.what = what }
    public var description: String { "this test needs \(what); in CI that is a failure, elsewhere the test is skipped" }
}

public enum Capabilities {
    /// The one definition of a CI run, the same as scripts/is-ci (which scripts/run-tests uses; CapabilityTests checks
    /// that both agree): CI is set to anything other than "", "false" or "0", compared case-insensitively with white
    /// space ignored. CI=true, CI=1, CI=yes are CI; CI=0, CI=false, CI=False and an unset or empty CI are not.
    public static func isCI(_ value: String?) -> Bool {
        let normalized = (value ?? "").filter { !$0.isWhitespace }.lowercased()
        return !["", "false", "0"].contains(normalized)
    }

    public static var isCI: Bool { isCI(ProcessInfo.processInfo.environment["CI"]) }

    /// What this machine lacks of `root` (root and /dev/loop-control) and `programs`; empty when it has everything.
    public static func missing(root: Bool = true, programs: [String] = []) -> [String] {
        var missing: [String] = []
        if root && getuid() != 0 { missing.append("root") }
        if root && !FileManager.default.fileExists(atPath: "/dev/loop-control") { missing.append("/dev/loop-control") }
        for program in programs where Command.resolve(program) == nil { missing.append("the program '\(program)'") }
        return missing
    }

    /// The condition of `.requires(...)`: true when the machine has everything; false (the test shows as skipped)
    /// outside CI; in CI it throws `MissingCapability`, so the test fails (and scripts/run-tests fails any skip).
    public static func available(root: Bool = true, programs: [String] = [], ci: Bool = Capabilities.isCI) throws -> Bool {
        let missing = missing(root: root, programs: programs)
        if missing.isEmpty { return true }
        if ci { throw MissingCapability(what: missing.joined(separator: ", ")) }
        return false
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only on a machine that has what it needs: root and loop devices unless `root: false`, and
    /// `programs` (names looked up on PATH and the sbin directories, or absolute paths). Elsewhere the test is reported
    /// as skipped, never as passed; in CI a missing capability fails the test.
    public static func requires(root: Bool = true, programs: [String] = [],
                                sourceLocation: SourceLocation = #_sourceLocation) -> Self {
        let needs = (root ? ["root", "loop devices"] : []) + programs
        return .enabled(Comment(rawValue: "needs " + needs.joined(separator: ", ")), sourceLocation: sourceLocation) {
            try Capabilities.available(root: root, programs: programs)
        }
    }
}

/// A temporary directory removed when the body ends, however it ends.
public func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("aquarium-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// A real loop device over a sparse backing file, detached and deleted when the body ends
/// (also when it throws).
public struct LoopDevice {
    public var path: String
    public var backingFile: String
    public var name: String { (path as NSString).lastPathComponent }

    public struct Options {
        public var sizeBytes: UInt64
        public var sectorSize: Int
        public var readOnly: Bool
        /// The kernel scans the device's partition table (`losetup --partscan`): BLKRRPART works, as on a disk.
        public var partitionScan: Bool
        public init(sizeBytes: UInt64, sectorSize: Int = 512, readOnly: Bool = false, partitionScan: Bool = false) {
            self.sizeBytes = sizeBytes
            self.sectorSize = sectorSize
            self.readOnly = readOnly
            self.partitionScan = partitionScan
        }
    }

    /// Creates a backing file, lets `prepare` write to it (before attaching, e.g. mkfs on the file),
    /// attaches it, runs `body`, and always detaches and deletes.
    public static func with<T>(_ options: Options, prepare: ((String) throws -> Void)? = nil,
                               _ body: (LoopDevice) throws -> T) throws -> T {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("aquarium-loop-\(UUID().uuidString).img").path
        guard FileManager.default.createFile(atPath: file, contents: nil) else {
            throw MissingCapability(what: "a writable temporary directory for \(file)")
        }
        defer { try? FileManager.default.removeItem(atPath: file) }
        guard truncate(file, off_t(options.sizeBytes)) == 0 else {
            throw MissingCapability(what: "a sparse file of \(options.sizeBytes) bytes at \(file)")
        }
        try prepare?(file)
        var arguments = ["--find", "--show"]
        if options.sectorSize != 512 { arguments += ["--sector-size", String(options.sectorSize)] }
        if options.readOnly { arguments.append("--read-only") }
        if options.partitionScan { arguments.append("--partscan") }
        let result = try Command("losetup", arguments + [file]).run()
        let path = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? Command("losetup", ["--detach", path]).run() }
        return try body(LoopDevice(path: path, backingFile: file))
    }

    /// Several loop devices at once, all detached at the end.
    public static func withMany<T>(_ options: [Options], _ body: ([LoopDevice]) throws -> T) throws -> T {
        func nest(_ index: Int, _ acquired: [LoopDevice]) throws -> T {
            if index == options.count { return try body(acquired) }
            return try LoopDevice.with(options[index]) { device in try nest(index + 1, acquired + [device]) }
        }
        return try nest(0, [])
    }

    /// Makes the kernel create the partition nodes (/dev/loopNp1 ...).
    public func rescanPartitions() throws {
        _ = try Command("partx", ["--add", "--nr", "1:128", path]).run(acceptedStatuses: [0, 1])
        _ = try Command("partx", ["--update", path]).run(acceptedStatuses: [0, 1])
    }
}

/// The built executables (`swift build` puts them beside the test bundle).
public enum Products {
    public static func path(_ name: String) throws -> String {
        var directory = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        for candidate in [".build/debug/\(name)", ".build/release/\(name)"] where FileManager.default.isExecutableFile(atPath: candidate) {
            return FileManager.default.currentDirectoryPath + "/" + candidate
        }
        throw MissingCapability(what: "the built executable '\(name)' (run `swift build` first)")
    }

    /// Runs a built tool and returns its status and output, whatever the status.
    public static func run(_ name: String, _ arguments: [String], input: Data? = nil) throws -> CommandResult {
        try Command(try path(name), arguments).run(input: input, acceptedStatuses: Set(0...255))
    }
}

/// `systemd-analyze verify` on unit files given as (file name, text), written side by side into a temporary directory
/// (so a timer finds its service). Returns what it complains about these units; empty when they verify.
public func systemdVerifyComplaints(_ units: [(name: String, text: String)]) throws -> [String] {
    try withTemporaryDirectory { directory in
        for unit in units { try Data(unit.text.utf8).write(to: URL(fileURLWithPath: directory + "/" + unit.name)) }
        let result = try Command("systemd-analyze", ["verify"] + units.map { directory + "/" + $0.name })
            .run(acceptedStatuses: Set(0...255))
        let output = result.output + result.errorOutput
        let complaints = output.split(separator: "\n").map(String.init)
            .filter { line in units.contains { line.contains($0.name) } }
        if result.status != 0 && complaints.isEmpty { return ["exit \(result.status): \(output)"] }
        return complaints
    }
}

extension Command {
    /// The same command under coreutils `timeout`: after `seconds` it gets SIGTERM, 30 s later SIGKILL, together with
    /// every process it started (timeout runs it in its own process group). A run that hit the limit exits with 124
    /// (137 after the SIGKILL); `CommandResult.timedOut` tells.
    public func timeLimited(_ seconds: Int) -> Command {
        Command("timeout", ["--kill-after=30", String(seconds), executable] + arguments, environment: environment)
    }
}

extension CommandResult {
    /// True when a `Command.timeLimited` run was stopped by its time limit.
    public var timedOut: Bool { command.executable == "timeout" && (status == 124 || status == 137) }
}
