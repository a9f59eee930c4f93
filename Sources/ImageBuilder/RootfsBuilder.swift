import Archive
import Exec
import FileLayer
import Foundation
import Logging

/// The root filesystem of the image: debootstrap + apt into a cached archive, then customised per build.
public struct RootfsBuilder {
    public var logger: Logger
    public var reporter: Reporter

    public init(logger: Logger = Logger(label: "aquarium.image.rootfs"), reporter: Reporter = Reporter(quiet: true)) {
        self.logger = logger
        self.reporter = reporter
    }

    /// The cached root filesystem archive for these inputs, created when missing. Returns its path and
    /// whether it came from the cache.
    public func cachedRoot(description: ImageDescription, packages: [String], mirror: String,
                           cacheDirectory: String) throws(ImageError) -> (path: String, cached: Bool) {
        let key = description.rootCacheKey(packages: packages)
        let archive = cacheDirectory + "/rootfs-\(description.suite)-\(description.architecture)-\(key).tar.zst"
        do {
            try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        } catch {
            throw .failure(cacheDirectory, "cannot create the cache directory: \(error)")
        }
        // One build at a time fills the cache; a second one waits and then finds the archive.
        let lock = open(cacheDirectory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw .failure(cacheDirectory + "/.lock", "cannot open the cache lock: \(errnoText())") }
        defer { close(lock) }
        if flock(lock, LOCK_EX | LOCK_NB) != 0 {
            reporter.line("waiting for another build that is filling the cache \(cacheDirectory)")
            guard flock(lock, LOCK_EX) == 0 else { throw .failure(cacheDirectory, "cannot lock the cache: \(errnoText())") }
        }
        if FileManager.default.fileExists(atPath: archive) {
            reporter.line("root filesystem from the cache: \(archive)")
            return (archive, true)
        }
        let work = cacheDirectory + "/.debootstrap-\(key)"
        try? removeTree(work)
        defer { try? removeTree(work) }
        var stepStart = Date()
        func done(_ what: String) {
            reporter.line(String(format: "  %@ took %.0f s", what, Date().timeIntervalSince(stepStart)))
            stepStart = Date()
        }
        reporter.line("debootstrap \(description.suite)/\(description.architecture) (\(description.variant)) from \(mirror)")
        try runCounted(Command("debootstrap", ["--variant=\(description.variant)", "--arch=\(description.architecture)",
                                               "--components=\(description.components.joined(separator: ","))",
                                               description.suite, work, mirror]),
                       subject: work, what: "debootstrap", label: "debootstrap")
        done("debootstrap")
        reporter.line("installing \(packages.count) packages with apt in the chroot")
        try withChrootMounts(work) { () throws(ImageError) in
            try write("deb \(mirror) \(description.suite) \(description.components.joined(separator: " "))\n",
                      to: work + "/etc/apt/sources.list")
            // No daemon starts inside the chroot.
            try write("#!/bin/sh\nexit 101\n", to: work + "/usr/sbin/policy-rc.d", mode: 0o755)
            let environment = ["DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"]
            try runTool(Command("chroot", [work, "apt-get", "update", "-q"], environment: environment),
                        subject: work, what: "apt-get update in the chroot", logger: logger)
            try runCounted(Command("chroot", [work, "apt-get", "install", "-y", "-q", "--no-install-recommends"] + packages,
                                   environment: environment),
                           subject: work, what: "installing the packages in the chroot", label: "apt")
            try runTool(Command("chroot", [work, "apt-get", "clean"], environment: environment),
                        subject: work, what: "apt-get clean in the chroot", logger: logger)
        }
        try? FileManager.default.removeItem(atPath: work + "/usr/sbin/policy-rc.d")
        try removeContents(work + "/var/lib/apt/lists", keeping: ["lock", "partial"])
        done("apt")
        reporter.line("writing the root filesystem cache \(archive)")
        let partial = archive + ".partial"
        do {
            let writer = try ArchiveWriter(path: partial, compression: .zstd)
            try writer.addTree(work)
            try writer.finish()
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw .failure(archive, "writing the root filesystem archive failed: \(error)")
        }
        do {
            try AtomicFile.publish(partial, to: archive)
        } catch {
            throw .failure(archive, "cannot move the archive into place: \(error.errno)")
        }
        done("the cache archive")
        return (archive, false)
    }

    /// Extracts the cached archive into `root` (replaced; a tmpfs mounted there stays, it is empty).
    public func extract(_ archive: String, to root: String) throws(ImageError) {
        if !RootScratch.isMountPoint(root) { try? removeTree(root) }
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try ArchiveReader(path: archive).extract(to: root)
        } catch {
            throw .failure(archive, "extracting the root filesystem into \(root) failed: \(error)")
        }
    }

    /// What the build adds to a root tree.
    public struct Customisation: Sendable {
        public var overlay: String?
        /// Host executables copied to /usr/local/bin.
        public var tools: [String]
        /// Public seed key files copied to /etc/aquarium/trusted-seed-keys.
        public var trustedKeys: [String]
        public var units: [String]
        /// The root filesystem's UUID: `/etc/fstab` mounts `/` by it, which holds in whichever slot the tree ends up.
        public var rootFilesystemUUID: UUID
        public var release: [String: String]
        public var epoch: Int64
        /// The locked mode: the initramfs mounts `/` (the dm-verity root under a RAM overlay); fstab leaves it alone.
        public var readOnlyRoot: Bool
        /// Where initramfs images of earlier builds are kept (`InitramfsCache`); nil: always generated.
        public var initramfsCache: String?

        public init(overlay: String?, tools: [String], trustedKeys: [String], units: [String], rootFilesystemUUID: UUID,
                    release: [String: String], epoch: Int64, readOnlyRoot: Bool = false, initramfsCache: String? = nil) {
            self.readOnlyRoot = readOnlyRoot
            self.initramfsCache = initramfsCache
            self.overlay = overlay
            self.tools = tools
            self.trustedKeys = trustedKeys
            self.units = units
            self.rootFilesystemUUID = rootFilesystemUUID
            self.release = release
            self.epoch = epoch
        }
    }

    /// Overlay, tools, keys, units, fstab, identity files; then the initramfs in the chroot.
    public func customise(root: String, with custom: Customisation) throws(ImageError) {
        var units = custom.units
        if let overlay = custom.overlay {
            try copyTree(overlay, into: root)
            units += try Self.installableUnits(in: overlay)
        }
        var bundles = Set<String>()
        for tool in custom.tools {
            try copyFile(tool, to: root + "/usr/local/bin/" + (tool as NSString).lastPathComponent, mode: 0o755)
            // SwiftPM resource bundles beside the tool (aquarium_Seed.resources: the seed schema and example).
            let directory = (URL(fileURLWithPath: tool).resolvingSymlinksInPath().path as NSString).deletingLastPathComponent
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for name in names.sorted() where name.hasPrefix("aquarium_") && name.hasSuffix(".resources") {
                bundles.insert(directory + "/" + name)
            }
        }
        for bundle in bundles.sorted() {
            let target = root + "/usr/local/bin/" + (bundle as NSString).lastPathComponent
            try makeDirectory(target)
            try copyTree(bundle, into: target)
        }
        let keys = root + "/" + StickContent.trustedSeedKeysDirectory
        try makeDirectory(keys)
        for key in custom.trustedKeys {
            try copyFile(key, to: keys + "/" + (key as NSString).lastPathComponent, mode: 0o644)
        }
        // By filesystem UUID, not PARTUUID: an update copies this filesystem into the stick's other slot.
        if custom.readOnlyRoot {
            // The initramfs mounts / (the verified root under a RAM overlay); an fstab line would remount it.
            try write("# / is mounted by the initramfs: the dm-verity root, read-only, below a RAM overlay (locked mode).\n",
                      to: root + "/etc/fstab")
        } else {
            try write("UUID=\(custom.rootFilesystemUUID.uuidString.lowercased()) / ext4 rw,noatime 0 1\n", to: root + "/etc/fstab")
        }
        // No identity of the build host and none shared between nodes: systemd makes a machine id on first boot,
        // FirstBoot sets the host name from the seed.
        try write("", to: root + "/etc/machine-id", mode: 0o444)
        try? FileManager.default.removeItem(atPath: root + "/var/lib/dbus/machine-id")
        try? FileManager.default.removeItem(atPath: root + "/etc/hostname")
        try write("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n", to: root + "/etc/hosts")
        try? FileManager.default.removeItem(atPath: root + "/etc/resolv.conf")
        for name in ["ssh_host_rsa_key", "ssh_host_ecdsa_key", "ssh_host_ed25519_key"] {
            // Generated per node on first boot (openssh-server's sshd-keygen / dpkg-reconfigure).
            try? FileManager.default.removeItem(atPath: root + "/etc/ssh/" + name)
            try? FileManager.default.removeItem(atPath: root + "/etc/ssh/" + name + ".pub")
        }
        if FileManager.default.fileExists(atPath: root + "/etc/iscsi/initiatorname.iscsi") {
            // open-iscsi's postinst made an initiator name at build time, which every node would share (an iSCSI
            // target's ACLs tell initiators apart by it): its startup check makes a new one when iscsid first starts
            // on the node, in /etc's overlay on the system disk.
            try write("GenerateName=yes\n", to: root + "/etc/iscsi/initiatorname.iscsi", mode: 0o600)
        }
        try write(custom.release.keys.sorted().map { "\($0)=\(custom.release[$0] ?? "")\n" }.joined(),
                  to: root + "/etc/aquarium/image-release")

        let environment = ["SOURCE_DATE_EPOCH": String(custom.epoch), "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"]
        try withChrootMounts(root) { () throws(ImageError) in
            for unit in Array(Set(units)).sorted() {
                try runTool(Command("chroot", [root, "systemctl", "enable", unit], environment: environment), subject: root,
                            what: "enabling \(unit)", logger: logger)
            }
            if FileManager.default.fileExists(atPath: root + "/usr/sbin/update-initramfs") {
                let cache = custom.initramfsCache.map(InitramfsCache.init(directory:))
                let key = cache == nil ? nil : try InitramfsCache.key(root: root)
                if let cache, let key, try cache.restore(key: key, into: root) {
                    reporter.line("the initramfs from the cache (\(cache.directory)/\(key.prefix(16))...: the same packages and /etc)")
                } else {
                    reporter.line("generating the initramfs")
                    var initramfs = environment
                    if let epoch = InitramfsCache.epoch(root: root) { initramfs["SOURCE_DATE_EPOCH"] = String(epoch) }
                    try runTool(Command("chroot", [root, "update-initramfs", "-u", "-k", "all"], environment: initramfs),
                                subject: root, what: "update-initramfs in the chroot", logger: logger)
                    if let cache, let key { try cache.store(key: key, from: root) }
                }
            }
        }
        // Nothing of the build host's session stays.
        // /run is a tmpfs on the node; what the chroot tools left there (blkid's cache with a time stamp) goes.
        try removeContents(root + "/run", keeping: [])
        try removeContents(root + "/tmp", keeping: [])
        try removeContents(root + "/var/tmp", keeping: [])
        try? FileManager.default.removeItem(atPath: root + "/var/cache/ldconfig/aux-cache")
    }

    /// The kernel and initrd of the newest kernel in `root`/boot.
    public static func bootFiles(root: String, bootloader: String? = nil, secureBoot: Bool = false,
                                 locked signing: SigningIdentity? = nil) throws(ImageError) -> StickContent.BootFiles {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root + "/boot")) ?? [])
        let versions = names.filter { $0.hasPrefix("vmlinuz-") }.map { String($0.dropFirst("vmlinuz-".count)) }
            .sorted { $0.compare($1, options: .numeric) == .orderedAscending }
        guard let version = versions.last else { throw .invalid(root + "/boot", "holds no kernel (vmlinuz-*); is linux-image-amd64 in the packages?") }
        let initrd = root + "/boot/initrd.img-" + version
        guard FileManager.default.fileExists(atPath: initrd) else { throw .invalid(initrd, "is missing; update-initramfs did not run") }
        let efi = bootloader ?? root + "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
        guard FileManager.default.fileExists(atPath: efi) else {
            throw .invalid(efi, "systemd-boot's EFI binary is missing; add systemd-boot-efi to the packages")
        }
        var signed: StickContent.SignedChain?
        if secureBoot {
            let chain = StickContent.SignedChain.inRoot(root)
            for (path, package) in [(chain.shim, "shim-signed"), (chain.mokManager, "shim-helpers-amd64-signed"),
                                    (chain.grub, "grub-efi-amd64-signed"),
                                    (chain.biosModules + "/boot.img", "grub-pc-bin")] where !FileManager.default.fileExists(atPath: path) {
                throw .invalid(path, "is missing: the signed boot chain (the default; --systemd-boot does without it) needs \(package) in the description's packages")
            }
            signed = chain
        }
        var locked: StickContent.LockedChain?
        if let signing {
            let stub = root + "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
            guard FileManager.default.fileExists(atPath: stub) else {
                throw .invalid(stub, "systemd's EFI stub is missing: --locked needs systemd-boot-efi in the description's packages")
            }
            let veritysetup = root + "/usr/sbin/veritysetup"
            guard FileManager.default.fileExists(atPath: veritysetup) else {
                throw .invalid(veritysetup, "is missing: --locked needs cryptsetup-bin in the description's packages (the initramfs opens the root with it)")
            }
            let osRelease = URL(fileURLWithPath: root + "/etc/os-release").resolvingSymlinksInPath().path
            guard let text = FileManager.default.contents(atPath: osRelease).map({ String(decoding: $0, as: UTF8.self) }) else {
                throw .invalid(root + "/etc/os-release", "is missing")
            }
            locked = StickContent.LockedChain(stub: stub, osRelease: text, signing: signing)
        }
        return StickContent.BootFiles(kernel: root + "/boot/vmlinuz-" + version, initrd: initrd, bootloader: efi, signed: signed,
                                      locked: locked)
    }

    /// Units under `overlay` (etc/systemd/system, usr/lib/systemd/system) with an [Install] section.
    static func installableUnits(in overlay: String) throws(ImageError) -> [String] {
        var units: [String] = []
        for directory in ["etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"] {
            let path = overlay + "/" + directory
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
            for name in names where [".service", ".socket", ".timer", ".target", ".path", ".mount"].contains(where: name.hasSuffix) {
                var info = stat()
                guard lstat(path + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFREG,
                      let text = try? String(contentsOfFile: path + "/" + name, encoding: .utf8) else { continue }
                if text.split(separator: "\n").contains(where: { $0.trimmingCharacters(in: .whitespaces) == "[Install]" }) {
                    units.append(name)
                }
            }
        }
        return units
    }

    // MARK: - chroot mounts

    /// Mounts /proc, /sys and /dev inside `root` for `body`, and always unmounts them again.
    func withChrootMounts(_ root: String, _ body: () throws(ImageError) -> Void) throws(ImageError) {
        var mounted: [String] = []
        defer {
            for point in mounted.reversed() {
                if (try? Command("umount", [point]).run()) == nil {
                    logger.warning("\(point) is busy; detaching it lazily")
                    _ = try? Command("umount", ["--lazy", point]).run()
                }
            }
        }
        for (source, type, point) in [("proc", "proc", "/proc"), ("sysfs", "sysfs", "/sys"), ("/dev", "bind", "/dev")] {
            let target = root + point
            try makeDirectory(target)
            let arguments = type == "bind" ? ["--bind", source, target] : ["-t", type, source, target]
            try runTool(Command("mount", arguments), subject: target, what: "mounting \(point) for the chroot", logger: logger)
            mounted.append(target)
        }
        try body()
    }

    // MARK: - files

    func write(_ text: String, to path: String, mode: mode_t = 0o644) throws(ImageError) {
        try makeDirectory((path as NSString).deletingLastPathComponent)
        // The one atomic write; a link at `path` is replaced, never followed.
        do {
            try AtomicFile.write(Data(text.utf8), to: path, mode: mode)
        } catch {
            throw .failure(path, "cannot write the file: \(error.errno)")
        }
    }

    func makeDirectory(_ path: String) throws(ImageError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .failure(path, "cannot create the directory: \(error)")
        }
    }

    func copyFile(_ source: String, to destination: String, mode: mode_t) throws(ImageError) {
        guard FileManager.default.isReadableFile(atPath: source) else { throw .invalid(source, "is missing or unreadable") }
        try makeDirectory((destination as NSString).deletingLastPathComponent)
        do {
            try? FileManager.default.removeItem(atPath: destination)
            try FileManager.default.copyItem(atPath: URL(fileURLWithPath: source).resolvingSymlinksInPath().path, toPath: destination)
        } catch {
            throw .failure(destination, "cannot copy \(source): \(error)")
        }
        guard chmod(destination, mode) == 0, chown(destination, 0, 0) == 0 else {
            throw .failure(destination, "cannot set owner and mode: \(errnoText())")
        }
    }

    /// Copies the overlay over `root`: directories merged, files and symlinks replaced, owned by root.
    func copyTree(_ source: String, into root: String) throws(ImageError) {
        for entry in try FileTree(path: source).entries() {
            let from = source + "/" + entry.relativePath
            let to = root + "/" + entry.relativePath
            var info = stat()
            guard lstat(from, &info) == 0 else { throw .failure(from, "cannot stat: \(errnoText())") }
            switch entry.kind {
            case .directory:
                var existing = stat()
                if lstat(to, &existing) != 0 {
                    try makeDirectory(to)
                    _ = chmod(to, info.st_mode & 0o7777)
                }
            case .file:
                try copyFile(from, to: to, mode: info.st_mode & 0o7777)
            case .symlink:
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: from) else {
                    throw .failure(from, "cannot read the symlink")
                }
                try? FileManager.default.removeItem(atPath: to)
                guard symlink(target, to) == 0 else { throw .failure(to, "cannot create the symlink: \(errnoText())") }
                _ = lchown(to, 0, 0)
            case .other:
                throw .invalid(from, "the overlay may hold only files, directories and symlinks")
            }
        }
    }

    func removeTree(_ path: String) throws {
        // Never follow into a mount that a crashed earlier build left behind.
        for point in ["/proc", "/sys", "/dev"] { _ = try? Command("umount", ["--lazy", path + point]).run() }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            try Command("rm", ["-rf", "--one-file-system", path]).run()
        }
    }

    func removeContents(_ directory: String, keeping: Set<String>) throws(ImageError) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where !keeping.contains(name) {
            do { try FileManager.default.removeItem(atPath: directory + "/" + name) } catch {
                throw .failure(directory + "/" + name, "cannot remove: \(error)")
            }
        }
    }
}

extension RootfsBuilder {
    /// Runs debootstrap or apt with a progress line (elapsed time, packages retrieved, unpacked, configured) and, with
    /// `-v`, each line of its output in the log.
    func runCounted(_ command: Command, subject: String, what: String, label: String) throws(ImageError) {
        var counter = PackageCounter()
        let start = Date()
        let reporter = reporter
        let logger = logger
        try runTool(command, subject: subject, what: what, logger: logger) { _, line in
            logger.info("\(label): \(line)")
            guard counter.take(line) else { return }
            reporter.activity(label, counter.summary, seconds: Date().timeIntervalSince(start))
        }
        reporter.activity(label, counter.summary, seconds: Date().timeIntervalSince(start))
        reporter.endProgress()
    }
}

/// The packages debootstrap and apt have got through, counted from their output lines.
struct PackageCounter: Equatable {
    var retrieved = 0
    var unpacked = 0
    var configured = 0

    /// Counts `line`; true when it was a package's step.
    mutating func take(_ line: some StringProtocol) -> Bool {
        if line.hasPrefix("I: Retrieving ") || line.hasPrefix("Get:") {
            // debootstrap's Release/Packages files are not packages.
            guard !line.hasPrefix("I: Retrieving Release") && !line.hasPrefix("I: Retrieving Packages")
                    && !line.hasPrefix("I: Retrieving InRelease") else { return false }
            retrieved += 1
        } else if line.hasPrefix("I: Unpacking ") || line.hasPrefix("Unpacking ") {
            // debootstrap's "I: Unpacking the base system..." is a phase, not a package.
            guard !line.hasPrefix("I: Unpacking the base system") && !line.hasPrefix("I: Unpacking required packages") else { return false }
            unpacked += 1
        } else if line.hasPrefix("I: Configuring ") || line.hasPrefix("Setting up ") {
            guard !line.hasPrefix("I: Configuring required packages") && !line.hasPrefix("I: Configuring the base system") else { return false }
            configured += 1
        } else {
            return false
        }
        return true
    }

    var summary: String { "\(retrieved) packages retrieved, \(unpacked) unpacked, \(configured) configured" }
}
