import BootSlots
import FileLayer
import Foundation

/// The files of the ESP and the seed partition, written into staging directories before assembly.
public enum StickContent {
    /// Where on the seed partition FirstBoot looks for the node's seed when no per-machine file
    /// (`seeds/<DMI serial>.yaml`, `seeds/<MAC>.yaml`) matches, and where `seed inject` writes unless told otherwise.
    public static let seedPath = "seed.yaml"
    /// The commented example on a fresh stick (not named seed.yaml, so a stick nobody seeded stops safely).
    public static let exampleSeedPath = "example-seed.yaml"
    /// Where in the root filesystem the image keeps the public keys seeds must be signed with (FirstBoot reads it).
    public static let trustedSeedKeysDirectory = "etc/aquarium/trusted-seed-keys"
    public static let readmeName = "README.TXT"

    /// The boot files that go on the ESP.
    public struct BootFiles: Sendable {
        public var kernel: String
        public var initrd: String
        /// systemd-boot's EFI binary (Debian's systemd-boot-efi: /usr/lib/systemd/boot/efi/systemd-bootx64.efi).
        public var bootloader: String
        /// The signed chain (the default; nil with `build --systemd-boot`): shim, its MokManager and Debian's signed GRUB.
        public var signed: SignedChain?
        /// The locked mode instead (`build --locked`): a UKI signed with the operator's key, a dm-verity root.
        public var locked: LockedChain?

        public init(kernel: String, initrd: String, bootloader: String, signed: SignedChain? = nil, locked: LockedChain? = nil) {
            self.kernel = kernel
            self.initrd = initrd
            self.bootloader = bootloader
            self.signed = signed
            self.locked = locked
        }
    }

    /// The locked mode's boot: systemd's EFI stub, the os-release it shows, and the operator's signing pair.
    public struct LockedChain: Sendable, Equatable {
        /// systemd-boot-efi: /usr/lib/systemd/boot/efi/linuxx64.efi.stub.
        public var stub: String
        /// The root's /etc/os-release (the UKI's .osrel section).
        public var osRelease: String
        public var signing: SigningIdentity

        public init(stub: String, osRelease: String, signing: SigningIdentity) {
            self.stub = stub
            self.osRelease = osRelease
            self.signing = signing
        }
    }

    /// The device-mapper name the initramfs gives the verified root (`aquarium-verity` local-top script).
    public static let verifiedRootName = "aquarium-root"

    /// The locked UKI's command line: the verified root, the description's command line, the verity parameters the
    /// initramfs opens the root with, the slot and release, and `panic=60` (initramfs-tools then reboots after a minute
    /// instead of opening a rescue shell, which would bypass the verified root).
    public static func lockedCommandLine(verity: VerityRoot, rootPartitionGUID: UUID, commandLine: String, release: String) -> String {
        ["root=/dev/mapper/\(verifiedRootName)", commandLine,
         "aquarium.verity=\(verity.rootHash)", "aquarium.verity.partuuid=\(rootPartitionGUID.uuidString.lowercased())",
         "aquarium.verity.offset=\(verity.hashOffset)", "aquarium.slot=a", "aquarium.release=\(release)", "panic=60"]
            .filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// Debian's Secure Boot chain, each signed by Microsoft's UEFI CA (shim) or Debian's key that shim carries
    /// (GRUB, the kernel): what a machine with Secure Boot on and only the stock keys enrolled starts.
    public struct SignedChain: Sendable, Equatable {
        /// shim-signed: /usr/lib/shim/shimx64.efi.signed.
        public var shim: String
        /// shim-helpers-amd64-signed: /usr/lib/shim/mmx64.efi.signed (shim starts it when a key enrolment is pending).
        public var mokManager: String
        /// grub-efi-amd64-signed: /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed (monolithic, built-in config).
        public var grub: String
        /// grub-pc-bin: /usr/lib/grub/i386-pc, GRUB for legacy BIOS (boot.img and the modules core.img is built from).
        public var biosModules: String

        public init(shim: String, mokManager: String, grub: String, biosModules: String) {
            self.shim = shim
            self.mokManager = mokManager
            self.grub = grub
            self.biosModules = biosModules
        }

        /// Where Debian's packages put them under `root`.
        public static func inRoot(_ root: String) -> SignedChain {
            SignedChain(shim: root + "/usr/lib/shim/shimx64.efi.signed", mokManager: root + "/usr/lib/shim/mmx64.efi.signed",
                        grub: root + "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
                        biosModules: root + "/usr/lib/grub/i386-pc")
        }
    }

    /// The signed chain's GRUB configuration for a fresh stick: slot A's entry (the same kernel, initrd and command
    /// line as its loader entry), at once, no menu (`GrubBoot.configuration`, which `aquarium-provision update`
    /// regenerates from the loader entries). Debian's signed GRUB reads it as `$prefix/grub.cfg`: its prefix is
    /// `/EFI/debian` on the volume it started from (without that directory it would search for `.disk/info` first,
    /// printing errors, and then read `$cmdpath/grub.cfg`).
    public static func grubConfig(_ entry: SlotEntry) -> String {
        GrubBoot.configuration([(EntryFileName(stem: entry.slot.entryStem), entry)]).config
    }

    /// Fills `directory` with the ESP: `\EFI\BOOT\BOOTX64.EFI` (systemd-boot, which OVMF and real firmware
    /// find without NVRAM entries; with `boot.signed`, shim, then GRUB and its grub.cfg), `loader/loader.conf`, slot A's loader entry `loader/entries/aquarium-a.conf` and
    /// its kernel and initrd in `aquarium/a/`. Slot B gets its files from `aquarium-provision update`.
    public static func populateESP(at directory: String, boot: BootFiles, release: String, rootPartitionGUID: UUID,
                                   commandLine: String) throws(ImageError) {
        let slot = Slot.a
        try makeDirectories(directory, ["EFI/BOOT", StickNames.entriesDirectory, slot.bootDirectory]
                            + (boot.signed == nil ? [] : [(StickNames.grubConfigPath as NSString).deletingLastPathComponent]))
        let entry = SlotEntry(slot: slot, release: release, generation: 1, rootPartitionUUID: rootPartitionGUID.uuidString,
                              commandLine: commandLine)
        if boot.locked != nil {
            // Only the signed UKI, written once the root hash is known (StickBuilder); no loader entries: nothing on
            // this ESP may choose another kernel or command line.
            return
        }
        if let signed = boot.signed {
            // No fbx64.efi beside shim: shim would run it and write boot entries into the machine's NVRAM.
            try copy(signed.shim, to: directory + "/EFI/BOOT/BOOTX64.EFI")
            try copy(signed.mokManager, to: directory + "/EFI/BOOT/mmx64.efi")
            try copy(signed.grub, to: directory + "/" + StickNames.signedLoaderPath)
            try write(grubConfig(entry), to: directory + "/" + StickNames.grubConfigPath)
            // GRUB's environment block, 1024 bytes that GRUB rewrites in place when it counts a trial boot.
            do { try AtomicFile.write(GrubBoot.environment(tries: nil), to: directory + "/" + GrubBoot.environmentPath) } catch {
                throw .failure(directory + "/" + GrubBoot.environmentPath, "cannot write the file: \(error.errno)")
            }
        } else {
            try copy(boot.bootloader, to: directory + "/EFI/BOOT/BOOTX64.EFI")
        }
        try copy(boot.kernel, to: directory + "/\(slot.bootDirectory)/vmlinuz")
        try copy(boot.initrd, to: directory + "/\(slot.bootDirectory)/initrd.img")
        try write(StickNames.loaderConf, to: directory + "/loader/loader.conf")
        try write(entry.text, to: directory + "/\(StickNames.entriesDirectory)/\(EntryFileName(stem: slot.entryStem).fileName)")
    }

    /// The README on the seed partition, for the operator who opens the stick on a laptop.
    public static func seedReadme(imageName: String) -> String {
        """
        Aquarium seed volume (\(imageName))
        =================================

        Put this node's seed file here as \(seedPath) (UTF-8 YAML, seed file version 1),
        or one stick for many nodes: seeds/<DMI serial>.yaml or seeds/<MAC address>.yaml,
        each with its signature FILE.sig when the image trusts signing keys.

        Start from \(exampleSeedPath); check a seed with `aquarium-image seed validate FILE`;
        write it here without mounting with `aquarium-image seed inject STICK FILE`.

        A stick without \(seedPath) boots, finds no seed, and stops safely without touching any disk.
        FirstBoot writes its report about this node back to this volume.

        """.replacingOccurrences(of: "\n", with: "\r\n")
    }

    /// Fills `directory` with the seed partition's files.
    public static func populateSeed(at directory: String, imageName: String, exampleSeed: String) throws(ImageError) {
        try makeDirectories(directory, [""])
        try write(seedReadme(imageName: imageName), to: directory + "/" + readmeName)
        try write(exampleSeed, to: directory + "/" + exampleSeedPath)
    }

    static func makeDirectories(_ base: String, _ paths: [String]) throws(ImageError) {
        for path in paths {
            do {
                try FileManager.default.createDirectory(atPath: base + "/" + path, withIntermediateDirectories: true)
            } catch {
                throw .failure(base + "/" + path, "cannot create the directory: \(error)")
            }
        }
    }

    static func copy(_ source: String, to destination: String) throws(ImageError) {
        guard FileManager.default.isReadableFile(atPath: source) else {
            throw .invalid(source, "is missing or unreadable")
        }
        do {
            if FileManager.default.fileExists(atPath: destination) { try FileManager.default.removeItem(atPath: destination) }
            // The file itself, not a symlink to it (FAT has no symlinks).
            let resolved = URL(fileURLWithPath: source).resolvingSymlinksInPath().path
            try FileManager.default.copyItem(atPath: resolved, toPath: destination)
        } catch {
            throw .failure(destination, "cannot copy \(source) here: \(error)")
        }
    }

    static func write(_ text: String, to path: String) throws(ImageError) {
        do {
            try AtomicFile.write(Data(text.utf8), to: path)
        } catch {
            throw .failure(path, "cannot write the file: \(error.errno)")
        }
    }
}
