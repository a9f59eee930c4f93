import Foundation
import Exec
import QEMU
import Testing
import TestSupport

@Suite("QEMU machines")
struct QEMUTests {
    func machine(_ disks: [VirtualDisk], serial: String? = nil) -> VirtualMachine {
        VirtualMachine(stick: "/images/stick,1.raw", disks: disks, systemSerial: serial, firmwareVars: "/tmp/vars.fd",
                       consoleLog: "/tmp/console.log", forwards: [(host: 17480, guest: 7480)])
    }

    @Test("the argument vector: q35 TCG, OVMF, USB stick on xHCI, SATA disks with serials and rotation rates")
    func argv() {
        let args = machine([VirtualDisk(path: "/d/ssd.raw", serial: "SSD-1", rotationRate: 1),
                            VirtualDisk(path: "/d/hdd.raw", serial: "HDD-1", rotationRate: 7200),
                            VirtualDisk(path: "/d/v.raw", serial: "V1", bus: .virtio)], serial: "NODE-7").arguments
        func value(after flag: String, containing text: String) -> Bool {
            zip(args, args.dropFirst()).contains { $0 == flag && $1.contains(text) }
        }
        #expect(value(after: "-machine", containing: "q35"))
        #expect(value(after: "-cpu", containing: "max"))
        #expect(value(after: "-accel", containing: "tcg"))
        #expect(args.contains("-no-reboot"))
        #expect(value(after: "-device", containing: "qemu-xhci"))
        // a comma in a path is doubled, so it cannot start a new QEMU option
        #expect(value(after: "-drive", containing: "file=/images/stick,,1.raw"))
        #expect(value(after: "-device", containing: "usb-storage,bus=xhci.0,drive=stick"))
        #expect(value(after: "-device", containing: "ide-hd,drive=disk0,bus=ide.0,serial=SSD-1,rotation_rate=1"))
        #expect(value(after: "-device", containing: "ide-hd,drive=disk1,bus=ide.1,serial=HDD-1,rotation_rate=7200"))
        #expect(value(after: "-device", containing: "virtio-blk-pci,drive=disk2,serial=V1"))
        #expect(value(after: "-smbios", containing: "type=1,serial=NODE-7"))
        #expect(value(after: "-netdev", containing: "hostfwd=tcp:127.0.0.1:17480-:7480"))
        #expect(value(after: "-drive", containing: "if=pflash,format=raw,readonly=on"))
        var fixed = machine([])
        fixed.guestAddress = "10.0.2.20"
        #expect(fixed.arguments.contains { $0.contains("hostfwd=tcp:127.0.0.1:17480-10.0.2.20:7480") })
    }

    @Test("user networking is restricted unless outbound traffic is asked for; the forwards stay either way")
    func restrictedNetwork() throws {
        let restricted = machine([]).arguments
        let netdev = try #require(zip(restricted, restricted.dropFirst()).first { $0.0 == "-netdev" }?.1)
        #expect(netdev.hasPrefix("user,id=net0,restrict=on,"), "\(netdev)")
        #expect(netdev.contains("hostfwd=tcp:127.0.0.1:17480-:7480"))
        var open = machine([])
        open.allowOutbound = true
        let openNetdev = try #require(zip(open.arguments, open.arguments.dropFirst()).first { $0.0 == "-netdev" }?.1)
        #expect(!openNetdev.contains("restrict"), "\(openNetdev)")
        #expect(openNetdev.contains("hostfwd=tcp:127.0.0.1:17480-:7480"))
        // aquarium-image boot: restricted unless --allow-outbound
        #expect(try BootCommand.parse(["stick.raw"]).allowOutbound == false)
        #expect(try BootCommand.parse(["stick.raw", "--allow-outbound"]).allowOutbound == true)
    }

    @Test("a tap device replaces the user network (a rack's guests on one bridge); the MAC is the one asked for")
    func tapNetwork() throws {
        var rack = machine([])
        rack.forwards = []
        rack.tap = "aqtap2"
        rack.macAddress = "52:54:00:77:00:02"
        let args = rack.arguments
        let netdev = try #require(zip(args, args.dropFirst()).first { $0.0 == "-netdev" }?.1)
        #expect(netdev == "tap,id=net0,ifname=aqtap2,script=no,downscript=no", "\(netdev)")
        #expect(args.contains("virtio-net-pci,netdev=net0,mac=52:54:00:77:00:02"))
        #expect(try BootCommand.parse(["stick.raw", "--tap", "aqtap2", "--mac", "52:54:00:77:00:02"]).tap == "aqtap2")
        #expect(throws: (any Error).self) {
            try BootCommand.parse(["stick.raw", "--tap", "aqtap2", "--forward", "8080:80"]).run()
        }
        #expect(throws: (any Error).self) {
            try BootCommand.parse(["stick.raw", "--mac", "52:54:00:77:00"]).run()
        }
    }

    @Test("the console is read leniently: a stray byte does not empty it")
    func lenientConsole() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/console.log"
            var bytes = Data("Linux version 6.1\n".utf8)
            bytes.append(contentsOf: [0xff, 0xfe, 0x1b])
            bytes.append(Data("\nsystemd[1]: Failed to start x.service\nreboot: Power down\n".utf8))
            try bytes.write(to: URL(fileURLWithPath: path))
            #expect(String(data: bytes, encoding: .utf8) == nil, "the fixture must not be valid UTF-8")
            let console = VirtualMachineRunner.readConsole(path)
            #expect(console.contains("Failed to start x.service"))
            #expect(console.contains("reboot: Power down"))
            #expect(VirtualMachineRunner.readConsole(dir + "/missing.log").isEmpty)
        }
    }

    @Test("--disk parsing", arguments: [
        ("/d/a.raw:SER1", "SER1", Optional<Int>.none, VirtualDisk.Bus.sata, true),
        ("/d/a.raw:SER1:ssd", "SER1", 1, .sata, true),
        ("/d/a.raw:SER1:hdd", "SER1", 7200, .sata, true),
        ("/d/a.raw:SER1:virtio", "SER1", nil, .virtio, true),
        ("/d/a.raw:SER1:ssd:virtio", "", nil, .virtio, false),
        ("/d/a.raw", "", nil, .sata, false),
        ("/d/a.raw:bad serial", "", nil, .sata, false),
        ("/d/a.raw:SER1:fast", "", nil, .sata, false),
    ] as [(String, String, Int?, VirtualDisk.Bus, Bool)])
    func parseDisk(_ text: String, _ serial: String, _ rate: Int?, _ bus: VirtualDisk.Bus, _ valid: Bool) {
        if valid {
            let disk = try? BootCommand.parseDisk(text)
            #expect(disk?.serial == serial)
            #expect(disk?.rotationRate == rate)
            #expect(disk?.bus == bus)
        } else {
            #expect(throws: (any Error).self) { try BootCommand.parseDisk(text) }
        }
    }

    @Test("a real TCG boot: OVMF reaches its shell when nothing is bootable; the runner stops on the marker",
          .requires(root: false, programs: ["qemu-system-x86_64"]))
    func firmwareBoot() throws {
        try withTemporaryDirectory { dir in
            let stick = dir + "/stick.raw"
            let disk = dir + "/disk.raw"
            for path in [stick, disk] {
                #expect(FileManager.default.createFile(atPath: path, contents: nil))
                #expect(truncate(path, 64 << 20) == 0)
            }
            let vars = dir + "/vars.fd"
            try FileManager.default.copyItem(atPath: "/usr/share/OVMF/OVMF_VARS_4M.fd", toPath: vars)
            let vm = VirtualMachine(stick: stick, disks: [VirtualDisk(path: disk, serial: "BLANK1", rotationRate: 1)],
                                    memoryMiB: 512, cpus: 1, firmwareVars: vars, consoleLog: dir + "/console.log")
            let run = try VirtualMachineRunner().run(vm, timeoutSeconds: 120, stopMarkers: ["Shell>"])
            #expect(run.ending == .marker("Shell>"), "console: \(run.console.suffix(2000))")
            #expect(run.markerTimes["Shell>"] != nil)
        }
    }

    /// Seen with `aquarium-image boot --quiet` (QEMU in a process group of its own): SIGTERM ended the tool and left
    /// QEMU running, its disks still open. Replayed: the tool gets SIGTERM while OVMF runs; it stops QEMU and exits 143.
    @Test("aquarium-image boot stops its QEMU when it is told to stop (SIGTERM), and exits 143",
          .requires(root: false, programs: ["qemu-system-x86_64"]))
    func bootStopsQEMUOnSIGTERM() throws {
        try withTemporaryDirectory { dir in
            let stick = dir + "/stick.raw", disk = dir + "/disk.raw", console = dir + "/console.log"
            for path in [stick, disk] {
                #expect(FileManager.default.createFile(atPath: path, contents: nil))
                #expect(truncate(path, 64 << 20) == 0)
            }
            // QEMU is found by its command line, which names this test's console log (and nothing else does).
            func qemuPIDs() -> [pid_t] {
                ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
                    guard let pid = pid_t(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
                    let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                    return arguments.first?.hasSuffix("qemu-system-x86_64") == true && arguments.contains { $0.contains(console) } ? pid : nil
                }
            }
            let tool = try Command(try Products.path("aquarium-image"),
                                   ["boot", stick, "--disk", disk + ":BLANK1", "--quiet", "--console-log", console,
                                    "--memory", "512", "--cpus", "1", "--timeout", "300"])
                .start(standardOutput: .null, standardError: .file(dir + "/boot.err", append: false))
            defer {
                // Whatever happens above, nothing this test started keeps running.
                _ = tool.terminate(grace: 5)
                for pid in qemuPIDs() { kill(pid, SIGKILL) }
            }
            var started = false
            for _ in 0..<120 where !started {
                started = !qemuPIDs().isEmpty && ((try? FileManager.default.attributesOfItem(atPath: console)[.size] as? Int) ?? 0) > 0
                if !started { usleep(250_000) }
            }
            try #require(started, "QEMU did not start: \(String(decoding: FileManager.default.contents(atPath: dir + "/boot.err") ?? Data(), as: UTF8.self))")
            kill(tool.pid, SIGTERM)
            let ended = tool.wait(timeout: 30)
            #expect(ended == .exited(143), "\(String(describing: ended))")
            #expect(qemuPIDs().isEmpty, "QEMU still runs after the tool stopped: \(qemuPIDs())")
            let errors = String(decoding: FileManager.default.contents(atPath: dir + "/boot.err") ?? Data(), as: UTF8.self)
            #expect(errors.contains("interrupted(signal: 15)"), "\(errors)")
        }
    }
}
