import Foundation
import Testing
import TestSupport

/// The executables' shared contract: --help, --version, and exit code 2 for bad usage.
@Suite("Command-line contract")
struct ExitCodeTests {
    static let tools = ["aquarium-image", "aquarium-firstboot", "aquarium-provision"]

    @Test("--version prints the version and exits 0", arguments: tools)
    func version(tool: String) throws {
        let result = try Products.run(tool, ["--version"])
        #expect(result.status == 0)
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
    }

    @Test("--help describes the tool and exits 0", arguments: tools)
    func help(tool: String) throws {
        let result = try Products.run(tool, ["--help"])
        #expect(result.status == 0)
        #expect(result.output.contains("USAGE: \(tool)"))
        #expect(result.output.contains("Aquarium") || result.output.contains("seed") || result.output.contains("Ceph"))
    }

    @Test("an unknown option exits 2 and says what was wrong", arguments: tools)
    func badUsage(tool: String) throws {
        let result = try Products.run(tool, ["--no-such-option"])
        #expect(result.status == 2)
        #expect(result.errorOutput.contains("--no-such-option"))
    }
}
