import Exec
import FileLayer
import Foundation
import Logging

/// The locked mode's signing key and certificate (`keys init` makes them), checked to belong together.
public struct SigningIdentity: Sendable, Equatable {
    public var key: String
    public var certificate: String

    public init(key: String, certificate: String) {
        self.key = key
        self.certificate = certificate
    }

    /// Refuses unreadable files and a certificate that is not the key's (the firmware would refuse every boot).
    public func validate(logger: Logger) throws(ImageError) {
        for (path, what) in [(key, "--signing-key"), (certificate, "--signing-cert")] where !FileManager.default.isReadableFile(atPath: path) {
            throw .invalid(path, "\(what) is missing or unreadable; make a pair with `aquarium-image keys init`")
        }
        let fromKey = try runTool(Command("openssl", ["pkey", "-in", key, "-pubout"]), subject: key,
                                  what: "reading the signing key (openssl pkey; a passphrase-protected key is not supported)", logger: logger)
        let fromCertificate = try runTool(Command("openssl", ["x509", "-in", certificate, "-noout", "-pubkey"]), subject: certificate,
                                          what: "reading the signing certificate (openssl x509, PEM)", logger: logger)
        guard fromKey.output == fromCertificate.output else {
            throw .invalid(certificate, "is not the certificate of \(key) (their public keys differ): sign with the key whose "
                           + "certificate the nodes' firmware trusts")
        }
    }
}

/// dm-verity over the root filesystem: the hash tree goes into the root partition right after the filesystem
/// (`--hash-offset` = the filesystem's size), its root hash onto the signed command line. Salt and UUID derive from
/// the build identity, so the same inputs give the same tree and hash.
public struct VerityRoot: Sendable, Equatable {
    public static let blockSize: UInt64 = 4096
    public var rootHash: String
    /// Where the hash tree starts in the partition (the filesystem's size).
    public var hashOffset: UInt64
    public var hashBytes: UInt64

    public init(rootHash: String, hashOffset: UInt64, hashBytes: UInt64) {
        self.rootHash = rootHash
        self.hashOffset = hashOffset
        self.hashBytes = hashBytes
    }

    /// An upper bound of the hash tree's size for `dataBytes` of data (4 KiB blocks, SHA-256: 128 hashes a block),
    /// with its superblock; what the partition reserves after the filesystem.
    public static func reservedBytes(forDataBytes dataBytes: UInt64) -> UInt64 {
        var level = (dataBytes + blockSize - 1) / blockSize
        var blocks: UInt64 = 1  // the verity superblock
        repeat {
            level = (level + 127) / 128
            blocks += level
        } while level > 1
        return blocks * blockSize
    }

    /// Formats the hash tree for the filesystem at `offset` (`dataBytes` long) of `image` with veritysetup and writes it
    /// into the image right after the filesystem. veritysetup cannot start at an offset of its data device, so the
    /// filesystem's data ranges are copied into a sparse scratch file first.
    public static func format(image: String, offset: UInt64, dataBytes: UInt64, reservedBytes: UInt64, salt: String, uuid: UUID,
                              scratch: String, logger: Logger) throws(ImageError) -> VerityRoot {
        guard dataBytes % blockSize == 0 else { throw .failure(image, "the root filesystem is not a whole number of 4 KiB blocks") }
        let data = scratch + "/root.ext4"
        let hash = scratch + "/root.verity"
        try copyRange(of: image, offset: offset, count: dataBytes, to: data)
        defer { try? FileManager.default.removeItem(atPath: data) }
        let run = try runTool(Command("veritysetup", ["format", data, hash, "--hash=sha256", "--data-block-size=4096",
                                                      "--hash-block-size=4096", "--salt=\(salt)", "--uuid=\(uuid.uuidString.lowercased())"]),
                              subject: image, what: "computing the root filesystem's dm-verity hash tree (veritysetup format)", logger: logger)
        guard let line = run.output.split(separator: "\n").first(where: { $0.hasPrefix("Root hash:") }) else {
            throw .failure(image, "veritysetup format printed no root hash: \(run.output)")
        }
        let rootHash = line.dropFirst("Root hash:".count).trimmingCharacters(in: .whitespaces)
        guard rootHash.count == 64, rootHash.allSatisfy(\.isHexDigit) else { throw .failure(image, "veritysetup printed the root hash '\(rootHash)'") }
        guard let tree = FileManager.default.contents(atPath: hash) else { throw .failure(hash, "veritysetup wrote no hash tree") }
        defer { try? FileManager.default.removeItem(atPath: hash) }
        guard UInt64(tree.count) <= reservedBytes else {
            throw .failure(image, "the hash tree has \(tree.count) bytes; the partition reserves \(reservedBytes)")
        }
        let fd = open(image, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .failure(image, "cannot open for writing: \(errnoText())") }
        defer { close(fd) }
        do {
            try FileIO.write(fd, [UInt8](tree), at: offset + dataBytes, path: image)
            try FileIO.sync(fd, path: image)
        } catch {
            throw .failure(image, "writing the hash tree failed: \(error)")
        }
        return VerityRoot(rootHash: rootHash, hashOffset: dataBytes, hashBytes: UInt64(tree.count))
    }

    /// Copies `count` bytes at `offset` of `source` into a new sparse file, skipping holes (SEEK_DATA/SEEK_HOLE).
    static func copyRange(of source: String, offset: UInt64, count: UInt64, to target: String) throws(ImageError) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .failure(source, "cannot open: \(errnoText())") }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw .failure(target, "cannot create: \(errnoText())") }
        defer { close(output) }
        guard ftruncate(output, off_t(count)) == 0 else { throw .failure(target, "cannot size: \(errnoText())") }
        var position = off_t(offset)
        let end = off_t(offset + count)
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        while position < end {
            let start = lseek(input, position, seekData)
            if start < 0 || start >= end { break }
            var stop = lseek(input, start, seekHole)
            if stop < 0 || stop > end { stop = end }
            var at = start
            while at < stop {
                let length = Int(Swift.min(off_t(buffer.count), stop - at))
                do {
                    let read = try FileIO.read(input, into: &buffer, count: length, at: UInt64(at), path: source)
                    guard read == length else { throw ImageError.failure(source, "short read at byte \(at)") }
                    try FileIO.write(output, buffer, count: length, at: UInt64(at) - offset, path: target)
                } catch let error as ImageError {
                    throw error
                } catch {
                    throw .failure(target, "copying the root filesystem failed: \(error)")
                }
                at += off_t(length)
            }
            position = stop
        }
    }
}

/// A unified kernel image: systemd's EFI stub (systemd-boot-efi's `linuxx64.efi.stub`) with the os-release, the
/// command line, the kernel and the initrd as PE sections, so one signature covers all four.
public enum UnifiedKernelImage {
    static let sectionAlignment: UInt64 = 0x1000

    /// The stub's SizeOfImage (PE optional header): the added sections start after it.
    static func sizeOfImage(_ stub: [UInt8], path: String) throws(ImageError) -> UInt64 {
        guard stub.count > 0x40, stub[0] == 0x4D, stub[1] == 0x5A else { throw .invalid(path, "is not a PE/COFF (EFI) binary") }
        let header = Int(le32(stub, 0x3C))
        guard header + 24 + 60 <= stub.count, Array(stub[header..<(header + 4)]) == [0x50, 0x45, 0, 0] else {
            throw .invalid(path, "has no PE header")
        }
        return UInt64(le32(stub, header + 24 + 56))
    }

    /// The offsets of the PE header's TimeDateStamp and the optional header's CheckSum.
    static func stampOffsets(_ image: [UInt8]) -> (time: Int, checksum: Int) {
        let header = Int(le32(image, 0x3C))
        return (header + 8, header + 24 + 64)
    }

    static func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }

    /// Section name and the address it is placed at: each after the previous, page aligned, starting after the stub.
    public static func layout(stubSizeOfImage: UInt64, sections: [(name: String, bytes: UInt64)]) -> [(name: String, address: UInt64)] {
        func align(_ value: UInt64) -> UInt64 { (value + sectionAlignment - 1) / sectionAlignment * sectionAlignment }
        var next = align(stubSizeOfImage)
        return sections.map { section in
            defer { next = align(next + section.bytes) }
            return (section.name, next)
        }
    }

    /// Builds the unsigned UKI at `output` with objcopy. objcopy stamps the wall clock into the PE header; the time
    /// stamp is set to `epoch` and the (unchecked by firmware) checksum to zero, so the same inputs give the same bytes.
    public static func build(stub: String, osRelease: String, commandLine: String, kernel: String, initrd: String,
                             output: String, scratch: String, epoch: Int64, logger: Logger) throws(ImageError) {
        guard let stubData = FileManager.default.contents(atPath: stub) else {
            throw .invalid(stub, "systemd's EFI stub is missing: the locked mode needs systemd-boot-efi in the description's packages")
        }
        let cmdlineFile = scratch + "/cmdline"
        let osReleaseFile = scratch + "/os-release"
        do {
            try AtomicFile.write(Data(commandLine.utf8), to: cmdlineFile)
            try AtomicFile.write(Data(osRelease.utf8), to: osReleaseFile)
        } catch {
            throw .failure(scratch, "cannot write the UKI's sections: \(error.errno)")
        }
        var sections: [(name: String, file: String, bytes: UInt64)] = []
        for (name, file) in [(".osrel", osReleaseFile), (".cmdline", cmdlineFile), (".linux", kernel), (".initrd", initrd)] {
            var info = stat()
            guard stat(file, &info) == 0 else { throw .invalid(file, "is missing: \(errnoText())") }
            sections.append((name, file, UInt64(info.st_size)))
        }
        let placed = layout(stubSizeOfImage: try sizeOfImage([UInt8](stubData), path: stub),
                            sections: sections.map { ($0.name, $0.bytes) })
        var arguments: [String] = []
        for (section, place) in zip(sections, placed) {
            arguments += ["--add-section", "\(section.name)=\(section.file)",
                          "--change-section-vma", "\(section.name)=0x" + String(place.address, radix: 16)]
        }
        try runTool(Command("objcopy", arguments + [stub, output]), subject: output, what: "assembling the unified kernel image (objcopy)",
                    logger: logger)
        guard var image = FileManager.default.contents(atPath: output).map({ [UInt8]($0) }) else {
            throw .failure(output, "objcopy wrote nothing")
        }
        let offsets = stampOffsets(image)
        let stamp = UInt32(truncatingIfNeeded: epoch)
        for index in 0..<4 {
            image[offsets.time + index] = UInt8(truncatingIfNeeded: stamp >> (8 * UInt32(index)))
            image[offsets.checksum + index] = 0
        }
        do {
            try AtomicFile.write(Data(image), to: output)
        } catch {
            throw .failure(output, "cannot write the unified kernel image: \(error.errno)")
        }
    }

    /// faketime's absolute time for `epoch` ("YYYY-MM-DD hh:mm:ss", UTC): given with `-f`, the clock stands still there
    /// (with `@`, it would start there and run on, and a slow signing would cross a second).
    public static func frozenTime(_ epoch: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(epoch)))
    }

    /// Signs `input` into `output` with sbsign. sbsign puts the signing time into the signature; with the clock frozen
    /// at `epoch` (faketime) the signature is the same for the same image and key (RSA PKCS#1 v1.5 is deterministic).
    public static func sign(_ input: String, output: String, identity: SigningIdentity, epoch: Int64, logger: Logger) throws(ImageError) {
        guard Command.resolve("faketime") != nil else {
            throw .invalid("faketime", "is not installed on the build host (apt-get install faketime): it keeps the signature's time stamp at SOURCE_DATE_EPOCH")
        }
        try runTool(Command("faketime", ["-f", frozenTime(epoch), "sbsign", "--key", identity.key, "--cert", identity.certificate,
                                         "--output", output, input], environment: ["TZ": "UTC", "LC_ALL": "C"]),
                    subject: output, what: "signing the unified kernel image (sbsign)", logger: logger)
        try runTool(Command("sbverify", ["--cert", identity.certificate, output]), subject: output,
                    what: "checking the signature (sbverify)", logger: logger)
    }
}
