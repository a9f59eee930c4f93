import Foundation

/// An external program and its argument vector. Never a shell string: each argument reaches
/// the program exactly as given, so values from a seed or a device name cannot be interpreted.
public struct Command: Equatable, Sendable, CustomStringConvertible {
    public var executable: String
    public var arguments: [String]
    /// Extra environment variables (added to the inherited environment).
    public var environment: [String: String]

    public init(_ executable: String, _ arguments: [String] = [], environment: [String: String] = [:]) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
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

    public var output: String { String(decoding: standardOutput, as: UTF8.self) }
    public var errorOutput: String { String(decoding: standardError, as: UTF8.self) }
}

/// A program that could not be started or did not succeed.
public struct CommandError: Error, CustomStringConvertible, Sendable {
    public var command: Command
    public var status: Int32?
    public var standardError: String
    public var reason: String?

    public init(command: Command, status: Int32?, standardError: String, reason: String?) {
        self.command = command
        self.status = status
        self.standardError = standardError
        self.reason = reason
    }

    public var description: String {
        var text = "\(command.executable) failed"
        if let status { text += " with status \(status)" }
        if let reason { text += ": \(reason)" }
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

    /// Runs the program to completion, capturing its output. Throws unless it exits 0
    /// (or with one of `acceptedStatuses`).
    @discardableResult
    public func run(input: Data? = nil, acceptedStatuses: Set<Int32> = [0]) throws(CommandError) -> CommandResult {
        guard let path = Command.resolve(executable) else {
            throw CommandError(command: self, status: nil, standardError: "", reason: "program not found; install it or check PATH")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let outPipe = Pipe()
        let errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        let inPipe = input.map { _ in Pipe() }
        process.standardInput = inPipe ?? FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw CommandError(command: self, status: nil, standardError: "", reason: "could not start: \(error)")
        }
        // Drain both pipes concurrently so a chatty program cannot block on a full pipe.
        let errorData = LockedData()
        let errorReader = Thread {
            errorData.set(errPipe.fileHandleForReading.readDataToEndOfFile())
        }
        errorReader.start()
        if let inPipe, let input {
            inPipe.fileHandleForWriting.write(input)
            try? inPipe.fileHandleForWriting.close()
        }
        let outData = outPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errorData.isSet { usleep(1000) }
        let result = CommandResult(command: self, status: process.terminationStatus,
                                   standardOutput: outData, standardError: errorData.value)
        if process.terminationReason == .uncaughtSignal {
            throw CommandError(command: self, status: nil, standardError: result.errorOutput,
                               reason: "killed by signal \(process.terminationStatus)")
        }
        guard acceptedStatuses.contains(result.status) else {
            throw CommandError(command: self, status: result.status, standardError: result.errorOutput, reason: nil)
        }
        return result
    }
}

private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var done = false

    func set(_ value: Data) {
        lock.lock(); data = value; done = true; lock.unlock()
    }

    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return done }
    var value: Data { lock.lock(); defer { lock.unlock() }; return data }
}
