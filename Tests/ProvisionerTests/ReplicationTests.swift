import Foundation
import Testing
@testable import Provisioner

/// The `replication` step's policy: hosts with OSDs -> size and min_size, which defaults and pools grow. Never shrinks.
@Suite struct ReplicationTests {
    @Test(arguments: [(0, 1, 1), (1, 1, 1), (2, 2, 1), (3, 3, 2), (4, 3, 2), (12, 3, 2)])
    func targetForHosts(hosts: Int, size: Int, minSize: Int) {
        #expect(ReplicationTarget.forHosts(hosts) == ReplicationTarget(size: size, minSize: minSize))
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var hosts: Int
        var defaults: ReplicationDefaults
        var pools: [PoolReplication]
        var pending: [String: Int] = [:]
        // Expected:
        var newDefaults: ReplicationTarget?
        var sizes: [ReplicationPlan.PoolChange] = []
        var minSizes: [ReplicationPlan.PoolChange] = []
        var restoreWarning = false

        var testDescription: String { name }
    }

    static let single = ReplicationDefaults(size: 1, minSize: 1, noRedundancyWarningOff: true)
    static let two = ReplicationDefaults(size: 2, minSize: 1, noRedundancyWarningOff: false)
    static func pool(_ name: String, _ size: Int, _ minSize: Int, replicated: Bool = true) -> PoolReplication {
        PoolReplication(name: name, size: size, minSize: minSize, replicated: replicated)
    }
    static func change(_ pool: String, _ from: Int, _ to: Int) -> ReplicationPlan.PoolChange {
        ReplicationPlan.PoolChange(pool: pool, from: from, to: to)
    }

    static let cases: [Case] = [
        Case(name: "one node as bootstrapped: nothing to do", hosts: 1, defaults: single,
             pools: [pool("device_health_metrics", 1, 1), pool("rbd", 1, 1)]),
        Case(name: "no OSD in CRUSH yet: nothing to do", hosts: 0, defaults: single, pools: []),
        Case(name: "no defaults in the database: set for the hosts there are", hosts: 1,
             defaults: ReplicationDefaults(size: nil, minSize: nil, noRedundancyWarningOff: false), pools: [],
             newDefaults: ReplicationTarget(size: 1, minSize: 1)),
        Case(name: "a second node joined: everything to 2/1, the warning back on", hosts: 2, defaults: single,
             pools: [pool("rbd", 1, 1), pool("device_health_metrics", 1, 1)],
             newDefaults: ReplicationTarget(size: 2, minSize: 1),
             sizes: [change("device_health_metrics", 1, 2), change("rbd", 1, 2)], restoreWarning: true),
        Case(name: "two nodes, grown already: nothing to do", hosts: 2, defaults: two,
             pools: [pool("device_health_metrics", 2, 1), pool("rbd", 2, 1)]),
        Case(name: "a third node: 3/2, min_size after size", hosts: 3, defaults: two,
             pools: [pool("rbd", 2, 1)], newDefaults: ReplicationTarget(size: 3, minSize: 2),
             sizes: [change("rbd", 2, 3)], minSizes: [change("rbd", 1, 2)]),
        Case(name: "two nodes joined between runs: 1 -> 3 at once", hosts: 3, defaults: single,
             pools: [pool("rbd", 1, 1)], newDefaults: ReplicationTarget(size: 3, minSize: 2),
             sizes: [change("rbd", 1, 3)], minSizes: [change("rbd", 1, 2)], restoreWarning: true),
        Case(name: "a pool an operator grew stays as it is", hosts: 2, defaults: single,
             pools: [pool("big", 3, 1), pool("rbd", 1, 1)], newDefaults: ReplicationTarget(size: 2, minSize: 1),
             sizes: [change("rbd", 1, 2)], restoreWarning: true),
        Case(name: "a host down or gone: never shrinks", hosts: 1, defaults: two,
             pools: [pool("rbd", 2, 1), pool("device_health_metrics", 2, 1)]),
        Case(name: "three hosts down to two: never shrinks", hosts: 2,
             defaults: ReplicationDefaults(size: 3, minSize: 2, noRedundancyWarningOff: false), pools: [pool("rbd", 3, 2)]),
        Case(name: "operator's larger defaults stay; pools still grow", hosts: 2,
             defaults: ReplicationDefaults(size: 3, minSize: 2, noRedundancyWarningOff: true), pools: [pool("rbd", 1, 1)],
             sizes: [change("rbd", 1, 2)], restoreWarning: true),
        Case(name: "one host, operator's default 2: pools of size 1 keep the warning off", hosts: 1,
             defaults: ReplicationDefaults(size: 2, minSize: 1, noRedundancyWarningOff: true), pools: [pool("rbd", 1, 1)]),
        Case(name: "erasure-coded pools are left alone", hosts: 3, defaults: ReplicationDefaults(size: 3, minSize: 2, noRedundancyWarningOff: false),
             pools: [pool("ec", 2, 2, replicated: false), pool("rbd", 3, 2)]),
        Case(name: "a run died between size and min_size: the remembered min_size is set", hosts: 3,
             defaults: ReplicationDefaults(size: 3, minSize: 2, noRedundancyWarningOff: false),
             pools: [pool("rbd", 3, 1), pool("other", 3, 2)], pending: ["rbd": 2, "other": 2],
             minSizes: [change("rbd", 1, 2)]),
        Case(name: "a min_size an operator lowered later is not raised again", hosts: 3,
             defaults: ReplicationDefaults(size: 3, minSize: 2, noRedundancyWarningOff: false), pools: [pool("rbd", 3, 1)]),
    ]

    @Test(arguments: cases)
    func plan(_ c: Case) {
        let plan = ReplicationPlan.make(hosts: c.hosts, defaults: c.defaults, pools: c.pools, pending: c.pending)
        #expect(plan.target == ReplicationTarget.forHosts(c.hosts))
        #expect(plan.defaults == c.newDefaults)
        #expect(plan.sizes == c.sizes)
        #expect(plan.minSizes == c.minSizes)
        #expect(plan.restoreNoRedundancyWarning == c.restoreWarning)
        #expect(plan.isEmpty == (c.newDefaults == nil && c.sizes.isEmpty && c.minSizes.isEmpty && !c.restoreWarning))
        // Applying the plan and planning again finds nothing left (a rerun reports `changed: false`).
        let grown = c.pools.map { pool in
            var pool = pool
            if let size = plan.sizes.first(where: { $0.pool == pool.name }) { pool.size = size.to }
            if let minSize = plan.minSizes.first(where: { $0.pool == pool.name }) { pool.minSize = minSize.to }
            return pool
        }
        let after = ReplicationDefaults(size: plan.defaults?.size ?? c.defaults.size,
                                        minSize: plan.defaults?.minSize ?? c.defaults.minSize,
                                        noRedundancyWarningOff: c.defaults.noRedundancyWarningOff && !plan.restoreNoRedundancyWarning)
        #expect(ReplicationPlan.make(hosts: c.hosts, defaults: after, pools: grown).isEmpty)
    }

    @Test func hostsWithOSDsFromTheCrushTree() throws {
        // node-c's OSD is down and out: it still counts. node-d's OSDs were purged: an empty bucket does not.
        let tree = """
        {"nodes": [
          {"id": -1, "name": "default", "type": "root", "children": [-7, -5, -3, -9]},
          {"id": -3, "name": "node-a", "type": "host", "children": [0]},
          {"id": 0, "name": "osd.0", "type": "osd", "status": "up", "reweight": 1},
          {"id": -5, "name": "node-b", "type": "host", "children": [2, 1]},
          {"id": 1, "name": "osd.1", "type": "osd", "status": "up", "reweight": 1},
          {"id": 2, "name": "osd.2", "type": "osd", "status": "up", "reweight": 1},
          {"id": -7, "name": "node-c", "type": "host", "children": [3]},
          {"id": 3, "name": "osd.3", "type": "osd", "status": "down", "reweight": 0},
          {"id": -9, "name": "node-d", "type": "host", "children": []}
        ], "stray": [{"id": 4, "name": "osd.4", "type": "osd", "status": "down"}]}
        """
        let json = try JSONSerialization.jsonObject(with: Data(tree.utf8))
        #expect(CrushHosts.withOSDs(json) == ["node-a", "node-b", "node-c"])
        #expect(CrushHosts.withOSDs([String: Any]()) == [])
    }

    @Test func poolsAndDefaultsFromCephJSON() throws {
        let pools = """
        [{"pool_id": 1, "pool_name": "device_health_metrics", "type": 1, "size": 2, "min_size": 1},
         {"pool_id": 2, "pool_name": "ec", "type": 3, "size": 3, "min_size": 2}]
        """
        #expect(PoolReplication.parse(try JSONSerialization.jsonObject(with: Data(pools.utf8))) == [
            PoolReplication(name: "device_health_metrics", size: 2, minSize: 1),
            PoolReplication(name: "ec", size: 3, minSize: 2, replicated: false),
        ])
        let dump = """
        [{"section": "global", "name": "osd_pool_default_size", "value": "2"},
         {"section": "osd", "name": "osd_pool_default_size", "value": "5"},
         {"section": "global", "name": "osd_pool_default_min_size", "value": "1"},
         {"section": "global", "name": "mon_warn_on_pool_no_redundancy", "value": "false"}]
        """
        #expect(ReplicationDefaults.parse(try JSONSerialization.jsonObject(with: Data(dump.utf8)))
                == ReplicationDefaults(size: 2, minSize: 1, noRedundancyWarningOff: true))
        #expect(ReplicationDefaults.parse([[String: Any]]()) == ReplicationDefaults(size: nil, minSize: nil, noRedundancyWarningOff: false))
    }
}
