import Crypto
import Disks
import Exec
import Foundation
import Logging
import Seed

/// Where reports go: `reports/` of a seed volume directory (or mounted volume), or a FAT volume written with mtools.
public struct ReportSink: Sendable, Equatable {
    public var directory: String?
    public var fatDevice: String?

    public init(directory: String? = nil, fatDevice: String? = nil) {
        self.directory = directory
        self.fatDevice = fatDevice
    }
}

/// Where the kernel command line says the seed is.
public enum SeedLocation: Equatable, Sendable {
    /// `aquarium.seed=PATH`: a file (or a seed volume directory) in the running system.
    case path(String)
    /// `aquarium.seed=LABEL=NAME:PATH`: PATH on the filesystem labelled NAME.
    case label(String, String)
}

/// Finding the seed: the command line, then the kernel command line, then the `AQUASEED` volume; on a volume,
/// `seeds/<DMI serial>.yaml`, then `seeds/<MAC>.yaml` for any NIC (`52:54:00:12:34:56`, or `52-54-00-12-34-56` on
/// FAT, which forbids ':'), then `seed.yaml`.
public enum SeedDiscovery {
    public static let volumeLabel = "AQUASEED"

    /// The last `aquarium.seed=` of a kernel command line (later arguments override earlier ones, as the kernel's do).
    public static func parseCommandLine(_ text: String) -> SeedLocation? {
        var found: SeedLocation?
        for argument in splitCommandLine(text) where argument.hasPrefix("aquarium.seed=") {
            let value = String(argument.dropFirst("aquarium.seed=".count))
            if value.hasPrefix("LABEL=") {
                let rest = value.dropFirst("LABEL=".count)
                guard let colon = rest.firstIndex(of: ":") else { found = nil; continue }
                let label = String(rest[..<colon]), path = String(rest[rest.index(after: colon)...])
                found = label.isEmpty || path.isEmpty ? nil : .label(label, path)
            } else {
                found = value.isEmpty ? nil : .path(value)
            }
        }
        return found
    }

    /// Splits like the kernel: on spaces, with double quotes grouping.
    static func splitCommandLine(_ text: String) -> [String] {
        var arguments: [String] = []
        var current = ""
        var quoted = false
        for c in text {
            if c == "\"" { quoted.toggle(); continue }
            if !quoted && (c == " " || c == "\n" || c == "\t") {
                if !current.isEmpty { arguments.append(current) }
                current = ""
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { arguments.append(current) }
        return arguments
    }

    /// The seed files to look for on a volume, most specific first (relative paths).
    public static func candidates(dmiSerial: String?, macs: [String]) -> [String] {
        var names: [String] = []
        if let serial = usableSerial(dmiSerial) { names.append("seeds/\(serial).yaml") }
        // FAT (the seed volume) cannot hold ':' in a file name, so `52-54-00-12-34-56.yaml` is looked for as well.
        for mac in macs.map({ $0.lowercased() }).sorted() where isMAC(mac) {
            for name in ["seeds/\(mac).yaml", "seeds/\(mac.replacingOccurrences(of: ":", with: "-")).yaml"]
            where !names.contains(name) {
                names.append(name)
            }
        }
        names.append("seed.yaml")
        return names
    }

    /// The first candidate that exists in `volume`.
    public static func choose(in volume: String, dmiSerial: String?, macs: [String]) -> String? {
        candidates(dmiSerial: dmiSerial, macs: macs).map { volume + "/" + $0 }
            .first { FileManager.default.fileExists(atPath: $0) }
    }

    /// A DMI serial is usable as a file name when it is not a vendor placeholder and has no path characters.
    public static func usableSerial(_ serial: String?) -> String? {
        guard let serial = serial?.trimmingCharacters(in: .whitespacesAndNewlines), !serial.isEmpty else { return nil }
        if SeedFileName.isPlaceholderSerial(serial) { return nil }
        if serial.contains("/") || serial.hasPrefix(".") || serial.contains(where: { $0.isNewline }) { return nil }
        return serial
    }

    static func isMAC(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && $0.allSatisfy(\.isHexDigit) }
            && text != "00:00:00:00:00:00"
    }

    /// MAC addresses of the NICs under `directory` (/sys/class/net), loopback excluded.
    public static func macAddresses(directory: String = "/sys/class/net") -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().compactMap { name -> String? in
            guard name != "lo",
                  let text = try? String(contentsOfFile: "\(directory)/\(name)/address", encoding: .utf8) else { return nil }
            let mac = text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            return isMAC(mac) ? mac : nil
        }
    }

    public static func dmiSerial(path: String = "/sys/class/dmi/id/product_serial") -> String? {
        usableSerial(try? String(contentsOfFile: path, encoding: .utf8))
    }
}

/// Where a seed is looked for on this machine (paths overridable for tests).
public struct SeedFinder {
    public var commandLinePath = "/proc/cmdline"
    public var dmiSerialPath = "/sys/class/dmi/id/product_serial"
    public var netDirectory = "/sys/class/net"
    /// Trusted keys are read from `<root>/etc/aquarium/trusted-seed-keys`.
    public var root = "/"
    /// Limit the search for labelled volumes to these kernel names (tests).
    public var onlyDevices: Set<String>?
    public var logger: Logger

    public init(logger: Logger = Logger(label: "aquarium.firstboot.seed")) { self.logger = logger }

    public var trustedKeysDirectory: String {
        (root == "/" ? "" : root) + "/etc/aquarium/trusted-seed-keys"
    }

    /// Finds, verifies and loads the seed. `mounts` collects what was mounted or copied (the caller removes it);
    /// `sink` is set as soon as the seed volume is known, so a report can go back to it even when the seed on it is
    /// invalid or refused.
    public func find(explicitPath: String?, mounts: inout [String], sink: inout ReportSink) throws -> LoadedSeed {
        if let explicitPath { return try load(fromPathOrVolume: explicitPath, via: "--seed", sink: &sink) }
        // Read to the end (a /proc file's size reads as 0; String(contentsOfFile:) would stop at 4 KiB).
        let commandLine = FileHandle(forReadingAtPath: commandLinePath)
            .flatMap { try? $0.readToEnd() }.map { String(decoding: $0, as: UTF8.self) } ?? ""
        switch SeedDiscovery.parseCommandLine(commandLine) {
        case .path(let path)?:
            return try load(fromPathOrVolume: path, via: "aquarium.seed= on the kernel command line", sink: &sink)
        case .label(let label, let path)?:
            let relative = String(path.drop { $0 == "/" })
            let (volume, fat) = try openVolume(label: label, files: [relative], mounts: &mounts)
            sink = fat.map { ReportSink(fatDevice: $0) } ?? ReportSink(directory: volume + "/reports")
            var loaded = try load(file: volume + "/" + relative, reportDirectory: fat == nil ? volume + "/reports" : nil,
                                  via: "aquarium.seed=LABEL=\(label):\(path)")
            loaded.reportFATDevice = fat
            loaded.path = "LABEL=\(label):/" + relative
            return loaded
        case nil:
            let serial = SeedDiscovery.dmiSerial(path: dmiSerialPath)
            let candidates = SeedDiscovery.candidates(dmiSerial: serial, macs: SeedDiscovery.macAddresses(directory: netDirectory))
            let (volume, fat) = try openVolume(label: SeedDiscovery.volumeLabel, files: candidates, mounts: &mounts)
            sink = fat.map { ReportSink(fatDevice: $0) } ?? ReportSink(directory: volume + "/reports")
            var ignored = ReportSink()
            var loaded = try load(fromPathOrVolume: volume, via: "the \(SeedDiscovery.volumeLabel) volume", sink: &ignored)
            // Name the file as the operator knows it (the temporary copy or mount point goes away).
            loaded.path = "LABEL=\(SeedDiscovery.volumeLabel):" + loaded.path.dropFirst(volume.count)
            if let fat {
                loaded.reportDirectory = nil
                loaded.reportFATDevice = fat
            }
            return loaded
        }
    }

    /// Opens the volume labelled `label`: a FAT volume is read with mtools (no mount, no vfat module needed) by
    /// copying `files` (and their `.sig`) to a temporary directory; any other filesystem is mounted read-only.
    /// Returns the directory and, for FAT, the device (reports are written back to it with mtools).
    func openVolume(label: String, files: [String], mounts: inout [String]) throws -> (String, String?) {
        let (device, type) = try findVolume(label: label)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("aquarium-seed-\(UUID().uuidString)").path
        // A seed holds secrets (join keys): only root may read the copy, from its first byte on.
        let privateDirectory: [FileAttributeKey: Any] = [.posixPermissions: 0o700]
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: privateDirectory)
        mounts.append(directory)
        guard type == "vfat" else {
            try Command("mount", ["-o", "ro,nodev,nosuid,noexec", device, directory]).run()
            return (directory, nil)
        }
        // One listing of the volume, then one read per file that is there: every mtools run is a process start, and a
        // node's first boot (an emulated one even more) pays for each; probing every candidate name took 8 of them.
        // Without a listing (an empty or unreadable volume), every name is tried as before.
        let present = Self.listing(device: device)
        for file in files {
            for name in [file, file + SeedSignature.signatureSuffix] {
                if let present, !Self.listed(name, in: present) { continue }
                // At most one byte more than a seed may hold: an oversized file is refused by the loader, never read whole.
                guard let result = try? Mtools.command("mtype", ["-i", device, "::" + name])
                    .run(outputLimit: SeedLoader.maximumFileSize + 1)
                else { continue }
                let target = directory + "/" + name
                try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent,
                                                        withIntermediateDirectories: true, attributes: privateDirectory)
                guard FileManager.default.createFile(atPath: target, contents: result.standardOutput,
                                                     attributes: [.posixPermissions: 0o600]) else {
                    throw ApplyError(.runtime, "\(target): cannot write the copy of \(name) from \(device)")
                }
            }
        }
        logger.info("read the seed volume \(device) with mtools into \(directory)")
        return (directory, device)
    }

    /// Every file on the FAT volume `device` (`mdir -/ -b`: one `::/DIR/NAME` per line, directories end in `/`), as
    /// FAT compares names: ASCII case folded. Nil when the listing failed (mdir also fails on an empty volume).
    static func listing(device: String) -> Set<String>? {
        guard let result = try? Mtools.command("mdir", ["-/", "-b", "-i", device, "::"]).run() else { return nil }
        return Set(String(decoding: result.standardOutput, as: UTF8.self).split(separator: "\n").map { line in
            asciiLowercased(line.hasPrefix("::/") ? String(line.dropFirst(3)) : String(line))
        })
    }

    /// Whether `name` (relative, `/`-separated) is in a listing. A name with non-ASCII characters counts as listed:
    /// mtools' character set need not be ours, and a read that finds nothing costs only time.
    static func listed(_ name: String, in listing: Set<String>) -> Bool {
        !name.unicodeScalars.allSatisfy(\.isASCII) || listing.contains(asciiLowercased(name))
    }

    private static func asciiLowercased(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { scalar in
            ("A"..."Z").contains(scalar) ? Unicode.Scalar(scalar.value + 32)! : scalar
        }))
    }

    func load(fromPathOrVolume path: String, via: String, sink: inout ReportSink) throws -> LoadedSeed {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ApplyError(.invalid, "\(path) (from \(via)) does not exist; give the seed file or the seed volume")
        }
        guard isDirectory.boolValue else { return try load(file: path, reportDirectory: nil, via: via) }
        sink = ReportSink(directory: path + "/reports")
        let serial = SeedDiscovery.dmiSerial(path: dmiSerialPath)
        let macs = SeedDiscovery.macAddresses(directory: netDirectory)
        guard let file = SeedDiscovery.choose(in: path, dmiSerial: serial, macs: macs) else {
            let tried = SeedDiscovery.candidates(dmiSerial: serial, macs: macs).joined(separator: ", ")
            throw ApplyError(.invalid, "no seed on \(path) (from \(via)); looked for \(tried)")
        }
        return try load(file: file, reportDirectory: path + "/reports", via: via)
    }

    /// Reads the bytes once, verifies them against the trusted keys, and parses exactly those bytes.
    public func load(file: String, reportDirectory: String?, via: String) throws -> LoadedSeed {
        // Bounded: never more than one byte past the largest seed (the loader then says it is too large).
        guard let handle = FileHandle(forReadingAtPath: file),
              let data = try? handle.read(upToCount: SeedLoader.maximumFileSize + 1) ?? Data() else {
            throw ApplyError(.invalid, "cannot read the seed \(file) (from \(via))")
        }
        try? handle.close()
        let trust: SeedTrust
        do {
            trust = try SeedSignature.verifySeed(data: data, path: file, trustedKeysDirectory: trustedKeysDirectory)
        } catch {
            let kind: ApplyError.Kind = error.exitStatus == 3 ? .refused : (error.exitStatus == 1 ? .runtime : .invalid)
            throw ApplyError(kind, "seed refused: \(error)")
        }
        let seed: Seed
        do {
            seed = try SeedLoader.parse(data: data, file: file)
        } catch {
            throw ApplyError(.invalid, "invalid seed: \(error)")
        }
        let digest = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        let trustText: String
        switch trust {
        case .notRequired: trustText = "no trusted seed keys in the image: signature not required"
        case .verified(let key): trustText = "signature verified with \(key)"
        }
        logger.notice("seed \(file) (from \(via)): \(trustText)")
        return LoadedSeed(seed: seed, path: file, sha256: digest, data: data, reportDirectory: reportDirectory, trust: trustText)
    }

    /// The device holding the filesystem labelled `label` and its type; exactly one must exist.
    func findVolume(label: String) throws -> (String, String) {
        let scanner = InventoryScanner(options: InventoryOptions(onlyNames: onlyDevices), logger: logger)
        let inventory = try scanner.scan()
        var devices: [(String, String)] = []
        for disk in inventory.disks {
            if let signature = disk.signatures.first(where: { $0.label == label && $0.usage == "filesystem" }) {
                devices.append((disk.path, signature.type))
            }
            for part in disk.partitions where part.fsLabel == label {
                if let path = part.path { devices.append((path, part.fsType ?? "auto")) }
            }
        }
        guard let device = devices.first else {
            throw ApplyError(.invalid, "no seed given: no --seed, no aquarium.seed= on the kernel command line, and no "
                + "filesystem labelled \(label); write the seed to the stick with `aquarium-image seed inject`")
        }
        if devices.count > 1 {
            throw ApplyError(.refused, "refused: \(devices.count) filesystems are labelled \(label) ("
                + devices.map(\.0).joined(separator: ", ") + "); unplug all but one seed stick")
        }
        return device
    }
}

/// mtools commands on a block device (its geometry check fails on loop devices and USB sticks alike).
enum Mtools {
    static func command(_ tool: String, _ arguments: [String]) -> Command {
        Command(tool, arguments, environment: ["MTOOLS_SKIP_CHECK": "1"])
    }
}
