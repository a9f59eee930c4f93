import Exec
@testable import FirstBoot
import Foundation
import Testing
import TestSupport

/// Kill `apply` at every step (fault injection) and at random moments (real SIGKILL of the tool and everything it
/// runs), then run it again: it must converge to the same final state and never touch any disk but the chosen one.
/// These are process crashes, not power cuts: SIGKILL keeps the page cache, so data the tool wrote but never flushed
/// survives here (a power cut would drop it). PowerLossTests covers that.
@Suite("FirstBoot crash safety", .serialized)
struct CrashSafetyTests {
    /// The chosen disk: 1 GiB, blank.
    static var target: LoopDevice.Options { LoopDevice.Options(sizeBytes: Harness.gib) }
    /// A bystander that is blank and eligible too (above the seed's min_size of 512 MiB) but larger, so the planner
    /// prefers the target (prefer: smallest). A rerun that gave up on the half-written target would choose it, and
    /// it would no longer be all zeros.
    static var bystander: LoopDevice.Options { LoopDevice.Options(sizeBytes: Harness.gib + 64 * Harness.mib) }
    /// The seed volume: a FAT stick labelled AQUASEED, read and written back with mtools as on a node.
    static var stick: LoopDevice.Options { LoopDevice.Options(sizeBytes: 64 * Harness.mib) }
    static let tools = ApplyDeviceTests.tools + ["mkfs.vfat", "mcopy", "mtype", "fsck.vfat", "cmp", "blockdev"]

    /// How the rerun finds the machine: everything unmounted (as after a reboot), or in the same boot with the
    /// crashed run's mounts left behind.
    enum Rerun: String, CaseIterable, Sendable, CustomStringConvertible {
        case unmounted, sameBoot
        var description: String { self == .unmounted ? "unmounted rerun" : "same-boot rerun" }
    }

    static func scenario(_ body: (_ target: LoopDevice, _ bystander: LoopDevice, _ stick: LoopDevice, _ root: String) throws -> Void) throws {
        try LoopDevice.with(stick, prepare: { try Harness.makeSeedVolume($0, seed: Harness.seedText()) }) { stick in
            try LoopDevice.withMany([target, bystander]) { disks in
                try Harness.withRoot { root in try body(disks[0], disks[1], stick, root) }
            }
        }
    }

    /// After a rerun: the report on the stick says success, the seed on it is intact, and the FAT is consistent.
    static func expectStick(_ stick: LoopDevice, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let report = try Harness.fatFile(stick.path, "reports/node1.txt")
        #expect(report?.contains("success") == true, "\(context): report \(report ?? "missing")", sourceLocation: sourceLocation)
        #expect(try Harness.fatFile(stick.path, "seed.yaml") == Harness.seedText(), "\(context): the seed changed",
                sourceLocation: sourceLocation)
        let fsck = try Command("fsck.vfat", ["-n", stick.path]).run(acceptedStatuses: Set(0...255))
        #expect(fsck.status == 0, "\(context): fsck.vfat -n: \(fsck.output)\(fsck.errorOutput)", sourceLocation: sourceLocation)
    }

    @Test("fault injection at every step × both reruns: same final state, bystander untouched, report on the FAT stick",
          .requires(programs: CrashSafetyTests.tools),
          arguments: FaultPoint.all.map(\.description), Rerun.allCases)
    func faultInjection(point: String, rerun: Rerun) throws {
        try Self.scenario { disk, other, stick, root in
            let devices = [disk, other, stick]
            try #require(try Harness.isAllZero(other.path), "the bystander starts blank")
            let crashed = try Harness.applyFromVolume(root: root, devices: devices, extra: ["--fault-inject", point])
            #expect(crashed.killed, "the run must die at \(point): status \(crashed.status) \(crashed.errorOutput)")
            let journalled = StepJournal.read(device: disk.path)
            #expect((journalled == nil) == (point == "journal"), "journal after a crash at \(point)")
            if rerun == .unmounted { StateMounts.unmount(root: root) }
            let again = try Harness.applyFromVolume(root: root, devices: devices)
            #expect(again.status == 0, "\(rerun) after \(point): \(again.output)\n\(again.errorOutput)")
            #expect(again.output.contains("system disk: \(disk.path)"), "\(rerun) after \(point) chose another disk: \(again.output)")
            try Harness.expectFinalState(device: disk, root: root, sectorSize: 512)
            if let journalled {
                #expect(try Harness.nodeRecord(root).nodeUUID == journalled.nodeUUID, "the node identity chosen before the crash is kept")
            }
            #expect(try Harness.isAllZero(other.path), "the bystander disk is untouched (still all zeros)")
            try Self.expectStick(stick, "\(rerun) after \(point)")
        }
    }

    @Test("real SIGKILL at random moments while apply runs, then rerun: converges every time (bounded)",
          .requires(programs: CrashSafetyTests.tools))
    func randomKills() throws {
        let tool = try Products.path("aquarium-firstboot")
        // How long an uninterrupted run takes here: every kill is placed inside that window, and checked to have
        // landed while the tool still ran (a kill after it finished would test nothing).
        var duration = 0.0
        try Self.scenario { disk, other, stick, root in
            let start = Date()
            let run = try Harness.applyFromVolume(root: root, devices: [disk, other, stick])
            duration = Date().timeIntervalSince(start)
            try #require(run.status == 0, "the uninterrupted run: \(run.errorOutput)")
        }
        // The window shrinks when a run turns out faster than the first one (a machine whose load dropped): a kill
        // that lands after the tool finished tests nothing, so that attempt is made again on fresh devices with a
        // shorter delay; a round fails only when no kill of five lands.
        var window = UInt32(max(50, duration * 1000 * 0.8))
        var generator = SystemRandomNumberGenerator()
        let seedValue = UInt64.random(in: 0...UInt64(UInt32.max), using: &generator)
        var random = SeededGenerator(seed: seedValue)
        for round in 0..<6 {
            var landed = false
            var missed: [String] = []
            for _ in 0..<5 where !landed {
                try Self.scenario { disk, other, stick, root in
                    try #require(try Harness.isAllZero(other.path), "the bystander starts blank")
                    let delay = UInt32.random(in: 0..<window, using: &random)
                    let started = Date()
                    // Started with our own spawn, not Foundation's Process: Process reaps its child as soon as it
                    // ends, and a kill after that would hit whatever reused the pid (on a busy machine with a small
                    // pid_max, even one of this test process's own threads). This child stays a zombie until the
                    // wait below, so its pid is its own while it is signalled.
                    // Its own TMPDIR, removed afterwards: killed, it cannot remove its copy of the seed volume itself.
                    let scratch = root + ".tmp"
                    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
                    defer { try? FileManager.default.removeItem(atPath: scratch) }
                    let child = try Command(tool, ["apply", "--root", root, "--yes", "--no-handoff", "--only-device", disk.name,
                                                   "--only-device", other.name, "--only-device", stick.name] + Harness.hermetic,
                                            environment: ["TMPDIR": scratch])
                        .start(ownProcessGroup: false)
                    usleep(delay * 1000)
                    // The tool and whatever it runs (mkfs, mount, mtools) die together.
                    Self.killTree(child.pid)
                    let termination = child.wait()
                    let context = "seed \(seedValue) round \(round) killed after \(delay) ms of a \(Int(duration * 1000)) ms run"
                    guard termination == .signalled(SIGKILL) else {
                        // Finished before the kill: again, with a window below this run's length.
                        missed.append("\(delay) ms (\(termination.map(String.init(describing:)) ?? "?"))")
                        window = max(20, min(window, UInt32(Date().timeIntervalSince(started) * 1000 * 0.6)))
                        return
                    }
                    landed = true
                    let rerun: Rerun = round % 2 == 0 ? .unmounted : .sameBoot
                    if rerun == .unmounted { StateMounts.unmount(root: root) }
                    let again = try Harness.applyFromVolume(root: root, devices: [disk, other, stick])
                    #expect(again.status == 0, "\(context), \(rerun): \(again.errorOutput)")
                    try Harness.expectFinalState(device: disk, root: root, sectorSize: 512)
                    #expect(try Harness.isAllZero(other.path), "\(context): the bystander was written to")
                    try Self.expectStick(stick, context)
                }
            }
            #expect(landed, "seed \(seedValue) round \(round): no kill landed while apply ran; killed after \(missed)")
        }
    }

    /// Stops `pid` (so it cannot start anything new), stops and collects all its descendants, then SIGKILLs them all.
    /// `pid` must be a child of ours not yet reaped; each descendant is stopped before its own children are looked
    /// for, so none of them can be reaped (and its pid reused) while the tree is collected.
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
