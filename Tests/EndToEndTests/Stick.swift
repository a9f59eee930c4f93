import Crypto
import Exec
import Foundation
import GPT
import TestSupport

/// A copy of the built stick image that one end-to-end boot uses, edited from the host without
/// mounting: the ESP and the AQUASEED volume are reached with mtools at their partition offsets.
struct Stick {
    let path: String

    /// A sparse copy of `image`.
    static func copy(of image: String, to path: String) throws -> Stick {
        try? FileManager.default.removeItem(atPath: path)
        try Command("cp", ["--sparse=always", image, path]).run()
        return Stick(path: path)
    }

    func offset(ofPartitionType type: UUID) throws -> UInt64 {
        let editor = try GPTEditor(path: path)
        guard let entry = editor.entries.first(where: { $0.typeGUID == type }) else {
            throw MissingCapability(what: "a partition of type \(type) on \(path)")
        }
        return entry.firstLBA * 512
    }

    var espOffset: UInt64 { get throws { try offset(ofPartitionType: GPTEditor.PartitionType.esp) } }
    var seedOffset: UInt64 { get throws { try offset(ofPartitionType: GPTEditor.PartitionType.basicData) } }

    /// Appends kernel command-line arguments to the loader entry (e.g. `aquarium.poweroff`).
    func appendKernelArguments(_ arguments: String) throws {
        let image = "\(path)@@\(try espOffset)"
        let entry = try Command("mtype", ["-i", image, "::loader/entries/aquarium-a.conf"]).run().output
        let edited = entry.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix("options ") ? line + " " + arguments : String(line)
        }.joined(separator: "\n")
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("entry-\(UUID().uuidString).conf").path
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try Data(edited.utf8).write(to: URL(fileURLWithPath: temporary))
        try Command("mcopy", ["-o", "-i", image, temporary, "::loader/entries/aquarium-a.conf"]).run()
        // The signed chain (`build --secure-boot`) boots through GRUB: its `linux` line gets them too.
        let grub = try Command("mtype", ["-i", image, "::EFI/debian/grub.cfg"]).run(acceptedStatuses: [0, 1])
        guard grub.status == 0 else { return }
        let grubEdited = grub.output.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.trimmingCharacters(in: .whitespaces).hasPrefix("linux ") ? line + " " + arguments : String(line)
        }.joined(separator: "\n")
        try Data(grubEdited.utf8).write(to: URL(fileURLWithPath: temporary))
        try Command("mcopy", ["-o", "-i", image, temporary, "::EFI/debian/grub.cfg"]).run()
    }

    /// A file of the ESP, read with mtools.
    func espFile(_ name: String) throws -> Data {
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("esp-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try Command("mcopy", ["-i", "\(path)@@\(try espOffset)", "::" + name, temporary], environment: ["MTOOLS_SKIP_CHECK": "1"]).run()
        return try Data(contentsOf: URL(fileURLWithPath: temporary))
    }

    /// Replaces a file of the ESP.
    func replaceESPFile(_ name: String, with data: Data) throws {
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("esp-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try data.write(to: URL(fileURLWithPath: temporary))
        try Command("mcopy", ["-o", "-i", "\(path)@@\(try espOffset)", temporary, "::" + name], environment: ["MTOOLS_SKIP_CHECK": "1"]).run()
    }

    /// Inverts the byte at `offset` of the stick (a tampered stick).
    func flipByte(at offset: UInt64) throws {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { throw MissingCapability(what: "write access to \(path)") }
        defer { close(fd) }
        var byte: UInt8 = 0
        guard pread(fd, &byte, 1, off_t(offset)) == 1 else { throw MissingCapability(what: "byte \(offset) of \(path)") }
        byte ^= 0xFF
        guard pwrite(fd, &byte, 1, off_t(offset)) == 1, fsync(fd) == 0 else { throw MissingCapability(what: "writing byte \(offset) of \(path)") }
    }

    /// A file from the AQUASEED volume, or nil when it is not there.
    func seedVolumeFile(_ name: String) throws -> String? {
        let result = try Command("mtype", ["-i", "\(path)@@\(try seedOffset)", "::" + name]).run(acceptedStatuses: [0, 1])
        return result.status == 0 ? result.output : nil
    }

    /// Deletes a file from the AQUASEED volume if it is there (e.g. the last boot's report, so the next boot must
    /// write its own).
    func removeSeedVolumeFile(_ name: String) throws {
        _ = try Command("mdel", ["-i", "\(path)@@\(try seedOffset)", "::" + name]).run(acceptedStatuses: [0, 1])
        if try seedVolumeFile(name) != nil { throw MissingCapability(what: "deleting \(name) from the seed volume of \(path)") }
    }

    /// The ext4 root of slot A (partition AQUA-ROOT-A), for debugfs.
    var rootA: String {
        get throws {
            let editor = try GPTEditor(path: path)
            guard let entry = editor.entries.first(where: { $0.name == "AQUA-ROOT-A" }) else {
                throw MissingCapability(what: "a partition named AQUA-ROOT-A on \(path)")
            }
            return "\(path)?offset=\(entry.firstLBA * 512)"
        }
    }

    /// A file of slot A's root, read with debugfs, or nil when it is not there.
    func rootAFile(_ file: String) throws -> String? {
        let result = try Command("debugfs", ["-R", "cat \(file)", try rootA]).run(acceptedStatuses: Set(0...255))
        return result.status == 0 && !result.errorOutput.contains("File not found") ? result.output : nil
    }

    /// Adds a test-only program and its unit, enabled for multi-user.target, to slot A's root (written with debugfs,
    /// without mounting): `/usr/local/bin/NAME` and `/etc/systemd/system/NAME.service`. Only this copy of the stick
    /// has them; the image is not changed.
    func addTestUnit(_ name: String, program: String, unit: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("unit-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data(program.utf8).write(to: URL(fileURLWithPath: directory + "/program"))
        try Data(unit.utf8).write(to: URL(fileURLWithPath: directory + "/unit"))
        let (binary, service) = ("/usr/local/bin/\(name)", "/etc/systemd/system/\(name).service")
        let commands = """
            write \(directory)/program \(binary)
            sif \(binary) mode 0100755
            write \(directory)/unit \(service)
            symlink /etc/systemd/system/multi-user.target.wants/\(name).service \(service)

            """
        try Data(commands.utf8).write(to: URL(fileURLWithPath: directory + "/commands"))
        try Command("debugfs", ["-w", "-f", directory + "/commands", try rootA]).run()
        guard try rootAFile(service) == unit, try rootAFile(binary) == program else {
            throw MissingCapability(what: "\(name) written into slot A's root on \(path) with debugfs")
        }
    }

    func seedVolumeListing() throws -> String {
        try Command("mdir", ["-/", "-b", "-i", "\(path)@@\(try seedOffset)", "::"]).run(acceptedStatuses: [0, 1]).output
    }
}

/// A raw disk image for a QEMU node, and a fingerprint of its content that does not read gigabytes of
/// holes: the allocated ranges (SEEK_DATA/SEEK_HOLE) and the SHA-256 of their bytes.
struct DiskImage {
    let path: String
    let sizeBytes: UInt64

    static func blank(_ path: String, sizeBytes: UInt64) throws -> DiskImage {
        try? FileManager.default.removeItem(atPath: path)
        guard FileManager.default.createFile(atPath: path, contents: nil), truncate(path, off_t(sizeBytes)) == 0 else {
            throw MissingCapability(what: "a sparse file at \(path)")
        }
        return DiskImage(path: path, sizeBytes: sizeBytes)
    }

    func fingerprint() throws -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw MissingCapability(what: "read access to \(path)") }
        defer { close(fd) }
        var ranges: [String] = []
        var position: off_t = 0
        let size = off_t(sizeBytes)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var hasher = SHA256()
        while position < size {
            let data = lseek(fd, position, 3 /* SEEK_DATA */)
            if data < 0 { break }
            var hole = lseek(fd, data, 4 /* SEEK_HOLE */)
            if hole < 0 { hole = size }
            ranges.append("\(data)-\(hole)")
            var offset = data
            while offset < hole {
                let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, min($0.count, Int(hole - offset)), offset) }
                if count <= 0 { break }
                hasher.update(data: buffer[0..<count])
                offset += off_t(count)
            }
            position = hole
        }
        return ranges.joined(separator: ",") + ":" + hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

