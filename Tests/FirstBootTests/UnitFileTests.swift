import Exec
import Foundation
import Testing
import TestSupport

/// The systemd unit shipped in image/overlay: ordering, failure behaviour, and what systemd itself says about it.
@Suite("FirstBoot systemd unit")
struct UnitFileTests {
    static var unitPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("image/overlay/etc/systemd/system/aquarium-firstboot.service").path
    }

    /// `key -> values` of the unit (a key may repeat).
    static func settings() throws -> [String: [String]] {
        let text = try String(contentsOfFile: unitPath, encoding: .utf8)
        var settings: [String: [String]] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && line.contains("=") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            settings[parts[0], default: []].append(parts.count > 1 ? parts[1] : "")
        }
        return settings
    }

    @Test("oneshot after udev has settled, before the Provisioner, errors on the console, no restart or reboot")
    func ordering() throws {
        let unit = try Self.settings()
        #expect(unit["Type"] == ["oneshot"])
        #expect(unit["After"]?.joined(separator: " ").contains("systemd-udev-settle.service") == true)
        #expect(unit["Wants"]?.joined(separator: " ").contains("systemd-udev-settle.service") == true)
        #expect(unit["ExecStartPre"]?.first?.contains("udevadm settle") == true)
        #expect(unit["Before"]?.joined(separator: " ").contains("aquarium-provision.service") == true)
        #expect(unit["StandardOutput"] == ["journal+console"])
        #expect(unit["StandardError"] == ["journal+console"])
        #expect(unit["Restart"] == ["no"])
        #expect(unit["FailureAction"] == ["none"])
        #expect(unit["ExecStart"]?.first?.hasSuffix("aquarium-firstboot apply --yes --verbose") == true)
        #expect(unit["WantedBy"] == ["multi-user.target"])
    }

    @Test("systemd-analyze verify accepts it", .requires(root: false, programs: ["systemd-analyze"]))
    func verify() throws {
        // The binary is not installed on the build host: point ExecStart at /bin/true for the check.
        let text = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
            .replacingOccurrences(of: "/usr/local/bin/aquarium-firstboot", with: "/bin/true")
        let complaints = try systemdVerifyComplaints([("aquarium-firstboot.service", text)])
        #expect(complaints.isEmpty, "\(complaints)")
    }
}
