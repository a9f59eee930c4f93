import Foundation
import Testing
import TestSupport

/// The guard every device test starts with must fail, not skip, when a capability is missing in CI.
@Suite("Missing capabilities fail in CI")
struct CapabilityTests {
    @Test("a missing program is an error unless skipping is explicitly allowed outside CI")
    func missingProgram() throws {
        let allowSkip = !Capabilities.isCI && ProcessInfo.processInfo.environment["AQUARIUM_ALLOW_SKIP"] == "1"
        if allowSkip {
            #expect(try Capabilities.require(root: false, programs: ["aquarium-no-such-tool"]) == false)
        } else {
            #expect(throws: MissingCapability.self) {
                try Capabilities.require(root: false, programs: ["aquarium-no-such-tool"])
            }
        }
    }

    @Test("in CI the runner really is root with loop devices, so device tests cannot be skipped")
    func ciHasCapabilities() throws {
        guard Capabilities.isCI else { return }
        #expect(getuid() == 0)
        #expect(FileManager.default.fileExists(atPath: "/dev/loop-control"))
        #expect(try Capabilities.require(programs: ["losetup", "sfdisk", "blkid"]))
    }
}
