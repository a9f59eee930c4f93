import Exec
import Foundation
import ImageBuilder
import Testing
import TestSupport

/// The real build: debootstrap from the host's mirror (cached), apt in the chroot, initramfs, image.
/// Takes about 2.5 minutes the first time (about 40 s from the cache); CI sets AQUARIUM_FULL_BUILD=1.
@Suite("full Debian build (AQUARIUM_FULL_BUILD=1)", .serialized,
       .enabled(if: Capabilities.isCI || ProcessInfo.processInfo.environment["AQUARIUM_FULL_BUILD"] == "1",
                "AQUARIUM_FULL_BUILD=0 outside CI; in CI the full build always runs"))
struct FullBuildTests {
    static let cache = ProcessInfo.processInfo.environment["AQUARIUM_IMAGE_CACHE"] ?? "/var/cache/aquarium-image"

    /// The package root: the description lives in image/.
    static var packageRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url = url.deletingLastPathComponent() }
        return url.path
    }

    static let toolNames = ["aquarium-image", "aquarium-firstboot", "aquarium-provision"]

    /// The tools that go into the image: the statically linked builds scripts/run-tests makes (scripts/build-node-tools),
    /// as the image build for nodes uses them. `swift build`'s own products link the Swift runtime dynamically and
    /// cannot run on a node.
    static func nodeTools() throws -> [String] {
        guard let directory = ProcessInfo.processInfo.environment["AQUARIUM_NODE_TOOLS"] else {
            throw MissingCapability(what: "AQUARIUM_NODE_TOOLS (statically linked tools: run scripts/run-tests, which builds them)")
        }
        return toolNames.map { directory + "/" + $0 }
    }

    func build(_ output: String, _ extra: [String] = []) throws -> CommandResult {
        let tools = try Self.nodeTools()
        return try Command(try Products.path("aquarium-image"),
                           ["build", "--description", Self.packageRoot + "/image", "--output", output, "--cache", Self.cache,
                            "--profile", "minimal"] + tools.flatMap { ["--tool", $0] } + extra,
                           environment: ["SOURCE_DATE_EPOCH": "1700000000"]).timeLimited(1500).run(acceptedStatuses: Set(0...255))
    }

    @Test("minimal profile: builds, rebuilds from the cache byte-identically, and holds what a node needs",
          .requires(programs: ImageFixtures.programs + ["debootstrap", "chroot", "readelf"]))
    func minimal() throws {
        try withTemporaryDirectory { directory in
            let first = try build(directory + "/one")
            try #require(first.status == 0, "build: \(first.errorOutput)")
            // A build that fills the cache (a fresh machine: every CI run) says how far debootstrap and apt got.
            if !first.errorOutput.contains("root filesystem from the cache") {
                let progress = first.errorOutput.split(separator: "\n").filter {
                    ($0.hasPrefix("debootstrap: ") || $0.hasPrefix("apt: ")) && $0.contains(" packages retrieved, ")
                }
                #expect(progress.contains { $0.hasPrefix("debootstrap: ") } && progress.contains { $0.hasPrefix("apt: ") },
                        "no debootstrap/apt progress lines: \(first.errorOutput.prefix(3000))")
            }
            let second = try build(directory + "/two", ["--json"])
            try #require(second.status == 0, "build: \(second.errorOutput)")
            #expect(second.errorOutput.contains("root filesystem from the cache"))
            // --json: what was built, as JSON on standard output, nothing else there.
            let built = try JSONSerialization.jsonObject(with: second.standardOutput) as? [String: Any]
            #expect(built?["image"] as? String == directory + "/two/aquarium.raw" && built?["rootFromCache"] as? Bool == true
                    && (built?["mappedBytes"] as? Int ?? 0) > 0 && (built?["steps"] as? [[String: Any]])?.isEmpty == false,
                    "\(second.output)")
            #expect(second.errorOutput.contains("the initramfs from the cache"), "\(second.errorOutput)")
            let image = directory + "/one/aquarium.raw"
            #expect(try FileDigest.sha256(path: image) == FileDigest.sha256(path: directory + "/two/aquarium.raw"))
            // The cached initramfs is the one update-initramfs makes: a third build generates it and is the same image.
            let third = try build(directory + "/three", ["--no-initramfs-cache"])
            try #require(third.status == 0, "build: \(third.errorOutput)")
            #expect(third.errorOutput.contains("generating the initramfs"), "\(third.errorOutput)")
            #expect(try FileDigest.sha256(path: image) == FileDigest.sha256(path: directory + "/three/aquarium.raw"),
                    "the image with a new initramfs differs from the one with the cached initramfs")
            try? FileManager.default.removeItem(atPath: directory + "/three")

            let table = try ImageFixtures.sfdisk(image)
            let parts = try #require(table["partitions"] as? [[String: Any]])
            try #require(parts.count == 5, "ESP, root A, root B, seed, BIOS boot: \(parts)")
            let rootStart = try #require(parts[1]["start"] as? Int)
            let espStart = try #require(parts[0]["start"] as? Int)
            let rootUUID = try #require(parts[1]["uuid"] as? String).lowercased()
            let ext4 = "\(image)?offset=\(rootStart * 512)"
            let fsck = try Command("e2fsck", ["-fn", ext4]).run(acceptedStatuses: Set(0...255))
            #expect(fsck.status == 0, "\(fsck.output)")

            func cat(_ path: String) throws -> CommandResult {
                try Command("debugfs", ["-R", "cat \(path)", ext4]).run(acceptedStatuses: Set(0...255))
            }
            #expect(try cat("/etc/machine-id").standardOutput.isEmpty)
            let hostname = try Command("debugfs", ["-R", "stat /etc/hostname", ext4]).run(acceptedStatuses: Set(0...255))
            #expect(hostname.errorOutput.contains("File not found"))
            // `/` by filesystem UUID, which holds in whichever slot an update copies this root to.
            let rootProbe = try ImageFixtures.blkid(image, offset: UInt64(rootStart) * 512)
            #expect(try cat("/etc/fstab").output.contains("UUID=\(rootProbe["UUID"] ?? "?") / ext4"))
            #expect(try cat("/etc/aquarium/image-release").output.contains("SLOTS=a/b"))
            #expect(try cat("/etc/aquarium/image-release").output.contains("BOOT=shim-grub"))
            #expect(try cat("/etc/aquarium/image-release").output.contains("PROFILE=minimal"))
            #expect(try cat("/etc/issue.d/aquarium.issue").output.contains("Aquarium storage node"))
            let tools = try Command("debugfs", ["-R", "ls -p /usr/local/bin", ext4]).run().output
            for tool in Self.toolNames { #expect(tools.contains("/\(tool)/")) }
            // The installed tools can run on the node: each is the static build we gave the build, and every shared
            // library it needs is in the image (the dynamic loader's directories), none of them the Swift runtime.
            for (tool, source) in zip(Self.toolNames, try Self.nodeTools()) {
                let extracted = directory + "/" + tool
                try Command("debugfs", ["-R", "dump /usr/local/bin/\(tool) \(extracted)", ext4]).run()
                #expect(try FileDigest.sha256(path: extracted) == FileDigest.sha256(path: source), "\(tool) in the image")
                let dynamic = try Command("readelf", ["-d", extracted]).run().output
                let needed = dynamic.split(separator: "\n").filter { $0.contains("(NEEDED)") }.compactMap { line -> String? in
                    guard let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { return nil }
                    return String(line[line.index(after: open)..<close])
                }
                #expect(!needed.isEmpty, "\(tool): no NEEDED entries read: \(dynamic.prefix(500))")
                for library in needed {
                    #expect(!library.hasPrefix("libswift") && !library.hasPrefix("libFoundation") && !library.hasPrefix("lib_Foundation")
                            && !library.hasPrefix("libdispatch"), "\(tool) needs the Swift runtime: \(library)")
                    let found = try ["/usr/lib/x86_64-linux-gnu/", "/lib/x86_64-linux-gnu/", "/usr/lib/", "/lib/"].contains { dir in
                        try Command("debugfs", ["-R", "stat \(dir)\(library)", ext4]).run(acceptedStatuses: Set(0...255))
                            .errorOutput.contains("File not found") == false
                    }
                    #expect(found, "\(tool) needs \(library), which the image lacks")
                }
            }
            #expect(try cat("/usr/local/bin/aquarium_Seed.resources/example-seed.yaml").output.contains("version: 1"))
            // Every overlay unit with [Install] WantedBy=X is enabled (a link in X.wants).
            let units = Self.packageRoot + "/image/overlay/etc/systemd/system"
            for name in try FileManager.default.contentsOfDirectory(atPath: units) where name.hasSuffix(".service") {
                // A masked unit (a link to /dev/null) has nothing to enable.
                if (try? FileManager.default.destinationOfSymbolicLink(atPath: units + "/" + name)) == "/dev/null" { continue }
                let text = try String(contentsOfFile: units + "/" + name, encoding: .utf8)
                for line in text.split(separator: "\n") where line.hasPrefix("WantedBy=") {
                    for target in line.dropFirst("WantedBy=".count).split(separator: " ") {
                        let wants = try Command("debugfs", ["-R", "ls -p /etc/systemd/system/\(target).wants", ext4]).run().output
                        #expect(wants.contains("/\(name)/"), "\(name) enabled for \(target): \(wants)")
                    }
                }
            }
            // The boot's critical path (docs/image.md, Performance: boot): generators and a unit the appliance does not use
            // are masked, and the XFS module FirstBoot mounts with is loaded early.
            for masked in ["system-generators/systemd-sysv-generator", "system-generators/systemd-gpt-auto-generator",
                           "system/systemd-sysusers.service"] {
                let link = try Command("debugfs", ["-R", "stat /etc/systemd/\(masked)", ext4]).run().output
                #expect(link.contains("Fast link dest: \"/dev/null\""), "\(masked) is not masked: \(link)")
            }
            #expect(try cat("/etc/modules-load.d/aquarium.conf").output.split(separator: "\n").contains("xfs"))
            let runDirectory = try Command("debugfs", ["-R", "ls -p /run", ext4]).run().output
            #expect(runDirectory.split(separator: "\n").count == 2, "only . and .. in /run: \(runDirectory)")

            // The ESP boots the image's own kernel and initrd through the image's own signed shim and GRUB (the default).
            let mtools = ["MTOOLSRC": "/dev/null", "MTOOLS_SKIP_CHECK": "1"]
            let esp = "\(image)@@\(espStart * 512)"
            let entry = try Command("mtype", ["-i", esp, "::/loader/entries/aquarium-a.conf"], environment: mtools).run().output
            #expect(entry.contains("root=PARTUUID=\(rootUUID)"))
            let boot = try Command("debugfs", ["-R", "ls -p /boot", ext4]).run().output
            let kernel = try #require(boot.split(separator: "/").first { $0.hasPrefix("vmlinuz-") }.map(String.init))
            let fromRoot = try cat("/boot/" + kernel).standardOutput
            let fromESP = try Command("mtype", ["-i", esp, "::/aquarium/a/vmlinuz"], environment: mtools).run().standardOutput
            #expect(!fromRoot.isEmpty && fromRoot == fromESP)
            let efi = try Command("mtype", ["-i", esp, "::/EFI/BOOT/BOOTX64.EFI"], environment: mtools).run().standardOutput
            #expect(efi == (try cat("/usr/lib/shim/shimx64.efi.signed").standardOutput))
            let grub = try Command("mtype", ["-i", esp, "::/EFI/BOOT/grubx64.efi"], environment: mtools).run().standardOutput
            #expect(grub == (try cat("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed").standardOutput))
            let config = try Command("mtype", ["-i", esp, "::/EFI/debian/grub.cfg"], environment: mtools).run().output
            #expect(config.contains("linux /aquarium/a/vmlinuz root=PARTUUID=\(rootUUID) "), "\(config)")
        }
    }
}
