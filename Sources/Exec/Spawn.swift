import Foundation
import SystemErrors

/// The one place a program is started: posix_spawn with an argv array (never a shell), every inherited descriptor
/// above 2 closed in the child, signal mask and dispositions reset, optionally in a process group or session of its
/// own. `Command.run`, `Command.start` and `Command.spawnDetached` are built on it.
enum Spawn {
    /// glibc defines POSIX_SPAWN_SETSID (2.26+) only under _GNU_SOURCE, which the Glibc module does not import;
    /// this is its value from <spawn.h>.
    static let setSessionFlag: Int32 = 0x80

    /// Where one of the child's descriptors 0-2 comes from.
    enum Source {
        case null(Int32)
        case inherit
        /// A descriptor of ours, duplicated onto the child's.
        case descriptor(Int32)
        case file(String, flags: Int32, mode: mode_t)
    }

    enum Grouping {
        /// The caller's process group (terminal signals such as Ctrl-C reach the child as they reach us).
        case sameGroup
        /// A process group of its own, led by the child: the whole group can be signalled at once.
        case newGroup
        /// A session (and so a process group) of its own, without a controlling terminal: a daemon.
        case newSession
    }

    /// Starts `command` at `path` (already resolved); returns its pid.
    static func spawn(_ command: Command, path: String, standardInput: Source, standardOutput: Source,
                      standardError: Source, grouping: Grouping) throws(CommandError) -> pid_t {
        _ = Spawn.ignoreBrokenPipes
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source) in [(Int32(0), standardInput), (1, standardOutput), (2, standardError)] {
            switch source {
            case .inherit: break
            case .null(let flags): posix_spawn_file_actions_addopen(&actions, target, "/dev/null", flags, 0)
            case .descriptor(let fd): posix_spawn_file_actions_adddup2(&actions, fd, target)
            case .file(let file, let flags, let mode): posix_spawn_file_actions_addopen(&actions, target, file, flags, mode)
            }
        }
        closeInheritedDescriptors(&actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags = Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)
        switch grouping {
        case .sameGroup: break
        case .newGroup:
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        case .newSession: flags |= setSessionFlag
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        // Nothing blocked, every signal at its default (we ignore SIGPIPE; the child must not inherit that).
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)

        var argv: [UnsafeMutablePointer<CChar>?] = ([command.executable] + command.arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var environment: [UnsafeMutablePointer<CChar>?] = []
        if !command.environment.isEmpty {
            let merged = ProcessInfo.processInfo.environment.merging(command.environment) { _, new in new }
            environment = merged.map { strdup($0.key + "=" + $0.value) } + [nil]
        }
        defer { for pointer in environment { free(pointer) } }
        var pid: pid_t = 0
        let status = environment.isEmpty
            ? posix_spawn(&pid, path, &actions, &attributes, &argv, environ)
            : posix_spawn(&pid, path, &actions, &attributes, &argv, &environment)
        guard status == 0 else {
            throw CommandError(command: command, status: nil, standardError: "", reason: "could not start \(path)",
                               cause: SystemError(operation: "posix_spawn", path: path, errno: status))
        }
        return pid
    }

    /// glibc's posix_spawn_file_actions_addclosefrom_np (2.34+) is declared only under _GNU_SOURCE, which the Glibc
    /// module does not import; looked up by name once.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }

    /// Closes every descriptor above 2 in the child (after the dup2s onto 0-2), so a child never holds another
    /// child's pipe open (which would keep that pipe from ever reaching end of file) or a file of ours.
    private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        if let addCloseFrom {
            _ = addCloseFrom(&actions, 3)
            return
        }
        // Older C libraries: close what is open now.
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in fds.compactMap(Int32.init) where fd > 2 && fcntl(fd, F_GETFD) >= 0 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
    }

    /// A pipe whose two ends are closed on exec (the child gets its end through dup2 only).
    static func pipe() throws(CommandError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard Glibc.pipe(&fds) == 0 else {
            throw CommandError(command: Command("pipe"), status: nil, standardError: "", reason: "cannot create a pipe",
                               cause: SystemError.fromErrno("pipe"))
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    static func setNonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    /// Writing to a pipe whose reader has gone must fail with EPIPE, not kill this process: SIGPIPE is ignored
    /// process-wide, once, the first time a program is run (children get it back at its default, see `spawn`).
    static let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
}

/// How a process ended, from its waitpid status.
public enum Termination: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    init(waitStatus status: Int32) {
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (they are macros).
        let signal = status & 0x7f
        self = signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
    }

    public var description: String {
        switch self {
        case .exited(let status): "exited with status \(status)"
        case .signalled(let signal): "killed by signal \(signal)"
        }
    }

    /// Waits for `pid` (our child) to end, reaping it; nil when `hang` is false and it still runs.
    static func wait(_ pid: pid_t, hang: Bool) -> Termination? {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, hang ? 0 : WNOHANG)
            if result == pid { return Termination(waitStatus: status) }
            if result == 0 { return nil }
            if errno == EINTR { continue }
            // ECHILD: not ours or already reaped; nothing to wait for.
            return .exited(-1)
        }
    }
}
