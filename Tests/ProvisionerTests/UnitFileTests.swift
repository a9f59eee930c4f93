import Exec
import Foundation
import TestSupport
import Testing
@testable import Provisioner

/// The Provisioner's systemd units: the one in image/overlay and the per-daemon units the systemd launcher writes,
/// checked by systemd itself.
@Suite struct ProvisionUnitFileTests {
    static var unitPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("image/overlay/etc/systemd/system/aquarium-provision.service").path
    }

    static func verify(_ text: String, name: String) throws {
        let complaints = try systemdVerifyComplaints([(name, text)])
        #expect(complaints.isEmpty, "\(complaints)")
    }

    @Test(.requires(root: false, programs: ["systemd-analyze"]))
    func provisionUnitRunsAfterFirstBootWithTheSystemdLauncher() throws {
        let text = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        #expect(text.contains("\nType=oneshot\n"))
        #expect(text.contains("\nRequires=aquarium-firstboot.service\n"))
        #expect(text.contains("After=aquarium-firstboot.service"))
        #expect(text.contains("\nConditionPathExists=/usr/bin/ceph-mon\n"))  // skipped in the minimal profile
        #expect(text.contains("ExecStart=/usr/local/bin/aquarium-provision run --node-record /var/lib/aquarium/node.json --launcher systemd"))
        // The binary and FirstBoot's unit are not installed on the build host: stand-ins for the check.
        let checked = text.replacingOccurrences(of: "/usr/local/bin/aquarium-provision", with: "/bin/true")
            .replacingOccurrences(of: "Requires=aquarium-firstboot.service\n", with: "")
        try Self.verify(checked, name: "aquarium-provision.service")
    }

    @Test(.requires(root: false, programs: ["systemd-analyze"])) func daemonUnitIsValid() throws {
        let layout = Layout(root: "/")
        let spec = DaemonSpec(name: "osd.3", executable: "/bin/true",
                              arguments: ["--cluster", "ceph", "-c", layout.cephConf, "-i", "3", "-f"], configPath: layout.cephConf)
        let launcher = SystemdLauncher(layout: layout, logger: .init(label: "test"))
        let name = launcher.unitName(spec.fileName)
        #expect(name == "aquarium-ceph-ceph-osd.3.service")
        try Self.verify(SystemdLauncher.renderUnit(spec, cluster: "ceph"), name: name)
    }
}
