import ArgumentParser
import CommandSupport
import Disks
import Exec
import FileLayer
import Foundation
import JSONCoding
import Seed

/// Options `plan` and `apply` share for tests and the pre-install summary.
public struct TargetOptions: ParsableArguments, Sendable {
    @Option(help: "Apply against this target root instead of / (tests use a temporary tree).")
    public var root: String = "/"

    @Option(name: .customLong("only-device"), help: ArgumentHelp(
        "Consider only this disk (kernel name or /dev path); repeatable. For tests: never look at other disks.",
        visibility: .hidden))
    public var onlyDevices: [String] = []

    @Option(name: .customLong("cmdline"), help: ArgumentHelp("Read the kernel command line from this file.", visibility: .hidden))
    public var commandLinePath: String = "/proc/cmdline"

    @Option(name: .customLong("dmi-serial-file"), help: ArgumentHelp("Read the DMI serial from this file.", visibility: .hidden))
    public var dmiSerialPath: String = "/sys/class/dmi/id/product_serial"

    @Option(name: .customLong("net-dir"), help: ArgumentHelp("Read NIC addresses from this directory.", visibility: .hidden))
    public var netDirectory: String = "/sys/class/net"

    @Option(name: .customLong("firmware-dir"), help: ArgumentHelp("Read the firmware (UEFI, Secure Boot) from this directory.", visibility: .hidden))
    public var firmwareDirectory: String = "/sys/firmware/efi"

    public init() {}

    var machine: MachineFacts { MachineFacts.current(dmiSerialPath: dmiSerialPath, netDirectory: netDirectory) }

    var onlyNames: Set<String>? {
        onlyDevices.isEmpty ? nil : Set(onlyDevices.map { ($0 as NSString).lastPathComponent })
    }

    func finder(_ global: GlobalOptions) -> SeedFinder {
        var finder = SeedFinder(logger: global.logger("aquarium.firstboot.seed"))
        finder.commandLinePath = commandLinePath
        finder.dmiSerialPath = dmiSerialPath
        finder.netDirectory = netDirectory
        finder.root = root
        finder.onlyDevices = onlyNames
        return finder
    }
}

/// `aquarium-firstboot plan --seed FILE [--inventory INVENTORY.json] [--json]`
public struct PlanCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show which disk would become the system disk, which become storage disks, and why every other disk is rejected.",
        discussion: """
            Exit 3 when no disk is eligible or the machine falls short of host.requirements (before anything is \
            touched). The --json document is described in docs/plan.md.

            Examples:
              aquarium-firstboot plan                  # the seed apply would find
              aquarium-firstboot plan --seed node-01.yaml --json
              aquarium-firstboot plan --seed node-01.yaml --inventory inventory.json
              aquarium-firstboot apply --yes           # then carry it out
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var target: TargetOptions

    @Option(help: "The seed file (or a seed volume directory). Default: found like `apply` finds it.")
    public var seed: String?

    @Option(help: "Plan against a saved `inventory --json` document instead of this machine.")
    public var inventory: String?

    @Flag(help: "Print the documented JSON document.")
    public var json = false

    public init() {}

    public func run() throws {
        var mounts: [String] = []
        defer { for mount in mounts { _ = try? Command("umount", [mount]).run(); try? FileManager.default.removeItem(atPath: mount) } }
        var sink = ReportSink()
        let loaded = try target.finder(global).find(explicitPath: seed, mounts: &mounts, sink: &sink)
        let machine = target.machine
        if let bound = loaded.seed.host.machine, let problem = bound.mismatch(dmiSerial: machine.dmiSerial, macs: machine.macs) {
            throw ApplyError(.refused, "refused: the seed \(loaded.path) is bound to another machine (\(problem))")
        }
        let plan: Plan
        if let inventory {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: inventory))
            } catch {
                throw ApplyError(.invalid, "cannot read the inventory: \(FileProblem.describe(error, path: inventory))")
            }
            let document: Inventory
            do {
                document = try JSONDecoder().decode(Inventory.self, from: data)
            } catch {
                throw ApplyError(.invalid, "\(inventory) is not an inventory document (docs/inventory.md): \(JSONCoding.problem(error))")
            }
            plan = SystemDiskPlanner.plan(seed: loaded.seed, inventory: document)
        } else {
            let engine = ApplyEngine(options: ApplyOptions(root: target.root, onlyDevices: target.onlyNames,
                                                           machine: target.machine),
                                     logger: global.logger("aquarium.firstboot.plan"))
            plan = try engine.plan(seed: loaded.seed).0
        }
        try OutputFormatter(json: json).print(plan)
        if plan.isRefused {
            throw ApplyError(.refused, "refused: \(plan.refusal ?? "no disk is eligible as the system disk")")
        }
    }
}

/// `aquarium-firstboot apply [--seed FILE] [--root DIR] [--yes]`
public struct ApplyCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Find the seed, choose the system disk, partition, format and mount it (or only mount it on later boots), "
            + "write the node record and hand off to the Provisioner.",
        discussion: """
            Crash-safe: every disk step is journalled on the target disk; run it again after a crash and it converges. \
            A report is written to reports/ on the seed volume. See docs/firstboot.md.

            Examples:
              aquarium-firstboot plan --seed node-01.yaml        # look first
              aquarium-firstboot apply --seed node-01.yaml --yes --no-handoff
              aquarium-firstboot apply --yes                     # what the boot runs
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var target: TargetOptions

    @Option(help: "The seed file or seed volume directory (default: the kernel command line, then the AQUASEED volume).")
    public var seed: String?

    @Flag(help: "Allow partitioning and formatting the chosen disk (and wiping it when the seed's wipe policy allows).")
    public var yes = false

    @Option(name: .customLong("fault-inject"), help: ArgumentHelp(
        "Kill this process with SIGKILL at STEP (or STEP:after) — crash-safety tests only. Also AQUARIUM_FAULT_INJECT.",
        valueName: "STEP", visibility: .hidden))
    public var faultInject: String?

    @Flag(name: .customLong("no-handoff"), help: "Do not start aquarium-provision at the end.")
    public var noHandoff = false

    @Option(name: .customLong("report-dir"), help: "Also write the report to this directory.")
    public var reportDirectory: String?

    @Flag(help: "Print the report as JSON.")
    public var json = false

    public init() {}

    public func validate() throws {
        if let text = faultPointText, FaultPoint(apply: text) == nil {
            throw ValidationError("unknown fault point '\(text)'; one of: " + FaultPoint.all.map(\.description).joined(separator: ", "))
        }
    }

    var faultPointText: String? {
        faultInject ?? ProcessInfo.processInfo.environment["AQUARIUM_FAULT_INJECT"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public func run() throws {
        let logger = global.logger("aquarium.firstboot.apply")
        var mounts: [String] = []
        defer { for mount in mounts { _ = try? Command("umount", [mount]).run(); try? FileManager.default.removeItem(atPath: mount) } }
        let finder = target.finder(global)
        var report = ApplyReport(outcome: "failed", exitCode: 1, dmiSerial: SeedDiscovery.dmiSerial(path: target.dmiSerialPath))
        report.boot = BootFirmware.current(firmwareDirectory: target.firmwareDirectory)
        var loaded: LoadedSeed?
        var failure: Error?
        var sink = ReportSink()
        do {
            let seed = try finder.find(explicitPath: seed, mounts: &mounts, sink: &sink)
            loaded = seed
            let machine = target.machine
            if let bound = seed.seed.host.machine, let problem = bound.mismatch(dmiSerial: machine.dmiSerial, macs: machine.macs) {
                // Not this machine's seed: the report is named by this machine's serial, not the seed's host name.
                throw ApplyError(.refused, "refused: the seed \(seed.path) is bound to another machine (\(problem)); put "
                    + "this machine's own seed on the stick (seeds/<DMI serial>.yaml or seeds/<MAC with dashes>.yaml)")
            }
            report.hostname = seed.seed.host.hostname
            report.seedPath = seed.path
            report.seedSHA256 = seed.sha256
            report.seedTrust = seed.trust
            let options = ApplyOptions(root: target.root, yes: yes, onlyDevices: target.onlyNames,
                                       faultPoint: faultPointText.flatMap { FaultPoint(apply: $0) }, handoff: !noHandoff,
                                       machine: target.machine)
            let engine = ApplyEngine(options: options, logger: logger)
            do {
                let result = try engine.run(seed: seed)
                report.outcome = "success"
                report.exitCode = 0
                report.mode = result.mode.rawValue
                report.systemDisk = result.plan.systemDisk.map { "\($0.displayPath) (\($0.stableIdentity))" }
                report.storageDisks = result.plan.storageDisks.map(\.displayPath)
                report.stepsRun = result.stepsRun
                report.handoff = result.handoff
                report.nodeUUID = result.record.nodeUUID
                report.plan = result.plan
            } catch {
                report.plan = try? engine.plan(seed: seed.seed).0
                throw error
            }
        } catch {
            failure = error
            let coded = (error as? AquariumExitCoded)?.exitCode ?? .runtimeFailure
            report.exitCode = coded.rawValue
            report.outcome = coded == .refused ? "refused" : "failed"
            report.message = String(describing: error)
        }
        let faultPoint = faultPointText.flatMap { FaultPoint(apply: $0) }
        faultPoint?.trigger(.report, after: false)
        if let device = sink.fatDevice {
            do {
                let paths = try report.write(fatDevice: device, seed: loaded?.seed)
                logger.notice("report written to \(paths.joined(separator: ", "))")
            } catch {
                printError("aquarium-firstboot: cannot write the report to the seed volume \(device): \(error)")
            }
        }
        let directories = [sink.directory, reportDirectory].compactMap { $0 }
        for directory in directories {
            do {
                let paths = try report.write(to: directory, seed: loaded?.seed, remountable: mounts)
                logger.notice("report written to \(paths.joined(separator: ", "))")
            } catch {
                printError("aquarium-firstboot: cannot write the report to \(directory): \(error)")
            }
        }
        faultPoint?.trigger(.report, after: true)
        let redact: (String) -> String = { loaded?.seed.redact($0) ?? $0 }
        let output = OutputFormatter(json: json)
        // A failure's text is the error message (below); its JSON is the report.
        if failure == nil || output.format == .json { try output.print(report, redact: redact) }
        if let failure {
            throw ApplyError((failure as? ApplyError)?.kind ?? .runtime, redact(String(describing: failure)))
        }
    }
}

extension Plan: CommandOutput {
    public var text: String { SystemDiskPlanner.render(self) + "\n" }
}

extension ApplyReport: CommandOutput {}
