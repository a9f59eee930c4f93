import CommandSupport
import Foundation
@_exported import NodeContract
import Seed

/// A failure of `plan`/`apply` with the exit code it stands for and a message that names the device or file.
public struct ApplyError: Error, AquariumExitCoded, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case refused, invalid, runtime }
    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var exitCode: AquariumExit {
        switch kind {
        case .refused: .refused
        case .invalid: .invalidInput
        case .runtime: .runtimeFailure
        }
    }

    public var description: String { message }
}

/// The steps of `apply`, in order. The disk steps (wipe ... record) are journalled on the target disk before
/// and after they run; every step is a `--fault-inject` point.
public enum ApplyStep: String, CaseIterable, Codable, Sendable {
    /// The first journal write (fault point before it: nothing has been written yet).
    case journal
    case wipe, partition, identities, mkfs
    /// Waiting for the partition's device node (the kernel told by BLKPG, or partx after a crash).
    case partitionNode = "partition-node"
    case mount, layout, record
    /// The journal write that marks the first boot complete.
    case complete
    case handoff, report

    /// Steps recorded in the on-disk journal.
    public static let journalled: [ApplyStep] = [.wipe, .partition, .identities, .mkfs, .mount, .layout, .record]

    /// The journal's name for this step (nil: not journalled).
    public var journalStep: JournalStep? { JournalStep(rawValue: rawValue) }
}

/// `--fault-inject STEP` or `STEP:after` (also `AQUARIUM_FAULT_INJECT`): the process kills itself with SIGKILL when
/// the step is reached (after journalling its start, before doing it) or, with `:after`, once the step's work is
/// done but before its completion is journalled. FirstBoot's points of the shared `FaultPoint`: a bare step means
/// `before`, and there are no `mid` points.
extension FaultPoint {
    public init(step: ApplyStep, after: Bool = false) {
        self.init(step: step.rawValue, when: after ? .after : .before, bare: .before)
    }

    /// One of `apply`'s points (`all`), or nil.
    public init?(apply text: String) {
        guard let point = FaultPoint(text, bare: .before), FaultPoint.all.contains(point) else { return nil }
        self = point
    }

    /// Every fault point of `apply`, for tests.
    public static var all: [FaultPoint] {
        ApplyStep.allCases.flatMap { [FaultPoint(step: $0), FaultPoint(step: $0, after: true)] }
    }

    func trigger(_ step: ApplyStep, after: Bool) {
        trigger(step.rawValue, after ? .after : .before) { FaultPoint.announceOnStandardError(self) }
    }
}

/// A loaded, verified seed and where it came from.
public struct LoadedSeed: Sendable {
    public var seed: Seed
    public var path: String
    public var sha256: String
    /// The exact bytes that were verified and parsed.
    public var data: Data
    /// Where reports go (`reports/` on the seed volume), when the seed came from a volume or directory.
    public var reportDirectory: String?
    /// A FAT seed volume read with mtools: reports are written back to `reports/` on this device with mtools.
    public var reportFATDevice: String?
    /// How the seed's signature was checked, in words.
    public var trust: String

    public init(seed: Seed, path: String, sha256: String, data: Data, reportDirectory: String?, trust: String) {
        self.seed = seed
        self.path = path
        self.sha256 = sha256
        self.data = data
        self.reportDirectory = reportDirectory
        self.trust = trust
    }
}

func timestamp(_ date: Date = Date()) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
}

func errnoText() -> String { String(cString: strerror(errno)) }
