import Exec
@testable import FirstBoot
import Foundation
import Testing
import TestSupport

/// A power cut, as well as this machine allows without device-mapper (this kernel has no dm-flakey or dm-log-writes:
/// `dmsetup targets` finds no driver). `apply` dies at a step; at that moment the system disk's backing file is copied.
/// The loop driver writes to its backing file only what the kernel has sent to the device, so the copy holds what
/// reached the disk and none of the writes still sitting dirty in the page cache (data written but never flushed or
/// fsynced): those are dropped, as a power cut drops them. The rerun then starts from the copy, on a fresh loop device
/// and a fresh root (nothing mounted, as after the power comes back), and must converge.
/// Not modelled: a disk's own volatile write cache (a write the device acknowledged without a flush is kept here).
/// Whether the copy differed from the flushed device is printed per case (it usually does: the mounted filesystem).
@Suite("FirstBoot power loss: unflushed writes dropped", .serialized)
struct PowerLossTests {
    /// Each journalled step just after its work is done (the window where a missing fsync shows), and the moment
    /// apply is about to hand off (everything it wrote must have reached the disk).
    static let points = ApplyStep.journalled.map { FaultPoint(step: $0, after: true).description } + ["handoff"]

    @Test("power loss after each step: the rerun from what reached the disk converges",
          .requires(programs: ApplyDeviceTests.tools + ["cp", "cmp", "sync"]), arguments: points)
    func powerLoss(point: String) throws {
        try withTemporaryDirectory { work in
            let seed = try Harness.writeSeed(work + "/seed-volume", Harness.seedText())
            let image = work + "/disk-at-power-loss.img"
            try LoopDevice.with(CrashSafetyTests.target) { disk in
                try Harness.withRoot { root in
                    let crashed = try Harness.apply(seed: seed, root: root, devices: [disk], extra: ["--fault-inject", point])
                    // At once, before the kernel writes dirty pages back (it waits about 30 s for them).
                    try Command("cp", ["--sparse=always", disk.backingFile, image]).run()
                    #expect(crashed.killed, "the run must die at \(point): status \(crashed.status) \(crashed.errorOutput)")
                    _ = try Command("sync").run()
                    let same = try Command("cmp", ["-s", disk.backingFile, image]).run(acceptedStatuses: [0, 1]).status == 0
                    print("power loss at \(point): \(same ? "nothing was pending" : "unflushed writes were dropped")")
                }
            }
            // The power comes back: the disk as it was at the cut, nothing mounted.
            try LoopDevice.with(CrashSafetyTests.target, prepare: { try Command("cp", ["--sparse=always", image, $0]).run() }) { disk in
                try Harness.withRoot { root in
                    // The journal as it reached the disk before the cut.
                    let journalled = StepJournal.read(device: disk.path)
                    let again = try Harness.apply(seed: seed, root: root, devices: [disk])
                    #expect(again.status == 0, "rerun after power loss at \(point): \(again.output)\n\(again.errorOutput)")
                    try Harness.expectFinalState(device: disk, root: root, sectorSize: 512)
                    if let journalled, let record = try? Harness.nodeRecord(root) {
                        #expect(record.nodeUUID == journalled.nodeUUID, "the node identity journalled before the cut is kept")
                    }
                }
            }
        }
    }
}
