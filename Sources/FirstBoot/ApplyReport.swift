import Exec
import FileLayer
import Foundation
import JSONCoding
import Seed

/// The report `apply` writes back to the seed volume (`reports/<host name or DMI serial>.{txt,json}`) and to the
/// console, on success and on failure. It never contains the seed's secrets.
public struct ApplyReport: Encodable, Equatable, Sendable {
    public var outcome: String
    public var exitCode: Int32
    public var hostname: String?
    public var dmiSerial: String?
    public var seedPath: String?
    public var seedSHA256: String?
    public var seedTrust: String?
    public var mode: String?
    public var systemDisk: String?
    public var storageDisks: [String]
    public var stepsRun: [String]
    public var handoff: String?
    public var message: String?
    public var plan: Plan?
    public var nodeUUID: String?
    /// How the machine booted (UEFI or BIOS, Secure Boot).
    public var boot: BootFirmware?
    public var at: String

    public init(outcome: String, exitCode: Int32, hostname: String? = nil, dmiSerial: String? = nil, seedPath: String? = nil,
                seedSHA256: String? = nil, seedTrust: String? = nil, mode: String? = nil, systemDisk: String? = nil,
                storageDisks: [String] = [], stepsRun: [String] = [], handoff: String? = nil, message: String? = nil,
                plan: Plan? = nil, nodeUUID: String? = nil, at: String? = nil) {
        self.outcome = outcome
        self.exitCode = exitCode
        self.hostname = hostname
        self.dmiSerial = dmiSerial
        self.seedPath = seedPath
        self.seedSHA256 = seedSHA256
        self.seedTrust = seedTrust
        self.mode = mode
        self.systemDisk = systemDisk
        self.storageDisks = storageDisks
        self.stepsRun = stepsRun
        self.handoff = handoff
        self.message = message
        self.plan = plan
        self.nodeUUID = nodeUUID
        self.at = at ?? timestamp()
    }

    /// The report's file name (without extension): the host name, else the DMI serial, else "unknown-node".
    public var baseName: String {
        let name = hostname ?? dmiSerial ?? "unknown-node"
        return String(name.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
    }

    public var text: String {
        var lines = ["aquarium-firstboot apply: \(outcome) (exit \(exitCode)) at \(at)"]
        if let hostname { lines.append("host: \(hostname)") }
        if let dmiSerial { lines.append("DMI serial: \(dmiSerial)") }
        if let nodeUUID { lines.append("node: \(nodeUUID)") }
        if let boot { lines.append("firmware: \(boot.text)") }
        if let seedPath { lines.append("seed: \(seedPath) sha256 \(seedSHA256 ?? "?")" + (seedTrust.map { " — \($0)" } ?? "")) }
        if let systemDisk { lines.append("system disk: \(systemDisk)" + (mode.map { " (\($0))" } ?? "")) }
        if !storageDisks.isEmpty { lines.append("storage disks: " + storageDisks.joined(separator: ", ")) }
        if !stepsRun.isEmpty { lines.append("steps run: " + stepsRun.joined(separator: ", ")) }
        if let handoff { lines.append(handoff) }
        if let message { lines.append(message) }
        if let plan { lines.append("plan:\n" + SystemDiskPlanner.render(plan)) }
        return lines.joined(separator: "\n") + "\n"
    }

    public func json() throws -> Data { try JSONCoding.encoder().encode(self) }

    /// Writes `<directory>/<baseName>.txt` and `.json`, with every secret of `seed` redacted. When the directory is
    /// on a read-only mount among `remountable`, it is remounted read-write first.
    public func write(to directory: String, seed: Seed?, remountable: [String] = []) throws -> [String] {
        let redact: (String) -> String = { seed?.redact($0) ?? $0 }
        let textData = Data(redact(text).utf8)
        let jsonData = Data(redact(String(decoding: try json(), as: UTF8.self)).utf8)
        let paths = [directory + "/" + baseName + ".txt", directory + "/" + baseName + ".json"]
        func attempt() throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            // The volume is someone else's: never follow a link planted there (reports/ itself or a report name).
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                throw ApplyError(.refused, "refused to write the report into \(directory): \(errnoText()) (a symbolic link?)")
            }
            defer { close(fd) }
            try writeNoFollow(directory: fd, name: baseName + ".txt", data: textData, shown: paths[0])
            try writeNoFollow(directory: fd, name: baseName + ".json", data: jsonData, shown: paths[1])
        }
        do {
            try attempt()
        } catch {
            guard let mount = remountable.first(where: { directory.hasPrefix($0) }) else { throw error }
            try Command("mount", ["-o", "remount,rw", mount]).run()
            try attempt()
        }
        return paths
    }

    /// Writes `name` in the directory `directory` (a descriptor) through a temporary name, never following links.
    func writeNoFollow(directory: Int32, name: String, data: Data, shown: String) throws {
        do {
            try AtomicFile.write(data, named: name, inDirectory: directory, shown: shown)
        } catch {
            throw ApplyError(.runtime, error.description)
        }
    }

    /// Writes `reports/<baseName>.{txt,json}` into the FAT filesystem on `device` with mtools (no mount needed).
    public func write(fatDevice device: String, seed: Seed?) throws -> [String] {
        let staging = FileManager.default.temporaryDirectory.appendingPathComponent("aquarium-report-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let files = try write(to: staging + "/reports", seed: seed)
        // One mtools run (each is a process start, slow on a first boot): `mcopy -s` makes ::/reports when it is not
        // there yet and, with -o, replaces this node's two files in it.
        try Mtools.command("mcopy", ["-s", "-o", "-i", device, staging + "/reports", "::"]).run()
        return files.map { "\(device):reports/" + ($0 as NSString).lastPathComponent }
    }
}
