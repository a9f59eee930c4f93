import Exec
import Foundation
import ImageBuilder
import Testing
import TestSupport

@Suite("kiwi/: KIWI NG description of the same appliance")
struct KiwiTests {
    static let schema = "/usr/lib/python3/dist-packages/kiwi/schema/kiwi.rng"
    static var root: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url = url.deletingLastPathComponent() }
        return url.path
    }
    static var config: String { root + "/kiwi/config.kiwi" }

    @Test("config.kiwi validates against the RelaxNG schema of Debian's kiwi package, and kiwi itself loads it",
          .requires(root: false, programs: ["xmllint", "/usr/bin/python3"]))
    func schema() throws {
        try #require(FileManager.default.fileExists(atPath: Self.schema), "KIWI's schema \(Self.schema) is missing: install Debian's kiwi package")
        let result = try Command("xmllint", ["--noout", "--relaxng", Self.schema, Self.config]).run(acceptedStatuses: Set(0...255))
        #expect(result.status == 0, "\(result.errorOutput)")
        #expect(result.errorOutput.contains("validates"))
        // kiwi's loader adds its schematron rules and reads the build type back.
        let script = """
            import sys
            from kiwi.xml_description import XMLDescription
            from kiwi.xml_state import XMLState
            state = XMLState(XMLDescription(sys.argv[1]).load())
            print(state.get_build_type_name(), state.get_package_manager(), state.get_build_type_bootloader_name())
            """
        let loaded = try Command("/usr/bin/python3", ["-c", script, Self.config]).run(acceptedStatuses: Set(0...255))
        #expect(loaded.status == 0, "\(loaded.errorOutput)")
        let lastLine = loaded.output.split(separator: "\n").last.map(String.init)
        #expect(lastLine == "oem apt systemd_boot", "\(loaded.output)")
    }

    @Test("same packages, command line and ESP size as image/aquarium.yaml; no repository host; overlay shared")
    func matchesDescription() throws {
        let description = try ImageDescription.load(directory: Self.root + "/image")
        let text = try String(contentsOfFile: Self.config, encoding: .utf8)
        let imageSection = try #require(text.range(of: "<packages type=\"image\">").flatMap { start in
            text.range(of: "</packages>", range: start.upperBound..<text.endIndex).map { text[start.upperBound..<$0.lowerBound] }
        })
        let names = imageSection.components(separatedBy: "<package name=\"").dropFirst().compactMap { $0.split(separator: "\"").first.map(String.init) }
        #expect(names.sorted() == (try description.packages(profile: "full")))
        #expect(text.contains("kernelcmdline=\"\(description.kernelCommandLine)\""))
        #expect(text.contains("efipartsize=\"\(description.layout.espMiB)\""))
        #expect(!text.contains("<repository"))
        #expect(!text.contains("://"))
        let overlay = try FileManager.default.destinationOfSymbolicLink(atPath: Self.root + "/kiwi/root")
        #expect(overlay == "../image/overlay")
        let syntax = try Command("bash", ["-n", Self.root + "/kiwi/config.sh"]).run(acceptedStatuses: Set(0...255))
        #expect(syntax.status == 0, "\(syntax.errorOutput)")
    }
}
