import Exec
import Foundation
import ImageBuilder
import Seed
import Testing
import TestSupport

/// `seed inject --as`: names mtools/FAT would change or interpret are refused; the dash form for MACs works;
/// reads back from a FAT volume are bounded by the seed size limit.
@Suite("seed names on FAT and bounded reads", .serialized)
struct SeedNameTests {
    static let mtools = ["MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1"]

    static let refused: [(String, String)] = [
        ("seeds/a:b.yaml", "':' is not allowed"),
        ("seeds/52:54:00:12:34:56.yaml", "':' is not allowed"),
        ("a:seed.yaml", "':' is not allowed"),
        ("seed.yaml:", "':' is not allowed"),
        ("seeds\\x.yaml", "'\\' is not allowed"),
        ("seeds/x\\y.yaml", "'\\' is not allowed"),
        ("seeds/a\u{01}.yaml", "control characters"),
        ("seeds/a\n.yaml", "control characters"),
        ("seeds/a\t.yaml", "control characters"),
        ("seeds/a\u{7F}.yaml", "control characters"),
        ("../seed.yaml", "'..' is not allowed"),
        ("seeds/../seed.yaml", "'..' is not allowed"),
        ("seeds/a..b.yaml", "'..' is not allowed"),
        ("/seed.yaml", "without a leading '/'"),
        ("/seeds/x.yaml", "without a leading '/'"),
        ("seeds/a\"b.yaml", "'\"' is not allowed"),
        ("seeds/a*.yaml", "'*' is not allowed"),
        ("seeds/a<b.yaml", "'<' is not allowed"),
        ("seeds/a>b.yaml", "'>' is not allowed"),
        ("seeds/a?.yaml", "'?' is not allowed"),
        ("seeds/a|b.yaml", "'|' is not allowed"),
        ("other/x.yaml", "must be seed.yaml or seeds/NAME.yaml"),
        ("seeds/x.yml", "must be seed.yaml or seeds/NAME.yaml"),
        ("seeds//x.yaml", "must be seed.yaml or seeds/NAME.yaml"),
        ("seeds/.yaml", "must be seed.yaml or seeds/NAME.yaml"),
        ("", "must be seed.yaml or seeds/NAME.yaml"),
    ]

    @Test("every name mtools or FAT would mangle is refused (exit 2) with the dash form for MACs in the message",
          arguments: refused)
    func refusedName(name: String, reason: String) {
        let error = #expect(throws: ImageError.self) { try SeedInjector.validateTargetPath(name) }
        #expect(error?.kind == .invalidInput)
        #expect(error?.message.contains(reason) == true, "\(name): \(error?.message ?? "")")
        #expect(error?.subject.hasPrefix("--as '") == true)
        if reason != "without a leading '/'" {
            #expect(error?.message.contains("seeds/52-54-00-12-34-56.yaml") == true, "\(error?.message ?? "")")
        }
    }

    @Test("accepted names are stored as given", arguments: ["seed.yaml", "seeds/52-54-00-12-34-56.yaml", "seeds/SERIAL123.yaml",
                                                              "seeds/rack 1 node-2.yaml", "seeds/node_3.yaml"])
    func acceptedName(name: String) throws {
        #expect(try SeedInjector.validateTargetPath(name) == name)
    }

    func read(_ image: String, _ offset: UInt64, _ path: String) throws -> Data? {
        let result = try Command("mtype", ["-i", "\(image)@@\(offset)", "::/" + path], environment: Self.mtools)
            .run(acceptedStatuses: Set(0...255))
        return result.status == 0 ? result.standardOutput : nil
    }

    @Test("on a real image: a colon name is refused and nothing is written; the dash form is written and read back with mdir/mtype",
          .requires(root: false, programs: ImageFixtures.programs + ["mdel"]))
    func endToEnd() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "n")
            let image = result.artifacts.image
            let offset = try #require(result.assembly.partition(.seed)).offsetBytes
            let seed = directory + "/node.yaml"
            try ImageFixtures.write(Data(try SeedResources.example().utf8), seed)
            let drive = "\(image)@@\(offset)"
            func listing() throws -> String {
                try Command("mdir", ["-i", drive, "-b", "-/", "::/"], environment: Self.mtools).run().output
            }
            let before = try listing()

            for name in ["seeds/a:b.yaml", "seeds/52:54:00:12:34:56.yaml", "seeds/a\\b.yaml", "seeds/a?.yaml", "/seed.yaml"] {
                let run = try Products.run("aquarium-image", ["seed", "inject", image, seed, "--as", name])
                #expect(run.status == 2, "\(name): \(run.status) \(run.errorOutput)")
                #expect(run.errorOutput.contains("--as '\(name)'"), "\(run.errorOutput)")
            }
            let colon = try Products.run("aquarium-image", ["seed", "inject", image, seed, "--as", "seeds/52:54:00:12:34:56.yaml"])
            #expect(colon.errorOutput.contains("use the dash form, seeds/52-54-00-12-34-56.yaml"), "\(colon.errorOutput)")
            // What mtools would have made of them is not there; the volume is unchanged.
            #expect(try read(image, offset, "seeds/b.yaml") == nil)
            #expect(try read(image, offset, "seeds/56.yaml") == nil)
            #expect(try listing() == before)

            let dash = try Products.run("aquarium-image", ["seed", "inject", image, seed, "--as", "seeds/52-54-00-12-34-56.yaml"])
            #expect(dash.status == 0, "\(dash.errorOutput)")
            let files = try listing()
            #expect(files.contains("::/seeds/52-54-00-12-34-56.yaml"), "\(files)")
            #expect(try read(image, offset, "seeds/52-54-00-12-34-56.yaml") == FileManager.default.contents(atPath: seed))
        }
    }

    @Test("reading a file back from a FAT volume stops past 256 KiB (the seed size limit): an oversized file is refused",
          .requires(root: false, programs: ["mkfs.vfat", "mlabel", "mcopy", "mtype"]))
    func boundedRead() throws {
        try withTemporaryDirectory { directory in
            let image = directory + "/fat.img"
            try ImageFixtures.write(Data(), image)
            try #require(truncate(image, 8 << 20) == 0)
            let volume = FATVolume(image: image, offsetBytes: 0, sizeBytes: 8 << 20)
            try volume.format(label: "AQUASEED", volumeID: "12345678", logger: .init(label: "test"))
            let limit = SeedLoader.maximumFileSize
            #expect(limit == 256 * 1024)
            let exact = directory + "/exact.yaml"
            let over = directory + "/over.yaml"
            let huge = directory + "/report.json"
            try ImageFixtures.write(ImageFixtures.bytes(limit, seed: 31), exact)
            try ImageFixtures.write(ImageFixtures.bytes(limit + 1, seed: 32), over)
            try ImageFixtures.write(ImageFixtures.bytes(6 << 20, seed: 33), huge)
            try volume.put([exact, over, huge], into: "", logger: .init(label: "test"))

            #expect(try volume.read("exact.yaml", logger: .init(label: "test")) == FileManager.default.contents(atPath: exact))
            for name in ["over.yaml", "report.json"] {
                let error = #expect(throws: ImageError.self) { try volume.read(name, logger: .init(label: "test")) }
                #expect(error?.kind == .invalidInput)
                #expect(error?.subject == image)
                #expect(error?.message.contains("\(name) in the FAT filesystem at byte 0 is larger than 256 KiB") == true,
                        "\(error?.message ?? "")")
            }
            // A smaller limit applies the same way; a missing file is a tool failure naming the file.
            #expect(throws: ImageError.self) { try volume.read("exact.yaml", maximumBytes: 1000, logger: .init(label: "test")) }
            let missing = #expect(throws: ImageError.self) { try volume.read("nope.yaml", logger: .init(label: "test")) }
            #expect(missing?.kind == .failure)
            #expect(missing?.message.contains("reading nope.yaml") == true, "\(missing?.message ?? "")")
        }
    }
}
