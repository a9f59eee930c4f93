@testable import FirstBoot
import Foundation
import Testing
import TestSupport

/// How the machine booted, as the report on the stick says it: from sysfs trees laid out as the kernel does.
@Suite("Boot firmware in the report")
struct BootFirmwareTests {
    /// efivarfs contents: 4 attribute bytes (non-volatile, boot service, runtime access: 0x07) then the value.
    static func variable(_ value: UInt8?) -> Data? { value.map { Data([0x06, 0, 0, 0, $0]) } }

    @Test("UEFI with and without Secure Boot, setup mode, unreadable variables, legacy BIOS", arguments: [
        (true, UInt8?(1), UInt8?(0), "uefi", Bool?(true), Bool?(false), "UEFI, Secure Boot enforced"),
        (true, 0, 0, "uefi", false, false, "UEFI, Secure Boot off"),
        (true, 0, 1, "uefi", false, true, "UEFI, Secure Boot off (setup mode)"),
        (true, nil, nil, "uefi", nil, nil, "UEFI, Secure Boot state unknown (EFIVARS/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c: No such file or directory; efivars holds 0 variables)"),
        (true, 7, nil, "uefi", nil, nil, "UEFI, Secure Boot state unknown (EFIVARS/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c: 5 bytes, not a boolean variable)"),
        (false, nil, nil, "bios", nil, nil, "legacy BIOS"),
    ] as [(Bool, UInt8?, UInt8?, String, Bool?, Bool?, String)])
    func firmware(uefi: Bool, secureBoot: UInt8?, setupMode: UInt8?, firmware: String, expectedSecureBoot: Bool?,
                  expectedSetupMode: Bool?, text: String) throws {
        try withTemporaryDirectory { directory in
            let efi = directory + "/firmware/efi"
            if uefi {
                try FileManager.default.createDirectory(atPath: efi + "/efivars", withIntermediateDirectories: true)
                let guid = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
                if let data = Self.variable(secureBoot) { try data.write(to: URL(fileURLWithPath: "\(efi)/efivars/SecureBoot-\(guid)")) }
                if let data = Self.variable(setupMode) { try data.write(to: URL(fileURLWithPath: "\(efi)/efivars/SetupMode-\(guid)")) }
            }
            let found = BootFirmware.current(firmwareDirectory: efi)
            #expect(found.firmware == firmware && found.secureBoot == expectedSecureBoot && found.setupMode == expectedSetupMode)
            #expect((found.problem == nil) == (expectedSecureBoot != nil || firmware == "bios"))
            let text = text.replacingOccurrences(of: "EFIVARS", with: efi + "/efivars")
            #expect(found.text == text)
            // The report carries it, in JSON and as a line of text.
            var report = ApplyReport(outcome: "success", exitCode: 0)
            report.boot = found
            #expect(report.text.contains("firmware: \(text)\n"))
            let json = try JSONSerialization.jsonObject(with: try report.json()) as? [String: Any]
            #expect((json?["boot"] as? [String: Any])?["firmware"] as? String == firmware)
        }
    }
}
