import ArgumentParser
import CommandSupport
import QEMU

/// `aquarium-image`: builds the USB stick image, flashes it, and manages seeds.
public struct ImageCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aquarium-image",
        abstract: "Build the Aquarium USB stick image, flash it to sticks, and manage per-node seed files.",
        discussion: """
            Exit codes: 0 success, 1 runtime failure, 2 usage or invalid input, 3 refused for safety.

            Examples:
              aquarium-image seed example > node-01.yaml         # then edit it
              aquarium-image seed validate node-01.yaml
              aquarium-image build --output out                  # needs root
              aquarium-image flash out/aquarium.raw /dev/sdX --dry-run
              aquarium-image flash out/aquarium.raw /dev/sdX
              aquarium-image seed inject /dev/sdX node-01.yaml
              aquarium-image boot out/aquarium.raw --disk ssd.raw:SSD1:ssd   # in QEMU
            """,
        version: AquariumVersion.string,
        subcommands: [SeedCommand.self, RackCommand.self, BootCommand.self, BuildCommand.self, AssembleCommand.self, BmapCommand.self, FlashCommand.self, VerifyCommand.self, KeysCommand.self])

    public init() {}
}
