import Exec
import Foundation
import Testing
import TestSupport

/// The systemd units the image ships beside FirstBoot's and the Provisioner's (those have their own tests):
/// each one passes `systemd-analyze verify` and carries the guard that keeps it out of a production boot.
@Suite("Image units")
struct ImageUnitTests {
    static var overlay: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url = url.deletingLastPathComponent() }
        return url.path + "/image/overlay/etc/systemd/system"
    }

    @Test("units verify, and each has its guard", .requires(root: false, programs: ["systemd-analyze"]), arguments: [
        ("aquarium-poweroff.service", "ConditionKernelCommandLine=aquarium.poweroff"),
        ("aquarium-ssh-keygen.service", "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key"),
        ("aquarium-netcheck.service", "ConditionKernelCommandLine=aquarium.netcheck"),
        // A/B slots: only a counted (trial) boot reboots after a failure (aquarium-slot-good.service and
        // aquarium-slot-check.service need the image's other units and tools to verify: see slotUnits).
        ("aquarium-trial-failed.service", "ConditionPathExists=|/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"),
        ("aquarium-trial-failed.service", "ConditionKernelCommandLine=|aquarium.counted"),
    ])
    func verify(unit: String, guardLine: String) throws {
        let text = try String(contentsOfFile: Self.overlay + "/" + unit, encoding: .utf8)
        #expect(text.split(separator: "\n").contains { $0 == guardLine[...] }, "\(unit) lacks \(guardLine)")
        let complaints = try systemdVerifyComplaints([(unit, text)])
        #expect(complaints.isEmpty, "\(complaints)")
    }

    @Test("the end-to-end boots can switch the Provisioner off (its own unit tests verify the rest)")
    func provisionSwitch() throws {
        let text = try String(contentsOfFile: Self.overlay + "/aquarium-provision.service", encoding: .utf8)
        #expect(text.split(separator: "\n").contains("ConditionKernelCommandLine=!aquarium.provision=off"))
    }

    /// `aquarium-provision.timer` reruns the Provisioner through its own oneshot unit: aquarium-provision.service keeps
    /// RemainAfterExit=yes (active after the boot's run), so a timer could not start that one again.
    @Test("the periodic rerun: a timer, not during the first 10 minutes, and a unit guarded like the boot's run",
          .requires(root: false, programs: ["systemd-analyze"]))
    func periodicRerun() throws {
        let timer = try String(contentsOfFile: Self.overlay + "/aquarium-provision.timer", encoding: .utf8)
        let rerun = try String(contentsOfFile: Self.overlay + "/aquarium-provision-reconcile.service", encoding: .utf8)
        let boot = try String(contentsOfFile: Self.overlay + "/aquarium-provision.service", encoding: .utf8)
        func lines(_ text: String) -> [Substring] {
            text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces)[...] }.filter { !$0.hasPrefix("#") }
        }
        func value(_ key: String, in text: String) -> String? {
            lines(text).first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        // The timer: first 15 minutes after boot (end-to-end boots last up to about 8), then 10 minutes after each rerun.
        #expect(value("Unit", in: timer) == "aquarium-provision-reconcile.service")
        #expect(value("OnBootSec", in: timer) == "15min")
        #expect(value("OnUnitInactiveSec", in: timer) == "10min")
        #expect(!lines(timer).contains { $0.hasPrefix("OnActiveSec=") || $0.hasPrefix("OnStartupSec=") || $0.hasPrefix("OnCalendar=") })
        #expect(lines(timer).contains("[Install]") && value("WantedBy", in: timer) == "timers.target")
        // The rerun: a oneshot that becomes inactive again, not enabled itself, the boot's command and guards,
        // ordered after the boot's run and only when FirstBoot succeeded on this boot.
        #expect(value("Type", in: rerun) == "oneshot")
        #expect(value("RemainAfterExit", in: rerun) == nil && value("RemainAfterExit", in: boot) == "yes")
        #expect(!lines(rerun).contains("[Install]"))
        #expect(value("ExecStart", in: rerun) == value("ExecStart", in: boot))
        #expect(lines(rerun).filter { $0.hasPrefix("Condition") } == lines(boot).filter { $0.hasPrefix("Condition") })
        #expect(value("After", in: rerun)?.split(separator: " ").contains("aquarium-provision.service") == true)
        #expect(value("Requisite", in: rerun) == "aquarium-firstboot.service")

        // The binary and FirstBoot's unit are not installed on the build host: stand-ins for the check.
        let service = rerun.replacingOccurrences(of: "/usr/local/bin/aquarium-provision", with: "/bin/true")
            .replacingOccurrences(of: "Requisite=aquarium-firstboot.service\n", with: "")
        let complaints = try systemdVerifyComplaints([("aquarium-provision.timer", timer),
                                                      ("aquarium-provision-reconcile.service", service)])
        #expect(complaints.isEmpty, "\(complaints)")
    }

    /// Every node carries out the cluster's maintenance requests (docs/operations.md): a long-running watch, restarted
    /// when it dies, guarded like the Provisioner's units.
    @Test("the maintenance watch runs on every provisioned node and comes back when it dies",
          .requires(root: false, programs: ["systemd-analyze"]))
    func maintenanceWatch() throws {
        let text = try String(contentsOfFile: Self.overlay + "/aquarium-maintenance.service", encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("ExecStart=/usr/local/bin/aquarium-provision maintenance watch --root /"))
        #expect(lines.contains("Restart=always") && lines.contains("WantedBy=multi-user.target"))
        #expect(lines.contains("ConditionKernelCommandLine=!aquarium.provision=off"))
        #expect(lines.contains("ConditionPathExists=/var/lib/aquarium/node.json"))
        let stand = text.replacingOccurrences(of: "/usr/local/bin/aquarium-provision", with: "/bin/true")
        let complaints = try systemdVerifyComplaints([("aquarium-maintenance.service", stand)])
        #expect(complaints.isEmpty, "\(complaints)")
    }

    @Test("A/B slots: marked good only after FirstBoot and the Provisioner, before boot-complete.target; a failed trial boot reboots")
    func slotUnits() throws {
        let good = try String(contentsOfFile: Self.overlay + "/aquarium-slot-good.service", encoding: .utf8)
        let lines = good.split(separator: "\n").map(String.init)
        #expect(lines.contains("Requires=aquarium-firstboot.service aquarium-provision.service"))
        #expect(lines.contains("After=aquarium-firstboot.service aquarium-provision.service"))
        #expect(lines.contains { $0.hasPrefix("Before=") && $0.contains("boot-complete.target") })
        #expect(lines.contains("RequiredBy=boot-complete.target"))
        // Counted by systemd-boot (its EFI variable) or by GRUB (the trial entry's aquarium.counted): either one.
        #expect(lines.contains("ConditionPathExists=|/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"))
        #expect(lines.contains("ConditionKernelCommandLine=|aquarium.counted"))
        let check = try String(contentsOfFile: Self.overlay + "/aquarium-slot-check.service", encoding: .utf8)
        #expect(check.contains("After=aquarium-firstboot.service\n"), "reports once FirstBoot mounted the state")
        for unit in ["aquarium-firstboot", "aquarium-provision"] {
            let dropIn = try String(contentsOfFile: Self.overlay + "/\(unit).service.d/trial-boot.conf", encoding: .utf8)
            #expect(dropIn.contains("OnFailure=aquarium-trial-failed.service"), "\(unit)")
        }
    }

    @Test("sshd waits for this node's host keys on the system disk")
    func sshOrdering() throws {
        let dropIn = try String(contentsOfFile: Self.overlay + "/ssh.service.d/aquarium.conf", encoding: .utf8)
        #expect(dropIn.contains("After=aquarium-firstboot.service aquarium-ssh-keygen.service"))
        #expect(dropIn.contains("Wants=aquarium-ssh-keygen.service"))
    }

    /// Debian's NFS-Ganesha and keepalived units would start at boot beside ours (port 2049 taken; two VRRP speakers):
    /// a condition on a file the image does not ship keeps them off.
    @Test(arguments: ["nfs-ganesha", "keepalived"])
    func debianServiceUnitsStayOff(_ unit: String) throws {
        let dropIn = try String(contentsOfFile: Self.overlay + "/\(unit).service.d/aquarium.conf", encoding: .utf8)
        let condition = try #require(dropIn.split(separator: "\n").first { $0.hasPrefix("ConditionPathExists=") })
        let path = String(condition.dropFirst("ConditionPathExists=".count))
        #expect(path.hasPrefix("/etc/aquarium/") && !FileManager.default.fileExists(atPath: Self.overlay + "/../../.." + path), "\(path)")
    }

    @Test("chrony has no time source but the seed's: no pool, no server, and it reads the directory the Provisioner writes")
    func chronyWithoutOutsideServers() throws {
        let text = try String(contentsOfFile: Self.overlay + "/../../chrony/chrony.conf", encoding: .utf8)
        let directives = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        #expect(!directives.contains { ["pool", "server", "peer"].contains($0.split(separator: " ").first.map(String.init) ?? "") },
                "\(directives)")
        #expect(!directives.contains { $0.contains("/run/chrony-dhcp") }, "servers from DHCP would be outside ones too")
        // HostConfig writes the seed's host.ntp_servers to /etc/chrony/sources.d/aquarium.sources.
        #expect(directives.contains("sourcedir /etc/chrony/sources.d"))
    }

    @Test("the netcheck script is valid bash and only ever uses its address as a /dev/tcp path",
          .requires(root: false, programs: ["bash"]))
    func netcheckScript() throws {
        let script = Self.overlay + "/../../../usr/local/lib/aquarium/netcheck"
        #expect(FileManager.default.isExecutableFile(atPath: script))
        let check = try Command("bash", ["-n", script]).run(acceptedStatuses: Set(0...255))
        #expect(check.status == 0, "\(check.errorOutput)")
        let text = try String(contentsOfFile: script, encoding: .utf8)
        #expect(!text.contains("eval"))
    }
}
