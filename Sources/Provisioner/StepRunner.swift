import CommandSupport
import Foundation
import NodeContract
import Seed

/// What one step did.
public struct StepResult: Codable, Equatable, Sendable {
    public var step: String
    public var changed: Bool
    public var detail: String?
}

/// What `run` prints with `--json`.
public struct RunReport: Codable, Equatable, Sendable, CommandOutput {
    public var fsid: String?
    public var steps: [StepResult]
    /// True when any step changed something on the node.
    public var changed: Bool
    public var health: String?

    /// The last line of `run` (each step's line is printed as it completes).
    public var text: String { "done: \(changed ? "changed" : "nothing changed"), \(health ?? "")\n" }
}

/// What a step's body reports; the runner names it with the step's name.
struct StepOutcome {
    var changed: Bool
    var detail: String?

    init(changed: Bool, detail: String? = nil) {
        self.changed = changed
        self.detail = detail
    }
}

/// One provisioning step as a value: its name (in results, events, the state file and fault points) and its body,
/// which looks at the node first and acts only on what is missing.
struct ProvisionStep {
    let name: String
    let body: Provisioner.StepBody

    init(_ name: String, _ body: @escaping Provisioner.StepBody) {
        self.name = name
        self.body = body
    }
}

extension Provisioner {
    /// The steps of each role, in the order they run: the one list the runner executes and the step names come from.
    static func steps(for role: ClusterRole, promoted: Bool = false) -> [ProvisionStep] {
        if promoted, role.joins {
            // A storage (or joined) node asked to run a monitor by `node remove` of a monitor node
            // (`MonitorRequest`): its monitor, a manager, its OSDs.
            return [ProvisionStep("host", Provisioner.host), ProvisionStep("identity", Provisioner.promotedIdentity),
                    ProvisionStep("mon", Provisioner.mon), ProvisionStep("mgr", Provisioner.mgr),
                    ProvisionStep("osds", Provisioner.osds), ProvisionStep("maintenance", Provisioner.maintenanceStep),
                    ProvisionStep("health", Provisioner.health)]
        }
        return switch role {
        case .bootstrap:
            nodeWithMonitor(identity: Provisioner.makeIdentity, keys: Provisioner.keys, monmap: Provisioner.monmap)
        case .monitor:
            // A rack's monitor node: the same steps with the rack's fsid, keys and monitors instead of new ones.
            nodeWithMonitor(identity: Provisioner.rackIdentity, keys: Provisioner.rackKeys, monmap: Provisioner.rackMonmap)
        case .join, .storage:
            [ProvisionStep("host", Provisioner.host), ProvisionStep("identity", Provisioner.joinIdentity),
             ProvisionStep("join", Provisioner.joinCluster), ProvisionStep("osds", Provisioner.osds),
             ProvisionStep("maintenance", Provisioner.maintenanceStep), ProvisionStep("health", Provisioner.health)]
        }
    }

    typealias StepBody = (Provisioner) -> () throws(ProvisionError) -> StepOutcome

    /// The steps of a node that runs a monitor, with the bodies that decide its identity, keys and first monmap.
    static func nodeWithMonitor(identity: @escaping StepBody, keys: @escaping StepBody,
                                monmap: @escaping StepBody) -> [ProvisionStep] {
        [ProvisionStep("host", Provisioner.host), ProvisionStep("identity", identity), ProvisionStep("keys", keys),
         ProvisionStep("monmap", monmap), ProvisionStep("mon-mkfs", Provisioner.monMkfs), ProvisionStep("mon", Provisioner.mon),
         ProvisionStep("cluster-settings", Provisioner.clusterSettings), ProvisionStep("mgr", Provisioner.mgr),
         ProvisionStep("join-token", Provisioner.joinTokenStep), ProvisionStep("osds", Provisioner.osds),
         ProvisionStep("rbd", Provisioner.rbd), ProvisionStep("cephfs", Provisioner.cephfs),
         ProvisionStep("rgw", Provisioner.rgw), ProvisionStep("nfs", Provisioner.nfs),
         ProvisionStep("dashboard", Provisioner.dashboard), ProvisionStep("iscsi", Provisioner.iscsi),
         ProvisionStep("replication", Provisioner.replication),
         ProvisionStep("telemetry", Provisioner.telemetry), ProvisionStep("maintenance", Provisioner.maintenanceStep),
         ProvisionStep("health", Provisioner.health)]
    }

    /// The names of a bootstrap node's steps, in order.
    public static var bootstrapSteps: [String] { steps(for: .bootstrap).map(\.name) }
    /// The names of a joining node's steps, in order.
    public static var joinSteps: [String] { steps(for: .join).map(\.name) }

    /// Runs every step; returns what each did. `onStep` sees each result as it completes.
    public func run(onStep: (StepResult) -> Void = { _ in }) throws(ProvisionError) -> RunReport {
        defer { tools.session?.close() }
        let attempt = options.attempts > 1 ? ", attempt \(options.attempt) of \(options.attempts)" : ""
        events.append(ProvisionEvent(event: "run.started",
                                     detail: "role \(seed.cluster.role.rawValue), launcher \(options.launcher.rawValue)\(attempt)"))
        var results: [StepResult] = []
        do throws(ProvisionError) {
            let promoted = seed.cluster.role.joins && state.identity?.runsMonitor == true
            switch seed.cluster.role {
            case .join where promoted, .storage where promoted:
                break
            case .join:
                guard let join = seed.cluster.join else {
                    throw .invalidInput("role: join needs cluster.join with the address and token of the cluster to join")
                }
                // A malformed token stops the run before anything is touched (exit 2), an expired one too (exit 3),
                // unless this node joined already and has its own key (`NodeKey`): the token is then not used.
                let token = try JoinToken(parsing: join.token)
                if !Files.exists(layout.nodeKeyring(daemonId)) { try token.refuseIfExpired() }
                joinToken = token
            case .storage:
                joinToken = try rackJoinToken()
            case .bootstrap, .monitor:
                break
            }
            let steps = Self.steps(for: seed.cluster.role, promoted: promoted)
            try preflightDisks()
            for step in steps {
                let result = try run(step)
                results.append(result)
                onStep(result)
            }
            try launcher.confirmStarted()
        } catch {
            events.append(ProvisionEvent(event: "run.failed", detail: error.description))
            publishEvents()
            throw error
        }
        let changed = results.contains(where: \.changed)
        let health = results.first(where: { $0.step == "health" })?.detail
        events.append(ProvisionEvent(event: "run.finished", changed: changed, detail: health))
        publishEvents()
        return RunReport(fsid: state.identity?.fsid, steps: results, changed: changed, health: health)
    }

    /// One step in NodeContract's `StepRunner`: its fault points, its events, and its completion in the state file.
    /// No step is skipped: each looks at the node first and acts only on what is missing.
    func run(_ step: ProvisionStep) throws(ProvisionError) -> StepResult {
        let name = step.name
        let runner = StepRunner(faultPoint: options.fault) { [self] point in
            logger.notice("fault injection: dying at \(point)")
            events.append(ProvisionEvent(event: "fault.injected", step: name, detail: point.description))
        }
        var record = StateFileRecord(provisioner: self)
        let ran: Void? = try runner.run(RunStep(name), record: &record) { (record: inout StateFileRecord) throws(ProvisionError) in
            events.append(ProvisionEvent(event: "step.started", step: name))
            do throws(ProvisionError) {
                if options.failingStep == name {
                    throw .failed("step \(name) failed by --fault-fail (a transient failure, for tests)")
                }
                record.outcome = try step.body(self)()
                try launcher.confirmStarted(waiting: false)
            } catch {
                // A daemon this step started that died at once explains the failure better than a timeout does.
                var error = error
                do throws(ProvisionError) { try launcher.confirmStarted() } catch let died { error = died }
                events.append(ProvisionEvent(event: "step.failed", step: name, detail: error.description))
                throw error
            }
        }
        let outcome = ran == nil ? StepOutcome(changed: false) : record.outcome
        return StepResult(step: name, changed: outcome.changed, detail: outcome.detail)
    }
}

/// The Provisioner's step record: the state file's completed steps, and the events that say what each step did.
struct StateFileRecord: StepRecord {
    let provisioner: Provisioner
    /// What the running step's body reported (set by the body, read when the step finishes).
    var outcome = StepOutcome(changed: false)

    func isDone(_ step: String) -> Bool { false }

    /// The `step.started` event is the step's own first act (it follows the `before` fault point).
    func started(_ step: String) throws(ProvisionError) {}

    func finished(_ step: String) throws(ProvisionError) {
        provisioner.events.append(ProvisionEvent(event: outcome.changed ? "step.done" : "step.unchanged", step: step,
                                                 changed: outcome.changed, detail: outcome.detail))
        provisioner.state.markCompleted(step)
        try provisioner.state.save(provisioner.layout.stateFile)
    }
}
