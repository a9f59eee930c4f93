import Exec
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

    @Test("in CI the runner really is root with loop devices, so device tests cannot be skipped",
          .enabled(if: Capabilities.isCI, "only a CI run must have every capability"))
    func ciHasCapabilities() throws {
        #expect(getuid() == 0)
        #expect(FileManager.default.fileExists(atPath: "/dev/loop-control"))
        #expect(try Capabilities.require(programs: ["losetup", "sfdisk", "blkid"]))
    }
}

/// scripts/run-tests decides "is this CI" with scripts/is-ci, the tests with `Capabilities.isCI`: one rule, checked here
/// on both for every value that ever caused a disagreement (CI=1 was CI for the tests but not for the runner).
@Suite("One CI predicate for the runner and the tests")
struct CIPredicateTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/is-ci").path

    @Test("scripts/is-ci and Capabilities.isCI agree", arguments: [
        ("true", true), ("1", true), ("yes", true), ("TRUE", true), ("github-actions", true),
        ("", false), ("0", false), ("false", false), ("False", false), ("FALSE", false), (" false ", false),
    ] as [(String, Bool)])
    func agree(value: String, expected: Bool) throws {
        #expect(Capabilities.isCI(value) == expected, "Capabilities.isCI(\"\(value)\")")
        let script = try Command(Self.script, [value]).run(acceptedStatuses: [0, 1])
        #expect((script.status == 0) == expected, "scripts/is-ci '\(value)' exited \(script.status)")
    }

    @Test("an unset CI is not CI for either")
    func unset() throws {
        #expect(Capabilities.isCI(nil) == false)
        let script = try Command("/usr/bin/env", ["-u", "CI", Self.script]).run(acceptedStatuses: [0, 1])
        #expect(script.status == 1)
    }
}
