import Foundation
import ImageBuilder
import Testing
import TestSupport

@Suite("image description, apt sources, cache key")
struct DescriptionTests {
    static var root: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url = url.deletingLastPathComponent() }
        return url.path
    }

    @Test("image/aquarium.yaml loads: bookworm amd64, Ceph in the full profile only, layout")
    func shipped() throws {
        let description = try ImageDescription.load(directory: Self.root + "/image")
        #expect(description.suite == "bookworm")
        #expect(description.architecture == "amd64")
        let full = try description.packages(profile: nil)
        let minimal = try description.packages(profile: "minimal")
        for package in ["linux-image-amd64", "systemd", "udev", "xfsprogs", "chrony", "openssh-server", "systemd-boot-efi",
                        "libparted2", "libblkid1", "libudev1", "libarchive13"] {
            #expect(minimal.contains(package), "\(package)")
        }
        for package in ["ceph-mon", "ceph-mgr", "ceph-osd", "ceph-common", "radosgw", "ceph-mds", "nfs-ganesha", "nfs-ganesha-ceph", "keepalived",
                        "ceph-mgr-dashboard", "ceph-iscsi", "tcmu-runner", "open-iscsi"] {
            #expect(full.contains(package) && !minimal.contains(package), "\(package)")
        }
        #expect(description.layout.espMiB >= 36)
        #expect(throws: ImageError.self) { try description.packages(profile: "nonsense") }
        // The cache key follows the package set, not its order.
        #expect(description.rootCacheKey(packages: full) == description.rootCacheKey(packages: full.reversed()))
        #expect(description.rootCacheKey(packages: full) != description.rootCacheKey(packages: minimal))
    }

    static let valid = """
        name: test
        suite: bookworm
        architecture: amd64
        packages: [systemd]
        profiles: {full: [ceph-mon]}
        """

    @Test("invalid descriptions are refused with the file and the reason", arguments: [
        (valid + "\nsuit: typo\n", "unknown key 'suit'"),
        (valid + "\nlayout: {esp_mb: 10}\n", "unknown key 'layout.esp_mb'"),
        (valid + "\nlayout: {esp_mib: 16}\n", "at least 36 MiB"),
        (valid.replacingOccurrences(of: "name: test", with: "name: ../evil"), "name '../evil'"),
        (valid.replacingOccurrences(of: "[systemd]", with: "[\"systemd; rm -rf /\"]"), "is not a Debian package name"),
        (valid + "\ndefault_profile: small\n", "default_profile 'small'"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        (valid.replacingOccurrences(of: "suite: bookworm\n", with: ""), "is not a valid image description"),
        (valid + "\nkernel_cmdline: \"ro init=$x\"\n", "kernel_cmdline holds '$'"),
        (valid + "\nkernel_cmdline: \"ro; reboot\"\n", "kernel_cmdline holds ';'"),
        (valid + "\nkernel_cmdline: \"ro quiet=\\\"x\\\"\"\n", "kernel_cmdline holds '\"'"),
        (valid + "\nkernel_cmdline: \"ro\\tquiet\"\n", "a control or non-ASCII character"),
    ])
    func invalid(text: String, message: String) {
        do {
            _ = try ImageDescription.parse(text, file: "x.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.kind == .invalidInput)
            #expect(error.subject == "x.yaml")
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test("the mirror comes from the host's apt sources (deb822 and one-line)", arguments: [
        ("debian.sources", "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n", "http://mirror.example/debian"),
        ("off.sources", "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\n", nil),
        ("src.sources", "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n", nil),
        ("x.list", "# comment\ndeb [signed-by=/k.gpg arch=amd64] http://list.example/debian bookworm main\n", "http://list.example/debian"),
        ("y.list", "deb http://old.example/debian bullseye main\n", nil),
    ])
    func mirror(file: String, content: String, expected: String?) throws {
        try withTemporaryDirectory { root in
            try FileManager.default.createDirectory(atPath: root + "/etc/apt/sources.list.d", withIntermediateDirectories: true)
            try ImageFixtures.write(Data(content.utf8), root + "/etc/apt/sources.list.d/" + file)
            if let expected {
                #expect(try AptSources.mirror(suite: "bookworm", root: root) == expected)
            } else {
                #expect(throws: ImageError.self) { try AptSources.mirror(suite: "bookworm", root: root) }
            }
        }
    }
}
