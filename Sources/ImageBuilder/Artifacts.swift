import Exec
import FileLayer
import Foundation
import Logging

/// The files a build leaves in its output directory: NAME.raw, NAME.raw.bmap, SHA256SUMS and,
/// with compression, NAME.raw.zst.
public struct ImageArtifacts: Sendable {
    public var image: String
    public var bmap: String
    public var sums: String
    public var compressed: String?
    public var blockMap: BlockMap
}

public enum ArtifactWriter {
    /// Writes the bmap next to `image`, optionally `image.zst`, and SHA256SUMS over all of them.
    public static func finish(image: String, compress: Bool, logger: Logger) throws(ImageError) -> ImageArtifacts {
        let fd = open(image, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid(image, "cannot open: \(errnoText())") }
        try? FileIO.sync(fd, path: image)
        close(fd)
        let map = try BlockMap.create(imagePath: image)
        let bmapPath = image + ".bmap"
        do {
            try AtomicFile.write(Data(map.xml().utf8), to: bmapPath)
        } catch {
            throw .failure(bmapPath, "cannot write the block map: \(error.errno)")
        }
        var compressed: String?
        if compress {
            let target = image + ".zst"
            try runTool(Command("zstd", ["-q", "-f", "-T0", "-10", image, "-o", target]), subject: image,
                        what: "compressing with zstd", logger: logger)
            compressed = target
        }
        let directory = (image as NSString).deletingLastPathComponent
        let names = [image, bmapPath] + (compressed.map { [$0] } ?? [])
        let imageName = (image as NSString).lastPathComponent
        let sums = try FileDigest.writeSums(directory: directory.isEmpty ? "." : directory,
                                            files: names.map { ($0 as NSString).lastPathComponent },
                                            known: map.imageDigest.map { [imageName: $0] } ?? [:])
        return ImageArtifacts(image: image, bmap: bmapPath, sums: sums, compressed: compressed, blockMap: map)
    }
}

/// Progress and a closing summary on standard error, silent with `--quiet`.
public struct Reporter: Sendable {
    public var quiet: Bool

    public init(quiet: Bool) { self.quiet = quiet }

    public func line(_ text: String) {
        if !quiet { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    }

    /// A progress line redrawn in place: "label  45%  123.4 MiB of 274.0 MiB  56.7 MiB/s".
    public func progress(_ label: String, done: UInt64, total: UInt64, seconds: Double) {
        guard !quiet else { return }
        let percent = total == 0 ? 100 : Int(Double(done) * 100 / Double(total))
        let rate = seconds > 0 ? Double(done) / seconds / 1_048_576 : 0
        let text = String(format: "\r%@ %3d%%  %@ of %@  %.1f MiB/s   ", label, percent,
                          BlockMap.humanSize(done), BlockMap.humanSize(total), rate)
        FileHandle.standardError.write(Data(text.utf8))
    }

    public func endProgress() {
        if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
