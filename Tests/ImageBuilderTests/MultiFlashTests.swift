import Exec
import Foundation
@testable import ImageBuilder
import Logging
import Seed
import Testing
import TestSupport

/// Several sticks at once (issue: "Several sticks at once"): real loop devices written and read back in parallel, a
/// corrupted byte caught on one while the other is good, seeds injected into each, `--dry-run` and `--json`.
@Suite("flash several sticks at once", .serialized)
struct MultiFlashTests {
    static let programs = ImageFixtures.programs + ["losetup", "partx"]

    func sha256(_ path: String, bytes: Int) throws -> String {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        return try Command("sha256sum", []).run(input: try handle.read(upToCount: bytes) ?? Data()).output
    }

    @Test("two sticks at once: a byte one of them loses is caught on that one, the other flashes and verifies",
          .requires(programs: MultiFlashTests.programs))
    func corruptedByteOnOne() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "multi")
            let image = result.artifacts.image
            let map = result.artifacts.blockMap
            let range = map.ranges[map.ranges.count / 2]
            let target = range.first * map.blockSize + 10
            try LoopDevice.with(.init(sizeBytes: 192 << 20)) { good in
                try LoopDevice.with(.init(sizeBytes: 192 << 20)) { bad in
                    let (backing, badPath) = (bad.backingFile, bad.path)
                    var run = MultiFlash(image: image, bmap: nil, devices: [good.path, bad.path], allowNonRemovable: true,
                                         seedsDirectory: nil, logger: Logger(label: "test")) { _ in Reporter(quiet: true) }
                    // The bad stick loses a byte of the middle range right after it is written, below its page cache.
                    run.flasher = { device, reporter in
                        var flasher = Flasher(reporter: reporter)
                        guard device == badPath else { return flasher }
                        flasher.afterWrite = FlashTests.loseByte(target, backing: backing)
                        return flasher
                    }
                    let checked = try run.check()
                    try #require(checked.passed, "\(checked.report.sticks.map(\.summary))")
                    let (report, errors) = run.flash(checked)
                    #expect(report.sticks.map(\.outcome) == [.flashed, .failed], "\(report.sticks.map(\.summary))")
                    #expect(errors.keys.sorted() == [1])
                    let failure = report.sticks[1].summary
                    #expect(failure.hasPrefix("\(bad.path): FAILED: ") && failure.contains("range \(range.first)-\(range.last)")
                            && failure.contains("does not match the image"), "\(failure)")
                    #expect(report.sticks[0].rangesVerified == map.ranges.count)
                    let verify = try Products.run("aquarium-image", ["verify", "--quiet", image, good.path])
                    #expect(verify.status == 0, "the good stick: \(verify.errorOutput)")
                }
            }
        }
    }

    @Test("the command: --dry-run checks and writes nothing, then both sticks with every seed, one line each, and --json",
          .requires(programs: MultiFlashTests.programs + ["mtype", "sha256sum"]))
    func command() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "cmd")
            let image = result.artifacts.image
            let offset = try #require(result.assembly.partition(.seed)).offsetBytes
            let seeds = try SeedsDirectoryInjectTests().rackSeeds(in: directory, nodes: 2)
            try LoopDevice.with(.init(sizeBytes: 192 << 20)) { first in
                try LoopDevice.with(.init(sizeBytes: 192 << 20)) { second in
                    let before = try sha256(first.path, bytes: 8 << 20)
                    // Not removable: refused, both named with every check; nothing written.
                    let dry = try Products.run("aquarium-image", ["flash", image, first.path, second.path, "--dry-run"])
                    #expect(dry.status == 3, "\(dry.output) \(dry.errorOutput)")
                    for device in [first.path, second.path] {
                        #expect(dry.output.contains("\(device): model -, serial -, 192.0 MiB, transport loop\n"), "\(dry.output)")
                    }
                    for check in ["ok      not the disk of the running system", "ok      not mounted", "ok      writable",
                                  "REFUSED removable or on USB: is not a removable or USB disk (transport loop)",
                                  "-> would be refused: nothing is written to it"] {
                        #expect(dry.output.components(separatedBy: check).count == 3, "\(check): \(dry.output)")
                    }
                    #expect(dry.errorOutput.contains("2 of 2 devices refused\n"), "\(dry.errorOutput)")
                    let allowed = try Products.run("aquarium-image", ["flash", image, first.path, second.path, "--dry-run",
                                                                      "--yes-non-removable", "--json"])
                    #expect(allowed.status == 0, "\(allowed.errorOutput)")
                    let planned = try JSONDecoder().decode(FlashRunReport.self, from: allowed.standardOutput)
                    #expect(planned.dryRun && planned.sticks.map(\.outcome) == [.wouldFlash, .wouldFlash])
                    #expect(planned.sticks.allSatisfy { $0.checks.count == 7 && $0.transport == "loop" && $0.sizeBytes == 192 << 20 })
                    #expect(try sha256(first.path, bytes: 8 << 20) == before, "a dry run wrote to \(first.path)")

                    // For real: both at once, every seed of the rack on each, a summary line per stick.
                    let flashed = try Products.run("aquarium-image", ["flash", image, first.path, second.path, "--yes-non-removable",
                                                                      "--seeds-dir", directory + "/rack/seeds"])
                    #expect(flashed.status == 0, "\(flashed.errorOutput)")
                    for device in [first.path, second.path] {
                        #expect(flashed.errorOutput.contains("\(device): flashed ") && flashed.errorOutput.contains(
                            "backup GPT moved to the end, \(result.artifacts.blockMap.ranges.count) ranges read back and verified, "
                            + "2 seeds written to seeds/\n"), "\(flashed.errorOutput)")
                        #expect(flashed.errorOutput.contains("\(device): writing"), "no progress for \(device)")
                        for node in seeds.nodes {
                            let copy = try Command("mtype", ["-i", "\(device)@@\(offset)", "::/" + node.seed],
                                                   environment: SeedsDirectoryInjectTests.mtools).run(acceptedStatuses: Set(0...255))
                            #expect(copy.standardOutput == FileManager.default.contents(atPath: try #require(node.file)),
                                    "\(device): \(node.seed)")
                        }
                    }
                    #expect(!flashed.errorOutput.contains("\r"))

                    let json = try Products.run("aquarium-image", ["flash", image, first.path, second.path, "--yes-non-removable", "--json"])
                    #expect(json.status == 0, "\(json.errorOutput)")
                    let report = try JSONDecoder().decode(FlashRunReport.self, from: json.standardOutput)
                    #expect(!report.dryRun && report.sticks.allSatisfy { $0.outcome == .flashed && ($0.bytesWritten ?? 0) > 0 })
                    #expect(report.mappedBytes == result.artifacts.blockMap.mappedBytes)

                    // A device named twice, none at all: usage errors.
                    let twice = try Products.run("aquarium-image", ["flash", image, first.path, first.path])
                    #expect(twice.status == 2 && twice.errorOutput.contains("a device is named twice"))
                    let none = try Products.run("aquarium-image", ["flash", image])
                    #expect(none.status == 2 && none.errorOutput.contains("name the device to flash"))
                }
            }
        }
    }
}
