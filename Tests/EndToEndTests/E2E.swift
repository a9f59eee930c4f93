import Exec
import Foundation
import QEMU
import Testing
import TestSupport

/// Shared state of the end-to-end suite: one image build per run (the root filesystem cache makes
/// reruns fast), working directories, seed injection, boots with saved consoles, and figures.
final class E2E: @unchecked Sendable {
    static let shared = E2E()
    /// FirstBoot's handoff line on the console ("aquarium-firstboot[PID]: handoff: ...").
    static let handoffMarker = "]: handoff: "

    /// Seconds an image build may take (each profile).
    static let imageBuildLimit = 1500

    let root: String
    let cache: String
    private let lock = NSLock()
    private var built: [Profile: Result<String, Error>] = [:]

    private init() {
        let environment = ProcessInfo.processInfo.environment
        root = environment["AQUARIUM_E2E_DIR"] ?? "/var/tmp/aquarium-e2e"
        // The same cache as the full-build test, so CI debootstraps once.
        cache = environment["AQUARIUM_IMAGE_CACHE"] ?? "/var/cache/aquarium-image"
    }

    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func directory(_ name: String) throws -> String {
        let path = root + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The image profiles the boots use: "minimal" (no Ceph) for the FirstBoot boots, "full" (the appliance, with
    /// Ceph) for the boot that provisions a cluster.
    enum Profile: String {
        case minimal, full
        /// "minimal" booting through an unsigned systemd-boot (`build --systemd-boot`) instead of the default signed chain.
        case minimalSystemdBoot = "minimal-systemd-boot"
        /// "minimal" in the locked mode (`build --locked`), from `lockedMaterial()`'s description and keys.
        case minimalLocked = "minimal-locked"

        var buildArguments: [String] {
            switch self {
            case .minimalSystemdBoot: ["--profile", "minimal", "--systemd-boot"]
            case .minimalLocked: ["--profile", "minimal"]
            case .minimal, .full: ["--profile", rawValue]
            }
        }
    }

    /// What the locked-mode boots share: the boot signing pair (`keys init`), a seed signing key (`seed keygen`), and
    /// a copy of image/ whose command line carries the test switches (the UKI's command line is signed: nothing can be
    /// appended on the stick) and which trusts that seed key.
    struct LockedMaterial {
        var bootKeys: String
        var seedKey: String
        var description: String
        var key: String { bootKeys + "/aquarium-db.key" }
        var certificate: String { bootKeys + "/aquarium-db.crt" }
    }

    private var locked: LockedMaterial?

    func lockedMaterial() throws -> LockedMaterial {
        lock.lock()
        defer { lock.unlock() }
        return try makeLockedMaterial()
    }

    private func makeLockedMaterial() throws -> LockedMaterial {
        if let locked { return locked }
        let base = try directory("locked")
        for name in ["keys", "description", "seed-key", "seed-key.pub"] { try? FileManager.default.removeItem(atPath: base + "/" + name) }
        let made = try Products.run("aquarium-image", ["keys", "init", "--output", base + "/keys", "--name", "Aquarium e2e"])
        guard made.status == 0 else { throw CommandError(command: made.command, status: made.status, standardError: made.errorOutput, reason: "keys init failed") }
        let seedKey = try Products.run("aquarium-image", ["seed", "keygen", "--output", base + "/seed-key"])
        guard seedKey.status == 0 else { throw CommandError(command: seedKey.command, status: seedKey.status, standardError: seedKey.errorOutput, reason: "seed keygen failed") }
        let description = base + "/description"
        try FileManager.default.copyItem(atPath: E2E.repository + "/image", toPath: description)
        try FileManager.default.copyItem(atPath: base + "/seed-key.pub", toPath: description + "/e2e-seed.pub")
        let yaml = description + "/aquarium.yaml"
        var text = try String(contentsOfFile: yaml, encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("kernel_cmdline: \"") }),
              let close = line.lastIndex(of: "\""), close > line.index(line.startIndex, offsetBy: 17),
              text.contains("trusted_seed_keys: []") else {
            throw MissingCapability(what: "kernel_cmdline and an empty trusted_seed_keys in image/aquarium.yaml")
        }
        var edited = String(line)
        edited.insert(contentsOf: " aquarium.poweroff aquarium.provision=off", at: edited.index(edited.startIndex, offsetBy: line.distance(from: line.startIndex, to: close)))
        text = text.replacingOccurrences(of: String(line), with: edited)
            .replacingOccurrences(of: "trusted_seed_keys: []", with: "trusted_seed_keys: [e2e-seed.pub]")
        try Data(text.utf8).write(to: URL(fileURLWithPath: yaml))
        let material = LockedMaterial(bootKeys: base + "/keys", seedKey: base + "/seed-key", description: description)
        locked = material
        return material
    }

    /// An OVMF variable store whose PK, KEK and db hold only the operator's certificate, Secure Boot on (virt-fw-vars
    /// from PyPI's virt-firmware): a node locked down as docs/image.md recommends, Microsoft's CAs removed.
    func enrolledVars(_ material: LockedMaterial) throws -> String {
        let output = try directory("locked") + "/OVMF_VARS_4M.aquarium-only.fd"
        guard let tool = Command.resolve("virt-fw-vars") else {
            throw MissingCapability(what: "virt-fw-vars (pip install virt-firmware; scripts/install-deps does it)")
        }
        try? FileManager.default.removeItem(atPath: output)
        try Command(tool, ["--input", "/usr/share/OVMF/OVMF_VARS_4M.fd", "--output", output, "--enroll-cert", material.certificate,
                           "--no-microsoft", "--add-db", "a9b1c0e2-0a5b-4c5e-9c8e-61717561726d", material.certificate, "--sb"]).run()
        return output
    }

    /// Builds the image from image/ once per profile (the tools inside are statically linked builds).
    func image(_ profile: Profile = .minimal) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let result = built[profile] { return try result.get() }
        let result = Result { () throws -> String in
            let output = try directory("out-" + profile.rawValue)
            let start = Date()
            // The tools that go into the image must run without a Swift toolchain: scripts/build-node-tools
            // makes statically linked builds, and `build` installs the ones beside the aquarium-image it runs.
            guard let tools = ProcessInfo.processInfo.environment["AQUARIUM_NODE_TOOLS"] else {
                throw MissingCapability(what: "AQUARIUM_NODE_TOOLS (run scripts/run-tests, which builds the node tools)")
            }
            // Bounded: a cold build (debootstrap from the mirror, then apt) takes about 5 minutes here; a hung mirror
            // must fail the suite with a message instead of eating CI's time.
            var description = E2E.repository + "/image"
            var extra: [String] = []
            if profile == .minimalLocked {
                let material = try makeLockedMaterial()
                description = material.description
                extra = ["--locked", "--signing-key", material.key, "--signing-cert", material.certificate]
            }
            let run = try Command(tools + "/aquarium-image", ["build", "--description", description,
                                                             "--output", output, "--cache", cache] + profile.buildArguments
                                                             + extra + ["--quiet"])
                .timeLimited(Self.imageBuildLimit).run(acceptedStatuses: Set(0...255))
            guard run.status == 0 else {
                throw CommandError(command: run.command, status: run.status, standardError: run.errorOutput,
                                   reason: run.timedOut ? "image build exceeded \(Self.imageBuildLimit) s and was killed" : "image build failed")
            }
            note("image build (\(profile.rawValue)): \(Int(Date().timeIntervalSince(start))) s")
            let images = try FileManager.default.contentsOfDirectory(atPath: output).filter { $0.hasSuffix(".raw") }
            guard let image = images.first else { throw MissingCapability(what: "a .raw image in \(output)") }
            return output + "/" + image
        }
        built[profile] = result
        return try result.get()
    }

    func inject(_ stick: Stick, seed text: String, as name: String?) throws {
        let file = try directory("seeds") + "/\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        var arguments = ["seed", "inject", stick.path, file]
        if let name { arguments += ["--as", name] }
        let run = try Products.run("aquarium-image", arguments)
        guard run.status == 0 else {
            throw CommandError(command: run.command, status: run.status, standardError: run.errorOutput, reason: "seed inject failed")
        }
    }

    /// Boots a node until it powers off (at most `timeout` seconds under TCG), or until one of `stopMarkers` appears
    /// on the console (`whileRunning` runs first, with the node still up); the console is kept in logs/. With `network`
    /// the guest is on that private network instead of QEMU's user network (`forwards` do not apply).
    func boot(_ name: String, stick: Stick, disks: [VirtualDisk], systemSerial: String? = nil, timeout: Double = 900,
              forwards: [(host: Int, guest: Int)] = [], guestAddress: String? = nil, stopMarkers: [String] = [],
              watchMarkers: [String] = [], secureBoot: Bool = false, legacyBIOS: Bool = false, varsTemplate: String? = nil,
              network: GuestNetwork? = nil, whileRunning: ((String) -> Void)? = nil) throws -> VirtualMachineRun {
        let logs = try directory("logs")
        let vars = logs + "/\(name).OVMF_VARS.fd"
        try? FileManager.default.removeItem(atPath: vars)
        // Secure Boot: OVMF's secboot build with Microsoft's keys enrolled and Secure Boot on, as stock firmware (or the
        // given store, e.g. with the operator's certificate added).
        try FileManager.default.copyItem(atPath: varsTemplate ?? (secureBoot ? VirtualMachine.microsoftKeysVars : "/usr/share/OVMF/OVMF_VARS_4M.fd"),
                                         toPath: vars)
        var machine = VirtualMachine(stick: stick.path, disks: disks, memoryMiB: 2048, cpus: 2, systemSerial: systemSerial,
                                     firmwareCode: secureBoot ? VirtualMachine.secureBootCode : "/usr/share/OVMF/OVMF_CODE_4M.fd",
                                     firmwareVars: vars, consoleLog: logs + "/\(name).console.log", forwards: forwards,
                                     guestAddress: guestAddress)
        machine.secureBoot = secureBoot
        machine.legacyBIOS = legacyBIOS
        if let network {
            machine.tap = network.tap
            machine.namespace = network.namespace
        }
        let run = try VirtualMachineRunner().run(machine, timeoutSeconds: timeout, stopMarkers: stopMarkers,
                                                 watchMarkers: ["Linux version", E2E.handoffMarker] + watchMarkers,
                                                 whileRunning: whileRunning)
        note("boot \(name): \(run.ending) after \(Int(run.seconds)) s; kernel at \(run.markerTimes["Linux version"].map { Int($0) } ?? -1) s, handoff at \(run.markerTimes[E2E.handoffMarker].map { Int($0) } ?? -1) s")
        return run
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now (the kernel picks it).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MissingCapability(what: "a TCP socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw MissingCapability(what: "a free TCP port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Appends a figure to logs/figures.txt (boot times, build time) for the record.
    func note(_ line: String) {
        let path = (try? directory("logs")).map { $0 + "/figures.txt" } ?? "/tmp/aquarium-e2e-figures.txt"
        let data = Data((line + "\n").utf8)
        if let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write(data)
            try? handle.close()
        } else {
            _ = FileManager.default.createFile(atPath: path, contents: data)
        }
        print("e2e: \(line)")
    }

    /// How many times the kernel started on this console: more than one means the machine rebooted.
    static func kernelStarts(_ console: String) -> Int { console.components(separatedBy: "Linux version ").count - 1 }

    /// What every boot that ends by powering off must show. The exit status alone cannot tell a power-off from a
    /// reboot (QEMU runs with -no-reboot, so a reboot also ends with status 0): the kernel started once, printed
    /// "reboot: Power down" as it powered off, and never "Restarting system".
    static func expectPoweredOff(_ run: VirtualMachineRun, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(run.ending == .exited(status: 0), "\(name): \(run.ending); console tail: \(run.console.suffix(3000))",
                sourceLocation: sourceLocation)
        #expect(kernelStarts(run.console) == 1, "\(name): the kernel started \(kernelStarts(run.console)) times",
                sourceLocation: sourceLocation)
        #expect(run.console.contains("reboot: Power down"), "\(name): no power-off on the console; tail: \(run.console.suffix(2000))",
                sourceLocation: sourceLocation)
        #expect(!run.console.contains("Restarting system"), "\(name): the node rebooted", sourceLocation: sourceLocation)
    }

    /// The console lines that report a unit that failed to start.
    static func failedUnits(_ console: String) -> [String] {
        console.split(whereSeparator: \.isNewline).filter { $0.contains("Failed to start") }.map(String.init)
    }

    /// A seed for a one-SSD, two-HDD node: the SSD becomes the system disk, the HDDs stay for OSDs.
    /// `services` goes under `cluster:` (indented by the caller's YAML: two spaces).
    /// `network` replaces the default (DHCP, public network 10.0.2.0/24: QEMU's user network).
    static func seed(hostname: String, filesystem: String, services: String = "",
                     network: String = "network:\n  public_network: 10.0.2.0/24") -> String {
        """
        version: 1
        host:
          hostname: \(hostname)
        \(network)
        disks:
          system:
            match: {rotational: false, max_size: 16GiB}
            filesystem: \(filesystem)
          storage:
            match: {rotational: true}
        cluster:
          role: bootstrap
        \(services)
        """
    }
}

/// A TCP listener on every address of this host: the "outside" a guest must not reach. A guest connection to the
/// host's own external address goes through QEMU's user network like a connection to any internet address would
/// (QEMU connects from the host on the guest's behalf), so if anything left the guest it arrives here.
final class OutsideListener {
    let port: Int
    private let fd: Int32

    init() throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MissingCapability(what: "a TCP socket") }
        var yes: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = INADDR_ANY
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = self.fd
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound, fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 else {
            close(fd)
            throw MissingCapability(what: "a listening TCP socket on this host")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }

    /// Connections that reached the listener so far (accepted and closed at once).
    func connections() -> Int {
        var count = 0
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { return count }
            close(client)
            count += 1
        }
    }

    /// This host's first global IPv4 address (what a guest would reach through QEMU if it could get out).
    static func hostAddress() throws -> String {
        let output = try Command("ip", ["-4", "-o", "addr", "show", "scope", "global"]).run().output
        let words = output.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        guard let index = words.firstIndex(of: "inet"), index + 1 < words.count,
              let address = words[index + 1].split(separator: "/").first else {
            throw MissingCapability(what: "a global IPv4 address on this host (`ip -4 addr` shows none)")
        }
        return String(address)
    }
}
