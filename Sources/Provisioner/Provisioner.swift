import Foundation
import Logging
import NodeContract
import Seed

/// Provisioning options beyond the seed and node record.
public struct ProvisionOptions: Sendable {
    public var launcher: LauncherKind
    /// Process launcher: the first of 100 ports this cluster may use on 127.0.0.1 (chosen when nil; remembered).
    public var basePort: Int?
    public var fault: FaultPoint?
    /// How long to wait for the cluster to report health after the services started.
    public var healthTimeout: Double
    /// `role: join`: the port of the monitor at `cluster.join.address` (default: remembered, else 3300). Clusters of
    /// the process launcher listen on their base port instead.
    public var monPort: Int?
    /// The process launcher binds in the seed's public network (this host's address there, port 3300 unless
    /// --base-port) instead of 127.0.0.1: for test hosts in network namespaces of their own.
    public var seedNetwork: Bool
    /// How long to wait for this node's address in the public network to appear.
    public var addressTimeout: Double
    /// Rack nodes: how long to wait for a monitor quorum (monitor nodes) or a monitor that answers (storage nodes).
    public var rackTimeout: Double
    /// Which attempt of the run this is, of how many (`run --attempts`): named in the run's `run.started` event.
    public var attempt = 1, attempts = 1
    /// Tests: this step fails (throws, as a timeout would) instead of running; the run command passes it to the
    /// first attempt only, so a retry shows what a transient failure does.
    public var failingStep: String?

    public init(launcher: LauncherKind = .systemd, basePort: Int? = nil, fault: FaultPoint? = nil, healthTimeout: Double = 300,
                monPort: Int? = nil, seedNetwork: Bool = false, addressTimeout: Double = 90, rackTimeout: Double = 900) {
        self.launcher = launcher
        self.basePort = basePort
        self.fault = fault
        self.healthTimeout = healthTimeout
        self.monPort = monPort
        self.seedNetwork = seedNetwork
        self.addressTimeout = addressTimeout
        self.rackTimeout = rackTimeout
    }
}

/// Configures the host and bootstraps a Ceph cluster from the seed (`role: bootstrap`) or adds this node's disks to one
/// as OSDs (`role: join`, in Join.swift), one idempotent step at a time (the steps of each role: StepRunner.swift).
/// Each step looks at the node first (files, daemons, the cluster's own view) and acts only on what is missing,
/// so a rerun on a healthy node changes nothing and a rerun after a crash picks up where it stopped.
public final class Provisioner {
    public static let s3AdminUser = Seed.S3User.administrator

    let seed: Seed
    let record: NodeRecord
    public let layout: Layout
    let options: ProvisionOptions
    let logger: Logger
    let launcher: any DaemonLauncher
    let tools: CephTools
    let events: EventLog
    var state: ProvisionState
    /// `role: join`: the seed's token, read before any step runs.
    var joinToken: JoinToken?
    /// The node record's storage disks found on this machine (by identity) by the preflight.
    var storageDisks: [ResolvedDisk] = []

    public init(seed: Seed, record: NodeRecord, root: String, options: ProvisionOptions, logger: Logger) throws(ProvisionError) {
        self.seed = seed
        self.record = record
        self.layout = Layout(root: root, cluster: seed.cluster.name)
        self.options = options
        self.logger = logger
        self.launcher = Launchers.make(options.launcher, layout: layout, logger: logger)
        self.events = EventLog(path: layout.eventsFile)
        self.state = try ProvisionState.load(layout.stateFile)
        // A storage node that was asked to run a monitor (`node remove` of a monitor node) acts as the admin since; a
        // joined node acts as itself once it has its own key (`NodeKey`), as the join key's entity before.
        self.tools = CephTools(layout: layout, logger: logger,
                               client: seed.cluster.role.joins && state.identity?.runsMonitor != true
                                   ? layout.joinedClient(host: CephConfig.daemonId(hostname: seed.host.hostname)) : nil,
                               connected: true)
        if let identity = state.identity, identity.launcher != options.launcher {
            throw .invalidInput("this root was provisioned with --launcher \(identity.launcher.rawValue); "
                + "rerun with the same launcher (\(layout.stateFile))")
        }
    }

    var identity: ClusterIdentity {
        // Set by the identity step, which runs before every step that reads it.
        state.identity ?? ClusterIdentity(fsid: "", name: seed.cluster.name, daemonId: "a", address: NodeAddresses.loopback,
                                          basePort: 0, publicNetwork: "", clusterNetwork: "", launcher: options.launcher)
    }

    var daemonId: String { CephConfig.daemonId(hostname: seed.host.hostname) }

    func saveState() throws(ProvisionError) { try state.save(layout.stateFile) }

    /// True when the keyring file at `path` holds a key.
    static func hasKey(_ path: String) -> Bool { Files.read(path)?.contains("key = ") ?? false }

    /// How a daemon of this cluster runs (`ceph-TYPE -i ID -f`, `radosgw -n client.rgw.ID -f`).
    func daemon(_ type: String, _ id: String, extra: [String] = []) -> DaemonSpec {
        DaemonSpec.ceph(type, id, layout: layout, extra: extra)
    }
}
