import Exec
import Foundation
import Testing
import TestSupport

/// The `.requires(...)` trait every device test carries: a missing capability skips the test outside CI (reported as
/// skipped, never as passed) and fails it in CI. check-run-tests proves the same through the runner (RunnerFixture).
@Suite("Missing capabilities fail in CI")
struct CapabilityTests {
    @Test("a missing program: an error in CI, a skip elsewhere; nothing missing: the test runs", arguments: [
        (["aquarium-no-such-tool"], true, "throws"), (["aquarium-no-such-tool"], false, "skip"),
        (["sh"], true, "run"), (["sh"], false, "run"), ([], true, "run"),
    ] as [([String], Bool, String)])
    func condition(programs: [String], ci: Bool, expected: String) throws {
        switch expected {
        case "throws":
            #expect(throws: MissingCapability.self) { try Capabilities.available(root: false, programs: programs, ci: ci) }
        case "skip":
            #expect(try Capabilities.available(root: false, programs: programs, ci: ci) == false)
        default:
            #expect(try Capabilities.available(root: false, programs: programs, ci: ci) == true)
        }
    }

    @Test("what is missing is named: the program, and root and loop devices only when asked for")
    func missingIsNamed() {
        #expect(Capabilities.missing(root: false, programs: ["aquarium-no-such-tool"]) == ["the program 'aquarium-no-such-tool'"])
        #expect(Capabilities.missing(root: false, programs: ["sh", "/bin/sh"]).isEmpty)
    }

    @Test("in CI the runner really is root with loop devices, so device tests cannot be skipped",
          .enabled(if: Capabilities.isCI, "only a CI run must have every capability"))
    func ciHasCapabilities() throws {
        #expect(getuid() == 0)
        #expect(FileManager.default.fileExists(atPath: "/dev/loop-control"))
        #expect(Capabilities.missing(programs: ["losetup", "sfdisk", "blkid"]).isEmpty)
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
