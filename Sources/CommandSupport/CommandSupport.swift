import ArgumentParser
import FileLayer
import Foundation
import Logging

/// The project's version, shown by every tool's `--version`.
public enum AquariumVersion {
    public static let string = "0.1.0"
}

/// The exit codes every Aquarium tool uses (documented in docs/exit-codes.md).
public enum AquariumExit: Int32, Sendable {
    case success = 0
    /// Something failed while running (a program, a device, the network).
    case runtimeFailure = 1
    /// Bad usage or invalid input (a seed that does not validate, a missing file).
    case invalidInput = 2
    /// Refused for safety: a disk holds data, a device is mounted, ... The message names the device and why.
    case refused = 3
}

/// An error that knows which exit code it stands for. Errors that do not conform exit 1.
public protocol AquariumExitCoded: Error {
    var exitCode: AquariumExit { get }
}

/// Options every tool shares: `--verbose` and `--debug`.
public struct GlobalOptions: ParsableArguments, Sendable {
    @Flag(name: [.short, .long], help: "Log progress details.")
    public var verbose = false

    @Flag(name: .long, help: "Log everything, including the commands run.")
    public var debug = false

    public init() {}

    public var logLevel: Logger.Level { debug ? .debug : (verbose ? .info : .notice) }

    /// A logger for a command; logging itself is bootstrapped once in `main` by `AquariumMain`.
    public func logger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = logLevel
        return logger
    }
}

/// Runs a root command the way every Aquarium executable does: logs go to standard error,
/// usage errors exit 2 (not ArgumentParser's 64), `AquariumExitCoded` errors exit with their code, a run stopped by a
/// signal it caught 128 + its number.
public enum AquariumMain {
    public static func run<Root: ParsableCommand>(_ root: Root.Type, arguments: [String]? = nil) -> Never {
        LoggingSystem.bootstrap { label in LogLines(label: label, destination: destination) }
        if let message = UnknownCommand.message(arguments ?? Array(CommandLine.arguments.dropFirst()), root: root) {
            errorMessage(message)
            exit(AquariumExit.invalidInput.rawValue)
        }
        do {
            var command = try root.parseAsRoot(arguments)
            try command.run()
            exit(0)
        } catch {
            exit(Self.report(error, root: root))
        }
    }

    /// Where standard error goes (the journal gets the error's priority in front of its message).
    static let destination = LogLines.destination()

    /// The message that ends a failed run, on standard error.
    static func errorMessage(_ text: String) {
        let lines = destination == .journal ? text.split(separator: "\n", omittingEmptySubsequences: false).map { "<3>" + $0 }.joined(separator: "\n") : text
        FileHandle.standardError.write(Data((lines + "\n").utf8))
    }

    /// Prints the message for `error` and returns the exit code it stands for.
    public static func report<Root: ParsableCommand>(_ error: Error, root: Root.Type) -> Int32 {
        if let coded = error as? AquariumExitCoded {
            errorMessage(String(describing: error))
            return coded.exitCode.rawValue
        }
        // A file Foundation could not read or write, not caught on the way: one line, not NSError's dump.
        if [NSCocoaErrorDomain, NSPOSIXErrorDomain].contains((error as NSError).domain) {
            errorMessage("Error: " + FileProblem.describe(error))
            return AquariumExit.runtimeFailure.rawValue
        }
        let code = root.exitCode(for: error)
        let message = root.fullMessage(for: error)
        if code == .success {
            if !message.isEmpty { print(message) }  // --help, --version
            return 0
        }
        if !message.isEmpty { errorMessage(message) }
        if code == .validationFailure { return AquariumExit.invalidInput.rawValue }
        if code.rawValue == AquariumExit.invalidInput.rawValue || code.rawValue == AquariumExit.refused.rawValue {
            return code.rawValue
        }
        // A run that stopped because it was told to (it caught SIGTERM, SIGINT or SIGHUP and cleaned up) exits as a
        // shell reports a signal's end: 128 + its number.
        if (129...159).contains(code.rawValue) { return code.rawValue }
        return AquariumExit.runtimeFailure.rawValue
    }
}

/// Writes a line to standard error.
public func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
