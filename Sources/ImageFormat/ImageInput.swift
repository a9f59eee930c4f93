import Archive
import FileLayer
import Foundation

/// An image file as `flash`, `verify` and `bmap` see it: a raw disk image, or one compressed with zstd, xz or
/// gzip. Decided by the file's first bytes (magic numbers), never by its name.
public struct ImageInput: Sendable, Equatable {
    public var path: String
    /// nil for a raw image.
    public var compression: StreamCompression?

    public init(path: String, compression: StreamCompression?) {
        self.path = path
        self.compression = compression
    }

    /// What the first bytes of a file say it is.
    public enum Kind: Sendable, Equatable {
        /// A disk image: an MBR boot signature (also a GPT's protective MBR) or a GPT header.
        case diskImage
        case compressed(StreamCompression)
        /// A compression this tool cannot undo (named, with the command that can).
        case unsupportedCompression(name: String, decompress: String)
        /// Neither a disk image nor a known compression.
        case unknown
    }

    /// Classifies `head`, the first bytes of a file (at least 4 KiB + 8 when the file is that long).
    public static func classify(_ head: [UInt8]) -> Kind {
        func starts(_ magic: [UInt8]) -> Bool { head.count >= magic.count && Array(head[0..<magic.count]) == magic }
        if starts([0x28, 0xB5, 0x2F, 0xFD]) { return .compressed(.zstd) }
        if starts([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { return .compressed(.xz) }
        if starts([0x1F, 0x8B]) { return .compressed(.gzip) }
        if starts(Array("BZh".utf8)) { return .unsupportedCompression(name: "bzip2", decompress: "bzip2 -d") }
        if starts([0x04, 0x22, 0x4D, 0x18]) { return .unsupportedCompression(name: "lz4", decompress: "lz4 -d") }
        if starts(Array("LZIP".utf8)) { return .unsupportedCompression(name: "lzip", decompress: "lzip -d") }
        if starts([0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C]) { return .unsupportedCompression(name: "7z", decompress: "7z x") }
        if starts([0x50, 0x4B, 0x03, 0x04]) { return .unsupportedCompression(name: "zip", decompress: "unzip") }
        let efiPart = Array("EFI PART".utf8)
        if head.count >= 512, head[510] == 0x55, head[511] == 0xAA { return .diskImage }
        for offset in [512, 4096] where head.count >= offset + 8 && Array(head[offset..<offset + 8]) == efiPart {
            return .diskImage
        }
        // A weak magic: only once the file is known not to be a disk image.
        if starts([0x5D, 0x00, 0x00]) { return .unsupportedCompression(name: "lzma", decompress: "xz -d --format=lzma") }
        return .unknown
    }

    /// Reads the first bytes of `path` and decides. Refuses (exit 2) what flashing cannot handle: an unknown
    /// compression, or a file that is neither a disk image nor zstd/xz/gzip-compressed one.
    public static func inspect(_ path: String) throws(ImageError) -> ImageInput {
        let kind = try kind(of: path)
        switch kind {
        case .diskImage: return ImageInput(path: path, compression: nil)
        case .compressed(let compression): return ImageInput(path: path, compression: compression)
        case .unsupportedCompression(let name, let decompress):
            throw .invalid(path, "is \(name)-compressed, which this tool cannot decompress while flashing; "
                           + "use a zstd, xz or gzip image, or decompress it first (`\(decompress)`) and flash the raw image")
        case .unknown:
            throw .invalid(path, "is neither a disk image (no MBR boot signature or GPT header at its start) nor a zstd, xz "
                           + "or gzip stream; pass NAME.raw or NAME.raw.zst as written by `aquarium-image build`")
        }
    }

    package static func kind(of path: String) throws(ImageError) -> Kind {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid(path, "cannot open the image: \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .failure(path, "cannot stat: \(errnoText())") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .invalid(path, "is not a regular file; give the image file") }
        var head = [UInt8](repeating: 0, count: 4096 + 8)
        let done: Int
        do {
            done = try FileIO.read(fd, into: &head, at: 0, path: path)
        } catch {
            throw .failure(path, "cannot read the image's first bytes: \(error.errno)")
        }
        return classify(Array(head[0..<done]))
    }

    /// Where the bmap of a compressed image's raw data is looked for: NAME.raw.bmap for NAME.raw.zst (.xz, .gz,
    /// .zstd, .gzip), then IMAGE.bmap.
    public var bmapCandidates: [String] {
        var names: [String] = []
        for suffix in [".zst", ".zstd", ".xz", ".gz", ".gzip"] where path.hasSuffix(suffix) {
            names.append(String(path.dropLast(suffix.count)) + ".bmap")
        }
        names.append(path + ".bmap")
        return names
    }

    /// How to undo the compression by hand (for messages).
    public var decompressCommand: String {
        switch compression {
        case .zstd: "zstd -d"
        case .xz: "xz -d"
        case .gzip: "gzip -d"
        case nil: "cat"
        }
    }
}

/// Reads an image's bytes at increasing offsets: from the raw file with `pread`, or decompressed on the fly
/// (bytes before the next offset are decompressed and dropped, as a stream cannot seek). Single owner of the
/// file descriptor or the libarchive reader.
package final class ImageReader {
    package let input: ImageInput
    private var fd: Int32 = -1
    private var stream: DecompressingReader?
    private var scratch: [UInt8] = []

    package init(_ input: ImageInput) throws(ImageError) {
        self.input = input
        if let compression = input.compression {
            do {
                stream = try DecompressingReader(path: input.path, compression: compression)
            } catch {
                throw Self.streamError(input, error)
            }
        } else {
            fd = open(input.path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .invalid(input.path, "cannot open the image: \(errnoText())") }
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    package static func streamError(_ input: ImageInput, _ error: ArchiveError) -> ImageError {
        .invalid(input.path, "the \(input.compression?.rawValue ?? "") stream is damaged or cut off (libarchive: \(error.message)); "
                 + "download or copy the image again and check it against SHA256SUMS")
    }

    /// Fills `buffer[0..<count]` with the image's bytes at `offset`. Returns fewer only at the image's end.
    package func read(into buffer: inout [UInt8], count: Int, at offset: UInt64) throws(ImageError) -> Int {
        var failure: ImageError?
        let n = buffer.withUnsafeMutableBytes { bytes -> Int in
            do throws(ImageError) {
                return try read(into: UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count]), at: offset)
            } catch {
                failure = error
                return 0
            }
        }
        if let failure { throw failure }
        return n
    }

    /// Fills `buffer` with the image's bytes at `offset`. Returns fewer only at the image's end.
    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(ImageError) -> Int {
        let count = buffer.count
        guard let stream else {
            do {
                return try FileIO.read(fd, into: buffer, at: offset, path: input.path)
            } catch {
                throw .failure(input.path, "read failed at byte \(error.offset ?? offset): \(error.errno)")
            }
        }
        guard offset >= stream.position else {
            throw .invalid(input.path, "the bmap's ranges are not in ascending order, which a compressed image needs; "
                           + "make the bmap again from the raw image (`aquarium-image bmap NAME.raw`)")
        }
        try skip(offset - stream.position)
        var done = 0
        while done < count {
            let n: Int
            do throws(ArchiveError) {
                n = try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<count]))
            } catch {
                throw Self.streamError(input, error)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Decompresses and drops `count` bytes (fewer at the end of the stream).
    private func skip(_ count: UInt64) throws(ImageError) {
        guard let stream, count > 0 else { return }
        if scratch.isEmpty { scratch = [UInt8](repeating: 0, count: 1 << 20) }
        var left = count
        while left > 0 {
            let want = Int(min(left, UInt64(scratch.count)))
            var failure: ArchiveError?
            let n = scratch.withUnsafeMutableBytes { bytes -> Int in
                do throws(ArchiveError) {
                    return try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: bytes[0..<want]))
                } catch {
                    failure = error
                    return 0
                }
            }
            if let failure { throw Self.streamError(input, failure) }
            if n == 0 { return }
            left -= UInt64(n)
        }
    }

    /// For a compressed image: decompresses the rest and checks that the raw image is exactly `expectedBytes`
    /// long (a cut-off stream ends early). Nothing to do for a raw image (its size was checked against the bmap).
    package func finish(expectedBytes: UInt64) throws(ImageError) {
        guard let stream else { return }
        if stream.position < expectedBytes { try skip(expectedBytes - stream.position) }
        // One byte more than the bmap describes is enough to know it does not fit (and nothing more is read).
        var probe = [UInt8](repeating: 0, count: 1)
        _ = try read(into: &probe, count: 1, at: stream.position)
        do {
            try stream.close()
        } catch {
            throw Self.streamError(input, error)
        }
        guard stream.position == expectedBytes else {
            throw .invalid(input.path, "decompresses to \(stream.position == expectedBytes + 1 ? "more than \(expectedBytes)" : "\(stream.position)") bytes, but its bmap describes an image of "
                           + "\(expectedBytes) bytes: the stream is cut off or the bmap belongs to another image; download "
                           + "or copy the image again and check it against SHA256SUMS")
        }
    }
}
