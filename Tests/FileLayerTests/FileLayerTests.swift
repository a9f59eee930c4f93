import FileLayer
import Foundation
import Testing

/// The one atomic write and positional I/O, read back with the file system.
@Suite struct FileLayerTests {
    func withDirectory(_ body: (String) throws -> Void) throws {
        let directory = NSTemporaryDirectory() + "aquarium-filelayer-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory)
    }

    @Test func atomicWriteReplacesWithModeAndLeavesNoTemporaryFile() throws {
        try withDirectory { directory in
            let path = directory + "/sub/file.json"
            let large = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try AtomicFile.write(large, to: path, mode: 0o600)
            #expect(FileManager.default.contents(atPath: path) == large)
            var info = stat()
            #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
            try AtomicFile.write(Data("small\n".utf8), to: path, mode: 0o644)
            #expect(FileManager.default.contents(atPath: path) == Data("small\n".utf8))
            #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o644)
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/sub") == ["file.json"])
        }
    }

    @Test func aFailedRenameRemovesTheTemporaryFile() throws {
        try withDirectory { directory in
            // The name is a non-empty directory: rename fails; nothing but that directory remains.
            try FileManager.default.createDirectory(atPath: directory + "/taken/inside", withIntermediateDirectories: true)
            #expect(throws: FileError.self) { try AtomicFile.write(Data("x".utf8), to: directory + "/taken") }
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["taken"])
        }
    }

    @Test func noFollowRefusesALinkedDirectoryAndReplacesALinkedName() throws {
        try withDirectory { directory in
            try FileManager.default.createDirectory(atPath: directory + "/target", withIntermediateDirectories: true)
            try Data("keep\n".utf8).write(to: URL(fileURLWithPath: directory + "/target/file"))
            try FileManager.default.createSymbolicLink(atPath: directory + "/link", withDestinationPath: directory + "/target")
            #expect(throws: FileError.self) {
                try AtomicFile.write(Data("x".utf8), to: directory + "/link/new", noFollow: true)
            }
            #expect(!FileManager.default.fileExists(atPath: directory + "/target/new"))
            try FileManager.default.createSymbolicLink(atPath: directory + "/name", withDestinationPath: directory + "/target/file")
            try AtomicFile.write(Data("mine\n".utf8), to: directory + "/name", noFollow: true)
            #expect(try String(contentsOfFile: directory + "/target/file", encoding: .utf8) == "keep\n")
            #expect(try String(contentsOfFile: directory + "/name", encoding: .utf8) == "mine\n")
        }
    }

    @Test func positionalWriteAndReadRoundTrip() throws {
        try withDirectory { directory in
            let path = directory + "/device"
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            #expect(fd >= 0)
            defer { close(fd) }
            let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0) }
            try FileIO.write(fd, bytes, at: 1 << 20, path: path)
            try FileIO.sync(fd, path: path)
            var back = [UInt8](repeating: 0, count: 20_000)
            let count = try back.withUnsafeMutableBytes { try FileIO.read(fd, into: $0, at: 1 << 20, path: path) }
            #expect(count == 10_000, "stops at the end of the file")
            #expect(Array(back[0..<count]) == bytes)
        }
    }
}

/// `AtomicFile.publish`: a file another program wrote, put in place with its mode; a failure leaves no temporary file.
@Suite struct FileLayerPublishTests {
    @Test(arguments: [(0o600 as mode_t?, 0o600 as mode_t), (nil, 0o640)])
    func publishPutsTheFileInPlace(mode: mode_t?, expected: mode_t) throws {
        let directory = NSTemporaryDirectory() + "aquarium-publish-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let temporary = directory + "/keyring.new", path = directory + "/keyring"
        try Data("old\n".utf8).write(to: URL(fileURLWithPath: path))
        try Data("[mon.]\n".utf8).write(to: URL(fileURLWithPath: temporary))
        chmod(temporary, 0o640)
        try AtomicFile.publish(temporary, to: path, mode: mode)
        #expect(FileManager.default.contents(atPath: path) == Data("[mon.]\n".utf8))
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == expected)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["keyring"])
    }

    @Test(arguments: ["missing", "directory"])
    func aFailedPublishRemovesTheTemporaryFile(kind: String) throws {
        let directory = NSTemporaryDirectory() + "aquarium-publish-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let temporary = directory + "/file.new"
        let path = kind == "missing" ? directory + "/none/file" : directory + "/taken"
        if kind == "directory" { try FileManager.default.createDirectory(atPath: path + "/inside", withIntermediateDirectories: true) }
        try Data("x".utf8).write(to: URL(fileURLWithPath: temporary))
        let error = #expect(throws: FileError.self) { try AtomicFile.publish(temporary, to: path) }
        #expect(error?.errno.rawValue == error?.code)
        #expect(!FileManager.default.fileExists(atPath: temporary))
    }
}
