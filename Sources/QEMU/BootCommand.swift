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
            --allow-outbound is given. With --tap the guest is on that tap device instead (several guests on one \
            bridge: run each boot inside the network namespace that holds the bridge and its taps). The machine \
            stops when the guest powers off, when --stop-on TEXT appears on the console, after --timeout, or \
            with this command (SIGTERM, SIGINT, SIGHUP: exit 128 + the signal's number).

            Examples:
              cp --sparse=always out/aquarium.raw stick.raw   # keep the original
              aquarium-image seed inject stick.raw node-01.yaml
              truncate -s 12G ssd.raw                         # a blank system disk
              aquarium-image boot stick.raw --disk ssd.raw:SSD1:ssd
              aquarium-image boot stick.raw --disk ssd.raw:SSD1:ssd --forward 2222:22
              aquarium-image boot stick.raw --bios --disk ssd.raw:SSD1:ssd
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

    @Option(help: "Attach the guest's NIC to this existing tap device instead of QEMU's user network.")
    public var tap: String?

    @Option(help: "The guest NIC's MAC address.")
    public var mac = "52:54:00:12:34:56"

    @Option(help: "Virtual CPUs.")
    public var cpus = 2

    @Option(name: .customLong("memory"), help: "Memory in MiB.")
    public var memoryMiB = 2048

    @Flag(name: .customLong("allow-reboot"), help: "Let the guest reboot within this run (by default a reboot ends it).")
    public var allowReboot = false
    @Flag(help: "Do not show the console on standard output.")
    public var quiet = false
    @Flag(name: .customLong("secure-boot"), help: "Secure Boot enforced with Microsoft's keys enrolled (OVMF's secboot build and its ms variables), as on stock server firmware.")
    public var secureBoot = false
    @Flag(name: .customLong("bios"), help: "Legacy BIOS (QEMU's SeaBIOS) instead of UEFI: for sticks with the signed chain (the default, not --systemd-boot), whose GRUB also boots there.")
    public var legacyBIOS = false

    public init() {}

    public func run() throws {
        let parsed = try disks.map { try Self.parseDisk($0) }
        let forwardPairs = try forwards.map { text -> (host: Int, guest: Int) in
            let parts = text.split(separator: ":").compactMap { Int($0) }
            guard parts.count == 2 else { throw ValidationError("--forward '\(text)': expected HOSTPORT:GUESTPORT") }
            return (host: parts[0], guest: parts[1])
        }
        if tap != nil && (!forwardPairs.isEmpty || allowOutbound) {
            throw ValidationError("--tap replaces QEMU's user network: --forward and --allow-outbound do not apply")
        }
        let normalisedMAC = mac.lowercased()
        let octets = normalisedMAC.split(separator: ":", omittingEmptySubsequences: false)
        guard octets.count == 6, octets.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isHexDigit) }) else {
            throw ValidationError("--mac '\(mac)': expected six hexadecimal pairs such as 52:54:00:12:34:56")
        }
        guard (1...16).contains(cpus), (512...65536).contains(memoryMiB) else {
            throw ValidationError("--cpus 1...16 and --memory 512...65536 (MiB)")
        }
        if legacyBIOS && secureBoot { throw ValidationError("--bios and --secure-boot exclude each other: Secure Boot is UEFI's") }
        let vars = consoleLog + ".OVMF_VARS.fd"
        try? FileManager.default.removeItem(atPath: vars)
        try FileManager.default.copyItem(atPath: secureBoot ? VirtualMachine.microsoftKeysVars : "/usr/share/OVMF/OVMF_VARS_4M.fd",
                                         toPath: vars)
        var machine = VirtualMachine(stick: stick, disks: parsed, memoryMiB: memoryMiB, cpus: cpus, systemSerial: systemSerial,
                                     firmwareCode: secureBoot ? VirtualMachine.secureBootCode : "/usr/share/OVMF/OVMF_CODE_4M.fd",
                                     firmwareVars: vars, consoleLog: consoleLog, showConsole: !quiet, forwards: forwardPairs,
                                     macAddress: normalisedMAC, allowOutbound: allowOutbound, tap: tap)
        machine.allowReboot = allowReboot
        machine.secureBoot = secureBoot
        machine.legacyBIOS = legacyBIOS
        VirtualMachineRunner.stopOnSignals()
        let result = try VirtualMachineRunner(logger: global.logger("aquarium.vm"))
            .run(machine, timeoutSeconds: timeout, stopMarkers: stopOn)
        printError("boot ended after \(Int(result.seconds)) s: \(result.ending); console saved to \(consoleLog)")
        if result.ending == .timedOut { throw ExitCode(AquariumExit.runtimeFailure.rawValue) }
        if case .interrupted(let signal) = result.ending { throw ExitCode(128 + signal) }
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
