import Foundation
import JSONCoding

extension Operations {
    /// `node remove HOST`: its data moved to the other hosts first, then its OSDs purged, its monitor, manager and
    /// keys removed and its CRUSH host deleted. Refused (exit 3) when the monitors would lose their quorum or a pool
    /// could no longer keep min_size copies on different hosts.
    public func removeNode(_ host: String, timeout: Double) throws(ProvisionError) {
        guard identity.runsMonitor else {
            throw .refused("`node remove` runs on a monitor node (it needs the admin key); this is a storage node")
        }
        guard host != localHost else {
            throw .refused("a node cannot remove itself: run `aquarium-provision node remove \(host)` on another monitor node")
        }
        let hosts = try crushHosts()
        let osds = try requireHost(host)
        try checkQuorum(without: host, removing: true)
        let remaining = hosts.filter { $0.key != host && !$0.value.isEmpty }.keys.sorted()
        let pools = try tools.json([CephJSON.PoolDetail].self, ["osd", "pool", "ls", "detail"], timeout: 60) ?? []
        var shrink: [(String, Int)] = []
        for pool in pools {
            guard let name = pool.poolName, let size = pool.size, let minSize = pool.minSize else { continue }
            if remaining.count < minSize {
                throw .refused("pool \(name) keeps at least \(minSize) copies (min_size) on different hosts, and without \(host) only "
                    + "\(remaining.count) host\(remaining.count == 1 ? "" : "s") with OSDs would remain ("
                    + remaining.joined(separator: ", ") + "); add a node first, or lower the pool's min_size yourself if losing "
                    + "redundancy is acceptable")
            }
            if remaining.count < size { shrink.append((name, max(remaining.count, minSize))) }
        }
        record("node.remove.started", "\(host): " + (osds.isEmpty ? "no OSDs" : "moving the data of " + osds.map { "osd.\($0)" }
            .joined(separator: ", ")) + " to " + remaining.joined(separator: ", "))
        // Pools never ask for more copies than there are hosts left (never below their min_size).
        for (name, size) in shrink {
            try tools.run("ceph", ["osd", "pool", "set", name, "size", String(size)], timeout: 60)
            say("pool \(name): size \(size) (\(remaining.count) hosts remain)")
        }
        if !osds.isEmpty {
            try tools.run("ceph", ["osd", "out"] + osds.map(String.init), timeout: 60)
            try waitForCleanData(osds, seconds: timeout)
        }
        // The node stops its daemons for good (its own `maintenance watch`); a dead node's are down already.
        try writeFlag("removed", MaintenanceFlag(host: host, reason: "removed", by: localHost))
        try waitForHost(host, osds: osds, up: false, seconds: timeout)
        // Its iSCSI gateway leaves the target while this can still be done again (a failed run is run again: the host
        // is still in CRUSH then).
        if let done = try removeISCSIGateway(host, timeout: timeout) { say(done) }
        for id in osds {
            try tools.run("ceph", ["osd", "purge", String(id), "--yes-i-really-mean-it"], timeout: 60)
            say("purged osd.\(id)")
        }
        if try monitors().all.contains(host) {
            try tools.run("ceph", ["mon", "remove", host], timeout: 120)
            say("removed mon.\(host)")
            if let placed = try placeReplacementMonitor(removed: host, timeout: timeout) { say(placed) }
        }
        // Its manager leaves the manager map now (a standby would stay listed until its beacon grace ran out; an
        // active one hands over to a standby).
        try tools.run("ceph", ["mgr", "fail", host], timeout: 60, accepted: Set(0...255))
        for entity in ["mgr.\(host)", "mds.\(host)", "client.rgw.\(host)", NodeKey.entity(host)] {
            try tools.run("ceph", ["auth", "del", entity], timeout: 60, accepted: [0, 2])
        }
        try tools.run("ceph", ["osd", "crush", "rm", host], timeout: 60, accepted: [0, 2])
        try removeFlag("maintenance", host: host)
        try removeFlag("node", host: host)  // its image release (`NodeVersion`)
        try removeFlag(NodeKey.objectKind, host: host)
        try forgetDownHost(host)
        record("node.removed", "\(host): OSDs " + (osds.isEmpty ? "none" : osds.map { "osd.\($0)" }.joined(separator: ", "))
            + " purged after their data moved, monitor, manager, keys and CRUSH host removed (and its iSCSI gateway, if any)")
    }

    /// Waits until every placement group is active+clean and Ceph says the OSDs hold nothing the cluster needs
    /// (`osd safe-to-destroy`), printing progress as the data moves.
    func waitForCleanData(_ osds: [Int], seconds: Double) throws(ProvisionError) {
        var last = ""
        try CephTools.wait("the data of " + osds.map { "osd.\($0)" }.joined(separator: ", ") + " to move to the other hosts",
                           seconds: seconds, interval: 3) {
            let states = try pgStates()
            let total = states.values.reduce(0, +)
            let clean = states["active+clean"] ?? 0
            let line = "placement groups: \(clean) of \(total) active+clean" + (states.count > 1
                ? " (" + states.filter { $0.key != "active+clean" }.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
                    .joined(separator: ", ") + ")" : "")
            if line != last { say(line); last = line }
            guard clean == total, total > 0 else { return false }
            return try tools.run("ceph", ["osd", "safe-to-destroy"] + osds.map(String.init), timeout: 60, accepted: [0, 16, 11]).status == 0
        }
    }

    /// Placement groups by state (`ceph pg stat`).
    func pgStates() throws(ProvisionError) -> [String: Int] {
        let result = try tools.run("ceph", ["pg", "stat", "--format", "json"], timeout: 60)
        guard let object = try? JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any] else {
            throw .failed("ceph pg stat printed no JSON: \(result.output.prefix(200))")
        }
        let summary = (object["pg_summary"] as? [String: Any]) ?? object
        var states: [String: Int] = [:]
        for entry in (summary["num_pg_by_state"] as? [[String: Any]]) ?? [] {
            if let name = entry["name"] as? String, let count = entry["num"] as? Int { states[name] = count }
        }
        return states
    }

    /// Drops HOST from the hosts a monitor node last saw down, so its removal is not later reported as `host.up`.
    func forgetDownHost(_ host: String) throws(ProvisionError) {
        let stored = try tools.run("ceph", ["config-key", "get", ClusterEventLog.downKey], timeout: 30, accepted: [0, 2])
        guard stored.status == 0, var hosts = try? JSONDecoder().decode([String].self, from: stored.standardOutput),
              hosts.contains(host) else { return }
        hosts.removeAll { $0 == host }
        let text = (try? JSONCoding.text(hosts, pretty: false)) ?? "[]"
        try tools.run("ceph", ["config-key", "set", ClusterEventLog.downKey, text], timeout: 30)
    }
}
