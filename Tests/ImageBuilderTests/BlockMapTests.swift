import Exec
import Foundation
import ImageBuilder
import Testing
import TestSupport

@Suite("bmap: our XML, bmaptool interoperability both ways")
struct BlockMapTests {
    /// A sparse file with data at known places.
    func sparseFile(_ path: String) throws {
        try ImageFixtures.write(Data(), path)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.truncate(atOffset: 10 << 20)
        for (offset, seed) in [(UInt64(0), UInt64(1)), (UInt64(3 << 20) + 100, 2), (UInt64(7 << 20), 3)] {
            try handle.seek(toOffset: offset)
            try handle.write(contentsOf: ImageFixtures.bytes(50_000, seed: seed))
        }
        try handle.synchronize()
    }

    @Test("ranges come from SEEK_DATA/SEEK_HOLE, checksums match the bytes, the XML parses back")
    func create() throws {
        try withTemporaryDirectory { directory in
            let image = directory + "/sparse.img"
            try sparseFile(image)
            let map = try BlockMap.create(imagePath: image)
            #expect(map.imageSize == 10 << 20)
            #expect(map.blockSize == 4096)
            #expect(map.blocksCount == 2560)
            #expect(map.ranges.count == 3)
            #expect(map.ranges.first?.first == 0)
            // Each range's digest is the SHA-256 of those bytes, as sha256sum computes it.
            for range in map.ranges {
                let (start, count) = map.byteRange(of: range)
                let copy = directory + "/range"
                try ImageFixtures.extract(image, offset: start, count: count, to: copy)
                let sum = try ImageFixtures.tool("sha256sum", [copy]).split(separator: " ").first.map(String.init)
                #expect(range.checksum == sum)
            }
            let parsed = try BlockMap.parse(map.xml(), subject: "test")
            #expect(parsed == map)
            // The file's own checksum catches an edit.
            let edited = map.xml().replacingOccurrences(of: "<BlocksCount> 2560 </BlocksCount>", with: "<BlocksCount> 2561 </BlocksCount>")
            #expect(throws: ImageError.self) { try BlockMap.parse(edited, subject: "edited") }
        }
    }

    @Test("bmaptool copy consumes our bmap; we consume bmaptool create's bmap",
          .requires(root: false, programs: ImageFixtures.programs + ["bmaptool"]))
    func interoperability() throws {
        try withTemporaryDirectory { directory in
            let result = try ImageFixtures.assemble(in: directory, tag: "a")
            let image = result.artifacts.image
            // Ours -> bmaptool: it checks the bmap file's checksum and every range's checksum while copying.
            let copy = directory + "/copy.raw"
            let copied = try Command("bmaptool", ["copy", "--bmap", result.artifacts.bmap, image, copy]).run(acceptedStatuses: Set(0...255))
            #expect(copied.status == 0, "bmaptool copy: \(copied.errorOutput)")
            #expect(try FileDigest.sha256(path: copy) == FileDigest.sha256(path: image))
            // A damaged image is caught by bmaptool through our checksums.
            let damaged = directory + "/damaged.raw"
            try FileManager.default.copyItem(atPath: image, toPath: damaged)
            let root = try #require(result.assembly.partition(.root))
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: damaged))
            try handle.seek(toOffset: root.offsetBytes + 1024 + 0x78)  // the ext4 volume name
            try handle.write(contentsOf: Data("X".utf8))
            try handle.close()
            let refused = try Command("bmaptool", ["copy", "--bmap", result.artifacts.bmap, damaged, directory + "/copy2.raw"])
                .run(acceptedStatuses: Set(0...255))
            // Refused for the reason planted, not for any failure (a missing file or a crash would also be non-zero).
            #expect(refused.status == 1, "bmaptool: \(refused.status) \(refused.errorOutput)")
            #expect(refused.errorOutput.contains("checksum mismatch"), "bmaptool: \(refused.errorOutput)")

            // bmaptool -> ours.
            let theirs = directory + "/theirs.bmap"
            try Command("bmaptool", ["create", "-o", theirs, image]).run()
            let text = try String(contentsOfFile: theirs, encoding: .utf8)
            let map = try BlockMap.parse(text, subject: theirs)
            #expect(map.imageSize == result.assembly.sizeBytes)
            #expect(map.checksumType == .sha256)
            #expect(!map.ranges.isEmpty)
            let ours = try BlockMap.create(imagePath: image)
            // Everything we map, bmaptool maps too (it may also map unwritten extents).
            for range in ours.ranges {
                #expect(map.ranges.contains { $0.first <= range.first && $0.last >= range.last })
            }
            // Verifying the image against their bmap (image as "device") passes.
            let verified = try Products.run("aquarium-image", ["verify", "--quiet", "--bmap", theirs, image, image])
            #expect(verified.status == 0, "\(verified.errorOutput)")
        }
    }
}
