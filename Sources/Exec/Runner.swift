import Foundation

/// Which of a program's outputs a line came from.
public enum OutputChannel: Sendable, Equatable {
    case standardOutput
    case standardError
}

/// One `Command.run`: starts the program with pipes on 0-2, then a single poll() loop writes standard input and
/// drains both outputs at once (no thread per pipe, no deadlock however much goes either way), enforces the time and
/// output limits by signalling the program's process group, and reaps it with waitpid once both outputs are closed.
struct Runner {
    let command: Command
    let input: Data?
    let timeout: Double?
    let killGrace: Double
    let outputLimit: Int?
    let onLine: ((OutputChannel, String) -> Void)?
    /// The time limit was reached and the program was stopped.
    private(set) var timedOut = false

    /// With an output limit, standard error keeps only its end (the part that says why).
    static let errorTailBytes = 64 << 10
    static let chunkSize = 64 << 10

    init(command: Command, input: Data?, timeout: Double?, killGrace: Double, outputLimit: Int?,
         onLine: ((OutputChannel, String) -> Void)?) {
        self.command = command
        self.input = input
        self.timeout = timeout
        self.killGrace = killGrace
        self.outputLimit = outputLimit
        self.onLine = onLine
    }

    /// Seconds as a person writes them: 120, 1.5.
    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }

    mutating func run() throws(CommandError) -> (Termination, CommandResult) {
        _ = Spawn.ignoreBrokenPipes
        guard let path = Command.resolve(command.executable) else {
            throw CommandError(command: command, status: nil, standardError: "", reason: "program not found; install it or check PATH")
        }
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        func makePipe() throws(CommandError) -> (read: Int32, write: Int32) {
            let pipe = try Spawn.pipe()
            opened += [pipe.read, pipe.write]
            return pipe
        }
        func closeOpened(_ fd: Int32) {
            close(fd)
            opened.removeAll { $0 == fd }
        }
        let output = try makePipe()
        let errors = try makePipe()
        let stdin = try input.map { _ throws(CommandError) in try makePipe() }
        let limited = timeout != nil || outputLimit != nil
        let pid = try Spawn.spawn(command, path: path, standardInput: stdin.map { .descriptor($0.read) } ?? .null(O_RDONLY),
                                  standardOutput: .descriptor(output.write), standardError: .descriptor(errors.write),
                                  grouping: limited ? .newGroup : .sameGroup)
        // Only the child holds the write ends of its outputs now: end of file means it (and what it started) is done.
        closeOpened(output.write)
        closeOpened(errors.write)
        if let stdin { closeOpened(stdin.read) }

        let clock = ContinuousClock()
        let started = clock.now
        // Deadlines: SIGTERM to the group, SIGKILL to the group, then give up on pipes held by something that left it.
        var terminateAt = timeout.map { started + .seconds($0) }
        var killAt: ContinuousClock.Instant?
        var abandonAt: ContinuousClock.Instant?
        func stopGroup() {
            guard killAt == nil else { return }
            kill(-pid, SIGTERM)
            terminateAt = nil
            killAt = clock.now + .seconds(killGrace)
        }

        var collected = Collected(outputLimit: outputLimit, onLine: onLine)
        var inputFD = stdin?.write ?? -1
        var inputOffset = 0
        let inputBytes = input ?? Data()
        var readable: [Int32] = [output.read, errors.read]
        for fd in readable + [inputFD] where fd >= 0 { Spawn.setNonBlocking(fd) }
        if inputFD >= 0 && inputBytes.isEmpty { closeOpened(inputFD); inputFD = -1 }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 1)
        defer { buffer.deallocate() }

        while !readable.isEmpty {
            let now = clock.now
            if let at = terminateAt, now >= at {
                timedOut = true
                stopGroup()
            }
            if let at = killAt, now >= at, abandonAt == nil {
                kill(-pid, SIGKILL)
                abandonAt = now + .seconds(killGrace)
            }
            if let at = abandonAt, now >= at { break }
            var fds = readable.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if inputFD >= 0 { fds.append(pollfd(fd: inputFD, events: Int16(POLLOUT), revents: 0)) }
            let next = [terminateAt, abandonAt == nil ? killAt : nil, abandonAt].compactMap { $0 }.min()
            let wait = next.map { Self.milliseconds(until: $0, from: now) } ?? -1
            if poll(&fds, nfds_t(fds.count), wait) < 0 {
                if errno == EINTR { continue }
                break
            }
            for entry in fds where entry.revents != 0 {
                if entry.fd == inputFD {
                    let count = inputBytes.withUnsafeBytes { bytes in
                        write(inputFD, bytes.baseAddress! + inputOffset, min(Self.chunkSize, bytes.count - inputOffset))
                    }
                    if count > 0 { inputOffset += count }
                    // Done, or the program closed its input (EPIPE): it gets end of file / no more.
                    if inputOffset == inputBytes.count || (count < 0 && errno != EAGAIN && errno != EINTR) {
                        closeOpened(inputFD)
                        inputFD = -1
                    }
                    continue
                }
                let channel: OutputChannel = entry.fd == output.read ? .standardOutput : .standardError
                let count = read(entry.fd, buffer.baseAddress, buffer.count)
                if count > 0 {
                    if collected.append(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), from: channel) { stopGroup() }
                } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                    readable.removeAll { $0 == entry.fd }
                    closeOpened(entry.fd)
                }
            }
        }
        collected.finish()
        let termination = Termination.wait(pid, hang: true) ?? .exited(-1)
        let result = CommandResult(command: command, status: { if case .exited(let status) = termination { status } else { -1 } }(),
                                   standardOutput: collected.output, standardError: collected.errors,
                                   outputLimitExceeded: collected.exceeded)
        return (termination, result)
    }

    /// poll()'s timeout for a deadline: at least 0, rounded up so the loop does not spin just before it.
    static func milliseconds(until deadline: ContinuousClock.Instant, from now: ContinuousClock.Instant) -> Int32 {
        let (seconds, attoseconds) = (deadline - now).components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(0, min(milliseconds, 60_000)))
    }
}

/// What a run's outputs left: all of standard output up to the limit, standard error (its end under a limit), and
/// each complete line passed on as it arrives.
private struct Collected {
    let outputLimit: Int?
    let onLine: ((OutputChannel, String) -> Void)?
    var output = Data()
    var errors = Data()
    var exceeded = false
    private var partial: [OutputChannel: Data] = [:]

    init(outputLimit: Int?, onLine: ((OutputChannel, String) -> Void)?) {
        self.outputLimit = outputLimit
        self.onLine = onLine
    }

    /// Takes a chunk; returns true when it made standard output exceed the limit (the program must be stopped).
    mutating func append(_ chunk: UnsafeRawBufferPointer, from channel: OutputChannel) -> Bool {
        var kept = chunk
        var overflowed = false
        switch channel {
        case .standardOutput:
            if exceeded { return false }
            if let limit = outputLimit, output.count + chunk.count > limit {
                kept = UnsafeRawBufferPointer(rebasing: chunk[0..<(limit - output.count)])
                exceeded = true
                overflowed = true
            }
            output.append(contentsOf: kept)
        case .standardError:
            errors.append(contentsOf: kept)
            if outputLimit != nil && errors.count > 2 * Runner.errorTailBytes {
                errors = Data(errors.suffix(Runner.errorTailBytes))
            }
        }
        if onLine != nil { split(kept, from: channel) }
        return overflowed
    }

    private mutating func split(_ chunk: UnsafeRawBufferPointer, from channel: OutputChannel) {
        guard let onLine else { return }
        var pending = partial[channel] ?? Data()
        pending.append(contentsOf: chunk)
        var start = pending.startIndex
        while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            onLine(channel, String(decoding: pending[start..<newline], as: UTF8.self))
            start = newline + 1
        }
        partial[channel] = Data(pending[start...])
    }

    /// Passes on unterminated last lines and trims standard error to its tail.
    mutating func finish() {
        for channel in [OutputChannel.standardOutput, .standardError] {
            if let rest = partial[channel], !rest.isEmpty { onLine?(channel, String(decoding: rest, as: UTF8.self)) }
        }
        partial = [:]
        if outputLimit != nil && errors.count > Runner.errorTailBytes { errors = Data(errors.suffix(Runner.errorTailBytes)) }
    }
}
