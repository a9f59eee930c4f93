import Exec
import Foundation
import Logging

/// A Ceph daemon as the launchers run it: always in the foreground (`-f`), so a supervisor (systemd or us) owns it.
public struct DaemonSpec: Sendable, Equatable {
    /// Ceph's name for it: `mon.node-01`, `osd.0`, `client.rgw.node-01`.
    public var name: String
    public var executable: String
    public var arguments: [String]
    /// The configuration file the daemon is started with; also how we recognise our own processes.
    public var configPath: String
    /// Daemons of the same cluster this one starts after and stops before (systemd launcher: `After=` their units).
    public var after: [String] = []
    /// Started again at boot (systemd launcher: the unit is enabled). False for a daemon that something else starts
    /// and stops (keepalived: the NFS server of the floating address runs only where the address is).
    public var atBoot = true

    public var argv: [String] { [executable] + arguments }

    /// A name usable in file and unit names.
    public var fileName: String { name.replacingOccurrences(of: "/", with: "_") }

    /// How a daemon of the cluster at `layout` runs (`ceph-TYPE -i ID -f`, `radosgw -n client.rgw.ID -f`).
    public static func ceph(_ type: String, _ id: String, layout: Layout, extra: [String] = []) -> DaemonSpec {
        var arguments = ["--cluster", layout.cluster, "-c", layout.cephConf]
        if type == "rgw" {
            arguments += ["-n", "client.rgw.\(id)", "-f"]
            return DaemonSpec(name: "client.rgw.\(id)", executable: "radosgw", arguments: arguments + extra, configPath: layout.cephConf)
        }
        arguments += ["-i", id, "-f"]
        return DaemonSpec(name: "\(type).\(id)", executable: "ceph-\(type)", arguments: arguments + extra, configPath: layout.cephConf)
    }
}

/// Starts, checks and stops daemons.
public protocol DaemonLauncher {
    var kind: LauncherKind { get }
    /// Starts `daemon` unless it already runs; returns true when it was started.
    func ensureRunning(_ daemon: DaemonSpec) throws(ProvisionError) -> Bool
    func isRunning(_ daemon: DaemonSpec) -> Bool
    /// Stops `daemon` when it runs (its configuration changed: `ensureRunning` starts it again).
    func stop(_ daemon: DaemonSpec) throws(ProvisionError)
    /// Stops every daemon this launcher started under the layout; returns their names.
    func stopAll() throws(ProvisionError) -> [String]
    /// What runs, by daemon name, with a pid or unit name.
    func running() -> [RunningDaemon]
    /// Throws when a daemon `ensureRunning` started exited right after starting (within `ProcessLauncher.startGrace`
    /// of its start). `waiting`: waits out what is left of that grace for every daemon started; otherwise looks only
    /// at those whose grace has passed and keeps the others for a later call. Called when a step ends (not waiting),
    /// when a step fails and when the run ends (waiting): no step sleeps after starting a daemon.
    func confirmStarted(waiting: Bool) throws(ProvisionError)
}

extension DaemonLauncher {
    /// systemd supervises the units it starts (`Restart=on-failure`) and reports their failures itself.
    public func confirmStarted(waiting: Bool) throws(ProvisionError) {}

    public func confirmStarted() throws(ProvisionError) { try confirmStarted(waiting: true) }
}

public struct RunningDaemon: Codable, Equatable, Sendable {
    public var name: String
    public var pid: Int32?
    public var unit: String?
    public var running: Bool
}

// MARK: - process launcher

/// Runs daemons as child processes in their own session, with a pid file each under `ROOT/run/aquarium` and their
/// standard output and error in `ROOT/var/log/ceph/NAME.out`. They outlive `aquarium-provision run`. `stop` only
/// signals a pid whose command line is still the daemon we started with this root's configuration file.
public struct ProcessLauncher: DaemonLauncher {
    public let layout: Layout
    let logger: Logger
    public var kind: LauncherKind { .process }
    /// The daemons started and not yet confirmed.
    let started = StartedDaemons()
    /// How long a daemon must live after its start before it counts as started (one that fails at once on a bad key,
    /// a taken port or a bad configuration has exited by then).
    static let startGrace: TimeInterval = 0.3

    public init(layout: Layout, logger: Logger) {
        self.layout = layout
        self.logger = logger
    }

    public func confirmStarted(waiting: Bool) throws(ProvisionError) {
        for daemon in started.take() {
            let left = Self.startGrace - Date().timeIntervalSince(daemon.at)
            if left > 0 && !waiting {
                started.add(daemon)
                continue
            }
            if left > 0 { usleep(useconds_t(left * 1_000_000)) }
            if !Self.alive(daemon.pid) {
                let tail = Files.read(daemon.output).map { String($0.suffix(2000)) } ?? ""
                throw .failed("\(daemon.name) exited right after starting; see \(daemon.output) and \(layout.cephLog): \(tail)")
            }
        }
    }

    func pidFile(_ name: String) -> String { layout.pidDir + "/\(layout.cluster)-\(name).pid" }

    public func isRunning(_ daemon: DaemonSpec) -> Bool {
        guard let pid = readPid(pidFile(daemon.fileName)) else { return false }
        return Self.processMatches(pid: pid, configPaths: [daemon.configPath], executable: daemon.executable)
    }

    public func stop(_ daemon: DaemonSpec) throws(ProvisionError) {
        // Stopped on purpose: not a daemon that failed to start.
        started.remove(daemon.name)
        let file = pidFile(daemon.fileName)
        guard let pid = readPid(file), Self.processMatches(pid: pid, configPaths: [daemon.configPath], executable: daemon.executable)
        else { return }
        terminate([(daemon.name, pid)]) { pid in
            Self.processMatches(pid: pid, configPaths: [daemon.configPath], executable: daemon.executable)
        }
        unlink(file)
    }

    public func ensureRunning(_ daemon: DaemonSpec) throws(ProvisionError) -> Bool {
        if isRunning(daemon) { return false }
        try Files.makeDirectory(layout.pidDir)
        // A run killed between starting the daemon and writing its pid file left it running: adopt it rather than
        // start a second one that would fight it for its store and ports.
        if let orphan = Self.findProcess(argv: daemon.argv) {
            try Files.write("\(orphan)\n", to: pidFile(daemon.fileName))
            logger.info("adopted \(daemon.name), already running as pid \(orphan)")
            return false
        }
        try Files.makeDirectory(layout.cephLog)
        try Files.makeDirectory(layout.cephRun)
        let output = layout.cephLog + "/\(layout.cluster)-\(daemon.fileName).out"
        // Temporary files under the root too (a manager's modules write their certificates and keys with Python's
        // tempfile and leave them when stopped): removed with the root, never left in this machine's /tmp.
        try Files.makeDirectory(layout.temporaryDirectory)
        let pid = try Self.spawn(daemon.argv, output: output, environment: ["TMPDIR": layout.temporaryDirectory])
        try Files.write("\(pid)\n", to: pidFile(daemon.fileName))
        logger.info("started \(daemon.name) as pid \(pid): \(Command(daemon.executable, daemon.arguments))")
        // Whether it failed at once is looked at when the step ends (`confirmStarted`), not by waiting here.
        started.add(StartedDaemons.Entry(name: daemon.name, pid: pid, output: output, at: Date()))
        return true
    }

    public func running() -> [RunningDaemon] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: layout.pidDir)) ?? []
        let prefix = "\(layout.cluster)-"
        return files.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".pid") }.sorted().map { file in
            let name = String(file.dropFirst(prefix.count).dropLast(4))
            let pid = readPid(layout.pidDir + "/" + file)
            let ours = pid.map { Self.processMatches(pid: $0, configPaths: layout.daemonConfigs, executable: nil) } ?? false
            return RunningDaemon(name: name, pid: pid, unit: nil, running: ours)
        }
    }

    public func stopAll() throws(ProvisionError) -> [String] {
        _ = started.take()
        var stopped: [String] = []
        var waiting: [(String, pid_t)] = []
        for daemon in running() {
            let file = pidFile(daemon.name)
            guard let pid = daemon.pid, daemon.running else {
                // Stale: the process is gone or the pid now belongs to someone else. Never signal it.
                unlink(file)
                continue
            }
            waiting.append((daemon.name, pid))
        }
        terminate(waiting) { pid in Self.processMatches(pid: pid, configPaths: layout.daemonConfigs, executable: nil) }
        for (name, _) in waiting {
            unlink(pidFile(name))
            stopped.append(name)
        }
        return stopped
    }

    /// SIGTERM to each of `targets` at once, then waits up to 30 s for all of them; one still running (and still
    /// `ours`: the pid was not reused) gets SIGKILL.
    func terminate(_ targets: [(name: String, pid: pid_t)], ours: (pid_t) -> Bool) {
        for (name, pid) in targets {
            logger.info("stopping \(name) (pid \(pid))")
            kill(pid, SIGTERM)
        }
        let deadline = Date().addingTimeInterval(30)
        for (name, pid) in targets {
            while Self.alive(pid) && Date() < deadline { usleep(100_000) }
            if Self.alive(pid), ours(pid) {
                logger.notice("\(name) (pid \(pid)) did not stop within 30 s; killing it")
                kill(pid, SIGKILL)
                while Self.alive(pid) { usleep(50_000) }
            }
        }
    }

    func readPid(_ path: String) -> pid_t? {
        guard let text = Files.read(path), let value = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              value > 1 else { return nil }
        return value
    }

    /// True while the process exists and is not a zombie (zombies of our own children are reaped here).
    static func alive(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return false }
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// The process's argv, from /proc.
    static func commandLine(_ pid: pid_t) -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
        return data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            .filter { !$0.isEmpty }
    }

    /// A live process whose command line is exactly `argv` (the configuration path in it makes it ours).
    static func findProcess(argv: [String]) -> pid_t? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = pid_t(entry), pid > 1, pid != getpid() else { continue }
            let line = commandLine(pid)
            guard line.count == argv.count, let first = line.first,
                  (first as NSString).lastPathComponent == (argv[0] as NSString).lastPathComponent,
                  Array(line.dropFirst()) == Array(argv.dropFirst()), alive(pid) else { continue }
            return pid
        }
        return nil
    }

    /// True when `pid` is alive and runs a daemon started with one of `configPaths` (`-c PATH` for Ceph's, `-f PATH` for
    /// NFS-Ganesha and keepalived) and, when given, `executable`.
    static func processMatches(pid: pid_t, configPaths: [String], executable: String?) -> Bool {
        guard alive(pid) else { return false }
        let argv = commandLine(pid)
        guard let first = argv.first else { return false }
        if let executable, (first as NSString).lastPathComponent != (executable as NSString).lastPathComponent {
            return false
        }
        return zip(argv, argv.dropFirst()).contains { option, value in
            (option == "-c" || option == "-f") && configPaths.contains(value)
        }
    }

    /// Starts `argv` as a daemon through Exec's one runner: a session of its own, every inherited descriptor above 2
    /// closed (so a daemon never holds a caller's pipe open), standard input from /dev/null, output appended to `output`.
    static func spawn(_ argv: [String], output: String, environment: [String: String] = [:]) throws(ProvisionError) -> pid_t {
        let command = Command(argv[0], Array(argv.dropFirst()), environment: environment)
        guard Command.resolve(command.executable) != nil else {
            throw .failed("\(argv[0]) is not installed; install the Debian ceph packages (see scripts/install-deps)")
        }
        do {
            return try command.spawnDetached(appendingOutputTo: output)
        } catch {
            throw .failedBecause("cannot start \(argv[0]): \(error)", cause: error)
        }
    }
}

/// The daemons a `ProcessLauncher` started that `confirmStarted` has not looked at yet.
final class StartedDaemons: @unchecked Sendable {
    struct Entry {
        var name: String
        var pid: pid_t
        var output: String
        var at: Date
    }

    private let lock = NSLock()
    private var entries: [Entry] = []

    func add(_ entry: Entry) {
        lock.lock(); entries.append(entry); lock.unlock()
    }

    func remove(_ name: String) {
        lock.lock(); entries.removeAll { $0.name == name }; lock.unlock()
    }

    func take() -> [Entry] {
        lock.lock(); defer { lock.unlock() }
        let taken = entries
        entries = []
        return taken
    }
}

// MARK: - systemd launcher

/// Runs each daemon as its own systemd unit `aquarium-ceph-CLUSTER-NAME.service` written to `ROOT/etc/systemd/system`,
/// with the same argv as the process launcher, `Restart=on-failure`, enabled for later boots. Debian's
/// `ceph-*@.service` templates assume the default paths and the `ceph` user; ours run the daemons with the
/// configuration file this tool writes. Only usable where systemd runs (on a node), with ROOT = /.
public struct SystemdLauncher: DaemonLauncher {
    public let layout: Layout
    let logger: Logger
    public var kind: LauncherKind { .systemd }

    public init(layout: Layout, logger: Logger) {
        self.layout = layout
        self.logger = logger
    }

    public func unitName(_ daemon: String) -> String { "aquarium-ceph-\(layout.cluster)-\(daemon).service" }

    public static func renderUnit(_ daemon: DaemonSpec, cluster: String) -> String {
        // systemd wants an absolute program path.
        let program = Command.resolve(daemon.executable) ?? "/usr/bin/" + daemon.executable
        let exec = ([program] + daemon.arguments).map { argument in
            argument.contains(" ") ? "\"" + argument + "\"" : argument
        }.joined(separator: " ")
        let after = daemon.after.map { " aquarium-ceph-\(cluster)-\($0).service" }.joined()
        let install = daemon.atBoot ? "\n[Install]\nWantedBy=multi-user.target\n" : ""
        // What starts a daemon that is not started at boot starts it again (seen: systemd restarting the floating NFS
        // server on a node the address had left, every 5 s, each start taking the CephFS session of the node that held
        // the address).
        let restart = daemon.atBoot ? "on-failure" : "no"
        return """
        # Written by aquarium-provision.
        [Unit]
        Description=Ceph \(daemon.name) (cluster \(cluster)), run by Aquarium
        After=network-online.target local-fs.target time-sync.target\(after)
        Wants=network-online.target

        [Service]
        Type=simple
        ExecStart=\(exec)
        Restart=\(restart)
        RestartSec=5
        LimitNOFILE=1048576
        TimeoutStopSec=60
        \(install)
        """
    }

    public func isRunning(_ daemon: DaemonSpec) -> Bool {
        (try? Command("systemctl", ["is-active", "--quiet", unitName(daemon.fileName)]).run()) != nil
    }

    /// Whether two renderings of a unit differ in their `After=` line only.
    static func differOnlyInOrdering(_ old: String, _ new: String) -> Bool {
        func withoutOrdering(_ text: String) -> [Substring] { text.split(separator: "\n").filter { !$0.hasPrefix("After=") } }
        return old != new && withoutOrdering(old) == withoutOrdering(new)
    }

    public func stop(_ daemon: DaemonSpec) throws(ProvisionError) {
        let unit = unitName(daemon.fileName)
        do { try Command("systemctl", ["stop", unit]).run() } catch { throw .failedBecause("cannot stop \(unit): \(error)", cause: error) }
    }

    public func ensureRunning(_ daemon: DaemonSpec) throws(ProvisionError) -> Bool {
        let unit = unitName(daemon.fileName)
        let path = layout.systemdUnitDir + "/" + unit
        let previous = Files.read(path)
        let text = Self.renderUnit(daemon, cluster: layout.cluster)
        let changed = try Files.write(text, to: path)
        if !changed && isRunning(daemon) { return false }
        if changed, let previous, Self.differOnlyInOrdering(previous, text), isRunning(daemon) {
            // Only the order against other units changed (a daemon was added on this node): systemd takes it on a
            // reload; restarting the daemon would interrupt its clients for nothing.
            do { try Command("systemctl", ["daemon-reload"]).run() } catch {
                throw .failedBecause("cannot reload systemd for \(unit): \(error)", cause: error)
            }
            return false
        }
        do {
            if changed {
                // A new or different unit: load it, enable it for later boots, (re)start it once.
                try Command("systemctl", ["daemon-reload"]).run()
                if daemon.atBoot { try Command("systemctl", ["enable", unit]).run() }
                try Command("systemctl", ["restart", unit]).run()
                return true
            }
            if !daemon.atBoot {
                try Command("systemctl", ["start", unit]).run()
                return true
            }
            if isEnabled(unit) {
                // Unchanged and enabled: systemd starts it at boot (FirstBoot pulls in the units this node enabled
                // once its /etc is up), possibly a moment after this run looked. Waiting for that start, or starting
                // it again after a crash, changes nothing on the node.
                try Command("systemctl", ["start", unit]).run()
                logger.info("\(unit) is enabled but was not active; started it")
                return false
            }
            try Command("systemctl", ["enable", "--now", unit]).run()
        } catch {
            throw .failedBecause("cannot start \(unit): \(error); see `journalctl -u \(unit)`", cause: error)
        }
        return true
    }

    func isEnabled(_ unit: String) -> Bool {
        (try? Command("systemctl", ["is-enabled", "--quiet", unit]).run()) != nil
    }

    public func running() -> [RunningDaemon] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: layout.systemdUnitDir)) ?? []
        let prefix = "aquarium-ceph-\(layout.cluster)-"
        return files.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".service") }.sorted().map { unit in
            let name = String(unit.dropFirst(prefix.count).dropLast(".service".count))
            let active = (try? Command("systemctl", ["is-active", "--quiet", unit]).run()) != nil
            return RunningDaemon(name: name, pid: nil, unit: unit, running: active)
        }
    }

    public func stopAll() throws(ProvisionError) -> [String] {
        var stopped: [String] = []
        for daemon in running() {
            guard let unit = daemon.unit else { continue }
            do { try Command("systemctl", ["stop", unit]).run() } catch { throw .failedBecause("cannot stop \(unit): \(error)", cause: error) }
            stopped.append(daemon.name)
        }
        return stopped
    }
}

public enum Launchers {
    public static func make(_ kind: LauncherKind, layout: Layout, logger: Logger) -> any DaemonLauncher {
        switch kind {
        case .process: return ProcessLauncher(layout: layout, logger: logger)
        case .systemd: return SystemdLauncher(layout: layout, logger: logger)
        }
    }
}
