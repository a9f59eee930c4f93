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
    /// `freshState`: the state filesystem was made by this run (`create`), so this node's /etc layer holds nothing
    /// systemd has not seen but the mount units this run wrote (for the next boots: the mounts themselves are up).
    /// Then the reload and the host name and network of earlier boots are skipped: under emulation the reload alone
    /// took 2.5 s of the first boot, and a network reload dropped and renewed the DHCP lease for nothing.
    static func start(logger: Logger, freshState: Bool = false) -> String {
        // Found on PATH is enough: asking the 85 MB binary for its help first put a cold start of it on the boot's
        // critical path (0.9-1.1 s under emulation, as measured for FirstBoot's own), and every image's has `run`.
        guard let provision = Command.resolve("aquarium-provision") else {
            let line = "handoff: node record written; aquarium-provision is not installed"
            logger.notice("\(line)")
            return line
        }
        if ProcessInfo.processInfo.environment["INVOCATION_ID"] != nil {
            // Under systemd, at boot. This node's /etc (the overlay) came up after systemd read its units: reload, then
            // ask for multi-user.target again so the units enabled on earlier boots (the Ceph daemons) start like
            // any unit enabled at boot, and start the Provisioner.
            if !freshState {
                _ = try? Command("systemctl", ["daemon-reload"]).run()
                // Likewise this node's host name and network configuration (systemd-networkd read the image's).
                if let name = try? String(contentsOfFile: "/etc/hostname", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty {
                    RunningHost.set(name)
                }
                RunningHost.reloadNetwork()
            }
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
