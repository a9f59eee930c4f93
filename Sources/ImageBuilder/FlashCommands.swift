import ArgumentParser
import CommandSupport
import FileLayer
import Foundation

/// `aquarium-image flash IMAGE DEVICE`.
public struct FlashCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "flash",
        abstract: "Write an image's mapped ranges to a stick, verify every range read back, and move the backup GPT to the end.",
        discussion: """
            Uses IMAGE.bmap (ours or one from `bmaptool create`), or --bmap FILE, or maps the image's allocated \
            extents itself. A zstd, xz or gzip image (recognised by its first bytes, not its name) is decompressed while \
            flashing, with the raw image's bmap (NAME.raw.bmap beside NAME.raw.zst, or --bmap), and verified against the \
            decompressed data; an unknown compression, a compressed image without a bmap and a damaged or cut-off stream \
            are refused (exit 2). Refuses (exit 3) a mounted or held device or partition, the disk of the running system, \
            a device smaller than the image, and a device that is neither removable nor USB unless \
            --yes-non-removable is given. Exit 1 when the read-back does not match, naming the range.
            """)

    @OptionGroup public var global: GlobalOptions
    @Argument(help: "The image file (NAME.raw, or NAME.raw.zst/.xz/.gz with NAME.raw.bmap beside it).") public var image: String
    @Argument(help: "The whole-disk block device, e.g. /dev/sdX.") public var device: String
    @Option(name: .long, help: "The bmap file (default: IMAGE.bmap when it exists).") public var bmap: String?
    @Flag(name: .customLong("yes-non-removable"), help: "Allow a disk that is neither removable nor on USB.")
    public var yesNonRemovable = false
    @Flag(name: .long, help: "No progress output.") public var quiet = false

    public init() {}

    public func run() throws {
        let logger = global.logger("aquarium.image.flash")
        let reporter = Reporter(quiet: quiet)
        let input = try ImageInput.inspect(image)
        let map = try Flasher.loadBlockMap(input: input, bmap: bmap)
        let disk = try DeviceSafety.check(device, imageBytes: map.imageSize, allowNonRemovable: yesNonRemovable, logger: logger)
        let what = input.compression.map { "\($0.rawValue)-compressed, " } ?? ""
        reporter.line("flashing \(image) (\(what)\(BlockMap.humanSize(map.mappedBytes)) mapped of \(BlockMap.humanSize(map.imageSize))) "
                      + "to \(device) (\(BlockMap.humanSize(disk.sizeBytes)), \(disk.transport.rawValue))")
        let report = try Flasher(logger: logger, reporter: reporter)
            .flash(input: input, map: map, device: device, deviceBytes: disk.sizeBytes, sectorSize: disk.logicalSectorSize)
        let rate = report.writeSeconds > 0 ? Double(report.bytesWritten) / report.writeSeconds / 1_048_576 : 0
        let verified = report.verifyOverlapped
            ? String(format: "read back and verified %d ranges while writing (%.2f s more after the last write)",
                     report.rangesVerified, report.verifySeconds)
            : String(format: "verified %d ranges in %.2f s", report.rangesVerified, report.verifySeconds)
        reporter.line(String(format: "wrote %@ in %.2f s (%.1f MiB/s), %@%@", BlockMap.humanSize(report.bytesWritten),
                             report.writeSeconds, rate, verified, report.gptRelocated ? ", backup GPT moved to the end" : ""))
    }
}

/// `aquarium-image verify IMAGE DEVICE`.
public struct VerifyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Read every mapped range of a flashed device back and check it against the image's bmap.",
        discussion: """
            Exit 0 when every range matches; exit 1 naming the first range that does not (by block and byte offset). \
            A zstd, xz or gzip image is decompressed and the device compared with the decompressed data (the raw \
            image's bmap is required: NAME.raw.bmap beside it, or --bmap); exit 2 for an unknown compression or a \
            damaged stream.
            """)

    @OptionGroup public var global: GlobalOptions
    @Argument(help: "The image file the device was flashed with (raw or compressed).") public var image: String
    @Argument(help: "The flashed device (or a file holding a copy).") public var device: String
    @Option(name: .long, help: "The bmap file (default: IMAGE.bmap when it exists).") public var bmap: String?
    @Flag(name: .long, help: "No progress output.") public var quiet = false

    public init() {}

    public func run() throws {
        let reporter = Reporter(quiet: quiet)
        let input = try ImageInput.inspect(image)
        let map = try Flasher.loadBlockMap(input: input, bmap: bmap)
        let ranges = try Flasher(logger: global.logger("aquarium.image.verify"), reporter: reporter)
            .verify(input: input, map: map, device: device)
        print("\(device): all \(ranges) mapped ranges (\(BlockMap.humanSize(map.mappedBytes))) match \(image)")
    }
}

/// `aquarium-image bmap IMAGE`: writes IMAGE.bmap (what `build` does at the end).
public struct BmapCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bmap",
        abstract: "Write IMAGE.bmap (bmaptool format 2.0, SHA-256 per range) from the image's allocated extents.",
        discussion: "IMAGE must be the raw image: a compressed one (zstd, xz, gzip, ...) is refused (exit 2); its bmap is the raw image's.")

    @OptionGroup public var global: GlobalOptions
    @Argument(help: "The image file.") public var image: String
    @Option(name: .shortAndLong, help: "Where to write the bmap (default IMAGE.bmap; '-' for standard output).") public var output: String?

    public init() {}

    public func run() throws {
        switch try ImageInput.kind(of: image) {
        case .compressed, .unsupportedCompression:
            throw ImageError(.invalidInput, image, "is compressed; a bmap describes the raw image: decompress it "
                             + "(e.g. `zstd -d`) and run `aquarium-image bmap NAME.raw`, or use the NAME.raw.bmap written with it")
        case .diskImage, .unknown: break
        }
        let map = try BlockMap.create(imagePath: image)
        let target = output ?? image + ".bmap"
        if target == "-" {
            print(map.xml(), terminator: "")
        } else {
            do {
                try AtomicFile.write(Data(map.xml().utf8), to: target)
            } catch {
                throw ImageError(.failure, target, "cannot write the bmap: \(error.errno)")
            }
        }
    }
}
