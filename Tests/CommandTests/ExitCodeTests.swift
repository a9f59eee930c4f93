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

/// `aquarium-image build`'s boot chain options: the signed chain by default, each other choice exclusive (exit 2,
/// before anything is built).
@Suite("build: boot chain options")
struct BootChainOptionTests {
    @Test("conflicting boot chains are usage errors", arguments: [
        (["--systemd-boot", "--secure-boot"], "--systemd-boot excludes --secure-boot"),
        (["--systemd-boot", "--locked", "--signing-key", "k", "--signing-cert", "c"], "--systemd-boot excludes --locked"),
        (["--secure-boot", "--locked", "--signing-key", "k", "--signing-cert", "c"], "--locked and --secure-boot exclude each other"),
    ])
    func conflicts(arguments: [String], message: String) throws {
        let result = try Products.run("aquarium-image", ["build", "--output", "/nonexistent/out"] + arguments)
        #expect(result.status == 2, "\(result.output)\(result.errorOutput)")
        #expect(result.errorOutput.contains(message), "\(result.errorOutput)")
    }

    @Test("--help says the signed chain is the default and --systemd-boot is the other choice")
    func help() throws {
        let result = try Products.run("aquarium-image", ["build", "--help"])
        #expect(result.status == 0)
        let text = result.output.replacingOccurrences(of: "\n", with: " ").split(separator: " ").joined(separator: " ")
        #expect(text.contains("--systemd-boot") && text.contains("Debian's signed chain (shim, GRUB, the kernel): the default"), "\(result.output)")
    }
}
