import ArgumentParser
import CommandSupport
import Foundation
import Seed

/// `aquarium-image assemble`: the stick image from an existing root tree, without debootstrap.
/// `build` does the same after preparing the tree; tests and the benchmark use this directly.
public struct AssembleCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "assemble",
        abstract: "Assemble the GPT stick image (ESP, root, seed) from a root tree, kernel and initrd; no loop devices, no mounts.",
        discussion: """
            Writes NAME.raw, NAME.raw.bmap and SHA256SUMS into --output. With SOURCE_DATE_EPOCH set, the same \
            inputs give a byte-identical NAME.raw.

            Examples:
              aquarium-image assemble --root rootfs --output out
              aquarium-image assemble --root rootfs --output out --name test --compress
            """)

    @OptionGroup public var global: GlobalOptions

    @Option(name: .long, help: "The root filesystem tree.") public var root: String
    @Option(name: .long, help: "The kernel (default: ROOT/boot/vmlinuz, following the symlink).") public var kernel: String?
    @Option(name: .long, help: "The initrd (default: ROOT/boot/initrd.img).") public var initrd: String?
    @Option(name: .long, help: "systemd-boot's EFI binary.")
    public var bootloader = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
    @Option(name: .long, help: "Output directory.") public var output: String
    @Option(name: .long, help: "Image name (files are NAME.raw ...).") public var name = "aquarium"
    @Option(name: .long, help: "Kernel command line after root=PARTUUID=...") public var cmdline = "ro console=ttyS0,115200 console=tty0"
    @Option(name: .customLong("esp-mib"), help: "ESP size in MiB (at least 36).") public var espMiB: UInt64 = 256
    @Option(name: .customLong("seed-mib"), help: "Seed partition size in MiB.") public var seedMiB: UInt64 = 64
    @Option(name: .customLong("root-headroom-mib"), help: "Free space in the root filesystem, MiB.") public var rootHeadroomMiB: UInt64 = 256
    @Flag(name: .long, help: "Also write NAME.raw.zst.") public var compress = false
    @Flag(name: .long, help: "No progress or summary.") public var quiet = false

    public init() {}

    public func run() throws {
        let reporter = Reporter(quiet: quiet)
        let identity = BuildIdentity(imageName: name, epoch: try BuildIdentity.epochFromEnvironment())
        let layout = StickLayout(espMiB: espMiB, seedMiB: seedMiB, rootHeadroomMiB: rootHeadroomMiB)
        let boot = StickContent.BootFiles(kernel: kernel ?? root + "/boot/vmlinuz", initrd: initrd ?? root + "/boot/initrd.img",
                                          bootloader: bootloader)
        let result = try StickBuilder(logger: global.logger("aquarium.image"), reporter: reporter)
            .assemble(rootTree: root, boot: boot, commandLine: cmdline, layout: layout, identity: identity,
                      outputDirectory: output, compress: compress)
        print(result.artifacts.image)
    }
}
