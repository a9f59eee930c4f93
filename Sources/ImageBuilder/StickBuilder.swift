import Foundation
import Logging
import Seed

/// From a finished root tree to the artifacts: ESP and seed staging, assembly, bmap, checksums, summary.
public struct StickBuilder {
    public var logger: Logger
    public var reporter: Reporter

    public init(logger: Logger = Logger(label: "aquarium.image"), reporter: Reporter = Reporter(quiet: true)) {
        self.logger = logger
        self.reporter = reporter
    }

    public struct Result: Sendable {
        public var assembly: AssemblyResult
        public var artifacts: ImageArtifacts
        public var steps: [(String, Double)]
    }

    public func assemble(rootTree: String, boot: StickContent.BootFiles, commandLine: String, layout: StickLayout,
                         identity: BuildIdentity, outputDirectory: String, compress: Bool,
                         exampleSeed: String? = nil, summary: Bool = true) throws(ImageError) -> Result {
        do {
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        } catch {
            throw .failure(outputDirectory, "cannot create the output directory: \(error)")
        }
        let output = URL(fileURLWithPath: outputDirectory).standardized.path
        let staging = output + "/.staging-\(identity.imageName)"
        try? FileManager.default.removeItem(atPath: staging)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let espTree = staging + "/esp"
        let seedTree = staging + "/seed"
        let example: String
        if let exampleSeed {
            example = exampleSeed
        } else {
            do { example = try SeedResources.example() } catch { throw .failure("aquarium_Seed.resources", "\(error)") }
        }
        try StickContent.populateESP(at: espTree, boot: boot, release: identity.releaseName,
                                     rootPartitionGUID: identity.partitionGUID(.root), commandLine: commandLine)
        try StickContent.populateSeed(at: seedTree, imageName: identity.imageName, exampleSeed: example)

        let image = output + "/\(identity.imageName).raw"
        reporter.line("assembling \(image)")
        // The GRUB chain also boots on legacy BIOS: its core image reads the same grub.cfg from the ESP.
        var bios: BIOSBootCode?
        if let signed = boot.signed {
            try StickContent.makeDirectories(staging, ["bios"])
            bios = try BIOSBootCode.build(moduleDirectory: signed.biosModules, scratch: staging + "/bios",
                                          environment: identity.toolEnvironment, logger: logger)
        }
        let assembly = try ImageAssembler(logger: logger).assemble(
            AssemblyInput(output: image, rootTree: rootTree, espTree: espTree, seedTree: seedTree, layout: layout, identity: identity,
                          biosBoot: bios, verity: boot.locked != nil)) { verity throws(ImageError) in
            guard let locked = boot.locked, let verity else { return }
            // The locked mode: one UKI (stub, os-release, command line with the root hash, kernel, initrd), signed.
            try StickContent.makeDirectories(staging, ["uki"])
            let unsigned = staging + "/uki/aquarium.efi"
            let line = StickContent.lockedCommandLine(verity: verity, rootPartitionGUID: identity.partitionGUID(.root),
                                                      commandLine: commandLine, release: identity.releaseName)
            try UnifiedKernelImage.build(stub: locked.stub, osRelease: locked.osRelease, commandLine: line, kernel: boot.kernel,
                                         initrd: boot.initrd, output: unsigned, scratch: staging + "/uki", epoch: identity.epoch,
                                         logger: logger)
            try UnifiedKernelImage.sign(unsigned, output: espTree + "/EFI/BOOT/BOOTX64.EFI", identity: locked.signing,
                                        epoch: identity.epoch, logger: logger)
        }
        let start = Date()
        reporter.line("writing the block map and checksums\(compress ? ", compressing" : "")")
        let artifacts = try ArtifactWriter.finish(image: image, compress: compress, logger: logger)
        let steps = assembly.steps + [("bmap, checksums" + (compress ? ", zstd" : ""), Date().timeIntervalSince(start))]
        let result = Result(assembly: assembly, artifacts: artifacts, steps: steps)
        if summary { report(result, steps: steps) }
        return result
    }

    /// The closing summary: time per step, then the image's apparent, allocated and mapped size.
    public func report(_ result: Result, steps: [(String, Double)]) {
        for (name, seconds) in steps {
            reporter.line("  " + name.padding(toLength: 46, withPad: " ", startingAt: 0) + String(format: "%7.2f s", seconds))
        }
        let image = result.artifacts.image
        reporter.line("""
              \(image): \(BlockMap.humanSize(result.assembly.sizeBytes)) apparent, \
            \(BlockMap.humanSize(result.assembly.allocatedBytes)) allocated, \
            \(BlockMap.humanSize(result.artifacts.blockMap.mappedBytes)) mapped in \(result.artifacts.blockMap.ranges.count) ranges
            """)
    }
}
