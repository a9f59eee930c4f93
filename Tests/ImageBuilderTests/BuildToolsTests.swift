import Exec
import Foundation
import ImageBuilder
import Testing
import TestSupport

/// `build` refuses tools that cannot run on the node, before any slow work (no Debian build is run here).
@Suite("build refuses dynamically linked tools at once", .serialized)
struct BuildToolsTests {
    static var root: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url = url.deletingLastPathComponent() }
        return url.path
    }

    /// Runs `build` into `directory` with a mirror nothing answers on: should the check ever be skipped, debootstrap
    /// fails at once instead of downloading, and only the temporary directory is touched.
    func build(_ directory: String, _ extra: [String]) throws -> (CommandResult, Double) {
        let start = Date()
        let run = try Products.run("aquarium-image", ["build", "--description", Self.root + "/image", "--output", directory + "/out",
                                                      "--cache", directory + "/cache", "--mirror", "http://127.0.0.1:9/debian",
                                                      "--quiet"] + extra)
        return (run, Date().timeIntervalSince(start))
    }

    @Test("the tools of a plain `swift build` (beside the running aquarium-image, or given with --tool) are refused with exit 2 naming scripts/build-node-tools; nothing is created",
          .requires(root: true))
    func dynamicToolsRefused() throws {
        // build checks root first; the refusal itself needs no loop device or program.
        let image = try Products.path("aquarium-image")
        let directory = (image as NSString).deletingLastPathComponent
        // The premise: these products link the Swift runtime dynamically.
        let needed = try Command("readelf", ["-d", image]).run().output
        try #require(needed.contains("libswiftCore.so"), "\(image) is not a dynamically linked Swift build")
        try withTemporaryDirectory { scratch in
            let (byDefault, seconds) = try build(scratch, [])
            #expect(byDefault.status == 2, "\(byDefault.status): \(byDefault.errorOutput)")
            #expect(byDefault.errorOutput.contains("\(directory)/aquarium-firstboot: links the Swift runtime dynamically"),
                    "\(byDefault.errorOutput)")
            #expect(byDefault.errorOutput.contains("scripts/build-node-tools"), "\(byDefault.errorOutput)")
            #expect(!byDefault.errorOutput.contains("warning:"))
            #expect(seconds < 20, "the refusal took \(seconds) s: it must come before any slow work")
            #expect(!FileManager.default.fileExists(atPath: scratch + "/cache"), "the root filesystem cache was started")
            #expect(!FileManager.default.fileExists(atPath: scratch + "/out"), "the output was started")

            let provision = directory + "/aquarium-provision"
            let (given, _) = try build(scratch, ["--tool", provision])
            #expect(given.status == 2, "\(given.errorOutput)")
            #expect(given.errorOutput.contains("\(provision): links the Swift runtime dynamically"), "\(given.errorOutput)")
            #expect(given.errorOutput.contains("scripts/build-node-tools"))

            let missing = scratch + "/no-such-tool"
            let (absent, _) = try build(scratch, ["--tool", missing])
            #expect(absent.status == 2)
            #expect(absent.errorOutput.contains("\(missing): is not an executable"), "\(absent.errorOutput)")
            #expect(absent.errorOutput.contains("scripts/build-node-tools"))
            #expect(!FileManager.default.fileExists(atPath: scratch + "/cache"))
        }
    }

    @Test("the check itself: a non-Swift executable passes, a Swift build that links libswiftCore.so does not")
    func checkTools() throws {
        #expect(throws: Never.self) { try ImageBuild.checkTools(["/bin/true"]) }
        let image = try Products.path("aquarium-image")
        let error = #expect(throws: ImageError.self) { try ImageBuild.checkTools(["/bin/true", image]) }
        #expect(error?.kind == .invalidInput)
        #expect(error?.subject == image)
        #expect(error?.message.contains("scripts/build-node-tools") == true)
    }

    @Test("scripts/build-node-tools makes release builds unless AQUARIUM_TOOLS_CONFIG=debug")
    func nodeToolsScriptDefaultsToRelease() throws {
        let text = try String(contentsOfFile: Self.root + "/scripts/build-node-tools", encoding: .utf8)
        #expect(text.contains("config=\"${AQUARIUM_TOOLS_CONFIG:-release}\""))
        #expect(text.contains("--static-swift-stdlib"))
        // Anything but release or debug is refused before building.
        let bad = try Command("bash", [Self.root + "/scripts/build-node-tools"], environment: ["AQUARIUM_TOOLS_CONFIG": "fast"])
            .run(acceptedStatuses: Set(0...255))
        #expect(bad.status == 2)
        #expect(bad.errorOutput.contains("must be release or debug"))
    }
}
