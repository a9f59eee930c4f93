import Foundation

/// Where a run dies on purpose (`--fault-inject STEP[:WHEN]` or `AQUARIUM_FAULT_INJECT`), to prove that a rerun
/// converges. The one fault point type of FirstBoot's `apply` and the Provisioner's `run`. For crash-safety tests only.
///
/// `before`: at the start of the step (after a journalled step's start is recorded, before its work); `mid`:
/// part-way, where a step has an interesting middle; `after`: once the step's work is done but before its
/// completion is recorded. What a point without `:WHEN` means is the tool's (`bare`): `after` for the Provisioner,
/// `before` for FirstBoot, as their crash tests have always named them.
public struct FaultPoint: Equatable, Sendable, CustomStringConvertible {
    public enum When: String, Sendable, CaseIterable { case before, mid, after }
    public var step: String
    public var when: When
    /// What this point's tool reads a bare `STEP` as (only the text form depends on it).
    public var bare: When

    public init(step: String, when: When = .after, bare: When = .after) {
        self.step = step
        self.when = when
        self.bare = bare
    }

    /// Parses `STEP` or `STEP:WHEN`; a bare `STEP` is `bare`. Nil for an empty step or an unknown `WHEN`.
    public init?(_ text: String, bare: When = .after) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let step = parts.first, !step.isEmpty else { return nil }
        if parts.count == 2 {
            guard let when = When(rawValue: parts[1]) else { return nil }
            self.init(step: step, when: when, bare: bare)
        } else {
            self.init(step: step, when: bare, bare: bare)
        }
    }

    /// The same step and moment (whatever a bare text would mean).
    public static func == (a: FaultPoint, b: FaultPoint) -> Bool { a.step == b.step && a.when == b.when }

    /// `STEP:WHEN`; just `STEP` for a `before` point of a tool whose bare points mean `before` (FirstBoot's names).
    public var description: String { when == .before && bare == .before ? step : "\(step):\(when.rawValue)" }

    /// Whether a run that reached `step` at `when` dies here.
    public func matches(_ step: String, _ when: When) -> Bool { step == self.step && when == self.when }

    /// Kills this process with SIGKILL when `step` at `when` is this point; `announce` runs first (a log line, an event).
    public func trigger(_ step: String, _ when: When, announce: () -> Void = {}) {
        guard matches(step, when) else { return }
        announce()
        FaultPoint.die()
    }

    /// SIGKILL to this process: nothing runs after it (no defer, no flush), as in a crash.
    public static func die() -> Never {
        kill(getpid(), SIGKILL)
        while true { pause() }
    }
}
