import CommandSupport
import Foundation
import JSONCoding

/// One event of the cluster-wide log: a node's event with the node's name.
public struct ClusterEvent: Codable, Equatable, Sendable {
    public var host: String
    /// ISO 8601, UTC, with milliseconds.
    public var time: String
    public var event: String
    public var step: String?
    public var changed: Bool?
    public var detail: String?

    public init(host: String, _ event: ProvisionEvent) {
        self.host = host
        self.time = event.time
        self.event = event.event
        self.step = event.step
        self.changed = event.changed
        self.detail = event.detail
    }

    /// `TIME HOST EVENT [STEP] [DETAIL]`.
    public var line: String {
        "\(time)  \(host)  \(event)" + (step.map { " [\($0)]" } ?? "") + (detail.map { ": \($0)" } ?? "")
    }
}

/// What `events --json` prints.
public struct ClusterEventsReport: Codable, Equatable, Sendable {
    /// `cluster` when read from the cluster's log, `local` when the cluster did not answer and this node's own file
    /// was read instead.
    public var source: String
    public var events: [ClusterEvent]
}

/// The cluster's event log, kept in the cluster itself so every node reads the same from any node: each node appends
/// its events (JSON lines) to the RADOS object `events.HOST` of the pool `.aquarium`, made by the monitor nodes'
/// `cluster-settings` step. A
/// node publishes at the end of every run what it has not published yet (so events of a run while the cluster was
/// unreachable follow with the next one). Which events: everything but `step.started` and `step.unchanged` (a node's
/// own file keeps those).
public struct ClusterEventLog: Sendable {
    public static let pool = ".aquarium"
    public static let application = "aquarium"
    /// The config-key holding the hosts a monitor node last saw down (`host.down` / `host.up` events).
    static let downKey = "aquarium/hosts-down"

    let tools: CephTools

    static func object(host: String) -> String { "events.\(host)" }

    static func published(_ event: ProvisionEvent) -> Bool {
        event.event != "step.started" && event.event != "step.unchanged"
    }

    /// Makes the pool unless it exists (a node with the admin key; the `cluster-settings` step); true when it did.
    @discardableResult
    func ensurePool() throws(ProvisionError) -> Bool {
        let pools = Set(try tools.json([String].self, ["osd", "pool", "ls"], timeout: 30) ?? [])
        guard !pools.contains(Self.pool) else { return false }
        try tools.run("ceph", ["osd", "pool", "create", Self.pool, "8"], timeout: 60)
        try tools.run("ceph", ["osd", "pool", "application", "enable", Self.pool, Self.application], timeout: 60)
        return true
    }

    /// Appends `events` of `host` to its object in one write.
    func append(_ events: [ClusterEvent], host: String) throws(ProvisionError) {
        guard !events.isEmpty else { return }
        let encoder = JSONCoding.encoder(pretty: false)
        var data = Data()
        for event in events {
            guard let line = try? encoder.encode(event) else { continue }
            data.append(line)
            data.append(0x0a)
        }
        // A pool whose placement groups are not active (hosts down) would hold the write: give up after 10 s.
        try tools.run("rados", ["--rados_osd_op_timeout", "10", "-p", Self.pool, "append", Self.object(host: host), "-"],
                      input: data, timeout: 20)
    }

    /// Every node's events, oldest first.
    func read() throws(ProvisionError) -> [ClusterEvent] {
        let listed = try tools.run("rados", ["-p", Self.pool, "ls"], timeout: 30)
        let objects = listed.output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("events.") }.sorted()
        var events: [ClusterEvent] = []
        let decoder = JSONDecoder()
        for object in objects {
            let got = try tools.run("rados", ["-p", Self.pool, "get", object, "-"], timeout: 30)
            for line in got.standardOutput.split(separator: 0x0a) {
                if let event = try? decoder.decode(ClusterEvent.self, from: Data(line)) { events.append(event) }
            }
        }
        return events.sorted { ($0.time, $0.host) < ($1.time, $1.host) }
    }

    /// The hosts down now: CRUSH hosts whose OSDs are all down, and monitors out of the quorum.
    func hostsDown() throws(ProvisionError) -> [String: String] {
        var down: [String: String] = [:]
        if let tree = try tools.json(CephJSON.OSDTree.self, ["osd", "tree"], timeout: 30),
           let dump = try tools.json(CephJSON.OSDDump.self, ["osd", "dump"], timeout: 30) {
            let up = Set((dump.osds ?? []).filter { $0.up == 1 }.compactMap(\.osd))
            for node in tree.nodes ?? [] where node.type == "host" {
                let osds = (node.children ?? []).filter { $0 >= 0 }
                if let name = node.name, !osds.isEmpty, osds.allSatisfy({ !up.contains($0) }) {
                    down[name] = "its OSDs are down (" + osds.map { "osd.\($0)" }.joined(separator: ", ") + ")"
                }
            }
        }
        if let status = try tools.json(CephJSON.MonDumpQuorum.self, ["quorum_status"], timeout: 30) {
            let quorum = Set(status.quorumNames ?? [])
            for name in status.monmap?.mons?.compactMap(\.name) ?? [] where !quorum.contains(name) {
                down[name] = (down[name].map { $0 + "; " } ?? "") + "mon.\(name) is out of the quorum"
            }
        }
        return down
    }

    /// `host.down` / `host.up` events for what changed since the last monitor node looked (kept in the monitors'
    /// config-key store, so any monitor node continues where another left off).
    func hostChanges() throws(ProvisionError) -> [ProvisionEvent] {
        let now = try hostsDown()
        let stored = try tools.run("ceph", ["config-key", "get", Self.downKey], timeout: 30, accepted: [0, 2])
        let before = stored.status == 0 ? ((try? JSONDecoder().decode([String].self, from: stored.standardOutput)) ?? []) : []
        var events: [ProvisionEvent] = []
        for (name, reason) in now.sorted(by: { $0.key < $1.key }) where !before.contains(name) {
            events.append(ProvisionEvent(event: "host.down", detail: "\(name): \(reason)"))
        }
        for name in before.sorted() where now[name] == nil {
            events.append(ProvisionEvent(event: "host.up", detail: "\(name) is back"))
        }
        if !events.isEmpty || (stored.status != 0 && !now.isEmpty) {
            let text = (try? JSONCoding.text(now.keys.sorted(), pretty: false)) ?? "[]"
            try tools.run("ceph", ["config-key", "set", Self.downKey, text], timeout: 30)
        }
        return events
    }
}

extension Provisioner {
    /// Publishes this node's events not published yet to the cluster's log (and, on a node with the admin key, the
    /// hosts that went down or came back since the last look). Best effort: a cluster that does not answer keeps them
    /// for the next run; this never fails a run.
    func publishEvents() {
        guard let identity = state.identity, !identity.fsid.isEmpty else { return }
        let log = ClusterEventLog(tools: tools)
        do throws(ProvisionError) {
            if identity.runsMonitor {
                for event in try log.hostChanges() { events.append(event) }
            }
            let all = events.read()
            let start = min(state.eventsPublished ?? 0, all.count)
            let fresh = all[start...].filter(ClusterEventLog.published).map { ClusterEvent(host: identity.daemonId, $0) }
            try log.append(fresh, host: identity.daemonId)
            state.eventsPublished = all.count
            try saveState()
            try log.writeVersion(NodeVersion(host: identity.daemonId, release: NodeVersion.imageRelease(layout: layout),
                                             tools: AquariumVersion.string, time: Operations.now()))
        } catch {
            logger.warning("the cluster's event log was not written (kept here for the next run): \(error.description)")
        }
    }
}
