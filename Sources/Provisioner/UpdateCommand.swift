import ArgumentParser
import BootSlots
import CommandSupport
import Exec
import Foundation

/// `aquarium-provision update IMAGE | rollback | bless | check | status`.
public struct UpdateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "update",
        abstract: "Update the boot stick's inactive root slot from an image or go back to it; mark a new slot good; report rollbacks.",
        discussion: """
            Examples:
              aquarium-provision update /var/lib/aquarium/aquarium.raw.zst  # on trial
              aquarium-provision reboot                      # into the new slot
              aquarium-provision update status               # which release runs
              aquarium-provision update --rolling https://build.example/aquarium.raw.zst
              aquarium-provision update rollback             # later, on purpose
            """,
        subcommands: [UpdateInstallCommand.self, UpdateRollbackCommand.self, UpdateBlessCommand.self, UpdateCheckCommand.self, UpdateStatusCommand.self],
        defaultSubcommand: UpdateInstallCommand.self)

    public init() {}
}

/// Options every update subcommand shares: where the stick is, which root runs, where events go.
public struct StickOptions: ParsableArguments {
    @Option(name: .long, help: "The boot stick (default: the disk holding the running root's partition).") public var stick: String?
    @Option(name: .customLong("running-root"), help: "The running root's PARTUUID (default: root=PARTUUID= of /proc/cmdline).")
    public var runningRoot: String?
    @Option(name: .long, help: "The root directory whose /var/lib/aquarium gets the events.") public var root = "/"
    @Option(name: .customLong("efivars"), help: "efivarfs (LoaderBootCountPath).") public var efivars = "/sys/firmware/efi/efivars"
    @Option(name: .customLong("kernel-command-line"), help: ArgumentHelp("Tests: the kernel command line file.", visibility: .hidden)) public var kernelCommandLine = "/proc/cmdline"

    public init() {}

    func updater(_ global: GlobalOptions) throws -> SlotUpdater {
        try SlotUpdater.running(layout: Layout(root: root), logger: global.logger("aquarium.update"), stick: stick,
                                runningRoot: runningRoot)
    }

    /// The entry this boot was counted against (nil: not a counted boot): systemd-boot names it in the
    /// LoaderBootCountPath EFI variable; GRUB's trial entry puts `aquarium.counted` on the command line, and the entry
    /// is the running slot's counted one once GRUB's counter is carried into its name.
    func countedEntry(_ updater: @autoclosure () throws -> SlotUpdater) throws -> String? {
        if let name = FileManager.default.contents(atPath: "\(efivars)/LoaderBootCountPath-\(StickNames.loaderVendorGUID)")
            .flatMap(bootCountEntryName(efiVariable:)) {
            return name
        }
        let commandLine = (try? String(contentsOfFile: kernelCommandLine, encoding: .utf8)) ?? ""
        guard commandLine.split(whereSeparator: \.isWhitespace).contains(where: { $0.hasPrefix(GrubBoot.countedParameter) }) else {
            return nil
        }
        return try updater().grubCountedEntry(commandLine: commandLine)
    }
}

public struct UpdateInstallCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Write IMAGE's root into the slot that is not running and boot it next, on trial (3 tries).",
        discussion: """
            IMAGE is an A/B image from aquarium-image build: NAME.raw, NAME.raw.zst, or an http(s) URL of either. It is \
            checked against its bmap (NAME.raw.bmap beside it) before anything is written: a damaged, truncated or \
            different image is refused (exit 3), an image without a bmap too unless --no-bmap is given. Its \
            root is written into the inactive slot and read back, its kernel and initrd go to the ESP, and a loader entry \
            with three tries (aquarium-b+3.conf) makes it the next boot. Marked good by aquarium-slot-good.service once \
            FirstBoot and the Provisioner succeed on it; otherwise the tries run out and the current slot boots again. \
            Refused (exit 3) on a stick made by an image without A/B slots (reflash it), for an image without them, for a \
            root that does not fit the slot, and while the running slot is itself still on trial.

            Examples:
              aquarium-provision update install /var/lib/aquarium/aquarium.raw.zst
              aquarium-provision update /var/lib/aquarium/aquarium.raw --reboot
              aquarium-provision update --rolling https://build.example/aquarium.raw.zst
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var stickOptions: StickOptions
    @Argument(help: "The image: NAME.raw, NAME.raw.zst or an http(s) URL.") public var image: String
    @Option(name: .long, help: """
        The bmap to check IMAGE against before anything is written (default: NAME.raw.bmap beside it, else IMAGE.bmap; \
        at the same place for a URL).
        """) public var bmap: String?
    @Flag(name: .customLong("no-bmap"), help: "Write IMAGE without checking it against a bmap (only the read-back of the slot).")
    public var noBmap = false
    @Flag(name: .long, help: "Reboot into the new slot when it is written.") public var reboot = false
    @Flag(name: .long, help: """
        On a monitor node: update every node of the cluster, one at a time (HEALTH_OK first; the node updates and \
        reboots; the next once it runs the new release), this node last; stop at the first that fails. IMAGE must \
        be readable by every node at that path or URL.
        """) public var rolling = false
    @Option(name: .long, help: "With --rolling: how long a node may take to update, reboot and rejoin (seconds).")
    public var timeout: Double = 3600
    @Option(name: .customLong("health-timeout"), help: "With --rolling: how long to wait for HEALTH_OK before each node (seconds).")
    public var healthTimeout: Double = 300

    public init() {}

    public mutating func validate() throws {
        if bmap != nil && noBmap { throw ValidationError("--bmap and --no-bmap exclude each other") }
    }

    var bmapSource: BmapSource { noBmap ? .unchecked : bmap.map { .file($0) } ?? .beside }

    public func run() throws {
        if rolling {
            try RootOptions.parse(["--root", stickOptions.root]).operations(global)
                .rollingUpdate(image: image, bmap: bmapSource, timeout: timeout, healthTimeout: healthTimeout)
            return
        }
        let installed = try stickOptions.updater(global).install(image: image, bmap: bmapSource)
        print("\(installed.release) written to \(installed.slot.name) (\(installed.bytesWritten >> 20) MiB, read back); "
              + "entry \(installed.entryFileName): the next boot tries it \(StickNames.trialTries) times")
        if reboot { try Exec.Command("systemctl", ["reboot"]).run() }
    }
}

public struct UpdateRollbackCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Boot the other slot's release again (on trial, 3 tries), the running slot staying the fallback.",
        discussion: """
            For going back on purpose to the release the node ran before its last update (an update that boots and \
            provisions fine but misbehaves later). The other slot's good loader entry is written again so that it \
            boots next, counted like an update: marked good once FirstBoot and the Provisioner succeed on it, otherwise \
            its tries run out and the running slot boots again by itself. Nothing is written to either root. Refused \
            (exit 3) when the other slot is empty, holds an update that failed or has not booted yet, or while the \
            running slot is itself still on trial.

            Examples:
              aquarium-provision update status        # which release each slot holds
              aquarium-provision update rollback      # boots next, on trial
              aquarium-provision reboot               # maintenance, then the reboot
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var stickOptions: StickOptions
    @Flag(name: .long, help: "Reboot into the other slot right away (without entering maintenance first).") public var reboot = false

    public init() {}

    public func run() throws {
        let switched = try stickOptions.updater(global).rollback()
        print("\(switched.release) in \(switched.slot.name) boots next (entry \(switched.entryFileName), "
              + "\(StickNames.trialTries) tries); `aquarium-provision reboot` to boot it with maintenance around the reboot")
        if reboot { try Exec.Command("systemctl", ["reboot"]).run() }
    }
}

public struct UpdateBlessCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bless",
        abstract: "Mark the running slot good when this is a counted (trial) boot (aquarium-slot-good.service).",
        discussion: """
            Example:
              aquarium-provision update bless     # as aquarium-slot-good.service
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var stickOptions: StickOptions
    @Option(name: .long, help: "The counted entry's file name (default: from LoaderBootCountPath).") public var entry: String?

    public init() {}

    public func run() throws {
        guard let counted = try entry ?? stickOptions.countedEntry(try stickOptions.updater(global)) else {
            print("aquarium: not a counted boot (no LoaderBootCountPath, no \(GrubBoot.countedParameter)): nothing to mark good")
            return
        }
        if let text = try stickOptions.updater(global).bless(countedEntry: counted) { print("aquarium: " + text) }
    }
}

public struct UpdateCheckCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Report (once, as an event) an update whose tries ran out and the rollback to this slot (every boot).",
        discussion: """
            Example:
              aquarium-provision update check     # as aquarium-slot-check.service
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var stickOptions: StickOptions

    public init() {}

    public func run() throws {
        let updater = try stickOptions.updater(global)
        for message in try updater.reportRollback() { print("aquarium: " + message) }
        if let counted = try stickOptions.countedEntry(updater) {
            print("aquarium: trial boot of \(counted); it is marked good once FirstBoot and the Provisioner succeed")
        }
    }
}

public struct UpdateStatusCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "status", abstract: "The stick's slots: release, state (good, on trial, failed, empty), which runs.",
        discussion: """
            Examples:
              aquarium-provision update status       # both slots, which one runs
              aquarium-provision update rollback     # the other slot's release
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var stickOptions: StickOptions

    public init() {}

    public func run() throws {
        let updater = try stickOptions.updater(global)
        print(try SlotsView.read(updater.stick, runningRoot: updater.runningRoot).text)
    }
}
