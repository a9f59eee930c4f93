import ArgumentParser
import CommandSupport
import FileLayer
import Foundation
import JSONCoding

/// `aquarium-image flash IMAGE DEVICE...`.
public struct FlashCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "flash",
        abstract: "Write an image's mapped ranges to one or several sticks at once, verify every range read back, and move the backup GPT to the end.",
        discussion: """
            Uses IMAGE.bmap (ours or one from `bmaptool create`), or --bmap FILE, or maps the image's allocated \
            extents itself. A zstd, xz or gzip image (recognised by its first bytes, not its name) is decompressed while \
            flashing, with the raw image's bmap (NAME.raw.bmap beside NAME.raw.zst, or --bmap), and verified against the \
            decompressed data; an unknown compression, a compressed image without a bmap and a damaged or cut-off stream \
            are refused (exit 2). Refuses (exit 3) a mounted or held device or partition, the disk of the running system, \
            a device smaller than the image, and a device that is neither removable nor USB unless \
            --yes-non-removable is given. Several devices are checked first (one refused: nothing is written to any), \
            then written and verified at once, one summary line each. Exit 1 when a read-back does not match, naming \
            the range.

            Examples:
              lsblk -d -o NAME,MODEL,SERIAL,SIZE,TRAN               # find the sticks
              aquarium-image flash out/aquarium.raw /dev/sdX --dry-run  # write nothing
              aquarium-image flash out/aquarium.raw /dev/sdX
              aquarium-image flash out/aquarium.raw.zst /dev/sdX /dev/sdY    # at once
              aquarium-image flash out/aquarium.raw /dev/sdX --seeds-dir rack/seeds
            """)

    @OptionGroup public var global: GlobalOptions
    @Argument(help: "The image file (NAME.raw, or NAME.raw.zst/.xz/.gz with NAME.raw.bmap beside it).") public var image: String
    @Argument(help: "The whole-disk block devices, e.g. /dev/sdX (several: written at once).") public var devices: [String] = []
    @Option(name: .long, help: "The bmap file (default: IMAGE.bmap when it exists).") public var bmap: String?
    @Option(name: [.customLong("seeds-dir"), .customLong("seed-dir")],
            help: "After each stick verified, write every NAME.yaml of this directory to its seeds/ (as `seed inject --seeds-dir`; each node finds its own).")
    public var seedsDirectory: String?
    @Flag(name: .customLong("yes-non-removable"), help: "Allow a disk that is neither removable nor on USB.")
    public var yesNonRemovable = false
    @Flag(name: .customLong("dry-run"), help: "Print each device's model, serial, size, transport and every check; write nothing.")
    public var dryRun = false
    @Flag(name: .long, help: "Print the result as JSON (each device, its checks and what became of it).") public var json = false
    @Flag(name: .long, help: "No progress output.") public var quiet = false

    public init() {}

    public func validate() throws {
        if devices.isEmpty { throw ValidationError("name the device to flash, e.g. /dev/sdX (several for several sticks)") }
        if Set(devices).count != devices.count { throw ValidationError("a device is named twice") }
    }

    public func run() throws {
        let logger = global.logger("aquarium.image.flash")
        let quiet = quiet || json
        let several = devices.count > 1
        let run = MultiFlash(image: image, bmap: bmap, devices: devices, allowNonRemovable: yesNonRemovable,
                             seedsDirectory: seedsDirectory, logger: logger) { device in
            // Several sticks: plain lines, each with its device in front (one bar cannot show them all).
            several ? Reporter(quiet: quiet, terminal: false) { FileHandle.standardError.write(Data("\(device): \($0)".utf8)) }
                : Reporter(quiet: quiet)
        }
        let checked = try run.check(dryRun: dryRun)
        if json && (dryRun || !checked.passed) {
            print(try JSONCoding.text(checked.report))
        } else if dryRun {
            print(checked.report.sticks.map(\.dryRunText).joined(separator: "\n"))
        }
        let refused = checked.report.sticks.filter { $0.outcome == .refused }
        if !refused.isEmpty {
            if !dryRun && !json && !several {
                throw ImageError(.refused, refused[0].device, refused[0].checks.filter { !$0.passed }.compactMap(\.reason).joined(separator: "; "))
            }
            if !json && !dryRun { for stick in refused { printError(stick.summary) } }
            throw FlashRefused(refused: refused.count, total: checked.report.sticks.count, dryRun: dryRun)
        }
        if dryRun { return }
        let what = checked.input.compression.map { "\($0.rawValue)-compressed, " } ?? ""
        if !quiet {
            printError("flashing \(image) (\(what)\(BlockMap.humanSize(checked.map.mappedBytes)) mapped of "
                       + "\(BlockMap.humanSize(checked.map.imageSize))) to \(devices.joined(separator: ", "))\(several ? " at once" : "")")
        }
        let (report, errors) = run.flash(checked)
        if json { print(try JSONCoding.text(report)) }
        // One stick: its own error, with its exit code (a damaged stream is bad input, a mismatch a failure).
        if !several, let error = errors[0] { throw error }
        if !json {
            for stick in report.sticks { printError(stick.summary) }
        }
        if !errors.isEmpty { throw FlashFailed(failed: errors.count, total: report.sticks.count) }
    }
}

/// Some sticks were refused; each was named already. Nothing was written.
struct FlashRefused: Error, AquariumExitCoded, CustomStringConvertible {
    let refused: Int
    let total: Int
    let dryRun: Bool
    var exitCode: AquariumExit { .refused }
    var description: String {
        "\(refused) of \(total) device\(total == 1 ? "" : "s") refused" + (dryRun ? "" : ": nothing was written to any")
    }
}

/// Some sticks failed while flashing or verifying; each was named already.
struct FlashFailed: Error, AquariumExitCoded, CustomStringConvertible {
    let failed: Int
    let total: Int
    var exitCode: AquariumExit { .runtimeFailure }
    var description: String { "\(failed) of \(total) sticks failed; flash them again or use other sticks" }
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

            Examples:
              aquarium-image verify out/aquarium.raw /dev/sdX
              aquarium-image verify out/aquarium.raw.zst /dev/sdX --json
            """)

    @OptionGroup public var global: GlobalOptions
    @Argument(help: "The image file the device was flashed with (raw or compressed).") public var image: String
    @Argument(help: "The flashed device (or a file holding a copy).") public var device: String
    @Option(name: .long, help: "The bmap file (default: IMAGE.bmap when it exists).") public var bmap: String?
    @Flag(name: .long, help: "Print the result as JSON: whether the device matches, the ranges checked, the first that does not.")
    public var json = false
    @Flag(name: .long, help: "No progress output.") public var quiet = false

    public init() {}

    /// `verify --json`.
    struct Report: Encodable {
        var image: String
        var device: String
        var match: Bool
        var rangesChecked: Int?
        var mappedBytes: UInt64
        var error: String?
    }

    public func run() throws {
        let reporter = Reporter(quiet: quiet || json)
        let input = try ImageInput.inspect(image)
        let map = try Flasher.loadBlockMap(input: input, bmap: bmap)
        let ranges: Int
        do {
            ranges = try Flasher(logger: global.logger("aquarium.image.verify"), reporter: reporter)
                .verify(input: input, map: map, device: device)
        } catch {
            if json {
                print(try JSONCoding.text(Report(image: image, device: device, match: false, mappedBytes: map.mappedBytes,
                                                 error: error.description)))
            }
            throw error
        }
        if json {
            print(try JSONCoding.text(Report(image: image, device: device, match: true, rangesChecked: ranges,
                                             mappedBytes: map.mappedBytes)))
        } else {
            print("\(device): all \(ranges) mapped ranges (\(BlockMap.humanSize(map.mappedBytes))) match \(image)")
        }
    }
}

/// `aquarium-image bmap IMAGE`: writes IMAGE.bmap (what `build` does at the end).
public struct BmapCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bmap",
        abstract: "Write IMAGE.bmap (bmaptool format 2.0, SHA-256 per range) from the image's allocated extents.",
        discussion: """
            IMAGE must be the raw image: a compressed one (zstd, xz, gzip, ...) is refused (exit 2); its bmap is the \
            raw image's.

            Examples:
              aquarium-image bmap out/aquarium.raw              # out/aquarium.raw.bmap
              aquarium-image bmap out/aquarium.raw --output -   # to standard output
            """)

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
