import ArgumentParser
import CommandSupport
import Foundation
import JSONCoding
import Logging
import BootSlots

/// The whole build: description -> cached root filesystem -> customised tree -> artifacts.
public struct ImageBuild {
    public struct Options: Sendable {
        public var descriptionDirectory: String
        public var outputDirectory: String
        public var mirror: String?
        public var cacheDirectory: String
        public var profile: String?
        public var tools: [String]
        public var compress: Bool
        public var keepRoot: Bool
        /// The root tree in a tmpfs when the memory allows (`--root-on-disk` turns it off).
        public var rootInMemory = true
        /// Overrides the description's `release`.
        public var release: String?
        /// Boot through Debian's signed shim and GRUB instead of systemd-boot (Secure Boot with the stock keys).
        public var secureBoot = false
        /// The locked mode: a UKI signed with this pair, the root under dm-verity.
        public var locked: SigningIdentity?
        /// Generate the initramfs even when the cache has one for the same inputs (`InitramfsCache`).
        public var initramfsCache = true

        public init(descriptionDirectory: String, outputDirectory: String, mirror: String? = nil, cacheDirectory: String,
                    profile: String? = nil, tools: [String], compress: Bool = false, keepRoot: Bool = false, release: String? = nil,
                    secureBoot: Bool = false, locked: SigningIdentity? = nil) {
            self.release = release
            self.secureBoot = secureBoot
            self.locked = locked
            self.descriptionDirectory = descriptionDirectory
            self.outputDirectory = outputDirectory
            self.mirror = mirror
            self.cacheDirectory = cacheDirectory
            self.profile = profile
            self.tools = tools
            self.compress = compress
            self.keepRoot = keepRoot
        }
    }

    public struct Result: Sendable {
        public var stick: StickBuilder.Result
        public var rootArchive: String
        public var rootFromCache: Bool
        public var steps: [(String, Double)]
    }

    public var logger: Logger
    public var reporter: Reporter

    public init(logger: Logger, reporter: Reporter) {
        self.logger = logger
        self.reporter = reporter
    }

    public func run(_ options: Options) throws(ImageError) -> Result {
        guard getuid() == 0 else {
            throw .invalid("aquarium-image build", "needs root (debootstrap, chroot, file owners); run it with sudo")
        }
        // Before any slow work: an image whose tools cannot run on the node is not worth building.
        try Self.checkTools(options.tools)
        if let locked = options.locked {
            if options.secureBoot { throw .invalid("--locked", "and --secure-boot exclude each other: the locked mode boots its own signed UKI") }
            try locked.validate(logger: logger)
        }
        let description = try ImageDescription.load(directory: options.descriptionDirectory)
        let profile = options.profile ?? description.defaultProfile
        let packages = try description.packages(profile: profile)
        let release = options.release ?? description.release
        if let release, !SlotEntry.isValidRelease(release) {
            throw .invalid(release, "is not a release string: 1-64 of letters, digits, '.', '_', '+', '~', '-' (not first)")
        }
        let identity = BuildIdentity(imageName: description.name, epoch: try BuildIdentity.epochFromEnvironment(), release: release)
        let mirror: String
        if let given = options.mirror { mirror = given } else { mirror = try AptSources.mirror(suite: description.suite) }
        var steps: [(String, Double)] = []
        func timed<T>(_ name: String, _ body: () throws(ImageError) -> T) throws(ImageError) -> T {
            let start = Date()
            let value = try body()
            steps.append((name, Date().timeIntervalSince(start)))
            return value
        }
        let rootfs = RootfsBuilder(logger: logger, reporter: reporter)
        let (archive, cached) = try timed("root filesystem (cache)") { () throws(ImageError) in
            try rootfs.cachedRoot(description: description, packages: packages, mirror: mirror,
                                  cacheDirectory: options.cacheDirectory)
        }
        let output = URL(fileURLWithPath: options.outputDirectory).standardized.path
        let root = output + "/.rootfs-\(description.name)"
        // The tree in memory when there is room (about 3 times the archive, twice over), on disk otherwise.
        let archiveBytes = (try? FileManager.default.attributesOfItem(atPath: archive)[.size] as? UInt64) ?? nil
        let scratch = try RootScratch.prepare(root, neededBytes: (archiveBytes ?? 1 << 30) * 4,
                                              allowMemory: !options.keepRoot && options.rootInMemory, logger: logger)
        defer { if !options.keepRoot { scratch.remove() } }
        try timed("extract root filesystem") { () throws(ImageError) in
            reporter.line("extracting \(archive)" + (scratch.inMemory ? " (into memory: a tmpfs)" : ""))
            try rootfs.extract(archive, to: root)
        }
        let keys = description.trustedSeedKeys.map { options.descriptionDirectory + "/" + $0 }
        let overlay = options.descriptionDirectory + "/overlay"
        try timed("customise (overlay, tools, units, initramfs)") { () throws(ImageError) in
            try rootfs.customise(root: root, with: RootfsBuilder.Customisation(
                overlay: FileManager.default.fileExists(atPath: overlay) ? overlay : nil,
                tools: options.tools, trustedKeys: keys, units: description.units,
                rootFilesystemUUID: identity.filesystemUUID(.root),
                release: ["NAME": description.name, "SUITE": description.suite, "ARCHITECTURE": description.architecture,
                          "PROFILE": profile, "ROOTFS_KEY": description.rootCacheKey(packages: packages),
                          "BUILD_EPOCH": String(identity.epoch), "VERSION": AquariumVersion.string,
                          "RELEASE": identity.releaseName, "SLOTS": options.locked != nil ? "a" : "a/b",
                          "BOOT": options.locked != nil ? "uki-locked" : options.secureBoot ? "shim-grub" : "systemd-boot"],
                epoch: identity.epoch, readOnlyRoot: options.locked != nil,
                initramfsCache: options.initramfsCache ? options.cacheDirectory + "/initramfs" : nil))
        }
        let boot = try RootfsBuilder.bootFiles(root: root, secureBoot: options.secureBoot, locked: options.locked)
        let builder = StickBuilder(logger: logger, reporter: reporter)
        let stick = try builder.assemble(
            rootTree: root, boot: boot, commandLine: description.kernelCommandLine, layout: description.layout, identity: identity,
            outputDirectory: output, compress: options.compress, summary: false)
        steps += stick.steps
        builder.report(stick, steps: steps)
        let total = steps.reduce(0) { $0 + $1.1 }
        reporter.line(String(format: "built %@ in %.1f s (root filesystem %@)", stick.artifacts.image, total,
                             cached ? "from the cache" : "debootstrapped and cached"))
        return Result(stick: stick, rootArchive: archive, rootFromCache: cached, steps: steps)
    }

    /// Refuses (exit 2) a tool that is missing or links the Swift runtime dynamically: the node has no Swift
    /// runtime, so the image would boot into tools that cannot start.
    public static func checkTools(_ tools: [String]) throws(ImageError) {
        for tool in tools where !FileManager.default.isExecutableFile(atPath: tool) {
            throw .invalid(tool, "is not an executable; build the node tools with `scripts/build-node-tools` and run the "
                           + "aquarium-image in the directory it prints (or pass its tools with --tool)")
        }
        for tool in tools where linksSwiftRuntimeDynamically(tool) {
            throw .invalid(tool, "links the Swift runtime dynamically (libswiftCore.so) and cannot run in the image, which has "
                           + "no Swift runtime; build the node tools with `scripts/build-node-tools` (release, "
                           + "--static-swift-stdlib) and run the aquarium-image in the directory it prints (or pass its tools with --tool)")
        }
    }

    static func linksSwiftRuntimeDynamically(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        // The dynamic section names needed libraries near the start of the file; 4 MiB covers it.
        let head = (try? handle.read(upToCount: 4 << 20)) ?? Data()
        return head.range(of: Data("libswiftCore.so".utf8)) != nil
    }
}

/// `aquarium-image build`.
public struct BuildCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build the USB stick image: debootstrap (cached), overlay, our tools, initramfs, GPT image, bmap, checksums.",
        discussion: """
            Needs root. The tools installed in the image must be statically linked builds (`scripts/build-node-tools`); \
            a tool that links the Swift runtime dynamically is refused (exit 2) before anything slow starts. The Debian mirror comes from this host's apt sources unless --mirror is given. The root \
            filesystem is cached in --cache keyed by suite, architecture and packages, so a rebuild does not download \
            again. With SOURCE_DATE_EPOCH set, two builds from the same cache give a byte-identical NAME.raw.

            Examples:
              make install                        # static tools, which the image takes
              aquarium-image build --output out   # tools from beside aquarium-image
              aquarium-image build --profile minimal --compress --json
              aquarium-image flash out/aquarium.raw /dev/sdX
            """)

    @OptionGroup public var global: GlobalOptions
    @Option(name: .long, help: "The image description directory (aquarium.yaml + overlay/).") public var description = "image"
    @Option(name: .long, help: "Where the artifacts go.") public var output = "out"
    @Option(name: .long, help: "Debian mirror URL (default: this host's apt source for the suite).") public var mirror: String?
    @Option(name: .long, help: "Root filesystem cache directory.") public var cache = "/var/cache/aquarium-image"
    @Option(name: .long, help: "Package profile from the description (default: its default_profile).") public var profile: String?
    @Option(name: .long, help: "An executable to install in /usr/local/bin (repeatable; default: aquarium-firstboot, aquarium-provision and aquarium-image beside this tool).")
    public var tool: [String] = []
    @Option(name: .long, help: "The image's release string (default: the description's release, else build-EPOCH); loader entries and /etc/aquarium/image-release carry it.")
    public var release: String?
    @Flag(name: .customLong("secure-boot"), help: """
        Boot through Debian's signed chain (shim, GRUB, the kernel): the default, so the stick starts where UEFI Secure \
        Boot is enforced with the firmware's stock keys, and on legacy BIOS (GRUB for i386-pc in a BIOS boot \
        partition). Kept so scripts can say so. See docs/image.md, "Secure Boot" and "Legacy BIOS".
        """) public var secureBoot = false
    @Flag(name: .customLong("systemd-boot"), help: """
        Boot through an unsigned systemd-boot instead of the signed chain: UEFI only, and not where Secure Boot is \
        enforced. A/B updates work with either.
        """) public var systemdBoot = false
    @Flag(name: .long, help: """
        The locked mode: kernel, initrd and command line as one UKI signed with --signing-key (its certificate enrolled \
        in the nodes' UEFI db), the root filesystem read-only under dm-verity with its root hash on that command line. \
        See docs/image.md, "Locked mode".
        """) public var locked = false
    @Option(name: .customLong("signing-key"), help: "With --locked: the private key (aquarium-image keys init: aquarium-db.key).")
    public var signingKey: String?
    @Option(name: .customLong("signing-cert"), help: "With --locked: its certificate, PEM (aquarium-db.crt).")
    public var signingCert: String?
    @Flag(name: .long, help: "Also write NAME.raw.zst.") public var compress = false
    @Flag(name: .customLong("keep-root"), help: "Keep the customised root tree (OUTPUT/.rootfs-NAME) for inspection.") public var keepRoot = false
    @Flag(name: .customLong("root-on-disk"),
          help: "Build the root tree in the output directory even when there is memory for a tmpfs (the default when it fits).")
    public var rootOnDisk = false
    @Flag(name: .customLong("no-initramfs-cache"),
          help: "Generate the initramfs even when the cache holds one made from the same packages and /etc.")
    public var noInitramfsCache = false
    @Flag(name: .long, help: "No progress or summary.") public var quiet = false
    @Flag(name: .long, help: "Print what was built as JSON (files, sizes, checksum, the steps' times) instead of the image's path.")
    public var json = false

    public init() {}

    /// `build --json`.
    struct Report: Encodable {
        struct Step: Encodable {
            var step: String
            var seconds: Double
        }
        var image: String
        var bmap: String
        var sums: String
        var compressed: String?
        var imageBytes: UInt64
        var mappedBytes: UInt64
        var sha256: String?
        var rootArchive: String
        var rootFromCache: Bool
        var steps: [Step]
    }

    public func validate() throws {
        if systemdBoot && (secureBoot || locked) {
            throw ValidationError("--systemd-boot excludes \(secureBoot ? "--secure-boot" : "--locked"): each chooses how the stick boots")
        }
        if locked && secureBoot {
            throw ValidationError("--locked and --secure-boot exclude each other: the locked mode boots its own signed UKI")
        }
        if locked && (signingKey == nil || signingCert == nil) {
            throw ValidationError("--locked needs --signing-key and --signing-cert (make them with `aquarium-image keys init`)")
        }
        if !locked && (signingKey != nil || signingCert != nil) {
            throw ValidationError("--signing-key and --signing-cert are for --locked")
        }
    }

    public func run() throws {
        var tools = tool
        if tools.isEmpty {
            let directory = (Bundle.main.executablePath.map { ($0 as NSString).deletingLastPathComponent }) ?? "."
            tools = ["aquarium-firstboot", "aquarium-provision", "aquarium-image"].map { directory + "/" + $0 }
        }
        var options = ImageBuild.Options(descriptionDirectory: description, outputDirectory: output, mirror: mirror, cacheDirectory: cache,
                                         profile: profile, tools: tools, compress: compress, keepRoot: keepRoot, release: release,
                                         secureBoot: !systemdBoot && !locked,
                                         locked: locked ? SigningIdentity(key: signingKey ?? "", certificate: signingCert ?? "") : nil)
        options.initramfsCache = !noInitramfsCache
        options.rootInMemory = !rootOnDisk
        let result = try ImageBuild(logger: global.logger("aquarium.image.build"), reporter: Reporter(quiet: quiet)).run(options)
        let artifacts = result.stick.artifacts
        guard json else {
            print(artifacts.image)
            return
        }
        print(try JSONCoding.text(Report(
            image: artifacts.image, bmap: artifacts.bmap, sums: artifacts.sums, compressed: artifacts.compressed,
            imageBytes: artifacts.blockMap.imageSize, mappedBytes: artifacts.blockMap.mappedBytes,
            sha256: artifacts.blockMap.imageDigest, rootArchive: result.rootArchive, rootFromCache: result.rootFromCache,
            steps: result.steps.map { Report.Step(step: $0.0, seconds: ($0.1 * 10).rounded() / 10) })))
    }
}
