import Exec
import Foundation
import ImageBuilder
import Testing
import TestSupport

/// A small root tree, boot files and a tiny image built from them, shared by the ImageBuilder suites.
enum ImageFixtures {
    static let programs = ["mkfs.vfat", "mlabel", "mmd", "mcopy", "mdir", "mtype", "mke2fs", "debugfs", "dumpe2fs",
                           "e2fsck", "fsck.vfat", "sfdisk", "blkid"]
    static let epoch: Int64 = 1_700_000_000
    static let layout = StickLayout(espMiB: 40, seedMiB: 8, rootHeadroomMiB: 8)
    static let commandLine = "ro console=ttyS0,115200"
    /// The build host's GRUB for BIOS (grub-pc-bin), which the signed-chain fixtures copy into their root.
    static let hostBIOSModules = "/usr/lib/grub/i386-pc"
    /// The build host's systemd EFI stub (systemd-boot-efi), which locked fixtures build their UKI from.
    static let hostEFIStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
    /// What a `locked:` fixture needs besides `programs`.
    static let lockedPrograms = ["openssl", "objcopy", "sbsign", "sbverify", "faketime", "veritysetup"]
    /// What a `secureBoot: true` fixture needs besides `programs`.
    static let signedChainPrograms = ["grub-mkimage"]

    /// Deterministic pseudo-random bytes (a fake kernel must not compress to nothing, nor be random per run).
    static func bytes(_ count: Int, seed: UInt64) -> Data {
        var state = seed | 1
        var bytes = [UInt8](repeating: 0, count: count)
        for index in 0..<count {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            bytes[index] = UInt8(truncatingIfNeeded: state)
        }
        return Data(bytes)
    }

    static func write(_ data: Data, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: data) else { throw ImageError(.failure, path, "cannot write") }
    }

    /// A root tree: a few files, a symlink, a hard link, an empty directory, a directory with many
    /// entries (htree), a setuid file, and a fake kernel and initrd under /boot.
    static func makeRoot(at root: String) throws {
        try write(Data("aquarium\n".utf8), root + "/etc/hostname")
        try write(Data(), root + "/etc/machine-id")
        try write(Data("#!/bin/sh\necho hello\n".utf8), root + "/usr/bin/hello")
        chmod(root + "/usr/bin/hello", 0o4755)
        try FileManager.default.createSymbolicLink(atPath: root + "/usr/bin/hi", withDestinationPath: "hello")
        try FileManager.default.linkItem(atPath: root + "/etc/hostname", toPath: root + "/etc/hostname.hardlink")
        try FileManager.default.createDirectory(atPath: root + "/var/empty", withIntermediateDirectories: true)
        for index in 0..<300 { try write(Data("\(index)\n".utf8), root + "/usr/share/many/file-\(index)") }
        try write(bytes(1_500_000, seed: 1), root + "/boot/vmlinuz-6.1.0-aquarium")
        try write(bytes(2_500_000, seed: 2), root + "/boot/initrd.img-6.1.0-aquarium")
        try FileManager.default.createSymbolicLink(atPath: root + "/boot/vmlinuz", withDestinationPath: "vmlinuz-6.1.0-aquarium")
        try FileManager.default.createSymbolicLink(atPath: root + "/boot/initrd.img", withDestinationPath: "initrd.img-6.1.0-aquarium")
        try write(bytes(120_000, seed: 3), root + "/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
    }

    static func boot(_ root: String) -> StickContent.BootFiles {
        StickContent.BootFiles(kernel: root + "/boot/vmlinuz", initrd: root + "/boot/initrd.img",
                               bootloader: root + "/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
    }

    /// Makes a fresh root tree in `directory/root-N` and assembles an image into `directory/out-N`.
    static func assemble(in directory: String, tag: String, epoch: Int64 = epoch, name: String = "aquarium",
                         release: String? = nil, compress: Bool = false, secureBoot: Bool = false,
                         locked: SigningIdentity? = nil,
                         customize: ((String) throws -> Void)? = nil) throws -> StickBuilder.Result {
        let root = directory + "/root-" + tag
        try makeRoot(at: root)
        var boot = boot(root)
        if secureBoot {
            // Stand-ins for Debian's signed binaries, where their packages put them.
            let chain = StickContent.SignedChain.inRoot(root)
            for (index, path) in [chain.shim, chain.mokManager, chain.grub].enumerated() {
                try write(bytes(50_000, seed: 10 + UInt64(index)), path)
            }
            // GRUB for BIOS: the build host's real grub-pc-bin (grub-mkimage builds a real core image from it).
            try FileManager.default.createDirectory(atPath: (chain.biosModules as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: hostBIOSModules, toPath: chain.biosModules)
            boot = try RootfsBuilder.bootFiles(root: root, secureBoot: true)
        }
        if let locked {
            // The build host's real systemd EFI stub; a stand-in veritysetup (bootFiles only checks it is there).
            try FileManager.default.createDirectory(atPath: root + "/usr/lib/systemd/boot/efi", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: hostEFIStub, toPath: root + "/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
            try write(Data("#!/bin/sh\n".utf8), root + "/usr/sbin/veritysetup")
            try write(Data("PRETTY_NAME=\"Aquarium test\"\nID=debian\n".utf8), root + "/usr/lib/os-release")
            try FileManager.default.createSymbolicLink(atPath: root + "/etc/os-release", withDestinationPath: "../usr/lib/os-release")
            boot = try RootfsBuilder.bootFiles(root: root, locked: locked)
        }
        try customize?(root)
        return try StickBuilder().assemble(rootTree: root, boot: boot, commandLine: commandLine, layout: layout,
                                           identity: BuildIdentity(imageName: name, epoch: epoch, release: release),
                                           outputDirectory: directory + "/out-" + tag, compress: compress)
    }

    /// Runs a program and returns its standard output; throws on failure.
    @discardableResult
    static func tool(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> String {
        try Command(executable, arguments, environment: environment).run().output
    }

    /// Copies `count` bytes at `offset` of `path` into a new file (for checkers without an offset option).
    static func extract(_ path: String, offset: UInt64, count: UInt64, to target: String) throws {
        let input = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? input.close() }
        try input.seek(toOffset: offset)
        let data = try input.read(upToCount: Int(count)) ?? Data()
        try write(data, target)
    }

    static func sfdisk(_ path: String) throws -> [String: Any] {
        let json = try Command("sfdisk", ["--json", path]).run().standardOutput
        let object = try JSONSerialization.jsonObject(with: json) as? [String: Any]
        return try #require(object?["partitiontable"] as? [String: Any])
    }

    /// `blkid -p -O OFFSET -o export` as a dictionary.
    static func blkid(_ path: String, offset: UInt64) throws -> [String: String] {
        let text = try tool("blkid", ["-p", "-O", String(offset), "-o", "export", path])
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        return values
    }
}
