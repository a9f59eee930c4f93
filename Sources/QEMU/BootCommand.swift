import ArgumentParser
import CommandSupport
import Foundation

/// `aquarium-image boot STICK --disk ...`: boots a stick image in QEMU (TCG, q35, OVMF, the stick as
/// USB storage) with blank or provisioned disks, to try an image or a seed before flashing.
public struct BootCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Boot a stick image in QEMU like a node: UEFI, the stick as USB storage, SATA disks with serials.",
        discussion: """
            --disk PATH:SERIAL[:ssd|hdd][:virtio] attaches a raw disk image (repeatable); 'ssd' reports \
            rotation rate 1, 'hdd' 7200. The console is shown and saved to --console-log. The guest's user \
            network is restricted (restrict=on): DHCP and --forward work, nothing leaves this machine unless \
            --allow-outbound is given. The machine \
            stops when the guest powers off, when --stop-on TEXT appears on the console, or after --timeout.
            """)

    @OptionGroup public var global: GlobalOptions

    @Argument(help: "The stick image (raw). It is written to by the guest: boot a copy to keep the original.")
    public var stick: String

    @Option(name: .customLong("disk"), help: "PATH:SERIAL[:ssd|hdd][:virtio]; repeatable.")
    public var disks: [String] = []

    @Option(name: .customLong("system-serial"), help: "SMBIOS system serial number (the DMI serial FirstBoot reads).")
    public var systemSerial: String?

    @Option(name: .customLong("console-log"), help: "Where to save the serial console.")
    public var consoleLog = "console.log"

    @Option(help: "Stop after this many seconds.")
    public var timeout: Double = 900

    @Option(name: .customLong("stop-on"), help: "Stop the machine once this text appears on the console; repeatable.")
    public var stopOn: [String] = []

    @Option(name: .customLong("forward"), help: "HOSTPORT:GUESTPORT TCP forward on 127.0.0.1; repeatable.")
    public var forwards: [String] = []

    @Flag(name: .customLong("allow-outbound"),
          help: "Let the guest reach addresses beyond QEMU's virtual network through this host (default: restrict=on, nothing leaves this machine).")
    public var allowOutbound = false

    @Flag(help: "Do not show the console on standard output.")
    public var quiet = false

    public init() {}

    public func run() throws {
        let parsed = try disks.map { try Self.parseDisk($0) }
        let vars = consoleLog + ".OVMF_VARS.fd"
        try? FileManager.default.removeItem(atPath: vars)
        try FileManager.default.copyItem(atPath: "/usr/share/OVMF/OVMF_VARS_4M.fd", toPath: vars)
        let forwardPairs = try forwards.map { text -> (host: Int, guest: Int) in
            let parts = text.split(separator: ":").compactMap { Int($0) }
            guard parts.count == 2 else { throw ValidationError("--forward '\(text)': expected HOSTPORT:GUESTPORT") }
            return (host: parts[0], guest: parts[1])
        }
        let machine = VirtualMachine(stick: stick, disks: parsed, systemSerial: systemSerial, firmwareVars: vars,
                                     consoleLog: consoleLog, showConsole: !quiet, forwards: forwardPairs,
                                     allowOutbound: allowOutbound)
        let result = try VirtualMachineRunner(logger: global.logger("aquarium.vm"))
            .run(machine, timeoutSeconds: timeout, stopMarkers: stopOn)
        printError("boot ended after \(Int(result.seconds)) s: \(result.ending); console saved to \(consoleLog)")
        if result.ending == .timedOut { throw ExitCode(AquariumExit.runtimeFailure.rawValue) }
    }

    /// Parses PATH:SERIAL[:ssd|hdd][:virtio].
    public static func parseDisk(_ text: String) throws -> VirtualDisk {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ValidationError("--disk '\(text)': expected PATH:SERIAL[:ssd|hdd][:virtio]")
        }
        guard parts[1].count <= 20, parts[1].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw ValidationError("--disk '\(text)': the serial must be at most 20 letters, digits, '-' or '_'")
        }
        var disk = VirtualDisk(path: parts[0], serial: parts[1])
        for flag in parts.dropFirst(2) {
            switch flag {
            case "ssd": disk.rotationRate = 1
            case "hdd": disk.rotationRate = 7200
            case "virtio": disk.bus = .virtio
            default: throw ValidationError("--disk '\(text)': unknown flag '\(flag)' (ssd, hdd, virtio)")
            }
        }
        if disk.bus == .virtio && disk.rotationRate != nil {
            throw ValidationError("--disk '\(text)': virtio-blk cannot report a rotation rate; use the default SATA bus")
        }
        return disk
    }
}
