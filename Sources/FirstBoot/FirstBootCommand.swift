import ArgumentParser
import CommandSupport
import Disks
import Foundation

/// `aquarium-firstboot`: runs on the node at first boot (and every boot after).
public struct FirstBootCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aquarium-firstboot",
        abstract: "Find the seed, choose and prepare the system disk, and hand off to the Provisioner.",
        discussion: """
            Exit codes: 0 success, 1 runtime failure, 2 usage or invalid input, 3 refused for safety \
            (the message names the device and the reason).

            Examples:
              aquarium-firstboot inventory                   # this machine's disks
              aquarium-firstboot plan --seed node-01.yaml    # which disk, and why
              aquarium-firstboot apply --yes                 # what the boot runs
            """,
        version: AquariumVersion.string,
        subcommands: [InventoryCommand.self, PlanCommand.self, ApplyCommand.self])

    public init() {}
}

/// `aquarium-firstboot inventory [--json] [--all]`
public struct InventoryCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "inventory",
        abstract: "List this machine's whole disks: identity, size, sector sizes, what is on them, and whether they are in use.",
        discussion: """
            The --json document is described in docs/inventory.md.

            Examples:
              aquarium-firstboot inventory
              aquarium-firstboot inventory --device sdb --device nvme0n1
              aquarium-firstboot inventory --json > inventory.json   # for plan
            """)

    @OptionGroup public var global: GlobalOptions

    @Flag(help: "Print the documented JSON document instead of a table.")
    public var json = false

    @Flag(help: "Also list CD-ROMs, device-mapper and MD devices.")
    public var all = false

    @Option(name: .customLong("device"), help: "Only this disk (kernel name such as 'sdb' or a /dev path); repeatable.")
    public var devices: [String] = []

    public init() {}

    public func run() throws {
        let names = devices.isEmpty ? nil : Set(devices.map { ($0 as NSString).lastPathComponent })
        let scanner = InventoryScanner(options: InventoryOptions(includeAll: all, onlyNames: names),
                                       logger: global.logger("aquarium.inventory"))
        let inventory = try scanner.scan()
        try OutputFormatter(json: json).print(InventoryOutput(inventory: inventory))
    }
}

/// The inventory as `inventory` prints it: the documented JSON document (docs/inventory.md), or a table.
struct InventoryOutput: CommandOutput {
    var inventory: Inventory

    var text: String { InventoryTable.render(inventory) + "\n" }

    func encode(to encoder: any Encoder) throws { try inventory.encode(to: encoder) }
}
