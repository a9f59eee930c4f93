import Exec
import Foundation
@testable import ImageBuilder
import Logging
import Testing
import TestSupport

/// The build's root tree in memory: a tmpfs of its own when MemAvailable holds twice what the tree needs, the disk
/// otherwise; whatever it was, gone afterwards (a crashed build's tmpfs and chroot mounts included).
@Suite("the root tree's scratch space")
struct RootScratchTests {
    @Test("MemAvailable from meminfo", arguments: [
        ("MemTotal: 24 kB\nMemAvailable:    2048 kB\n", UInt64(2_097_152) as UInt64?),
        ("MemTotal: 24 kB\n", nil), ("MemAvailable: lots kB\n", nil),
    ] as [(String, UInt64?)])
    func available(text: String, bytes: UInt64?) throws {
        try withTemporaryDirectory { directory in
            try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/meminfo"))
            #expect(RootScratch.availableBytes(meminfo: directory + "/meminfo") == bytes)
        }
    }

    @Test("a tmpfs when the memory holds the tree twice, the disk when it does not or when not allowed; removed after",
          .requires(programs: ["mount", "umount"]))
    func memoryOrDisk() throws {
        try withTemporaryDirectory { directory in
            let logger = Logger(label: "test")
            let meminfo = directory + "/meminfo"
            try Data("MemAvailable: 4194304 kB\n".utf8).write(to: URL(fileURLWithPath: meminfo))  // 4 GiB
            let root = directory + "/out/.rootfs-aquarium"
            let memory = try RootScratch.prepare(root, neededBytes: 1 << 30, allowMemory: true, logger: logger, meminfo: meminfo)
            defer { memory.remove() }
            #expect(memory.inMemory && RootScratch.isMountPoint(root))
            try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/file"))
            // A crashed build left it mounted, with a chroot mount inside: the next build starts clean.
            try FileManager.default.createDirectory(atPath: root + "/proc", withIntermediateDirectories: true)
            try Command("mount", ["-t", "proc", "proc", root + "/proc"]).run()
            let again = try RootScratch.prepare(root, neededBytes: 3 << 30, allowMemory: true, logger: logger, meminfo: meminfo)
            #expect(!again.inMemory && !RootScratch.isMountPoint(root), "3 GiB twice does not fit in 4 GiB: disk")
            #expect(try FileManager.default.contentsOfDirectory(atPath: root).isEmpty, "the old tree is gone")
            again.remove()
            #expect(!FileManager.default.fileExists(atPath: root))
            let disk = try RootScratch.prepare(root, neededBytes: 1 << 20, allowMemory: false, logger: logger, meminfo: meminfo)
            #expect(!disk.inMemory && !RootScratch.isMountPoint(root))
            disk.remove()
            #expect(!FileManager.default.fileExists(atPath: root))
        }
    }
}
