import Crypto
import FileLayer
import Foundation

/// A block map in bmaptool's XML format (version 2.0; 1.x files with SHA-1 are read too): which blocks of
/// an image hold data, with a checksum per range, so flashing writes and verifies only those.
public struct BlockMap: Sendable, Equatable {
    public struct Range: Sendable, Equatable {
        /// First and last block, inclusive.
        public var first: UInt64
        public var last: UInt64
        /// Hex digest of the range's bytes (the last block may be short at the end of the image).
        public var checksum: String?

        public init(first: UInt64, last: UInt64, checksum: String? = nil) {
            self.first = first
            self.last = last
            self.checksum = checksum
        }

        public var blockCount: UInt64 { last - first + 1 }
    }

    public enum ChecksumType: String, Sendable, Equatable {
        case sha1, sha256, sha512

        public var hexLength: Int {
            switch self {
            case .sha1: 40
            case .sha256: 64
            case .sha512: 128
            }
        }
    }

    public var version: String
    public var imageSize: UInt64
    public var blockSize: UInt64
    public var blocksCount: UInt64
    public var checksumType: ChecksumType
    public var ranges: [Range]
    /// The SHA-256 of the whole image, when the map was made from it (not part of the bmap format).
    public var imageDigest: String?

    public init(version: String = "2.0", imageSize: UInt64, blockSize: UInt64, checksumType: ChecksumType = .sha256, ranges: [Range]) {
        self.version = version
        self.imageSize = imageSize
        self.blockSize = blockSize
        self.blocksCount = (imageSize + blockSize - 1) / blockSize
        self.checksumType = checksumType
        self.ranges = ranges
    }

    public static func == (a: BlockMap, b: BlockMap) -> Bool {
        a.version == b.version && a.imageSize == b.imageSize && a.blockSize == b.blockSize && a.blocksCount == b.blocksCount
            && a.checksumType == b.checksumType && a.ranges == b.ranges
    }

    public var mappedBlocksCount: UInt64 { ranges.reduce(0) { $0 + $1.blockCount } }
    /// Bytes the mapped ranges cover (the last block may be cut by the image's end).
    public var mappedBytes: UInt64 { ranges.reduce(0) { $0 + byteRange(of: $1).count } }

    /// The byte range of `range` within the image.
    public func byteRange(of range: Range) -> (start: UInt64, count: UInt64) {
        let start = range.first * blockSize
        let end = min((range.last + 1) * blockSize, imageSize)
        return (start, end > start ? end - start : 0)
    }

    // MARK: - creating

    /// Maps the allocated extents of the image file at `path` (SEEK_DATA/SEEK_HOLE), rounded out to whole
    /// blocks, and checksums each range.
    public static func create(imagePath path: String, blockSize: UInt64 = 4096,
                              progress: ((UInt64) -> Void)? = nil) throws(ImageError) -> BlockMap {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid(path, "cannot open the image: \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .failure(path, "cannot stat: \(errnoText())") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .invalid(path, "is not a regular file; a block map describes an image file") }
        let size = UInt64(info.st_size)
        var ranges: [Range] = []
        var position: off_t = 0
        while UInt64(position) < size {
            let data = lseek(fd, position, seekData)
            if data < 0 {
                if errno == ENXIO { break }
                throw .failure(path, "SEEK_DATA failed at byte \(position): \(errnoText())")
            }
            var hole = lseek(fd, data, seekHole)
            if hole < 0 { hole = off_t(size) }
            let first = UInt64(data) / blockSize
            let last = (UInt64(hole) - 1) / blockSize
            if let previous = ranges.last, first <= previous.last + 1 {
                ranges[ranges.count - 1].last = max(previous.last, last)
            } else {
                ranges.append(Range(first: first, last: last))
            }
            position = hole
        }
        var map = BlockMap(imageSize: size, blockSize: blockSize, ranges: ranges)
        var done: UInt64 = 0
        // One pass: each range's digest, and the whole file's (holes fed as zeros, never read).
        var whole = SHA256()
        var hashed: UInt64 = 0
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        func feedZeros(_ count: UInt64) {
            var left = count
            while left > 0 {
                let n = Int(min(left, UInt64(zeros.count)))
                zeros.withUnsafeBytes { whole.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                left -= UInt64(n)
            }
        }
        for index in map.ranges.indices {
            let (start, count) = map.byteRange(of: map.ranges[index])
            feedZeros(start - hashed)
            map.ranges[index].checksum = try digest(fd: fd, path: path, offset: start, count: count, type: .sha256,
                                                    alsoUpdate: &whole)
            hashed = start + count
            done += count
            progress?(done)
        }
        feedZeros(size - hashed)
        map.imageDigest = whole.finalize().map { String(format: "%02x", $0) }.joined()
        return map
    }

    /// Checks a raw image file against this map: its size, and every mapped range's checksum. Throws (refused) at the
    /// first range that differs, naming it: a damaged or truncated copy, or another image than the map's.
    public func verify(image path: String, subject: String) throws(ImageError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid(path, "cannot open: \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .failure(path, "cannot stat: \(errnoText())") }
        guard UInt64(info.st_size) == imageSize else {
            throw .refused(path, "has \(info.st_size) bytes, but its bmap \(subject) describes an image of \(imageSize) bytes: "
                           + "the copy is incomplete or is another image; copy or download it again")
        }
        for range in ranges {
            guard let expected = range.checksum else { continue }
            let (start, count) = byteRange(of: range)
            let actual = try Self.digest(fd: fd, path: path, offset: start, count: count, type: checksumType)
            guard actual == expected.lowercased() else {
                throw .refused(path, "blocks \(range.first)-\(range.last) do not match their \(checksumType.rawValue) in the bmap "
                               + "\(subject): the image is damaged or is not the one the bmap describes; copy or download it again")
            }
        }
    }

    /// The hex digest of `count` bytes at `offset` of the open file.
    package static func digest(fd: Int32, path: String, offset: UInt64, count: UInt64, type: ChecksumType) throws(ImageError) -> String {
        var unused: SHA256?
        return try digest(fd: fd, path: path, offset: offset, count: count, type: type, alsoUpdate: &unused)
    }

    package static func digest(fd: Int32, path: String, offset: UInt64, count: UInt64, type: ChecksumType,
                       alsoUpdate other: inout SHA256) throws(ImageError) -> String {
        var optional: SHA256? = other
        defer { if let optional { other = optional } }
        return try digest(fd: fd, path: path, offset: offset, count: count, type: type, alsoUpdate: &optional)
    }

    package static func digest(fd: Int32, path: String, offset: UInt64, count: UInt64, type: ChecksumType,
                       alsoUpdate other: inout SHA256?) throws(ImageError) -> String {
        var hasher = AnyHasher(type)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var done: UInt64 = 0
        while done < count {
            let want = Int(min(UInt64(buffer.count), count - done))
            let n: Int
            do {
                n = try FileIO.read(fd, into: &buffer, count: want, at: offset + done, path: path)
            } catch {
                throw .failure(path, "read failed at byte \(error.offset ?? offset + done): \(error.errno)")
            }
            guard n > 0 else { throw .failure(path, "ends before byte \(offset + done)") }
            buffer.withUnsafeBytes {
                hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n]))
                other?.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n]))
            }
            done += UInt64(n)
        }
        return hasher.hex()
    }

    // MARK: - XML

    /// The bmap file, formatted as bmaptool writes it, including the file's own checksum.
    public func xml() -> String {
        let percent = blocksCount == 0 ? 0 : Double(mappedBlocksCount) * 100 / Double(blocksCount)
        var text = """
            <?xml version="1.0" ?>
            <!-- This file contains the block map for an image file, which is basically
                 a list of useful (mapped) block numbers in the image file. In other words,
                 it lists only those blocks which contain data (boot sector, partition
                 table, file-system metadata, files, directories, extents, etc). These
                 blocks have to be copied to the target device. The other blocks do not
                 contain any useful data and do not have to be copied to the target
                 device. Written by aquarium-image; bmaptool reads it. -->

            <bmap version="\(version)">
                <!-- Image size in bytes: \(Self.humanSize(imageSize)) -->
                <ImageSize> \(imageSize) </ImageSize>

                <!-- Size of a block in bytes -->
                <BlockSize> \(blockSize) </BlockSize>

                <!-- Count of blocks in the image file -->
                <BlocksCount> \(blocksCount) </BlocksCount>

                <!-- Count of mapped blocks: \(Self.humanSize(mappedBlocksCount * blockSize)) or \(String(format: "%.1f", percent))%    -->
                <MappedBlocksCount> \(mappedBlocksCount) </MappedBlocksCount>

                <!-- Type of checksum used in this file -->
                <ChecksumType> \(checksumType.rawValue) </ChecksumType>

                <!-- The checksum of this bmap file. When it is calculated, the value of
                     the checksum has be zero (all ASCII "0" symbols).  -->
                <BmapFileChecksum> @CHECKSUM@ </BmapFileChecksum>

                <!-- The block map which consists of elements which may either be a
                     range of blocks or a single block. The 'chksum' attribute
                     (if present) is the checksum of this blocks range. -->
                <BlockMap>

            """
        for range in ranges {
            let attribute = range.checksum.map { " chksum=\"\($0)\"" } ?? ""
            let span = range.first == range.last ? "\(range.first)" : "\(range.first)-\(range.last)"
            text += "        <Range\(attribute)> \(span) </Range>\n"
        }
        text += "    </BlockMap>\n</bmap>\n"
        let zero = String(repeating: "0", count: checksumType.hexLength)
        let withZero = text.replacingOccurrences(of: "@CHECKSUM@", with: zero)
        var hasher = AnyHasher(checksumType)
        Array(withZero.utf8).withUnsafeBytes { hasher.update($0) }
        return text.replacingOccurrences(of: "@CHECKSUM@", with: hasher.hex())
    }

    /// Parses a bmap file (ours or bmaptool's). Checks the file's own checksum when it has one.
    public static func parse(_ text: String, subject: String) throws(ImageError) -> BlockMap {
        // Elements are looked up outside comments (bmaptool's comments mention element names).
        let body = stripComments(text)
        func tag(_ name: String) -> String? {
            guard let open = body.range(of: "<\(name)>"), let close = body.range(of: "</\(name)>", range: open.upperBound..<body.endIndex) else {
                return nil
            }
            return body[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func number(_ name: String) throws(ImageError) -> UInt64 {
            guard let value = tag(name).flatMap({ UInt64($0) }) else { throw .invalid(subject, "the bmap has no valid <\(name)>") }
            return value
        }
        guard let bmapOpen = body.range(of: "<bmap"), let versionStart = body.range(of: "version=\"", range: bmapOpen.upperBound..<body.endIndex),
              let versionEnd = body.range(of: "\"", range: versionStart.upperBound..<body.endIndex) else {
            throw .invalid(subject, "is not a bmap file (no <bmap version=\"...\">)")
        }
        let version = String(body[versionStart.upperBound..<versionEnd.lowerBound])
        guard let major = version.split(separator: ".").first.flatMap({ Int($0) }), major == 1 || major == 2 else {
            throw .invalid(subject, "bmap version \(version) is not supported (1.x and 2.x are)")
        }
        let imageSize = try number("ImageSize")
        let blockSize = try number("BlockSize")
        guard blockSize > 0 else { throw .invalid(subject, "the bmap's block size is 0") }
        let blocksCount = try number("BlocksCount")
        let type: ChecksumType
        if major == 1 {
            type = .sha1
        } else {
            guard let name = tag("ChecksumType"), let parsed = ChecksumType(rawValue: name.lowercased()) else {
                throw .invalid(subject, "the bmap's <ChecksumType> is missing or not one of sha1, sha256, sha512")
            }
            type = parsed
        }
        // The file's own checksum: computed with the value replaced by zeros.
        let fileChecksumTag = major == 1 ? "BmapFileSHA1" : "BmapFileChecksum"
        if let stated = tag(fileChecksumTag), let open = text.range(of: "<\(fileChecksumTag)> "),
           let valueRange = text.range(of: stated, range: open.upperBound..<text.endIndex) {
            var zeroed = text
            zeroed.replaceSubrange(valueRange, with: String(repeating: "0", count: stated.count))
            var hasher = AnyHasher(type)
            Array(zeroed.utf8).withUnsafeBytes { hasher.update($0) }
            guard hasher.hex() == stated.lowercased() else {
                throw .invalid(subject, "the bmap file's own checksum does not match: it is damaged or was edited")
            }
        }
        var ranges: [Range] = []
        var cursor = body.startIndex
        let attribute = major == 1 ? "sha1=\"" : "chksum=\""
        while let open = body.range(of: "<Range", range: cursor..<body.endIndex) {
            guard let close = body.range(of: ">", range: open.upperBound..<body.endIndex),
                  let end = body.range(of: "</Range>", range: close.upperBound..<body.endIndex) else {
                throw .invalid(subject, "a <Range> element is not closed")
            }
            let attributes = body[open.upperBound..<close.lowerBound]
            var checksum: String?
            if let start = attributes.range(of: attribute), let quote = attributes[start.upperBound...].firstIndex(of: "\"") {
                checksum = String(attributes[start.upperBound..<quote]).lowercased()
            }
            let span = body[close.upperBound..<end.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
            let bounds = span.split(separator: "-").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
            guard (bounds.count == 1 || bounds.count == 2), let first = bounds[0], let last = bounds.last ?? nil, first <= last,
                  last < blocksCount else {
                throw .invalid(subject, "the range '\(span)' is not valid for \(blocksCount) blocks")
            }
            if let checksum, checksum.count != type.hexLength {
                throw .invalid(subject, "the checksum of range \(span) is not a \(type.rawValue) digest")
            }
            ranges.append(Range(first: first, last: last, checksum: checksum))
            cursor = end.upperBound
        }
        var map = BlockMap(version: version, imageSize: imageSize, blockSize: blockSize, checksumType: type, ranges: ranges)
        map.blocksCount = blocksCount
        return map
    }

    package static func stripComments(_ text: String) -> String {
        var result = ""
        var rest = text[...]
        while let open = rest.range(of: "<!--") {
            result += rest[..<open.lowerBound]
            guard let close = rest.range(of: "-->", range: open.upperBound..<rest.endIndex) else { return result }
            rest = rest[close.upperBound...]
        }
        return result + rest
    }

    package static func humanSize(_ size: UInt64) -> String {
        if size == 1 { return "1 byte" }
        if size < 512 { return "\(size) bytes" }
        var value = Double(size)
        for unit in ["KiB", "MiB", "GiB", "TiB"] {
            value /= 1024
            if value < 1024 { return String(format: "%.1f %@", value, unit) }
        }
        return String(format: "%.1f EiB", value)
    }
}

/// Linux's lseek whence values for sparse files (not exported by Glibc's Swift overlay).
package let seekData: Int32 = 3
package let seekHole: Int32 = 4

/// One of the digests a bmap may use.
package struct AnyHasher {
    private var sha1: Insecure.SHA1?
    private var sha256: SHA256?
    private var sha512: SHA512?

    package init(_ type: BlockMap.ChecksumType) {
        switch type {
        case .sha1: sha1 = Insecure.SHA1()
        case .sha256: sha256 = SHA256()
        case .sha512: sha512 = SHA512()
        }
    }

    package mutating func update(_ bytes: UnsafeRawBufferPointer) {
        sha1?.update(bufferPointer: bytes)
        sha256?.update(bufferPointer: bytes)
        sha512?.update(bufferPointer: bytes)
    }

    package func hex() -> String {
        if let sha1 { return sha1.finalize().map { String(format: "%02x", $0) }.joined() }
        if let sha512 { return sha512.finalize().map { String(format: "%02x", $0) }.joined() }
        return (sha256 ?? SHA256()).finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// SHA-256 of whole files, and the SHA256SUMS file (`sha256sum -c` reads it).
public enum FileDigest {
    public static func sha256(path: String) throws(ImageError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid(path, "cannot open: \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .failure(path, "cannot stat: \(errnoText())") }
        // Holes read as zeros; hashing them is what sha256sum does.
        return try BlockMap.digest(fd: fd, path: path, offset: 0, count: UInt64(info.st_size), type: .sha256)
    }

    /// Writes `SHA256SUMS` in `directory` for the named files (in that order), in sha256sum's format.
    public static func writeSums(directory: String, files: [String], known: [String: String] = [:]) throws(ImageError) -> String {
        var text = ""
        for name in files {
            let digest: String
            if let value = known[name] { digest = value } else { digest = try sha256(path: directory + "/" + name) }
            text += "\(digest)  \(name)\n"
        }
        let path = directory + "/SHA256SUMS"
        do {
            try AtomicFile.write(Data(text.utf8), to: path)
        } catch {
            throw .failure(path, "cannot write the checksum file: \(error.errno)")
        }
        return path
    }
}
