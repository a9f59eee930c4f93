import ArgumentParser
import CommandSupport
import Crypto
import Foundation
import NodeContract
import Seed

/// Options every subcommand that works on a provisioned root shares.
public struct RootOptions: ParsableArguments, Sendable {
    @Option(name: .long, help: "The target root: / on a node, a directory for tests and development.")
    public var root: String = "/"

    @Option(name: .customLong("cluster"), help: "The Ceph cluster name (default: the one the state file records, else ceph).")
    public var clusterName: String?

    public init() {}

    /// The cluster name given, else the one provisioned under the root.
    public var cluster: String {
        if let clusterName { return clusterName }
        let state = try? ProvisionState.load(Layout(root: root).stateFile)
        return state?.identity?.name ?? "ceph"
    }

    /// The layout, the state and the cluster this root was provisioned for; refused (bad input) when it was not.
    func provisioned() throws(ProvisionError) -> (layout: Layout, state: ProvisionState, identity: ClusterIdentity) {
        let layout = Layout(root: root, cluster: cluster)
        let state = try ProvisionState.load(layout.stateFile)
        guard let identity = state.identity else {
            throw .invalidInput("\(layout.stateFile) names no cluster: this node was not provisioned yet (`aquarium-provision run`)")
        }
        return (layout, state, identity)
    }
}

public struct RunCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Configure the host and bootstrap Ceph from the seed; safe to rerun, resumes after a crash.",
        discussion: """
            Examples:
              aquarium-provision run                     # the node record's seed
              aquarium-provision run --seed /var/lib/aquarium/seed.yaml --json
              aquarium-provision run --attempts 3        # as the node's unit runs it
              aquarium-provision status
            """)

    @OptionGroup public var global: GlobalOptions

    @Option(name: .long, help: "The seed file (default: the node record's seed path, else /var/lib/aquarium/seed.yaml).")
    public var seed: String?

    @Option(name: .long, help: "FirstBoot's node record.")
    public var nodeRecord: String = "/var/lib/aquarium/node.json"

    @Option(name: .long, help: "The target root: / on a node, a directory for tests and development.")
    public var root: String = "/"

    @Option(name: .long, help: ArgumentHelp("How daemons run: systemd (units) or process (children on 127.0.0.1; tests and development).",
                                             visibility: .hidden))
    public var launcher: LauncherKind = .systemd

    @Option(name: .long, help: ArgumentHelp("Tests: first of 100 ports this cluster uses (process launcher: chosen when omitted).",
                                             visibility: .hidden))
    public var basePort: Int?

    @Option(name: .long, help: ArgumentHelp("Tests: die at STEP[:before|mid|after] to test resuming (also AQUARIUM_PROVISION_FAULT_INJECT or AQUARIUM_FAULT_INJECT).",
                                             visibility: .hidden))
    public var faultInject: String?

    @Option(name: .long, help: "Seconds to wait for the cluster's health.")
    public var healthTimeout: Double = 300

    @Option(name: .long, help: ArgumentHelp("Tests: role join: the port of the monitor at cluster.join.address (default 3300; a process-launcher cluster listens on its base port).",
                                             visibility: .hidden))
    public var monPort: Int?

    @Flag(name: .long, help: ArgumentHelp("Tests: process launcher: bind in the seed's public network (this host's address there) instead of 127.0.0.1, as on a node; for test hosts in network namespaces.",
                                          visibility: .hidden))
    public var seedNetwork = false

    @Option(name: .long, help: "Seconds to wait for this node's address in the public network (DHCP, or a static one being applied).")
    public var addressTimeout: Double = 90

    @Option(name: .long, help: "Rack nodes (role: monitor or storage): seconds to wait for the other monitors (a quorum) or for a monitor to answer.")
    public var rackTimeout: Double = 900

    @Option(name: .long, help: "Run up to N times when a run fails at runtime (exit 1: a timeout, a daemon slow to answer); a refusal (exit 3) or bad input (exit 2) is never retried. The node's unit uses 3.")
    public var attempts: Int = 1

    @Option(name: .long, help: "Seconds between attempts.")
    public var retryDelay: Double = 30

    @Option(name: .long, help: ArgumentHelp("Tests: STEP fails (as a timeout would) on the first attempt.", visibility: .hidden))
    public var faultFail: String?

    @Flag(name: .long, help: "Print the run report as JSON.")
    public var json = false

    public init() {}

    public func run() throws {
        let logger = global.logger("aquarium.provision")
        if !(1...10).contains(attempts) { throw ProvisionError.invalidInput("--attempts \(attempts): expected 1...10") }
        if retryDelay < 0 { throw ProvisionError.invalidInput("--retry-delay \(retryDelay): expected 0 or more seconds") }
        if let faultFail {
            let names = Set(ClusterRole.allCases.flatMap { role in
                (Provisioner.steps(for: role) + Provisioner.steps(for: role, promoted: true)).map(\.name)
            })
            guard names.contains(faultFail) else {
                throw ProvisionError.invalidInput("--fault-fail \(faultFail): not a step (one of \(names.sorted().joined(separator: ", ")))")
            }
        }
        // AQUARIUM_PROVISION_FAULT_INJECT is the Provisioner's alone: a test boot sets it for every unit
        // (`systemd.setenv=` on the kernel command line) without FirstBoot, which reads AQUARIUM_FAULT_INJECT, taking it.
        let environment = ProcessInfo.processInfo.environment
        let faultText = faultInject ?? environment["AQUARIUM_PROVISION_FAULT_INJECT"] ?? environment["AQUARIUM_FAULT_INJECT"]
        var fault: FaultPoint?
        if let faultText, !faultText.isEmpty {
            guard let parsed = FaultPoint(faultText) else {
                throw ProvisionError.invalidInput("--fault-inject \(faultText): expected STEP[:before|mid|after]")
            }
            fault = parsed
        }
        if let basePort, !(1024...65000).contains(basePort) {
            throw ProvisionError.invalidInput("--base-port \(basePort): expected 1024...65000")
        }
        if let monPort, !(1...65535).contains(monPort) {
            throw ProvisionError.invalidInput("--mon-port \(monPort): expected 1...65535")
        }
        let record = try NodeRecord.load(path: nodeRecord)
        let seedPath = seed ?? Layout(root: root).path(record.seedPath)
        guard let seedData = FileManager.default.contents(atPath: seedPath) else {
            throw ProvisionError.invalidInput("cannot read the seed \(seedPath); FirstBoot copies the verified seed there, "
                + "or pass --seed FILE")
        }
        let digest = SHA256.hash(data: seedData).map { String(format: "%02x", $0) }.joined()
        if seed == nil && digest != record.seedSHA256.lowercased() {
            // Only the seed FirstBoot verified (signature, machine binding, expiry) runs unattended.
            throw ProvisionError.refused("the seed \(seedPath) (SHA-256 \(digest)) is not the one FirstBoot verified "
                + "(the node record \(nodeRecord) says \(record.seedSHA256)); reboot so FirstBoot verifies it, or pass "
                + "--seed FILE to run a seed by hand")
        }
        let loaded: Seed
        do {
            loaded = try SeedLoader.parse(data: seedData, file: seedPath)
        } catch {
            throw ProvisionError.invalidInput(error.description)
        }
        if launcher == .systemd && Layout(root: root).root != "" {
            throw ProvisionError.invalidInput("--launcher systemd manages this machine's units and needs --root /; "
                + "use --launcher process with --root \(root)")
        }
        if monPort != nil && loaded.cluster.role != .join {
            throw ProvisionError.invalidInput("--mon-port is for role: join; this seed has role: \(loaded.cluster.role.rawValue)")
        }
        if addressTimeout < 0 { throw ProvisionError.invalidInput("--address-timeout \(addressTimeout): expected 0 or more seconds") }
        if rackTimeout < 0 { throw ProvisionError.invalidInput("--rack-timeout \(rackTimeout): expected 0 or more seconds") }
        let options = ProvisionOptions(launcher: launcher, basePort: basePort, fault: fault, healthTimeout: healthTimeout,
                                       monPort: monPort, seedNetwork: seedNetwork, addressTimeout: addressTimeout,
                                       rackTimeout: rackTimeout)
        if let local = LocalMaintenance.load(Layout(root: root)) {
            switch local.flag.reason {
            case "removed":
                throw ProvisionError.refused("this node was removed from the cluster (by \(local.flag.by) at \(local.flag.since)); "
                    + "its daemons stay stopped. To use the machine again, reflash its stick with a new seed (FirstBoot "
                    + "then asks before it reuses any disk)")
            case "reboot":
                break  // the boot after `aquarium-provision reboot`: the run's `maintenance` step ends it
            default:
                let message = "this node is in maintenance (since \(local.flag.since), asked by \(local.flag.by)): its daemons "
                    + "stay stopped and nothing is changed; `aquarium-provision maintenance exit \(local.flag.host)` ends it"
                logger.notice("\(message)")
                return
            }
        }
        let output = OutputFormatter(json: json)
        // Every step looks at the node before it acts, so another attempt after a runtime failure (on a node: a
        // command that timed out while the cluster was busy) does only what is still missing. On a counted trial boot
        // of a new root slot this keeps one slow moment from costing one of the slot's tries.
        for attempt in 1...attempts {
            var attemptOptions = options
            attemptOptions.attempt = attempt
            attemptOptions.attempts = attempts
            attemptOptions.failingStep = attempt == 1 ? faultFail : nil
            let provisioner = try Provisioner(seed: loaded, record: record, root: root, options: attemptOptions, logger: logger)
            let outcome = Result { () throws(ProvisionError) -> RunReport in
                try provisioner.run { result in
                    output.progress("\(result.step): \(result.changed ? "changed" : "unchanged")\(result.detail.map { " (\($0))" } ?? "")")
                }
            }
            switch outcome {
            case .success(let report):
                try output.print(report)
                return
            case .failure(let error):
                guard error.exitCode == .runtimeFailure && attempt < attempts else { throw error }
                logger.warning("attempt \(attempt) of \(attempts) failed: \(error.description); trying again in \(Int(retryDelay)) s (a rerun does only what is still missing)")
                Thread.sleep(forTimeInterval: retryDelay)
            }
        }
    }
}

extension LauncherKind: ExpressibleByArgument {}

public struct StatusCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Health, daemons, OSDs, services and their endpoints.",
        discussion: """
            Examples:
              aquarium-provision status
              aquarium-provision status --json      # docs/provisioner.md
              aquarium-provision events             # how it came to be so
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions

    @Flag(name: .long, help: "Print JSON (documented in docs/provisioner.md).")
    public var json = false

    public init() {}

    public func run() throws {
        let report = StatusCollector.collect(root: rootOptions.root, cluster: rootOptions.cluster,
                                             logger: global.logger("aquarium.provision"))
        try OutputFormatter(json: json).print(report)
        if report.health == "UNREACHABLE" { throw ExitCode(AquariumExit.runtimeFailure.rawValue) }
    }
}

public struct JoinTokenCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "join-token",
        abstract: "Print, rotate or revoke the token other nodes put into cluster.join.token (a secret).",
        discussion: """
            The token grants data access: its holder can register an OSD, and an OSD reads and writes every pool. It \
            expires (24 hours after the cluster formed, or --ttl after --rotate); the cluster removes the key at its \
            first reconcile after that.

            Examples:
              aquarium-provision join-token                    # the current token
              aquarium-provision join-token --rotate --ttl 2h  # the old one stops
              aquarium-provision join-token --revoke           # until --rotate
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions

    @Flag(name: .long, help: "Replace the join key (the old token stops working at once) and print the new token.")
    public var rotate = false

    @Flag(name: .long, help: "Remove the join key: no node can join until --rotate.")
    public var revoke = false

    @Option(name: .long, help: "With --rotate: how long the new key is accepted, a whole number and s, m, h or d (default 24h).")
    public var ttl: String?

    public init() {}

    public mutating func validate() throws {
        if rotate && revoke { throw ValidationError("--rotate and --revoke exclude each other") }
        if ttl != nil && !rotate { throw ValidationError("--ttl only goes with --rotate") }
    }

    public func run() throws {
        let layout = Layout(root: rootOptions.root, cluster: rootOptions.cluster)
        let logger = global.logger("aquarium.provision")
        let events = EventLog(path: layout.eventsFile)
        if rotate || revoke {
            let state = try? ProvisionState.load(layout.stateFile)
            guard let fsid = state?.identity?.fsid, state?.identity?.join == nil else {
                throw ProvisionError.failed("only a monitor node can \(rotate ? "rotate" : "revoke") the join key (it needs "
                    + "the admin key); this root has no bootstrapped cluster: \(layout.stateFile)")
            }
            let keys = JoinKeys(tools: CephTools(layout: layout, logger: logger))
            if revoke {
                let changed = try keys.revoke()
                try? FileManager.default.removeItem(atPath: layout.joinTokenFile)
                events.append(ProvisionEvent(event: "join-key.revoked", changed: changed))
                print("revoked: the monitors no longer accept \(JoinToken.entity); `aquarium-provision join-token --rotate` makes a new key")
                return
            }
            let lifetime = try ttl.map(JoinKeyRecord.parseLifetime) ?? JoinKeyRecord.defaultLifetime
            let (key, record) = try keys.rotate(lifetime: lifetime)
            let token = JoinToken(fsid: fsid, key: key, expires: record.expires)
            try Files.write(token.text + "\n", to: layout.joinTokenFile, mode: 0o600)
            events.append(ProvisionEvent(event: "join-key.rotated", changed: true,
                                         detail: "valid until \(JoinKeyRecord.timeText(record.expires))"))
            print(token.text)
            return
        }
        let path = layout.joinTokenFile
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw ProvisionError.failed("there is no join token at \(path): the key was revoked or has expired "
                + "(`aquarium-provision join-token --rotate` makes a new one), or this is not a monitor node of a "
                + "bootstrapped cluster")
        }
        let token = try JoinToken(parsing: text)
        try token.refuseIfExpired(what: "the join token in \(path)")
        print(token.text)
    }
}

public struct SupportBundleCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "support-bundle",
        abstract: "Write a .tar.gz with the node record, events, Ceph status and logs; secrets left out.",
        discussion: """
            Example:
              aquarium-provision support-bundle --output /tmp/node-1-support.tar.gz
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions

    @Option(name: .long, help: "The bundle to write (FILE.tar.gz).")
    public var output: String

    @Option(name: .long, help: "The seed, to include redacted and to scrub its secrets (default ROOT/var/lib/aquarium/seed.yaml if present).")
    public var seed: String?

    @Option(name: .long, help: "The node record to include (default ROOT/var/lib/aquarium/node.json).")
    public var nodeRecord: String?

    public init() {}

    public func run() throws {
        var loaded: Seed?
        // FirstBoot keeps the verified seed at /var/lib/aquarium/seed.yaml; its secrets are scrubbed from the bundle.
        let defaultSeed = Layout(root: rootOptions.root).path("/var/lib/aquarium/seed.yaml")
        if let path = seed ?? (FileManager.default.fileExists(atPath: defaultSeed) ? defaultSeed : nil) {
            do { loaded = try SeedLoader.load(path: path) } catch { throw ProvisionError.invalidInput(error.description) }
        }
        let layout = Layout(root: rootOptions.root, cluster: loaded?.cluster.name ?? rootOptions.cluster)
        let bundle = SupportBundle(layout: layout, seed: loaded, nodeRecordPath: nodeRecord,
                                   logger: global.logger("aquarium.provision"))
        let names = try bundle.write(to: output)
        print("wrote \(output) (\(names.count) files)")
    }
}

public struct StopCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop the Ceph daemons this tool started under the root (only those).",
        discussion: """
            Examples:
              aquarium-provision stop
              aquarium-provision stop --root /tmp/aquarium-dev    # a development root
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions

    public init() {}

    public func run() throws {
        let layout = Layout(root: rootOptions.root, cluster: rootOptions.cluster)
        let state = try ProvisionState.load(layout.stateFile)
        let kind = state.identity?.launcher ?? .process
        let stopped = try Launchers.make(kind, layout: layout, logger: global.logger("aquarium.provision")).stopAll()
        print(stopped.isEmpty ? "nothing to stop" : "stopped " + stopped.joined(separator: ", "))
    }
}
