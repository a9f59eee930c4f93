import Foundation

/// Runs a program and keeps at most `limit` bytes of its standard output. Exec's `Command.run` collects all output,
/// which is right for our own tools' output but not for a file read off a volume someone else wrote; this stops
/// reading one byte past the limit and stops the program. Used for files read off volumes (seeds, reports).
public enum BoundedOutput {
    public struct Result: Sendable {
        public var data: Data
        /// The program had more than `limit` bytes to say; `data` holds the first `limit`.
        public var exceeded: Bool
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public static func run(_ command: Command, limit: Int, what: String) throws(Failure) -> Result {
        guard let path = Command.resolve(command.executable) else {
            throw Failure(description: "\(what) failed: \(command.executable) is not installed")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = command.arguments
        if !command.environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(command.environment) { _, new in new }
        }
        let outPipe = Pipe()
        let errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw Failure(description: "\(what) failed: \(command.executable) could not start: \(error)")
        }
        let errors = ErrorTail()
        let errorReader = Thread { errors.drain(errPipe.fileHandleForReading) }
        errorReader.start()
        let fd = outPipe.fileHandleForReading.fileDescriptor
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var exceeded = false
        while true {
            let want = min(chunk.count, limit + 1 - data.count)
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, want) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
            if data.count > limit {
                exceeded = true
                // Our own child: stop it rather than read the rest.
                process.terminate()
                break
            }
        }
        try? outPipe.fileHandleForReading.close()
        process.waitUntilExit()
        errors.wait()
        if exceeded { return Result(data: Data(data.prefix(limit)), exceeded: true) }
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let status = process.terminationReason == .exit ? "status \(process.terminationStatus)" : "signal \(process.terminationStatus)"
            let detail = errors.text.trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(description: "\(what) failed: \(command.executable) ended with \(status)"
                          + "\(detail.isEmpty ? "" : ": " + detail) (command: \(command))")
        }
        return Result(data: data, exceeded: false)
    }

    /// Standard error, drained so the program never blocks on it; only its last 16 KiB are kept.
    private final class ErrorTail: @unchecked Sendable {
        private let lock = NSCondition()
        private var data = Data()
        private var done = false

        func drain(_ handle: FileHandle) {
            while true {
                let chunk = handle.availableData
                lock.lock()
                if chunk.isEmpty {
                    done = true
                    lock.broadcast()
                    lock.unlock()
                    return
                }
                data.append(chunk)
                if data.count > 16 << 10 { data = Data(data.suffix(16 << 10)) }
                lock.unlock()
            }
        }

        func wait() {
            lock.lock()
            while !done { lock.wait() }
            lock.unlock()
        }

        var text: String {
            lock.lock()
            defer { lock.unlock() }
            return String(decoding: data, as: UTF8.self)
        }
    }
}
