import Disks
import Foundation
import Logging
import Seed

/// One safety check on a flash target and its outcome.
public struct FlashCheck: Codable, Equatable, Sendable {
    public var check: String
    public var passed: Bool
    /// Why it failed, or why a check that would fail was allowed.
    public var reason: String?

    public init(_ check: String, passed: Bool, reason: String? = nil) {
        self.check = check
        self.passed = passed
        self.reason = reason
    }
}

/// A flash target as the checks found it, and what became of it.
public struct StickReport: Codable, Equatable, Sendable {
    public enum Outcome: String, Codable, Sendable {
        /// `--dry-run`: every check passed.
        case wouldFlash = "would flash"
        case refused
        case flashed
        case failed
    }

    public var device: String
    public var model: String?
    public var serial: String?
    public var sizeBytes: UInt64?
    public var transport: String?
    public var checks: [FlashCheck]
    public var outcome: Outcome
    public var error: String?
    public var bytesWritten: UInt64?
    public var writeSeconds: Double?
    public var verifySeconds: Double?
    public var rangesVerified: Int?
    /// The backup GPT was moved to the stick's last sectors (the stick is larger than the image).
    public var gptRelocated: Bool?
    /// Seeds written to the stick's AQUASEED volume after it verified (`--seeds-dir`).
    public var seeds: Int?

    /// The line a stick gets in the summary.
    public var summary: String {
        switch outcome {
        case .wouldFlash:
            return "\(device): would be flashed (every check passed)"
        case .refused:
            return "\(device): refused: " + checks.filter { !$0.passed }.compactMap(\.reason).joined(separator: "; ")
        case .failed:
            return "\(device): FAILED: \(error ?? "unknown error")"
        case .flashed:
            let rate = (writeSeconds ?? 0) > 0 ? Double(bytesWritten ?? 0) / writeSeconds! / 1_048_576 : 0
            return String(format: "%@: flashed %@ in %.1f s (%.1f MiB/s), %@%d ranges read back and verified", device,
                          BlockMap.humanSize(bytesWritten ?? 0), writeSeconds ?? 0, rate,
                          gptRelocated == true ? "backup GPT moved to the end, " : "", rangesVerified ?? 0)
                + (seeds.map { ", \($0) seed\($0 == 1 ? "" : "s") written to seeds/" } ?? "")
        }
    }

    /// What `--dry-run` prints for the stick: its identity, then every check.
    public var dryRunText: String {
        var lines = ["\(device): model \(model ?? "-"), serial \(serial ?? "-"), "
                     + "\(sizeBytes.map(BlockMap.humanSize) ?? "size unknown"), transport \(transport ?? "-")"]
        for check in checks {
            lines.append("  \(check.passed ? "ok     " : "REFUSED") \(check.check)" + (check.reason.map { ": \($0)" } ?? ""))
        }
        lines.append("  -> " + (outcome == .wouldFlash ? "would be flashed" : "would be refused: nothing is written to it"))
        return lines.joined(separator: "\n")
    }
}

/// `flash --json`: the image and every stick.
public struct FlashRunReport: Codable, Equatable, Sendable {
    public var image: String
    public var imageBytes: UInt64
    public var mappedBytes: UInt64
    public var dryRun: Bool
    public var sticks: [StickReport]
}

extension DeviceSafety {
    /// Every check on `path` in a fixed order, each passed or failed with its reason; the disk's record when it is one.
    /// A path that is no block device at all is bad input (thrown, exit 2), not a refusal.
    public static func checks(_ path: String, imageBytes: UInt64, allowNonRemovable: Bool,
                              logger: Logger) throws(ImageError) -> (disk: Disk?, checks: [FlashCheck]) {
        let disk: Disk
        do {
            disk = try inspect(path, logger: logger)
        } catch where error.kind == .refused {
            return (nil, [FlashCheck("a whole disk this machine lists", passed: false, reason: error.message)])
        }
        return (disk, checks(for: disk, imageBytes: imageBytes, allowNonRemovable: allowNonRemovable))
    }

    /// The checks of `refusals(for:)`, each named, in a fixed order.
    public static func checks(for disk: Disk, imageBytes: UInt64, allowNonRemovable: Bool) -> [FlashCheck] {
        let refusals = refusals(for: disk, imageBytes: imageBytes, allowNonRemovable: allowNonRemovable)
        func check(_ name: String, _ matches: (FlashRefusal) -> Bool) -> FlashCheck {
            let found = refusals.first(where: matches)
            return FlashCheck(name, passed: found == nil, reason: found?.description)
        }
        var removable = check("removable or on USB") { if case .notRemovable = $0 { true } else { false } }
        if removable.passed && !(disk.removable || disk.transport == .usb) {
            removable.reason = "neither (transport \(disk.transport.rawValue)): allowed by --yes-non-removable"
        }
        return [
            FlashCheck("a whole disk this machine lists", passed: true),
            check("not the disk of the running system") { if case .runningSystem = $0 { true } else { false } },
            check("not mounted") { if case .mounted = $0 { true } else { false } },
            check("not held by device-mapper, RAID or LVM") { if case .held = $0 { true } else { false } },
            check("writable") { $0 == .readOnly },
            check("large enough for the image (\(BlockMap.humanSize(imageBytes)))") { if case .tooSmall = $0 { true } else { false } },
            removable,
        ]
    }
}

/// Several sticks flashed at once, as Etcher does: every target checked first (one refused: nothing is written to
/// any), then each written and read back in a thread of its own, then, with a seeds directory, its seeds injected.
public struct MultiFlash: Sendable {
    public var image: String
    public var bmap: String?
    public var devices: [String]
    public var allowNonRemovable: Bool
    public var seedsDirectory: String?
    public var logger: Logger
    /// Progress for the stick at `device` (several sticks: plain lines with the device in front).
    public var reporter: @Sendable (String) -> Reporter
    /// The flasher for `device` (tests give one stick a fault).
    var flasher: @Sendable (String, Reporter) -> Flasher = { _, reporter in Flasher(reporter: reporter) }

    public init(image: String, bmap: String?, devices: [String], allowNonRemovable: Bool, seedsDirectory: String?,
                logger: Logger, reporter: @escaping @Sendable (String) -> Reporter) {
        self.image = image
        self.bmap = bmap
        self.devices = devices
        self.allowNonRemovable = allowNonRemovable
        self.seedsDirectory = seedsDirectory
        self.logger = logger
        self.reporter = reporter
    }

    /// Every target checked against the image, before anything is written.
    public struct Checked: Sendable {
        public var report: FlashRunReport
        public var input: ImageInput
        public var map: BlockMap
        var sectorSizes: [Int]
        /// True when every target passed every check.
        public var passed: Bool { report.sticks.allSatisfy { $0.outcome == .wouldFlash } }
    }

    /// Checks every target (nothing written). Throws only for a bad image, bmap or seeds directory (exit 2).
    public func check(dryRun: Bool = false) throws -> Checked {
        let input = try ImageInput.inspect(image)
        let map = try Flasher.loadBlockMap(input: input, bmap: bmap)
        if let seedsDirectory { _ = try SeedInjector.readSeedsDirectory(seedsDirectory) }
        let targets = try devices.map { device throws(ImageError) -> (stick: StickReport, disk: Disk?) in
            let (disk, checks) = try DeviceSafety.checks(device, imageBytes: map.imageSize, allowNonRemovable: allowNonRemovable,
                                                         logger: logger)
            let passed = checks.allSatisfy(\.passed)
            return (StickReport(device: device, model: disk?.model, serial: disk?.serial, sizeBytes: disk?.sizeBytes,
                                transport: disk?.transport.rawValue, checks: checks, outcome: passed ? .wouldFlash : .refused),
                    disk)
        }
        let report = FlashRunReport(image: image, imageBytes: map.imageSize, mappedBytes: map.mappedBytes, dryRun: dryRun,
                                    sticks: targets.map(\.stick))
        return Checked(report: report, input: input, map: map, sectorSizes: targets.map { $0.disk?.logicalSectorSize ?? 512 })
    }

    /// Writes and verifies every stick of `checked` at once (it must have passed); each stick's outcome in the report,
    /// and each failed stick's error by its index.
    public func flash(_ checked: Checked) -> (report: FlashRunReport, errors: [Int: any Error]) {
        precondition(checked.passed, "flash after a refusal")
        let results = Slots(count: checked.report.sticks.count)
        let threads = checked.report.sticks.indices.map { index in
            let (stick, sectorSize) = (checked.report.sticks[index], checked.sectorSizes[index])
            return Thread { [self] in results.set(index, flashOne(stick, sectorSize: sectorSize, map: checked.map)) }
        }
        for thread in threads { thread.start() }
        results.waitUntilFull()
        var report = checked.report
        report.sticks = results.values.map(\.stick)
        var errors: [Int: any Error] = [:]
        for (index, result) in results.values.enumerated() { if let error = result.error { errors[index] = error } }
        return (report, errors)
    }

    func flashOne(_ stick: StickReport, sectorSize: Int, map: BlockMap) -> (stick: StickReport, error: (any Error)?) {
        var stick = stick
        let reporter = reporter(stick.device)
        do {
            // Each thread reads the image itself (a compressed one is a stream of its own).
            let input = try ImageInput.inspect(image)
            var flasher = flasher(stick.device, reporter)
            flasher.logger = logger
            let flashed = try flasher.flash(input: input, map: map, device: stick.device, deviceBytes: stick.sizeBytes ?? 0,
                                            sectorSize: sectorSize)
            stick.bytesWritten = flashed.bytesWritten
            stick.writeSeconds = flashed.writeSeconds
            stick.verifySeconds = flashed.verifySeconds
            stick.rangesVerified = flashed.rangesVerified
            stick.gptRelocated = flashed.gptRelocated
            if let seedsDirectory {
                let injected = try SeedInjector(logger: logger).injectDirectory(target: stick.device, directory: seedsDirectory)
                stick.seeds = injected.seeds.count
            }
            stick.outcome = .flashed
        } catch {
            stick.outcome = .failed
            stick.error = "\(error)"
            return (stick, error)
        }
        return (stick, nil)
    }

    /// Results filled in by the flashing threads.
    final class Slots: @unchecked Sendable {
        typealias Value = (stick: StickReport, error: (any Error)?)
        private let condition = NSCondition()
        private var slots: [Value?]

        init(count: Int) { slots = Array(repeating: nil, count: count) }

        func set(_ index: Int, _ value: Value) {
            condition.lock()
            slots[index] = value
            condition.broadcast()
            condition.unlock()
        }

        func waitUntilFull() {
            condition.lock()
            while slots.contains(where: { $0 == nil }) { condition.wait() }
            condition.unlock()
        }

        var values: [Value] {
            condition.lock()
            defer { condition.unlock() }
            return slots.compactMap { $0 }
        }
    }
}
