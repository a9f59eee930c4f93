import Exec
import Foundation
import Logging

/// A disk attached to the virtual machine with a serial number.
public struct VirtualDisk: Equatable, Sendable {
    public enum Bus: String, Sendable, CaseIterable {
        /// AHCI (q35's built-in SATA controller): the guest sees /dev/sdX with transport sata.
        /// The only bus here that reports a rotation rate (virtio-blk has no such property).
        case sata
        case virtio
    }

    public var path: String
    public var serial: String
    public var bus: Bus
    /// Reported rotation rate: 1 means "non-rotating" (an SSD), nil leaves QEMU's default (unknown).
    public var rotationRate: Int?
    /// "raw" or "qcow2".
    public var format: String

    public init(path: String, serial: String, bus: Bus = .sata, rotationRate: Int? = nil, format: String = "raw") {
        self.path = path
        self.bus = bus
        self.serial = serial
        self.rotationRate = rotationRate
        self.format = format
    }
}

/// A QEMU/TCG machine like the nodes Aquarium boots on: q35, UEFI (OVMF), the stick as real USB
/// storage behind an xHCI controller, disks with serials, serial console to a log file.
public struct VirtualMachine: Equatable, Sendable {
    public var stick: String
    public var stickFormat: String
    public var disks: [VirtualDisk]
    public var memoryMiB: Int
    public var cpus: Int
    /// SMBIOS type 1 (system) serial number, what FirstBoot reads as the DMI serial.
    public var systemSerial: String?
    public var firmwareCode: String
    /// A writable copy of the OVMF variable store for this machine.
    public var firmwareVars: String
    public var consoleLog: String
    /// Also show the console on this process's standard output (the demo).
    public var showConsole: Bool
    /// Host port -> guest port TCP forwards on 127.0.0.1 (user-mode networking).
    public var forwards: [(host: Int, guest: Int)]
    public var macAddress: String
    /// The guest address the forwards go to; nil: the one QEMU's DHCP hands out (10.0.2.15).
    public var guestAddress: String?
    /// False (the default): user networking with `restrict=on`, so the guest reaches nothing beyond QEMU's virtual
    /// network (DHCP still works, and the host's port forwards); its connections to any other address fail at once
    /// and nothing it sends leaves this machine. True lets it reach the outside through the host.
    public var allowOutbound: Bool
    /// A tap device (in the network namespace QEMU runs in) instead of user networking: for several guests on one
    /// L2 network, a bridge the caller made in a namespace of its own. `forwards` and `allowOutbound` do not apply.
    /// Let the guest reboot inside this run (A/B update boots); otherwise `-no-reboot` makes a reboot end the run.
    public var allowReboot = false
    public var tap: String?
    /// Run QEMU inside this network namespace (`ip netns exec`): where `tap` lives.
    public var namespace: String?
    /// Secure Boot firmware: `firmwareCode` is OVMF's secboot build, which keeps its variables in SMM-protected
    /// flash (q35 with `smm=on`, the variable flash marked secure). Pair it with a variable store that has keys
    /// enrolled (`OVMF_VARS_4M.ms.fd`: Microsoft's, Secure Boot on).
    public var secureBoot = false
    /// Legacy BIOS instead of UEFI: QEMU's SeaBIOS, no flash drives (`firmwareCode` and `firmwareVars` are not used).
    public var legacyBIOS = false

    /// OVMF's Secure Boot build and the variable store with Microsoft's keys enrolled (Debian's ovmf package).
    public static let secureBootCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
    public static let microsoftKeysVars = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"

    public init(stick: String, stickFormat: String = "raw", disks: [VirtualDisk], memoryMiB: Int = 2048, cpus: Int = 2,
                systemSerial: String? = nil, firmwareCode: String = "/usr/share/OVMF/OVMF_CODE_4M.fd",
                firmwareVars: String, consoleLog: String, showConsole: Bool = false,
                forwards: [(host: Int, guest: Int)] = [], macAddress: String = "52:54:00:12:34:56",
                guestAddress: String? = nil, allowOutbound: Bool = false, tap: String? = nil) {
        self.stick = stick
        self.stickFormat = stickFormat
        self.disks = disks
        self.memoryMiB = memoryMiB
        self.cpus = cpus
        self.systemSerial = systemSerial
        self.firmwareCode = firmwareCode
        self.firmwareVars = firmwareVars
        self.consoleLog = consoleLog
        self.showConsole = showConsole
        self.forwards = forwards
        self.macAddress = macAddress
        self.guestAddress = guestAddress
        self.allowOutbound = allowOutbound
        self.tap = tap
    }

    public static func == (lhs: VirtualMachine, rhs: VirtualMachine) -> Bool { lhs.arguments == rhs.arguments }

    /// The argument vector for qemu-system-x86_64 (no shell involved; paths are passed as they are,
    /// with commas doubled as QEMU's option syntax requires).
    public var arguments: [String] {
        func escape(_ value: String) -> String { value.replacingOccurrences(of: ",", with: ",,") }
        var args = ["-machine", secureBoot ? "q35,smm=on" : "q35", "-cpu", "max", "-accel", "tcg", "-smp", String(cpus),
                    "-m", String(memoryMiB), "-nodefaults"] + (allowReboot ? [] : ["-no-reboot"])
            + (secureBoot ? ["-global", "driver=cfi.pflash01,property=secure,value=on"] : []) + ["-display", "none"]
        if !legacyBIOS {
            args += ["-drive", "if=pflash,format=raw,readonly=on,file=\(escape(firmwareCode))",
                     "-drive", "if=pflash,format=raw,file=\(escape(firmwareVars))"]
        }
        if showConsole {
            args += ["-chardev", "stdio,id=console,signal=off,logfile=\(escape(consoleLog))"]
        } else {
            args += ["-chardev", "file,id=console,path=\(escape(consoleLog))"]
        }
        args += ["-serial", "chardev:console"]
        if let systemSerial { args += ["-smbios", "type=1,serial=\(escape(systemSerial))"] }
        args += ["-device", "qemu-xhci,id=xhci",
                 "-drive", "if=none,id=stick,format=\(stickFormat),file=\(escape(stick))",
                 "-device", "usb-storage,bus=xhci.0,drive=stick,removable=on,bootindex=0"]
        var sataPort = 0
        for (index, disk) in disks.enumerated() {
            args += ["-drive", "if=none,id=disk\(index),format=\(disk.format),file=\(escape(disk.path))"]
            switch disk.bus {
            case .sata:
                var device = "ide-hd,drive=disk\(index),bus=ide.\(sataPort),serial=\(escape(disk.serial))"
                if let rate = disk.rotationRate { device += ",rotation_rate=\(rate)" }
                args += ["-device", device]
                sataPort += 1
            case .virtio:
                args += ["-device", "virtio-blk-pci,drive=disk\(index),serial=\(escape(disk.serial))"]
            }
        }
        var netdev = "user,id=net0"
        if let tap {
            netdev = "tap,id=net0,ifname=\(escape(tap)),script=no,downscript=no"
        } else {
            if !allowOutbound { netdev += ",restrict=on" }
            for forward in forwards {
                netdev += ",hostfwd=tcp:127.0.0.1:\(forward.host)-\(guestAddress ?? ""):\(forward.guest)"
            }
        }
        args += ["-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,mac=\(macAddress)"]
        return args
    }
}

/// How a run ended.
public struct VirtualMachineRun: Sendable {
    public enum Ending: Equatable, Sendable {
        /// The guest powered off (or tried to reboot: -no-reboot turns that into an exit too).
        case exited(status: Int32)
        /// The console printed one of the markers asked for; the machine was then stopped.
        case marker(String)
        case timedOut
        /// This process was told to stop (SIGTERM, SIGINT or SIGHUP, after `stopOnSignals()`): the machine was stopped
        /// with it.
        case interrupted(signal: Int32)
    }

    public var ending: Ending
    public var seconds: Double
    /// Seconds from start until each marker first appeared on the console.
    public var markerTimes: [String: Double]
    public var console: String
}

/// Runs a `VirtualMachine` and watches its console.
public struct VirtualMachineRunner {
    public var qemu: String
    public var logger: Logger

    public init(qemu: String = "qemu-system-x86_64", logger: Logger = Logger(label: "aquarium.vm")) {
        self.qemu = qemu
        self.logger = logger
    }

    /// Boots `machine`; returns when the guest exits, when one of `stopMarkers` appears on the
    /// console (the machine is then stopped after `graceSeconds`), or after `timeoutSeconds`.
    /// `watchMarkers` are only timed. `whileRunning` is called once, with the machine still up, when
    /// the first stop marker appears (to talk to the guest through its forwarded ports); the grace
    /// period starts after it returns. Only the QEMU process started here is ever signalled.
    public func run(_ machine: VirtualMachine, timeoutSeconds: Double, stopMarkers: [String] = [],
                    watchMarkers: [String] = [], graceSeconds: Double = 0,
                    whileRunning: ((String) -> Void)? = nil) throws -> VirtualMachineRun {
        guard let executable = Command.resolve(qemu) else {
            throw CommandError(command: Command(qemu), status: nil, standardError: "", reason: "QEMU is not installed (apt-get install qemu-system-x86 ovmf)")
        }
        guard FileManager.default.createFile(atPath: machine.consoleLog, contents: nil) else {
            throw CommandError(command: Command(qemu), status: nil, standardError: "", reason: "cannot create the console log \(machine.consoleLog)")
        }
        let command = machine.namespace.map { Command("ip", ["netns", "exec", $0, executable] + machine.arguments) }
            ?? Command(executable, machine.arguments)
        logger.info("starting \(command)")
        let start = Date()
        // Its own process group, so stopping it stops all of it; except when its console is on our terminal (the
        // demo), where Ctrl-C must reach it as it reaches us.
        let process = try command.start(standardOutput: machine.showConsole ? .inherit : .null,
                                        standardError: .file(machine.consoleLog + ".qemu-stderr", append: false),
                                        ownProcessGroup: !machine.showConsole)
        var console = ConsoleLog(path: machine.consoleLog, markers: stopMarkers + watchMarkers)
        var markerTimes: [String: Double] = [:]
        var ending: VirtualMachineRun.Ending?
        var stopAt: Date?
        while ending == nil {
            let termination = process.wait(timeout: 0.5)
            let elapsed = Date().timeIntervalSince(start)
            for marker in console.readNew() where markerTimes[marker] == nil {
                markerTimes[marker] = elapsed
                logger.info("console: '\(marker)' after \(Int(elapsed)) s")
                if stopMarkers.contains(marker) && stopAt == nil {
                    if process.isRunning { whileRunning?(marker) }
                    stopAt = Date().addingTimeInterval(graceSeconds)
                }
            }
            if let termination = termination ?? process.poll() {
                // A signal counts as its number, as Foundation's terminationStatus did.
                switch termination {
                case .exited(let status), .signalled(let status): ending = .exited(status: status)
                }
            } else if let stopAt, Date() >= stopAt, let first = stopMarkers.first(where: { markerTimes[$0] != nil }) {
                process.terminate(grace: 10)
                ending = .marker(first)
            } else if elapsed > timeoutSeconds {
                process.terminate(grace: 10)
                ending = .timedOut
            } else if pendingStopSignal != 0 {
                // In a process group of its own QEMU would outlive us: it stops first.
                logger.notice("signal \(pendingStopSignal): stopping the machine")
                process.terminate(grace: 10)
                ending = .interrupted(signal: pendingStopSignal)
            }
        }
        _ = console.readNew()
        return VirtualMachineRun(ending: ending ?? .timedOut, seconds: Date().timeIntervalSince(start),
                                 markerTimes: markerTimes, console: console.finish())
    }

    /// From now on SIGTERM, SIGINT and SIGHUP stop the running machine and make `run` return `.interrupted` instead of
    /// ending this process at once, which would leave QEMU (in a process group of its own) running with its disks.
    public static func stopOnSignals() {
        for number in [SIGTERM, SIGINT, SIGHUP] {
            _ = signal(number) { pendingStopSignal = $0 }
        }
    }

    /// The console so far, decoded leniently: a stray byte (firmware output, a garbled line) becomes U+FFFD instead of
    /// turning the whole console into nothing, which would make every "the console does not contain X" check pass.
    public static func readConsole(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// The signal `VirtualMachineRunner.stopOnSignals()` caught, 0 while none came; written by the handler only.
nonisolated(unsafe) private var pendingStopSignal: Int32 = 0
