import Foundation
@testable import QEMU
import Testing
import TestSupport

/// The console is read incrementally, and the runner's start/wait/stop loop works on a stand-in for QEMU.
@Suite("QEMU console and runner")
struct ConsoleLogTests {
    @Test("the console log is read in increments: only new bytes, markers and characters split across reads")
    func incrementalConsole() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/console.log"
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            let handle = try #require(FileHandle(forWritingAtPath: path))
            defer { try? handle.close() }
            var console = ConsoleLog(path: path, markers: ["Power down", "login:"])
            #expect(console.readNew().isEmpty)
            try handle.write(contentsOf: Data("Linux version 6.1\r\nreboot: Pow".utf8))
            #expect(console.readNew().isEmpty)
            // "er down" completes the marker; the euro sign (E2 82 AC) is cut after its second byte.
            try handle.write(contentsOf: Data("er down\r\n".utf8) + Data([0xE2, 0x82]))
            #expect(console.readNew() == ["Power down"])
            try handle.write(contentsOf: Data([0xAC]) + Data(" 5\r\n".utf8) + Data([0xFF]) + Data("node login: ".utf8))
            #expect(console.readNew() == ["login:"])
            #expect(console.readNew().isEmpty)
            #expect(console.offset == UInt64(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? -1))
            let text = console.finish()
            #expect(text == "Linux version 6.1\r\nreboot: Power down\r\n€ 5\r\n\u{FFFD}node login: ")
            #expect(text == VirtualMachineRunner.readConsole(path))
        }
    }

    @Test("the runner ends on a marker, on exit and on its time limit (a script stands in for QEMU)", arguments: [
        ("printf 'booting\\nnode login: ' >> \"$log\"; sleep 100", ["node login:"], 60.0, VirtualMachineRun.Ending.marker("node login:")),
        ("printf 'bye\\n' >> \"$log\"; exit 3", ["node login:"], 60.0, .exited(status: 3)),
        ("sleep 100", ["node login:"], 1.0, .timedOut),
    ])
    func runnerEndings(script: String, markers: [String], timeout: Double, expected: VirtualMachineRun.Ending) throws {
        try withTemporaryDirectory { dir in
            let qemu = dir + "/fake-qemu"
            let text = """
            #!/bin/sh
            for a; do case "$a" in file,id=console,path=*) log="${a#file,id=console,path=}";; esac; done
            \(script)

            """
            try Data(text.utf8).write(to: URL(fileURLWithPath: qemu))
            chmod(qemu, 0o755)
            let vm = VirtualMachine(stick: dir + "/stick.raw", disks: [], firmwareVars: dir + "/vars.fd",
                                    consoleLog: dir + "/console.log")
            let run = try VirtualMachineRunner(qemu: qemu).run(vm, timeoutSeconds: timeout, stopMarkers: markers)
            #expect(run.ending == expected)
            #expect(run.seconds < 60, "took \(run.seconds) s")
            if case .marker = expected { #expect(run.console == "booting\nnode login: ") }
        }
    }
}
