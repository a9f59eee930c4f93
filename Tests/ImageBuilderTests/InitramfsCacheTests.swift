import Foundation
import Testing
import TestSupport
@testable import ImageBuilder

/// What makes the cached initramfs another one (the packages, /etc, the kernels) and what does not (the build's
/// release file, fstab's UUIDs, the node tools); and a stored entry comes back byte for byte. The real update-initramfs
/// against the cache: FullBuildTests.
struct InitramfsCacheTests {
    /// A root as the build leaves it before update-initramfs.
    func makeRoot(_ directory: String) throws -> String {
        let root = directory + "/root"
        for path in ["var/lib/dpkg", "boot", "etc/initramfs-tools/hooks", "etc/aquarium", "usr/local/bin", "var/lib/initramfs-tools"] {
            try FileManager.default.createDirectory(atPath: root + "/" + path, withIntermediateDirectories: true)
        }
        try "Package: linux-image-6.1.0-28-amd64\nVersion: 6.1.119-1\n".write(toFile: root + "/var/lib/dpkg/status", atomically: true, encoding: .utf8)
        try "kernel".write(toFile: root + "/boot/vmlinuz-6.1.0-28-amd64", atomically: true, encoding: .utf8)
        try "MODULES=most\n".write(toFile: root + "/etc/initramfs-tools/initramfs.conf", atomically: true, encoding: .utf8)
        try "#!/bin/sh\n".write(toFile: root + "/etc/initramfs-tools/hooks/zz-aquarium-trim", atomically: true, encoding: .utf8)
        try "UUID=0b4c7a6e-0000-4000-8000-000000000001 / ext4 errors=remount-ro 0 1\n".write(toFile: root + "/etc/fstab", atomically: true, encoding: .utf8)
        try "BUILD_EPOCH=1700000000\nVERSION=1.0\n".write(toFile: root + "/etc/aquarium/image-release", atomically: true, encoding: .utf8)
        try "tool v1".write(toFile: root + "/usr/local/bin/aquarium-provision", atomically: true, encoding: .utf8)
        return root
    }

    @Test func keyFollowsTheInputsOfTheInitramfsOnly() throws {
        try withTemporaryDirectory { directory in
            let root = try makeRoot(directory)
            let key = try #require(try InitramfsCache.key(root: root))
            func keyAfter(_ path: String, _ text: String) throws -> String? {
                let file = root + "/" + path
                let old = try String(contentsOfFile: file, encoding: .utf8)
                defer { try? old.write(toFile: file, atomically: true, encoding: .utf8) }
                // Same time stamp on the package database: only the contents differ.
                var info = stat()
                stat(root + "/var/lib/dpkg/status", &info)
                try text.write(toFile: file, atomically: true, encoding: .utf8)
                var times = [timespec(tv_sec: info.st_atim.tv_sec, tv_nsec: 0), timespec(tv_sec: info.st_mtim.tv_sec, tv_nsec: 0)]
                utimensat(AT_FDCWD, root + "/var/lib/dpkg/status", &times, 0)
                return try InitramfsCache.key(root: root)
            }
            // Not inputs: the build's name, epoch and tools.
            #expect(try keyAfter("etc/aquarium/image-release", "BUILD_EPOCH=1800000000\nVERSION=2.0\n") == key)
            #expect(try keyAfter("etc/fstab", "UUID=9f00aa11-0000-4000-8000-000000000002 / ext4 errors=remount-ro 0 1\n") == key)
            #expect(try keyAfter("usr/local/bin/aquarium-provision", "tool v2") == key)
            // Inputs: a package version, a hook, the root's filesystem type.
            #expect(try keyAfter("var/lib/dpkg/status", "Package: linux-image-6.1.0-28-amd64\nVersion: 6.1.123-1\n") != key)
            #expect(try keyAfter("etc/initramfs-tools/hooks/zz-aquarium-trim", "#!/bin/sh\nexit 0\n") != key)
            #expect(try keyAfter("etc/fstab", "UUID=0b4c7a6e-0000-4000-8000-000000000001 / xfs defaults 0 1\n") != key)
            #expect(try InitramfsCache.key(root: root) == key, "the root was not put back")
            // A newer kernel is another initramfs.
            try "kernel".write(toFile: root + "/boot/vmlinuz-6.1.0-29-amd64", atomically: true, encoding: .utf8)
            #expect(try InitramfsCache.key(root: root) != key)
        }
    }

    @Test func storedEntryComesBackByteForByte() throws {
        try withTemporaryDirectory { directory in
            let root = try makeRoot(directory)
            let cache = InitramfsCache(directory: directory + "/cache")
            let key = try #require(try InitramfsCache.key(root: root))
            #expect(try cache.restore(key: key, into: root) == false, "an empty cache has nothing")
            let initrd = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            try initrd.write(to: URL(fileURLWithPath: root + "/boot/initrd.img-6.1.0-28-amd64"))
            try "sha1  /boot/initrd.img-6.1.0-28-amd64\n".write(toFile: root + "/var/lib/initramfs-tools/6.1.0-28-amd64", atomically: true, encoding: .utf8)
            try cache.store(key: key, from: root)
            let other = directory + "/other"
            try FileManager.default.copyItem(atPath: root, toPath: other)
            try FileManager.default.removeItem(atPath: other + "/boot/initrd.img-6.1.0-28-amd64")
            #expect(try cache.restore(key: key, into: other))
            #expect(try Data(contentsOf: URL(fileURLWithPath: other + "/boot/initrd.img-6.1.0-28-amd64")) == initrd)
            #expect(try String(contentsOfFile: other + "/var/lib/initramfs-tools/6.1.0-28-amd64", encoding: .utf8).hasPrefix("sha1"))
            #expect(try cache.restore(key: String(repeating: "0", count: 64), into: other) == false)
        }
    }
}
