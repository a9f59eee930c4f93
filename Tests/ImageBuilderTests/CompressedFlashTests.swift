import Exec
import Foundation
import ImageBuilder
import Testing
import TestSupport

/// `flash`/`verify`/`bmap` with images compressed by the real zstd, xz and gzip tools, on loop devices.
@Suite("compressed images: flash decompresses with the raw bmap, verify compares with the raw data, refusals", .serialized)
struct CompressedFlashTests {
    static let programs = ["losetup", "sfdisk", "blkid", "sha256sum", "zstd", "xz", "gzip", "bzip2", "bmaptool"]

    /// A small raw disk image: an MBR partition table (so flashing moves no GPT and the device's first bytes must
    /// equal the image), data in a few places with holes between, and a short last block (size not a multiple of
    /// 4096). Returns the image path; NAME.raw.bmap is written beside it with `aquarium-image bmap`.
    static func rawImage(in directory: String) throws -> (image: String, size: UInt64) {
        let image = directory + "/small.raw"
        let size: UInt64 = (16 << 20) + 3 * 512
        try ImageFixtures.write(Data(), image)
        try #require(truncate(image, off_t(size)) == 0)
        try Command("sfdisk", ["--quiet", image]).run(input: Data("label: dos\n,8MiB,L\n,,L\n".utf8))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: image))
        for (offset, count, seed) in [(UInt64(1 << 20), 1_048_576 + 123, UInt64(11)), (10 << 20, 200_000, 12),
                                      (size - 1000, 1000, 13)] {
            try handle.seek(toOffset: offset)
            try handle.write(contentsOf: ImageFixtures.bytes(count, seed: seed))
        }
        try handle.close()
        let bmap = try Products.run("aquarium-image", ["bmap", image])
        try #require(bmap.status == 0, "bmap: \(bmap.errorOutput)")
        return (image, size)
    }

    /// Compresses `image` with the real tool, keeping the raw file: NAME.raw.zst / .xz / .gz.
    static func compress(_ image: String, _ tool: String) throws -> String {
        switch tool {
        case "zstd": try Command("zstd", ["-q", "-k", "-f", image]).run(); return image + ".zst"
        case "xz": try Command("xz", ["-k", "-f", "-T1", image]).run(); return image + ".xz"
        case "gzip": try Command("gzip", ["-k", "-f", "-n", image]).run(); return image + ".gz"
        case "bzip2": try Command("bzip2", ["-k", "-f", image]).run(); return image + ".bz2"
        default: throw MissingCapability(what: "a compressor named \(tool)")
        }
    }

    /// sha256sum of a file, or of the first `count` bytes of a device (copied out first: sha256sum has no length).
    static func sha256(_ path: String, count: UInt64? = nil, scratch: String) throws -> String {
        var file = path
        if let count {
            file = scratch + "/head-\(UUID().uuidString)"
            try ImageFixtures.extract(path, offset: 0, count: count, to: file)
        }
        defer { if count != nil { try? FileManager.default.removeItem(atPath: file) } }
        let output = try Command("sha256sum", [file]).run().output
        return String(output.prefix(64))
    }

    func run(_ arguments: [String]) throws -> CommandResult { try Products.run("aquarium-image", arguments) }

    @Test("an image compressed with the real tool flashes to the raw image's bytes and verifies",
          .requires(programs: CompressedFlashTests.programs), arguments: ["zstd", "xz", "gzip"])
    func flashCompressed(tool: String) throws {
        try withTemporaryDirectory { directory in
            let (raw, size) = try Self.rawImage(in: directory)
            let compressed = try Self.compress(raw, tool)
            try LoopDevice.with(.init(sizeBytes: 32 << 20)) { loop in
                let flashed = try run(["flash", "--quiet", "--yes-non-removable", compressed, loop.path])
                try #require(flashed.status == 0, "flash \(compressed): \(flashed.errorOutput)")
                #expect(try Self.sha256(loop.path, count: size, scratch: directory) == Self.sha256(raw, scratch: directory),
                        "the device's first \(size) bytes differ from the raw image")
                let verified = try run(["verify", "--quiet", compressed, loop.path])
                #expect(verified.status == 0, "verify \(compressed): \(verified.errorOutput)")
                #expect(verified.output.contains("match \(compressed)"), "\(verified.output)")
                // bmaptool agrees that the device holds the raw image: its own copy onto a file equals ours.
                let theirs = directory + "/theirs.img"
                try Command("bmaptool", ["copy", "--bmap", raw + ".bmap", compressed, theirs]).run()
                #expect(try Self.sha256(theirs, scratch: directory) == Self.sha256(loop.path, count: size, scratch: directory))

                // A changed byte on the device inside a mapped range: verify of the compressed image names the range.
                let device = try FileHandle(forUpdating: URL(fileURLWithPath: loop.path))
                try device.seek(toOffset: (10 << 20) + 77)
                try device.write(contentsOf: Data([0xA5]))
                try device.synchronize()
                try device.close()
                let bad = try run(["verify", "--quiet", compressed, loop.path])
                #expect(bad.status == 1, "\(bad.errorOutput)")
                #expect(bad.errorOutput.contains("range 2560-"), "\(bad.errorOutput)")
            }
        }
    }

    @Test("our own NAME.raw.zst (GPT image, assemble --compress) flashes with NAME.raw.bmap, moves the backup GPT, verifies",
          .requires(programs: CompressedFlashTests.programs + ImageFixtures.programs))
    func assembledZst() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "z", compress: true)
            let zst = try #require(result.artifacts.compressed)
            #expect(zst == result.artifacts.image + ".zst")
            try LoopDevice.with(.init(sizeBytes: 128 << 20)) { loop in
                let flashed = try run(["flash", "--quiet", "--yes-non-removable", zst, loop.path])
                try #require(flashed.status == 0, "flash: \(flashed.errorOutput)")
                let check = try Command("sfdisk", ["--verify", loop.path]).run(acceptedStatuses: Set(0...255))
                #expect(check.status == 0, "\(check.output) \(check.errorOutput)")
                let table = try ImageFixtures.sfdisk(loop.path)
                #expect(table["lastlba"] as? Int == (128 << 20) / 512 - 34)
                #expect(try run(["verify", "--quiet", zst, loop.path]).status == 0)
                // The raw image verifies the same device: both describe the same bytes.
                #expect(try run(["verify", "--quiet", result.artifacts.image, loop.path]).status == 0)
            }
        }
    }

    @Test("a cut-off or damaged .zst fails with a clear message and exit 2; the device is called partial",
          .requires(programs: CompressedFlashTests.programs))
    func damagedStreams() throws {
        try withTemporaryDirectory { directory in
            let (raw, _) = try Self.rawImage(in: directory)
            let zst = try Self.compress(raw, "zstd")
            let bytes = try #require(FileManager.default.contents(atPath: zst))
            let cut = directory + "/cut.raw.zst"
            try ImageFixtures.write(bytes.prefix(bytes.count / 2), cut)
            var flipped = [UInt8](bytes)
            flipped[bytes.count / 2] ^= 0xFF
            let damaged = directory + "/damaged.raw.zst"
            try ImageFixtures.write(Data(flipped), damaged)
            try LoopDevice.with(.init(sizeBytes: 32 << 20)) { loop in
                for file in [cut, damaged] {
                    let flashed = try run(["flash", "--quiet", "--yes-non-removable", "--bmap", raw + ".bmap", file, loop.path])
                    #expect(flashed.status == 2, "flash \(file): \(flashed.status) \(flashed.errorOutput)")
                    #expect(flashed.errorOutput.contains(file), "\(flashed.errorOutput)")
                    #expect(flashed.errorOutput.contains("cut off") || flashed.errorOutput.contains("damaged"), "\(flashed.errorOutput)")
                    #expect(flashed.errorOutput.contains("partial image"), "\(flashed.errorOutput)")
                    let verified = try run(["verify", "--quiet", "--bmap", raw + ".bmap", file, loop.path])
                    #expect(verified.status == 2, "verify \(file): \(verified.status) \(verified.errorOutput)")
                    #expect(verified.errorOutput.contains(file), "\(verified.errorOutput)")
                }
            }
        }
    }

    @Test("refused with exit 2 before the device is touched: unknown magic, bzip2, compressed without a bmap, bmap of a compressed file",
          .requires(programs: CompressedFlashTests.programs))
    func refusals() throws {
        try withTemporaryDirectory { directory in
            let (raw, _) = try Self.rawImage(in: directory)
            // Random bytes named like an image: neither a disk image nor a known compression.
            var junk = [UInt8](ImageFixtures.bytes(1 << 20, seed: 21))
            junk[510] = 0
            junk[0] = 0
            let unknown = directory + "/unknown.raw.zst"
            try ImageFixtures.write(Data(junk), unknown)
            try FileManager.default.copyItem(atPath: raw + ".bmap", toPath: directory + "/unknown.raw.bmap")
            let bzip2 = try Self.compress(raw, "bzip2")
            let lonely = directory + "/lonely/small.raw.zst"
            try FileManager.default.createDirectory(atPath: directory + "/lonely", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: try Self.compress(raw, "zstd"), toPath: lonely)

            try LoopDevice.with(.init(sizeBytes: 32 << 20)) { loop in
                let cases: [(String, String)] = [
                    (unknown, "is neither a disk image"),
                    (bzip2, "is bzip2-compressed"),
                    (lonely, "is zstd-compressed and has no bmap of its raw image"),
                ]
                for (file, message) in cases {
                    let flashed = try run(["flash", "--quiet", "--yes-non-removable", file, loop.path])
                    #expect(flashed.status == 2, "flash \(file): \(flashed.status) \(flashed.errorOutput)")
                    #expect(flashed.errorOutput.contains("\(file): \(message)"), "\(flashed.errorOutput)")
                    let verified = try run(["verify", "--quiet", file, loop.path])
                    #expect(verified.status == 2, "verify \(file): \(verified.status) \(verified.errorOutput)")
                    #expect(verified.errorOutput.contains("\(file): \(message)"), "\(verified.errorOutput)")
                }
                // Nothing was written: the device is still blank.
                #expect(try Command("blkid", ["-p", loop.path]).run(acceptedStatuses: [0, 2]).status == 2)
            }
            let zst = raw + ".zst"
            for file in [zst, bzip2] {
                let bmap = try run(["bmap", "-o", directory + "/x.bmap", file])
                #expect(bmap.status == 2, "bmap \(file): \(bmap.errorOutput)")
                #expect(bmap.errorOutput.contains("\(file): is compressed"), "\(bmap.errorOutput)")
                #expect(!FileManager.default.fileExists(atPath: directory + "/x.bmap"))
            }
        }
    }

    @Test("magic bytes decide, not names", arguments: [
        ([0x28, 0xB5, 0x2F, 0xFD, 0x00], "zstd"),
        ([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 0x00], "xz"),
        ([0x1F, 0x8B, 0x08], "gzip"),
        (Array("BZh91AY".utf8), "unsupported"),
        ([0x04, 0x22, 0x4D, 0x18, 0x00], "unsupported"),
        ([0x00, 0x01, 0x02], "unknown"),
    ] as [([UInt8], String)])
    func classify(head: [UInt8], expected: String) {
        let kind = ImageInput.classify(head)
        switch kind {
        case .compressed(let compression): #expect(compression.rawValue == expected)
        case .unsupportedCompression: #expect(expected == "unsupported")
        case .unknown: #expect(expected == "unknown")
        case .diskImage: #expect(expected == "disk")
        }
        var mbr = [UInt8](repeating: 0, count: 512)
        mbr[510] = 0x55
        mbr[511] = 0xAA
        #expect(ImageInput.classify(mbr) == .diskImage)
    }
}
