import Foundation

/// Where a run dies on purpose (`--fault-inject STEP[:WHEN]` or `AQUARIUM_FAULT_INJECT`), to prove that a rerun
/// converges. `before`: at the start of the step; `mid`: part-way (where a step has an interesting middle: keys,
/// mon-mkfs, osds, rgw, replication); `after` (default): once the step's actions are done but before it is recorded.
public struct FaultPoint: Equatable, Sendable, CustomStringConvertible {
    public enum When: String, Sendable, CaseIterable { case before, mid, after }
    public var step: String
    public var when: When

    public init(step: String, when: When = .after) {
        self.step = step
        self.when = when
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let step = parts.first, !step.isEmpty else { return nil }
        if parts.count == 2 {
            guard let when = When(rawValue: parts[1]) else { return nil }
            self.init(step: step, when: when)
        } else {
            self.init(step: step)
        }
    }

    public var description: String { "\(step):\(when.rawValue)" }
}

extension Provisioner {
    func fault(_ step: String, _ when: FaultPoint.When) {
        guard let fault = options.fault, fault.step == step, fault.when == when else { return }
        logger.notice("fault injection: dying at \(fault)")
        events.append(ProvisionEvent(event: "fault.injected", step: step, detail: fault.description))
        kill(getpid(), SIGKILL)
        while true { pause() }
    }
}
