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

    @Test("units verify, and each has its guard", arguments: [
        ("aquarium-poweroff.service", "ConditionKernelCommandLine=aquarium.poweroff"),
        ("aquarium-ssh-keygen.service", "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key"),
    ])
    func verify(unit: String, guardLine: String) throws {
        guard try Capabilities.require(root: false, programs: ["systemd-analyze"]) else { return }
        let text = try String(contentsOfFile: Self.overlay + "/" + unit, encoding: .utf8)
        #expect(text.split(separator: "\n").contains { $0 == guardLine[...] }, "\(unit) lacks \(guardLine)")
        try withTemporaryDirectory { directory in
            let copy = directory + "/" + unit
            try Data(text.utf8).write(to: URL(fileURLWithPath: copy))
            let result = try Command("systemd-analyze", ["verify", copy]).run(acceptedStatuses: Set(0...255))
            let complaints = (result.output + result.errorOutput).split(separator: "\n").filter { $0.contains(unit) }
            #expect(result.status == 0 && complaints.isEmpty, "\(result.output)\(result.errorOutput)")
        }
    }

    @Test("the end-to-end boots can switch the Provisioner off (its own unit tests verify the rest)")
    func provisionSwitch() throws {
        let text = try String(contentsOfFile: Self.overlay + "/aquarium-provision.service", encoding: .utf8)
        #expect(text.split(separator: "\n").contains("ConditionKernelCommandLine=!aquarium.provision=off"))
    }

    @Test("sshd waits for this node's host keys on the system disk")
    func sshOrdering() throws {
        let dropIn = try String(contentsOfFile: Self.overlay + "/ssh.service.d/aquarium.conf", encoding: .utf8)
        #expect(dropIn.contains("After=aquarium-firstboot.service aquarium-ssh-keygen.service"))
        #expect(dropIn.contains("Wants=aquarium-ssh-keygen.service"))
    }
}
