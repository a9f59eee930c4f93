import ArgumentParser
import CommandSupport
import Exec
import FileLayer
import Foundation
import GPT
import Logging
import Seed

/// Where the AQUASEED volume is inside an image file or on a flashed stick.
public struct SeedVolumeLocation: Sendable, Equatable {
    public var partitionNumber: Int
    public var offsetBytes: UInt64
    public var sizeBytes: UInt64
}

/// Writes a validated seed (and its signature) into the AQUASEED partition of an image file or a stick,
/// through mtools at the partition's offset: no mount, no loop device.
public struct SeedInjector {
    public var logger: Logger

    public init(logger: Logger = Logger(label: "aquarium.image.seed")) {
        self.logger = logger
    }

    /// What was written.
    public struct Result: Sendable {
        public var location: SeedVolumeLocation
        public var path: String
        public var signaturePath: String?
        public var trust: SeedTrust
    }

    /// Finds the AQUASEED partition: the GPT entry named AQUASEED (or of basic-data type) whose FAT
    /// filesystem carries the label AQUASEED.
    public static func locate(target: String, logger: Logger) throws(ImageError) -> SeedVolumeLocation {
        let sectorSize = Self.sectorSize(of: target)
        let editor: GPTEditor
        do {
            editor = try GPTEditor(path: target, sectorSize: sectorSize)
        } catch {
            throw .invalid(target, "has no readable GPT (\(error)); is it an Aquarium image or stick?")
        }
        let candidates = editor.entries.filter { $0.name == PartitionRole.seed.partitionName }
            + editor.entries.filter { $0.name != PartitionRole.seed.partitionName && $0.typeGUID == GPTEditor.PartitionType.basicData }
        for entry in candidates {
            let location = SeedVolumeLocation(partitionNumber: entry.number, offsetBytes: entry.firstLBA * UInt64(sectorSize),
                                              sizeBytes: (entry.lastLBA - entry.firstLBA + 1) * UInt64(sectorSize))
            let probe = try? Command("blkid", ["-p", "-O", String(location.offsetBytes), "-S", String(location.sizeBytes),
                                               "-o", "export", target]).run()
            let values = probe?.output.split(separator: "\n") ?? []
            if values.contains("LABEL=\(PartitionRole.seed.label)") && values.contains("TYPE=vfat") {
                return location
            }
            logger.info("\(target): partition \(entry.number) is not a FAT volume labelled \(PartitionRole.seed.label)")
        }
        throw .invalid(target, "has no FAT partition labelled \(PartitionRole.seed.label); flash an Aquarium image first")
    }

    static func sectorSize(of path: String) -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 512 }
        defer { close(fd) }
        var info = stat()
        return Flasher.sectorSize(fd: fd, info: fstat(fd, &info) == 0 ? info : stat())
    }

    /// The dash form of a MAC address as a seed name (FAT forbids ':').
    public static let macNameExample = "seeds/52-54-00-12-34-56.yaml"

    /// Checks `as`: seed.yaml or seeds/NAME.yaml, as FirstBoot looks them up, and a name that mtools and FAT store
    /// exactly as given. mtools reads `X:` as a drive letter (`seeds/a:b.yaml` would become `seeds/b.yaml`), FAT
    /// forbids `"*<>?|\` and control characters, and `..` or a leading `/` would leave the seed directory.
    public static func validateTargetPath(_ path: String) throws(ImageError) -> String {
        let subject = "--as '\(path.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined())'"
        let dashHint = "; for a MAC address use the dash form, \(macNameExample)"
        if path.contains(":") {
            throw .invalid(subject, "':' is not allowed: mtools reads it as a drive letter and FAT forbids it\(dashHint)")
        }
        if path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw .invalid(subject, "control characters are not allowed in a FAT file name\(dashHint)")
        }
        if let bad = path.first(where: { "\\\"*<>?|".contains($0) }) {
            throw .invalid(subject, "'\(bad)' is not allowed in a FAT file name (FAT forbids \\ \" * < > ? |)\(dashHint)")
        }
        if path.hasPrefix("/") {
            throw .invalid(subject, "must be relative to the seed volume (seed.yaml or seeds/NAME.yaml), without a leading '/'")
        }
        if path.contains("..") {
            throw .invalid(subject, "'..' is not allowed; use seed.yaml or seeds/NAME.yaml\(dashHint)")
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, !parts.contains(where: { $0.isEmpty || $0 == "." }), path.hasSuffix(".yaml"),
              parts.count <= 2, parts.count == 1 || parts[0] == "seeds", parts.last != ".yaml", path.utf8.count <= 255 else {
            throw .invalid(subject, "must be seed.yaml or seeds/NAME.yaml (where FirstBoot looks)\(dashHint)")
        }
        return path
    }

    /// Validates the seed and its `.sig` (against `trustedKeys` when given, else against the keys the image in
    /// `target` trusts), then writes both into the AQUASEED volume and reads them back.
    public func inject(target: String, seed: String, as destination: String = StickContent.seedPath,
                       trustedKeys explicitKeys: [SeedPublicKey]? = nil) throws -> Result {
        let path = try Self.validateTargetPath(destination)
        try refuseMounted(target)
        let data = try SeedSignature.readFile(seed)
        _ = try SeedLoader.parse(data: data, file: seed)
        let signatureFile = seed + SeedSignature.signatureSuffix
        let hasSignature = FileManager.default.fileExists(atPath: signatureFile)
        if hasSignature {
            _ = try SeedDetachedSignature(fileData: try SeedSignature.readFile(signatureFile), path: signatureFile)
        }
        let location = try Self.locate(target: target, logger: logger)
        let keys = try explicitKeys ?? trustedKeys(in: target)
        var trust = SeedTrust.notRequired
        if !keys.isEmpty {
            trust = .verified(by: try SeedSignature.verify(seedData: data, path: seed, publicKeys: keys))
        }

        let volume = FATVolume(image: target, offsetBytes: location.offsetBytes, sizeBytes: location.sizeBytes,
                               environment: ["TZ": "UTC"])
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try volume.makeDirectory(directory, logger: logger) }
        try volume.write(seed, as: path, logger: logger)
        if hasSignature {
            try volume.write(signatureFile, as: path + SeedSignature.signatureSuffix, logger: logger)
        } else {
            // A signature left from an earlier seed would not match this one.
            try volume.remove(path + SeedSignature.signatureSuffix, logger: logger)
        }
        try flush(target)
        guard try volume.read(path, logger: logger) == data else {
            throw ImageError.failure(target, "reading \(path) back from the seed volume did not give the seed's bytes")
        }
        return Result(location: location, path: path, signaturePath: hasSignature ? path + SeedSignature.signatureSuffix : nil,
                      trust: trust)
    }

    /// A block device: never write into a FAT volume the kernel has mounted (exit 3).
    func refuseMounted(_ target: String) throws {
        if let info = try? DeviceSafety.kernelName(of: target) {
            let disk = try DeviceSafety.inspect(info.parentDisk.map { "/dev/" + $0 } ?? target, logger: logger)
            if !disk.mountpoints.isEmpty {
                throw ImageError.refused(target, "is mounted at \(disk.mountpoints.joined(separator: ", ")); unmount it first")
            }
        }
    }

    // MARK: a directory of seeds

    /// One seed of a seeds directory, validated.
    public struct DirectorySeed: Sendable, Equatable {
        /// The file in the directory.
        public var file: String
        /// Where it goes on the seed volume: `seeds/NAME.yaml`.
        public var volumePath: String
        /// The bytes validated (and verified), which are the bytes written.
        public var data: Data
        /// `file.sig`, when there is one (a well-formed signature).
        public var signatureFile: String?
    }

    /// The seeds of `directory` for `seed inject --seeds-dir`: every `NAME.yaml`, which must validate, with its
    /// `NAME.yaml.sig` when there is one. Anything else in the directory, a signature without its seed, names the FAT
    /// volume would change, or two names that are one file on FAT (which ignores case) are refused (exit 2), as is a
    /// directory without seeds. Every invalid seed is reported, each with its file, line and column.
    public static func readSeedsDirectory(_ directory: String) throws -> [DirectorySeed] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        } catch {
            throw ImageError.invalid(directory, "cannot read the seeds directory: \(error.localizedDescription)")
        }
        let base = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        var seeds: [String] = []
        var signatures: Set<String> = []
        var strays: [String] = []
        for name in names {
            var info = stat()
            let isFile = stat(base + "/" + name, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
            if isFile && name.hasSuffix(".yaml") {
                seeds.append(name)
            } else if isFile && name.hasSuffix(".yaml" + SeedSignature.signatureSuffix) {
                signatures.insert(name)
            } else {
                strays.append(name)
            }
        }
        if !strays.isEmpty {
            throw ImageError.invalid(base + "/" + strays[0], "is not a seed (NAME.yaml) or a seed's signature "
                                     + "(NAME.yaml.sig)\(strays.count > 1 ? ", nor are " + strays.dropFirst().joined(separator: ", ") : ""); "
                                     + "a seeds directory holds only those: move the rest out")
        }
        if let orphan = signatures.sorted().first(where: { !seeds.contains(String($0.dropLast(SeedSignature.signatureSuffix.count))) }) {
            throw ImageError.invalid(base + "/" + orphan, "is a signature without its seed "
                                     + "\(orphan.dropLast(SeedSignature.signatureSuffix.count)); remove it or add the seed")
        }
        guard !seeds.isEmpty else {
            throw ImageError.invalid(directory, "holds no seeds (NAME.yaml); make them with `aquarium-image rack seeds`")
        }
        var byFATName: [String: String] = [:]
        var issues: [SeedIssue] = []
        var result: [DirectorySeed] = []
        for name in seeds {
            let file = base + "/" + name
            let volumePath = try validateTargetPath("seeds/" + name)
            if let other = byFATName.updateValue(name, forKey: name.lowercased()) {
                throw ImageError.invalid(file, "is the same file as \(other) on the FAT seed volume, which ignores case; "
                                         + "rename one of them")
            }
            let data = try SeedSignature.readFile(file)
            do {
                _ = try SeedLoader.parse(data: data, file: file)
            } catch {
                issues += error.issues
                continue
            }
            var signatureFile: String?
            if signatures.contains(name + SeedSignature.signatureSuffix) {
                let path = file + SeedSignature.signatureSuffix
                _ = try SeedDetachedSignature(fileData: try SeedSignature.readFile(path), path: path)
                signatureFile = path
            }
            result.append(DirectorySeed(file: file, volumePath: volumePath, data: data, signatureFile: signatureFile))
        }
        if !issues.isEmpty { throw SeedValidationError(issues: issues) }
        return result
    }

    /// What was written from a seeds directory.
    public struct DirectoryResult: Sendable {
        public var location: SeedVolumeLocation
        public var seeds: [DirectorySeed]
        /// The keys that verified the seeds (each once); empty when the image trusts no keys.
        public var verifiedBy: [String]
    }

    /// Validates every seed of `directory` (and its `.sig`, against `trustedKeys` when given, else the keys the image
    /// in `target` trusts), then writes them all into `seeds/` of the AQUASEED volume in one copy and reads them back.
    /// Nothing is written when any seed is refused.
    public func injectDirectory(target: String, directory: String, trustedKeys explicitKeys: [SeedPublicKey]? = nil)
        throws -> DirectoryResult {
        try refuseMounted(target)
        let seeds = try Self.readSeedsDirectory(directory)
        let location = try Self.locate(target: target, logger: logger)
        let keys = try explicitKeys ?? trustedKeys(in: target)
        var verifiedBy: [String] = []
        for seed in seeds where !keys.isEmpty {
            let key = try SeedSignature.verify(seedData: seed.data, path: seed.file, publicKeys: keys)
            if !verifiedBy.contains(key.description) { verifiedBy.append(key.description) }
        }
        let volume = FATVolume(image: target, offsetBytes: location.offsetBytes, sizeBytes: location.sizeBytes,
                               environment: ["TZ": "UTC"])
        try volume.makeDirectory("seeds", logger: logger)
        try volume.put(seeds.map(\.file) + seeds.compactMap(\.signatureFile), into: "seeds", logger: logger)
        for seed in seeds where seed.signatureFile == nil {
            // A signature left from an earlier seed of that name would not match this one.
            try volume.remove(seed.volumePath + SeedSignature.signatureSuffix, logger: logger)
        }
        try flush(target)
        for seed in seeds {
            guard try volume.read(seed.volumePath, logger: logger) == seed.data else {
                throw ImageError.failure(target, "reading \(seed.volumePath) back from the seed volume did not give the "
                                         + "bytes of \(seed.file)")
            }
        }
        return DirectoryResult(location: location, seeds: seeds, verifiedBy: verifiedBy)
    }

    /// The `*.pub` keys in the image's root filesystem (/etc/aquarium/trusted-seed-keys), read with debugfs;
    /// none when the image has no root partition of ours or no such directory.
    func trustedKeys(in target: String) throws -> [SeedPublicKey] {
        guard let editor = try? GPTEditor(path: target, sectorSize: Self.sectorSize(of: target)),
              let root = editor.entries.first(where: { $0.typeGUID == GPTEditor.PartitionType.rootX86_64 }) else { return [] }
        let device = "\(target)?offset=\(root.firstLBA * UInt64(editor.sectorSize))"
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("aquarium-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let directory = "/" + StickContent.trustedSeedKeysDirectory
        let listing = try? Command("debugfs", ["-R", "ls -p \(directory)", device]).run()
        guard let listing, !listing.output.isEmpty else { return [] }
        try runTool(Command("debugfs", ["-R", "rdump \(directory) \(scratch)", device]), subject: target,
                    what: "reading the trusted seed keys from the root filesystem", logger: logger)
        let keys = try SeedSignature.trustedKeys(in: scratch + "/" + (directory as NSString).lastPathComponent)
        logger.info("\(target): the image trusts \(keys.count) seed key(s)")
        return keys
    }

    func flush(_ target: String) throws(ImageError) {
        let fd = open(target, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .failure(target, "cannot open to flush: \(errnoText())") }
        defer { close(fd) }
        do {
            try FileIO.sync(fd, path: target)
        } catch {
            throw .failure(target, "flushing the writes failed: \(error.errno)")
        }
    }
}

extension FATVolume {
    /// Copies one host file to `path` in the volume (replacing it).
    public func write(_ file: String, as path: String, logger: Logger) throws(ImageError) {
        try runTool(Command("mcopy", ["-i", drive, "-o", "-Q", file, "::/" + path], environment: mtoolsEnvironment),
                    subject: image, what: "writing \(path) into the FAT volume at byte \(offsetBytes)", logger: logger)
    }

    /// Deletes `path` from the volume when it exists.
    public func remove(_ path: String, logger: Logger) throws(ImageError) {
        let exists = (try? Command("mdir", ["-i", drive, "-b", "::/" + path], environment: mtoolsEnvironment).run()) != nil
        guard exists else { return }
        try runTool(Command("mdel", ["-i", drive, "::/" + path], environment: mtoolsEnvironment), subject: image,
                    what: "removing \(path) from the FAT volume at byte \(offsetBytes)", logger: logger)
    }
}

/// `aquarium-image seed inject TARGET SEED [--as seeds/NAME.yaml]`, or `seed inject TARGET --seeds-dir DIR`.
public struct SeedInjectCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "inject",
        abstract: "Validate a seed (and SEED.sig) and write it into the AQUASEED partition of an image file or a flashed stick.",
        discussion: """
            No mount and no loop device: mtools writes at the partition's offset. The seed must validate (exit 2 \
            otherwise). When the image trusts seed keys (/etc/aquarium/trusted-seed-keys in its root filesystem) or \
            keys are given, SEED.sig must verify (exit 3 otherwise). A mounted stick is refused (exit 3). --as names \
            that mtools or FAT would change or interpret (':' anywhere, '\\', '"*<>?|', control characters, '..', a \
            leading '/') are refused (exit 2): name a MAC seed in the dash form, seeds/52-54-00-12-34-56.yaml. \
            With --seeds-dir DIR every DIR/NAME.yaml (and NAME.yaml.sig) goes to seeds/NAME.yaml, all validated (and \
            verified) before any is written; a directory without seeds or with other files is refused (exit 2).

            Examples:
              aquarium-image seed inject /dev/sdX node-01.yaml     # as seed.yaml
              aquarium-image seed inject /dev/sdX node-01.yaml --as seeds/AQ-0001.yaml
              aquarium-image seed inject out/aquarium.raw --seeds-dir rack/seeds
            """)

    @OptionGroup public var global: GlobalOptions
    @Argument(help: "An image file (NAME.raw) or a flashed stick (/dev/sdX).") public var target: String
    @Argument(help: "The seed file; SEED.sig is written too when it exists.") public var seed: String?
    @Option(name: .customLong("as"), help: "Where on the seed volume: seed.yaml (default) or seeds/NAME.yaml; for a MAC address the dash form, seeds/52-54-00-12-34-56.yaml.")
    public var destination: String?
    @Option(name: .customLong("seeds-dir"), help: "Inject every NAME.yaml (and NAME.yaml.sig) of this directory as seeds/NAME.yaml, e.g. the seeds/ that `rack seeds` writes.")
    public var seedsDirectory: String?
    @Option(name: .customLong("public-key"), help: "Require a signature by this public key (repeatable) instead of the image's keys.")
    public var publicKeys: [String] = []

    public init() {}

    public func validate() throws {
        switch (seed, seedsDirectory) {
        case (nil, nil): throw ValidationError("give a SEED file, or --seeds-dir DIR for every seed of a directory")
        case (.some, .some): throw ValidationError("give a SEED file or --seeds-dir DIR, not both")
        case (nil, .some) where destination != nil:
            throw ValidationError("--as names where one seed goes; with --seeds-dir each seed goes to seeds/ under its own name")
        default: break
        }
    }

    public func run() throws {
        var keys: [SeedPublicKey]?
        if !publicKeys.isEmpty {
            keys = try publicKeys.flatMap { path throws -> [SeedPublicKey] in try SeedSignature.readPublicKeys(path: path) }
        }
        let injector = SeedInjector(logger: global.logger("aquarium.image.seed"))
        guard let seed else {
            let result = try injector.injectDirectory(target: target, directory: seedsDirectory ?? "", trustedKeys: keys)
            let signed = result.seeds.filter { $0.signatureFile != nil }.count
            var text = "\(target): wrote \(result.seeds.count) seed\(result.seeds.count == 1 ? "" : "s")"
                + (signed > 0 ? " (\(signed) with signatures)" : "") + " to seeds/ on the AQUASEED volume (partition "
                + "\(result.location.partitionNumber) at byte \(result.location.offsetBytes))"
            text += result.verifiedBy.isEmpty ? "; the image trusts no seed keys, no signature required"
                : "; signatures verified by \(result.verifiedBy.joined(separator: ", "))"
            print(text)
            for entry in result.seeds {
                print("  \(entry.volumePath)\(entry.signatureFile == nil ? "" : " and .sig")  (from \(entry.file))")
            }
            return
        }
        let result = try injector.inject(target: target, seed: seed, as: destination ?? StickContent.seedPath,
                                         trustedKeys: keys)
        var text = "\(target): wrote \(result.path)"
        if let signature = result.signaturePath { text += " and \(signature)" }
        text += " to the AQUASEED volume (partition \(result.location.partitionNumber) at byte \(result.location.offsetBytes))"
        switch result.trust {
        case .notRequired: text += "; the image trusts no seed keys, no signature required"
        case .verified(let key): text += "; signature verified by \(key)"
        }
        print(text)
    }
}
