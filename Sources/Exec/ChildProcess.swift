import Foundation

/// Where a started program's standard output or error goes.
public enum Redirection: Sendable, Equatable {
    case null
    /// Ours (the terminal, for the demo's console).
    case inherit
    /// A file, created if needed (mode 0644), appended to or truncated first.
    case file(String, append: Bool)

    var source: Spawn.Source {
        switch self {
        case .null: .null(O_WRONLY)
        case .inherit: .inherit
        case .file(let path, let append): .file(path, flags: O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), mode: 0o644)
        }
    }
}

extension Command {
    /// Starts the program in the background (standard input /dev/null) and returns its handle; the caller waits for
    /// it or stops it. With `ownProcessGroup` (the default) it leads a process group of its own and `terminate`
    /// stops everything it started; without, it stays in ours (Ctrl-C at a terminal reaches it) and only it is
    /// signalled.
    public func start(standardOutput: Redirection = .null, standardError: Redirection = .null,
                      ownProcessGroup: Bool = true) throws(CommandError) -> ChildProcess {
        guard let path = Command.resolve(executable) else {
            throw CommandError(command: self, status: nil, standardError: "", reason: "program not found; install it or check PATH")
        }
        let pid = try Spawn.spawn(self, path: path, standardInput: .null(O_RDONLY), standardOutput: standardOutput.source,
                                  standardError: standardError.source, grouping: ownProcessGroup ? .newGroup : .sameGroup)
        return ChildProcess(command: self, pid: pid, ownProcessGroup: ownProcessGroup)
    }

    /// Starts a daemon that outlives us: a session of its own (no controlling terminal, not in our process group),
    /// standard input /dev/null, standard output and error appended to `logFile` (created with mode 0640). Returns
    /// its pid; it is never waited for here (a caller that polls it reaps it with waitpid WNOHANG).
    public func spawnDetached(appendingOutputTo logFile: String) throws(CommandError) -> pid_t {
        guard let path = Command.resolve(executable) else {
            throw CommandError(command: self, status: nil, standardError: "", reason: "program not found; install it or check PATH")
        }
        return try Spawn.spawn(self, path: path, standardInput: .null(O_RDONLY),
                               standardOutput: .file(logFile, flags: O_WRONLY | O_CREAT | O_APPEND, mode: 0o640),
                               standardError: .descriptor(1), grouping: .newSession)
    }
}

/// A program started with `Command.start`: its one owner waits for it or stops it. Dropping a handle whose program
/// still runs kills it (and its group) and reaps it; `terminate` is the way to stop it on purpose.
public final class ChildProcess {
    public let command: Command
    public let pid: pid_t
    public let ownProcessGroup: Bool
    /// How it ended, once it has been reaped.
    public private(set) var termination: Termination?

    init(command: Command, pid: pid_t, ownProcessGroup: Bool) {
        self.command = command
        self.pid = pid
        self.ownProcessGroup = ownProcessGroup
    }

    deinit {
        if termination == nil {
            signal(SIGKILL)
            termination = Termination.wait(pid, hang: true)
        }
    }

    public var isRunning: Bool { poll() == nil }

    /// How it ended, without waiting; nil while it runs.
    @discardableResult
    public func poll() -> Termination? {
        if termination == nil { termination = Termination.wait(pid, hang: false) }
        return termination
    }

    /// Waits up to `timeout` seconds (nil: as long as it takes) for it to end; nil when it still runs.
    @discardableResult
    public func wait(timeout: Double? = nil) -> Termination? {
        if termination != nil { return termination }
        guard let timeout else {
            termination = Termination.wait(pid, hang: true)
            return termination
        }
        // waitpid cannot wait with a deadline: check at short intervals.
        let deadline = ContinuousClock.now + .seconds(timeout)
        while poll() == nil {
            let left = deadline - ContinuousClock.now
            if left <= .zero { return nil }
            Thread.sleep(forTimeInterval: min(0.05, Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18))
        }
        return termination
    }

    /// SIGTERM (to its group when it has one), SIGKILL after `grace` seconds if it still runs; then reaped.
    @discardableResult
    public func terminate(grace: Double = 10) -> Termination {
        if let termination { return termination }
        signal(SIGTERM)
        if let ended = wait(timeout: grace) {
            // The leader is gone; anything left in its group gets the same treatment at once.
            return ended
        }
        signal(SIGKILL)
        return wait() ?? .exited(-1)
    }

    /// Signals the group, or the program alone; never after it was reaped (its pid may belong to someone else then).
    private func signal(_ number: Int32) {
        guard termination == nil else { return }
        _ = kill(ownProcessGroup ? -pid : pid, number)
    }
}
