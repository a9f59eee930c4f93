import Foundation

/// Where a step runner records the steps of a run, so that a rerun after a crash knows what finished: FirstBoot's
/// step journal on the system disk (`DeviceJournal`).
public protocol StepRecord {
    associatedtype Failure: Error
    /// Whether `step` finished in an earlier run.
    func isDone(_ step: String) -> Bool
    /// Records that `step` starts (before any of its work).
    mutating func started(_ step: String) throws(Failure)
    /// Records that `step` finished (after all of its work).
    mutating func finished(_ step: String) throws(Failure)
}

/// One step of a run as a value: its name (in the record and the fault points), whether it is recorded, and
/// whether an earlier run's finished step is skipped rather than run again (steps that look at the node first and
/// act only on what is missing are simply run again).
public struct RunStep: Equatable, Sendable {
    public var name: String
    public var recorded: Bool
    public var skipWhenDone: Bool

    public init(_ name: String, recorded: Bool = true, skipWhenDone: Bool = false) {
        self.name = name
        self.recorded = recorded
        self.skipWhenDone = skipWhenDone
    }
}

/// Runs steps in one shape: skip a finished skippable step; record its start; the `before` fault point; the work;
/// the `after` fault point; record its end. A crash anywhere leaves the record saying how far the step got.
public struct StepRunner {
    public var faultPoint: FaultPoint?
    /// Says why the process is about to die at a fault point (a line on stderr, an event).
    public var announce: (FaultPoint) -> Void

    public init(faultPoint: FaultPoint?, announce: @escaping (FaultPoint) -> Void = { FaultPoint.announceOnStandardError($0) }) {
        self.faultPoint = faultPoint
        self.announce = announce
    }

    /// Dies here when `step` at `when` is the fault point.
    public func fault(_ step: String, _ when: FaultPoint.When) {
        guard let point = faultPoint else { return }
        point.trigger(step, when) { announce(point) }
    }

    /// Runs `step` against `record`; returns nil when it was skipped (finished in an earlier run), else what `act`
    /// returned. `act` may update the record (a step that rewrites the record's medium must put it back).
    public func run<Record: StepRecord, Result>(_ step: RunStep, record: inout Record,
                                                _ act: (inout Record) throws(Record.Failure) -> Result)
        throws(Record.Failure) -> Result? {
        if step.skipWhenDone && record.isDone(step.name) { return nil }
        if step.recorded { try record.started(step.name) }
        fault(step.name, .before)
        let result = try act(&record)
        fault(step.name, .after)
        if step.recorded { try record.finished(step.name) }
        return result
    }
}

extension FaultPoint {
    /// "fault injection: killing myself at POINT" on stderr.
    public static func announceOnStandardError(_ point: FaultPoint) {
        FileHandle.standardError.write(Data("fault injection: killing myself at \(point)\n".utf8))
    }
}

/// The step journal on a system disk (`StepJournal`) as a step record; without a record (a disk that is only
/// mounted) nothing is recorded and nothing counts as done.
public struct DeviceJournal: StepRecord {
    /// The steps' work throws the tool's own errors; the journal's writes throw `ContractError`.
    public typealias Failure = any Error
    public let device: String
    public var record: JournalRecord?

    public init(device: String, record: JournalRecord?) {
        self.device = device
        self.record = record
    }

    public func isDone(_ step: String) -> Bool { record?.steps[step] == "done" }

    public mutating func started(_ step: String) throws { try mark(step, "started") }

    public mutating func finished(_ step: String) throws { try mark(step, "done") }

    /// Marks the first boot complete (once).
    public mutating func complete(at time: String) throws(ContractError) {
        guard var current = record, !current.isComplete else { return }
        current.sequence += 1
        current.completedAt = time
        try write(current)
    }

    /// Writes the current record again (after a wipe cleared the slots).
    public func rewrite() throws(ContractError) {
        if let record { try StepJournal.write(device: device, record: record) }
    }

    mutating func mark(_ step: String, _ state: String) throws(ContractError) {
        guard var current = record else { return }
        current.sequence += 1
        current.steps[step] = state
        try write(current)
    }

    mutating func write(_ next: JournalRecord) throws(ContractError) {
        try StepJournal.write(device: device, record: next)
        record = next
    }
}
