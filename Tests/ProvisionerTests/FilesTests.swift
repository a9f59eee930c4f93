import FileLayer
import Foundation
import Testing
@testable import Provisioner

/// The Provisioner's `Files` write through FileLayer's one atomic write: the mode asked for (keyrings 0600), no
/// temporary file left, "unchanged" when the file already holds the same bytes and mode, and a failure that keeps its
/// FileError as the cause under the same message.
@Suite struct FilesTests {
    @Test(arguments: [(0o600 as mode_t, "[client.admin]\n\tkey = AQB==\n"), (0o644, "[global]\n")])
    func writeSetsTheModeAndReportsChanges(mode: mode_t, text: String) throws {
        let directory = NSTemporaryDirectory() + "aquarium-files-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/etc/ceph/file"
        #expect(try Files.write(text, to: path, mode: mode))
        #expect(Files.read(path) == text && Files.currentMode(path) == mode)
        #expect(try !Files.write(text, to: path, mode: mode), "the same bytes and mode: unchanged")
        #expect(try Files.write(text, to: path, mode: 0o640), "another mode: changed")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/etc/ceph") == ["file"])
    }

    @Test func aFailedWriteKeepsTheFileErrorAsItsCause() throws {
        let directory = NSTemporaryDirectory() + "aquarium-files-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/taken/inside", withIntermediateDirectories: true)
        let error = #expect(throws: ProvisionError.self) { try Files.write("x", to: directory + "/taken") }
        let cause = error?.cause as? FileError
        #expect(cause?.path == directory + "/taken")
        #expect(error?.description == "cannot write \(directory)/taken: \(cause.map { "\($0.errno)" } ?? "?")")
        #expect(error?.exitCode == .runtimeFailure)
    }
}
