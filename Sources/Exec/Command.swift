import Foundation
import SystemErrors

/// An external program and its argument vector. Never a shell string: each argument reaches
/// the program exactly as given, so values from a seed or a device name cannot be interpreted.
public struct Command: Equatable, Sendable, CustomStringConvertible {
    public var executable: String
    public var arguments: [String]
    /// Extra environment variables (added to the inherited environment).
    public var environment: [String: String]
    /// Seconds the program may run; then it is stopped together with every process it started (see `run`).
    /// nil: no limit.
    public var timeout: Double?

    public init(_ executable: String, _ arguments: [String] = [], environment: [String: String] = [:],
                timeout: Double? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.timeout = timeout
    }

    /// The command as a person would type it (for logs and errors only; never executed).
    public var description: String {
        ([executable] + arguments).map { argument in
            argument.contains(where: { $0 == " " || $0 == "'" || $0 == "\"" }) || argument.isEmpty
                ? "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'" : argument
        }.joined(separator: " ")
    }
}

/// What a finished program left behind.
public struct CommandResult: Sendable {
    public var command: Command
    public var status: Int32
    public var standardOutput: Data
    public var standardError: Data
    /// The program had more than the run's `outputLimit` bytes to say and was stopped: `standardOutput` holds the
    /// first `outputLimit` bytes and `status` means nothing.
    public var outputLimitExceeded: Bool = false

    public init(command: Command, status: Int32, standardOutput: Data, standardError: Data, outputLimitExceeded: Bool = false) {
        self.command = command
        self.status = status
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.outputLimitExceeded = outputLimitExceeded
    }

    public var output: String { String(decoding: standardOutput, as: UTF8.self) }
    public var errorOutput: String { String(decoding: standardError, as: UTF8.self) }
}

/// A program that could not be started or did not succeed.
public struct CommandError: Error, CustomStringConvertible, Sendable {
    public var command: Command
    public var status: Int32?
    public var standardError: String
    public var reason: String?
    /// The run's time limit stopped it (with its process group).
    public var timedOut: Bool
    /// The system call that failed, when one did (starting the program, a pipe).
    public var cause: SystemError?

    public init(command: Command, status: Int32?, standardError: String, reason: String?, timedOut: Bool = false,
                cause: SystemError? = nil) {
        self.command = command
        self.status = status
        self.standardError = standardError
        self.reason = reason
        self.timedOut = timedOut
        self.cause = cause
    }

    public var description: String {
        var text = "\(command.executable) failed"
        if let status { text += " with status \(status)" }
        if let reason { text += ": \(reason)" }
        if let cause { text += " (\(cause))" }
        let detail = standardError.trimmingCharacters(in: .whitespacesAndNewlines)
        if !detail.isEmpty { text += ": " + detail }
        return text + " (command: \(command))"
    }
}

extension Command {
    /// Locates `executable` on PATH (plus the sbin directories, where storage tools live), unless it is a path.
    public static func resolve(_ executable: String) -> String? {
        if executable.contains("/") { return FileManager.default.isExecutableFile(atPath: executable) ? executable : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for directory in directories {
            let candidate = directory + "/" + executable
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs the program to completion, capturing its output, and throws unless it exits 0 (or with one of
    /// `acceptedStatuses`). Standard input gets `input` (or /dev/null), written while both outputs are drained, so
    /// no amount of input and output can deadlock.
    ///
    /// - `timeout` (the command's): after this many seconds the program gets SIGTERM, `killGrace` seconds later
    ///   SIGKILL, together with every process it started; the error then has `timedOut` set.
    /// - `outputLimit`: keep at most this many bytes of standard output; one more stops the program the same way and
    ///   the result has `outputLimitExceeded` set (not an error: the caller decides). Standard error then keeps only
    ///   its last 64 KiB.
    /// - `onLine`: called with each line (without its newline) as it arrives, in order per stream (build progress).
    ///
    /// With a timeout or an output limit the program runs in a process group of its own (so that the whole group can
    /// be stopped); otherwise it stays in ours, so Ctrl-C at a terminal reaches it as it reaches us.
    @discardableResult
    public func run(input: Data? = nil, acceptedStatuses: Set<Int32> = [0], killGrace: Double = 10, outputLimit: Int? = nil,
                    onLine: ((OutputChannel, String) -> Void)? = nil) throws(CommandError) -> CommandResult {
        var runner = Runner(command: self, input: input, timeout: timeout, killGrace: killGrace,
                            outputLimit: outputLimit, onLine: onLine)
        let (termination, result) = try runner.run()
        if result.outputLimitExceeded { return result }
        if runner.timedOut {
            throw CommandError(command: self, status: nil, standardError: result.errorOutput,
                               reason: "timed out after \(Runner.seconds(timeout ?? 0)) s; stopped with every process it started",
                               timedOut: true)
        }
        switch termination {
        case .signalled(let signal):
            throw CommandError(command: self, status: nil, standardError: result.errorOutput,
                               reason: "killed by signal \(signal)")
        case .exited(let status):
            guard acceptedStatuses.contains(status) else {
                throw CommandError(command: self, status: status, standardError: result.errorOutput, reason: nil)
            }
        }
        return result
    }
}
