import Disks
import Exec
import FileLayer
import Foundation
import GPT
import Logging
import NodeContract
import Parted
import Seed

/// Starting the Provisioner.
enum Handoff {
    static func start(logger: Logger) -> String {
        guard let provision = Command.resolve("aquarium-provision"),
              (try? Command(provision, ["run", "--help"]).run()) != nil else {
            let line = "handoff: node record written; aquarium-provision with a `run` subcommand is not installed yet"
            logger.notice("\(line)")
            return line
        }
        if ProcessInfo.processInfo.environment["INVOCATION_ID"] != nil {
            // Under systemd, at boot. This node's /etc (the overlay) came up after systemd read its units: reload, then
            // ask for multi-user.target again so the units enabled on earlier boots (the Ceph daemons) start like
            // any unit enabled at boot, and start the Provisioner.
            _ = try? Command("systemctl", ["daemon-reload"]).run()
            // Likewise this node's host name and network configuration (systemd-networkd read the image's).
            if let name = try? String(contentsOfFile: "/etc/hostname", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty {
                RunningHost.set(name)
            }
            RunningHost.reloadNetwork()
            if (try? Command("systemctl", ["start", "--no-block", "multi-user.target", "aquarium-provision.service"]).run()) != nil {
                return "handoff: started aquarium-provision.service"
            }
        }
        do {
            try Command(provision, ["run"]).run()
            return "handoff: \(provision) run finished"
        } catch {
            return "handoff: \(provision) run failed: \(error)"
        }
    }
}

/// An exclusive advisory lock on a file (flock), held until `release()`.
final class RunLock {
    private var fd: Int32

    init(path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ApplyError(.runtime, "cannot open the lock \(path): \(errnoText())") }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let reason = errnoText()
            close(fd)
            throw ApplyError(.runtime, "cannot lock \(path): \(reason)")
        }
    }

    func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}
