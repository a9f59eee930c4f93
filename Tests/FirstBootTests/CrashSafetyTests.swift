import Exec
@testable import FirstBoot
import Foundation
import Testing
import TestSupport

/// Kill `apply` at every step (fault injection) and at random moments (real SIGKILL), then run it again: it must
/// converge to the same final state and never touch any disk but the chosen one.
@Suite("FirstBoot crash safety", .serialized)
struct CrashSafetyTests {
    /// The chosen disk (1 GiB, blank) and a bystander that is eligible for storage but must never be written.
    static var target: LoopDevice.Options { LoopDevice.Options(sizeBytes: Harness.gib) }
    static var bystander: LoopDevice.Options { LoopDevice.Options(sizeBytes: 256 * Harness.mib) }

    static func scenario(_ body: (LoopDevice, LoopDevice, String, String) throws -> Void) throws {
        try LoopDevice.withMany([target, bystander]) { disks in
            try Harness.withRoot { root in
                let volume = root + "/../seed-volume"
                _ = try Harness.writeSeed(volume, Harness.seedText())
                // The seed volume directory: seed.yaml is found there and reports/ written back to it.
                try body(disks[0], disks[1], root, volume)
            }
        }
    }

    @Test("fault injection at every step, then rerun: same final state, bystander byte-identical",
          arguments: FaultPoint.all.enumerated().map { ($0.offset, $0.element.description) })
    func faultInjection(index: Int, point: String) throws {
        guard try Capabilities.require(programs: ApplyDeviceTests.tools) else { return }
        try Self.scenario { disk, other, root, seed in
            let before = try Harness.sha256(other.path)
            let crashed = try Harness.apply(seed: seed, root: root, devices: [disk, other], extra: ["--fault-inject", point])
            #expect(crashed.killed, "the run must die at \(point): status \(crashed.status) \(crashed.errorOutput)")
            let journalled = StepJournal.read(device: disk.path)
            #expect((journalled == nil) == (point == "journal"), "journal after a crash at \(point)")
            // Half the reruns after a "power cut" (nothing mounted any more), half in the same boot (mounts left behind).
            if index % 2 == 0 { StateMounts.unmount(root: root) }
            let rerun = try Harness.apply(seed: seed, root: root, devices: [disk, other])
            #expect(rerun.status == 0, "rerun after \(point): \(rerun.output)\n\(rerun.errorOutput)")
            try Harness.expectFinalState(device: disk, root: root, sectorSize: 512)
            if let journalled {
                #expect(try Harness.nodeRecord(root).nodeUUID == journalled.nodeUUID, "the node identity chosen before the crash is kept")
            }
            #expect(try Harness.sha256(other.path) == before, "the bystander disk is untouched")
            // The report on the seed volume says what happened.
            let report = try String(contentsOfFile: root + "/../seed-volume/reports/node1.txt", encoding: .utf8)
            #expect(report.contains("success"))
        }
    }

    @Test("real SIGKILL at random moments, then rerun: converges every time (bounded)")
    func randomKills() throws {
        guard try Capabilities.require(programs: ApplyDeviceTests.tools) else { return }
        let tool = try Products.path("aquarium-firstboot")
        var generator = SystemRandomNumberGenerator()
        let seedValue = UInt64.random(in: 0...UInt64(UInt32.max), using: &generator)
        var random = SeededGenerator(seed: seedValue)
        for round in 0..<6 {
            try Self.scenario { disk, other, root, seed in
                let before = try Harness.sha256(other.path)
                let delay = UInt32.random(in: 0...900, using: &random)
                let process = Process()
                process.executableURL = URL(fileURLWithPath: tool)
                process.arguments = ["apply", "--seed", seed, "--root", root, "--yes", "--no-handoff",
                                     "--only-device", disk.name, "--only-device", other.name] + Harness.hermetic
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                usleep(delay * 1000)
                // Like a power cut: the tool and whatever it runs (mkfs, mount) die together.
                Self.killTree(process.processIdentifier)
                process.waitUntilExit()
                if round % 2 == 0 { StateMounts.unmount(root: root) }
                let rerun = try Harness.apply(seed: seed, root: root, devices: [disk, other])
                #expect(rerun.status == 0, "seed \(seedValue) round \(round) killed after \(delay) ms: \(rerun.errorOutput)")
                try Harness.expectFinalState(device: disk, root: root, sectorSize: 512)
                #expect(try Harness.sha256(other.path) == before, "seed \(seedValue) round \(round)")
            }
        }
    }

    /// Stops `pid` (so it cannot start anything new), stops and collects all its descendants, then SIGKILLs them all.
    static func killTree(_ pid: pid_t) {
        kill(pid, SIGSTOP)
        var all: [pid_t] = [pid]
        var frontier: [pid_t] = [pid]
        while let parent = frontier.popLast() {
            for child in children(of: parent) where !all.contains(child) {
                kill(child, SIGSTOP)
                all.append(child)
                frontier.append(child)
            }
        }
        for process in all { kill(process, SIGKILL) }
    }

    /// Processes whose parent is `pid`, from /proc/<n>/stat (field 4, after the parenthesised command name).
    static func children(of pid: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let candidate = pid_t(entry),
                  let handle = FileHandle(forReadingAtPath: "/proc/\(entry)/stat"),
                  let data = try? handle.readToEnd() else { return nil }
            try? handle.close()
            let text = String(decoding: data, as: UTF8.self)
            guard let close = text.lastIndex(of: ")") else { return nil }
            let fields = text[text.index(after: close)...].split(separator: " ")
            guard fields.count > 1, let parent = pid_t(fields[1]) else { return nil }
            return parent == pid ? candidate : nil
        }
    }
}
