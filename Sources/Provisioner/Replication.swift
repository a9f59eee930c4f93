import Foundation

/// How many copies pools keep, from how many CRUSH hosts hold OSDs: a single node keeps one (size 1, as Aquarium
/// did), two nodes two (min_size 1, so one node down keeps the data writable), three or more Ceph's default 3/2.
/// The CRUSH failure domain is `host`, so a size never exceeds what the hosts can place.
public struct ReplicationTarget: Equatable, Sendable, CustomStringConvertible {
    public var size: Int
    public var minSize: Int

    public init(size: Int, minSize: Int) {
        self.size = size
        self.minSize = minSize
    }

    /// The target for `hosts` CRUSH hosts with at least one OSD (0 before the first OSD exists: a single node).
    public static func forHosts(_ hosts: Int) -> ReplicationTarget {
        switch hosts {
        case ...1: ReplicationTarget(size: 1, minSize: 1)
        case 2: ReplicationTarget(size: 2, minSize: 1)
        default: ReplicationTarget(size: 3, minSize: 2)
        }
    }

    public var description: String { "size \(size), min_size \(minSize)" }
}

/// A pool's replication as `ceph osd pool ls detail` reports it.
public struct PoolReplication: Equatable, Sendable {
    public var name: String
    public var size: Int
    public var minSize: Int
    /// Erasure-coded pools (type 3) have a size fixed by their profile and are left alone.
    public var replicated: Bool

    public init(name: String, size: Int, minSize: Int, replicated: Bool = true) {
        self.name = name
        self.size = size
        self.minSize = minSize
        self.replicated = replicated
    }

    /// Pools from `ceph osd pool ls detail --format json`.
    public static func parse(lsDetail pools: [CephJSON.PoolDetail]?) -> [PoolReplication] {
        (pools ?? []).compactMap { pool in
            guard let name = pool.poolName, let size = pool.size, let minSize = pool.minSize else { return nil }
            return PoolReplication(name: name, size: size, minSize: minSize, replicated: (pool.type ?? 1) == 1)
        }
    }

    /// The same from `JSONSerialization`'s output (test fixtures).
    public static func parse(_ json: Any) -> [PoolReplication] {
        parse(lsDetail: CephJSON.decode([CephJSON.PoolDetail].self, fromObject: json))
    }
}

/// The pool defaults in the monitor's configuration database (`ceph config dump`, section `global`).
public struct ReplicationDefaults: Equatable, Sendable {
    public var size: Int?
    public var minSize: Int?
    /// `mon_warn_on_pool_no_redundancy = false`: the single-node override that silences POOL_NO_REDUNDANCY.
    public var noRedundancyWarningOff: Bool

    public init(size: Int?, minSize: Int?, noRedundancyWarningOff: Bool) {
        self.size = size
        self.minSize = minSize
        self.noRedundancyWarningOff = noRedundancyWarningOff
    }

    /// From `ceph config dump --format json`.
    public init(configDump dump: [CephJSON.ConfigEntry]) {
        func value(_ option: String) -> String? {
            dump.first { $0.section == "global" && $0.name == option }?.value
        }
        self.init(size: value("osd_pool_default_size").flatMap { Int($0) },
                  minSize: value("osd_pool_default_min_size").flatMap { Int($0) },
                  noRedundancyWarningOff: value("mon_warn_on_pool_no_redundancy") == "false")
    }

    /// The same from `JSONSerialization`'s output (test fixtures).
    public static func parse(_ json: Any) -> ReplicationDefaults {
        ReplicationDefaults(configDump: CephJSON.decode([CephJSON.ConfigEntry].self, fromObject: json) ?? [])
    }
}

/// What the `replication` step changes. Sizes only ever grow: a pool (or default) at or above the target is left as
/// it is, whether an operator raised it or the cluster lost a host since.
public struct ReplicationPlan: Equatable, Sendable {
    public struct PoolChange: Equatable, Sendable {
        public var pool: String
        public var from: Int
        public var to: Int

        public init(pool: String, from: Int, to: Int) {
            self.pool = pool
            self.from = from
            self.to = to
        }
    }

    public var target: ReplicationTarget
    /// `osd_pool_default_size` and `osd_pool_default_min_size` to set (nil: leave them).
    public var defaults: ReplicationTarget?
    public var sizes: [PoolChange] = []
    /// min_size raised after the size (Ceph refuses a min_size above the size).
    public var minSizes: [PoolChange] = []
    /// Remove the `mon_warn_on_pool_no_redundancy = false` override: nothing is left at size 1.
    public var restoreNoRedundancyWarning = false

    public var isEmpty: Bool { defaults == nil && sizes.isEmpty && minSizes.isEmpty && !restoreNoRedundancyWarning }

    /// `pending`: the min_size each pool grown by an earlier run was to get (kept in the state file until it is set,
    /// so a run that died between a pool's size and its min_size still finishes the job; a min_size an operator
    /// lowered later, e.g. to regain I/O during an incident, is not raised again).
    public static func make(hosts: Int, defaults current: ReplicationDefaults, pools: [PoolReplication],
                            pending: [String: Int] = [:]) -> ReplicationPlan {
        let target = ReplicationTarget.forHosts(hosts)
        var plan = ReplicationPlan(target: target)
        var defaultSize = current.size ?? 1
        if current.size == nil || defaultSize < target.size {
            let minSize = max(current.minSize ?? target.minSize, target.minSize)
            plan.defaults = ReplicationTarget(size: target.size, minSize: min(minSize, target.size))
            defaultSize = target.size
        }
        var smallest = Int.max
        for pool in pools.sorted(by: { $0.name < $1.name }) where pool.replicated {
            var size = pool.size
            var wantedMin: Int?
            if size < target.size {
                plan.sizes.append(PoolChange(pool: pool.name, from: size, to: target.size))
                size = target.size
                wantedMin = target.minSize
            } else if let remembered = pending[pool.name] {
                wantedMin = min(remembered, size)
            }
            if let wantedMin, pool.minSize < wantedMin {
                plan.minSizes.append(PoolChange(pool: pool.name, from: pool.minSize, to: wantedMin))
            }
            smallest = min(smallest, size)
        }
        plan.restoreNoRedundancyWarning = current.noRedundancyWarningOff && defaultSize >= 2 && smallest >= 2
        return plan
    }

    /// The min_size each grown pool still has to get, for the state file.
    public var pendingMinSizes: [String: Int] {
        Dictionary(minSizes.map { ($0.pool, $0.to) }, uniquingKeysWith: max)
    }
}

/// The CRUSH hosts that hold at least one OSD, from `ceph osd tree --format json`, whether those OSDs are up or not:
/// a node that is down for a while still counts, so nothing is planned differently while it is away.
public enum CrushHosts {
    public static func withOSDs(in tree: CephJSON.OSDTree?) -> [String] {
        (tree?.nodes ?? []).filter { node in
            node.type == "host" && (node.children ?? []).contains { $0 >= 0 }
        }.compactMap(\.name).sorted()
    }

    /// The same from `JSONSerialization`'s output (test fixtures).
    public static func withOSDs(_ json: Any) -> [String] {
        withOSDs(in: CephJSON.decode(CephJSON.OSDTree.self, fromObject: json))
    }
}

extension Provisioner {
    /// Bootstrap node (it holds the admin key): pool sizes follow the number of CRUSH hosts with OSDs, growing the
    /// defaults in the configuration database and every replicated pool below the target; never shrinking.
    func replication() throws(ProvisionError) -> StepOutcome {
        let hosts = CrushHosts.withOSDs(in: try tools.json(CephJSON.OSDTree.self, ["osd", "tree"]))
        let defaults = ReplicationDefaults(configDump: try tools.json([CephJSON.ConfigEntry].self, ["config", "dump"]) ?? [])
        let pools = PoolReplication.parse(lsDetail: try tools.json([CephJSON.PoolDetail].self, ["osd", "pool", "ls", "detail"]))
        let plan = ReplicationPlan.make(hosts: hosts.count, defaults: defaults, pools: pools,
                                        pending: state.replicationPending ?? [:])
        let summary = "\(hosts.count) host\(hosts.count == 1 ? "" : "s") with OSDs: \(plan.target)"
        var actions: [String] = []
        if let wanted = plan.defaults {
            // `ceph config set`: `config assimilate-conf` keeps values the database already has. min_size first, so
            // a run that dies in between leaves the size below the target and the next run sets both again.
            try tools.run("ceph", ["config", "set", "global", "osd_pool_default_min_size", String(wanted.minSize)])
            try tools.run("ceph", ["config", "set", "global", "osd_pool_default_size", String(wanted.size)])
            actions.append("defaults \(wanted)")
        }
        if !plan.minSizes.isEmpty {
            state.replicationPending = (state.replicationPending ?? [:]).merging(plan.pendingMinSizes) { max($0, $1) }
            try saveState()
        }
        for change in plan.sizes {
            try tools.run("ceph", ["osd", "pool", "set", change.pool, "size", String(change.to)])
        }
        if !plan.sizes.isEmpty {
            actions.append("size of " + plan.sizes.map { "\($0.pool) \($0.from)→\($0.to)" }.joined(separator: ", "))
        }
        fault("replication", .mid)
        for change in plan.minSizes {
            try tools.run("ceph", ["osd", "pool", "set", change.pool, "min_size", String(change.to)])
        }
        if !plan.minSizes.isEmpty {
            actions.append("min_size of " + plan.minSizes.map { "\($0.pool) \($0.from)→\($0.to)" }.joined(separator: ", "))
        }
        if state.replicationPending != nil {
            state.replicationPending = nil
            try saveState()
        }
        if plan.restoreNoRedundancyWarning {
            try tools.run("ceph", ["config", "rm", "global", "mon_warn_on_pool_no_redundancy"])
            actions.append("POOL_NO_REDUNDANCY warnings back on")
        }
        return StepOutcome(changed: !actions.isEmpty,
                          detail: actions.isEmpty ? summary : summary + "; " + actions.joined(separator: "; "))
    }
}
