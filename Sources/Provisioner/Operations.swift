import Exec
import Foundation
import JSONCoding
import Logging

/// Day-two operations on a provisioned node (maintenance, reboot, node removal, disk replacement): what they share.
/// They work from the node's root and state file (no seed needed), as the node's Ceph client (the admin on a monitor
/// node, `client.aquarium-join` on a storage node). Every operation leaves events in the cluster's log and refuses,
/// with exit 3 and the reason, what would lose data or the monitors' quorum.
public struct Operations {
    public let layout: Layout
    public let identity: ClusterIdentity
    let tools: CephTools
    let logger: Logger
    /// Progress lines for the operator (stderr).
    let say: (String) -> Void

    public init(root: String, cluster: String, logger: Logger, say: @escaping (String) -> Void = { _ in }) throws(ProvisionError) {
        let layout = Layout(root: root, cluster: cluster)
        let state = try ProvisionState.load(layout.stateFile)
        guard let identity = state.identity, !identity.fsid.isEmpty else {
            throw .invalidInput("this node has no provisioned cluster (no identity in \(layout.stateFile)): run "
                + "`aquarium-provision run` first, or pass the --root of a provisioned node")
        }
        self.layout = layout
        self.identity = identity
        self.logger = logger
        self.say = say
        tools = CephTools(layout: layout, logger: logger, client: identity.client(in: layout))
    }

    /// The operations with a client a command already has (its librados session, say).
    init(layout: Layout, identity: ClusterIdentity, tools: CephTools, logger: Logger, say: @escaping (String) -> Void = { _ in }) {
        self.layout = layout
        self.identity = identity
        self.tools = tools
        self.logger = logger
        self.say = say
    }

    /// This node's name in Ceph (its monitor, manager and CRUSH host).
    public var localHost: String { identity.daemonId }

    var launcher: any DaemonLauncher { Launchers.make(identity.launcher, layout: layout, logger: logger) }

    // MARK: events

    /// Records `event` in the cluster's log as this node's; when the cluster does not take it, in the node's own
    /// event file, which the next `run` publishes.
    func record(_ event: String, _ detail: String, changed: Bool = true) {
        let local = ProvisionEvent(event: event, changed: changed, detail: detail)
        do throws(ProvisionError) {
            try ClusterEventLog(tools: tools).append([ClusterEvent(host: localHost, local)], host: localHost)
        } catch {
            logger.warning("the cluster's event log was not written (kept on this node): \(error.description)")
            EventLog(path: layout.eventsFile).append(local)
        }
    }

    // MARK: what the cluster looks like

    /// The CRUSH hosts and their OSD ids.
    func crushHosts() throws(ProvisionError) -> [String: [Int]] {
        var hosts: [String: [Int]] = [:]
        for node in try tools.json(CephJSON.OSDTree.self, ["osd", "tree"], timeout: 60)?.nodes ?? [] where node.type == "host" {
            if let name = node.name { hosts[name] = (node.children ?? []).filter { $0 >= 0 }.sorted() }
        }
        return hosts
    }

    /// The monitors (monmap) and those in quorum.
    func monitors() throws(ProvisionError) -> (all: [String], quorum: Set<String>) { try monitors(using: tools) }

    func monitors(using tools: CephTools) throws(ProvisionError) -> (all: [String], quorum: Set<String>) {
        guard let status = try tools.json(CephJSON.MonDumpQuorum.self, ["quorum_status"], timeout: 60) else {
            throw .failed("ceph quorum_status printed no quorum")
        }
        return (status.monmap?.mons?.compactMap(\.name) ?? [], Set(status.quorumNames ?? []))
    }

    /// Refuses when HOST's monitor going away would leave the others without a quorum (a majority of the monmap).
    func checkQuorum(without host: String, removing: Bool) throws(ProvisionError) {
        let (all, quorum) = try monitors()
        if let problem = Self.quorumProblem(monitors: all, quorum: quorum, without: host, removing: removing) {
            throw .refused(problem)
        }
    }

    /// Why the monitors would lose their quorum without HOST's monitor (stopped, or removed from the monmap), or nil.
    static func quorumProblem(monitors all: [String], quorum: Set<String>, without host: String, removing: Bool) -> String? {
        guard all.contains(host) else { return nil }
        let size = removing ? all.count - 1 : all.count
        let remaining = quorum.subtracting([host]).count
        guard size == 0 || remaining <= size / 2 else { return nil }
        if size == 0 {
            return "mon.\(host) is the cluster's only monitor: without it there is no cluster to talk to"
        }
        let down = all.filter { !quorum.contains($0) && $0 != host }
        return "the monitors would lose their quorum: mon.\(host) is one of \(all.count) monitors ("
            + all.sorted().joined(separator: ", ") + ") and without it \(remaining) would remain in quorum, "
            + "a majority of \(size) needs \(size / 2 + 1)"
            + (down.isEmpty ? "" : "; out of the quorum now: " + down.map { "mon.\($0)" }.joined(separator: ", ")
                + " — bring it back first")
    }

    /// Refuses unless Ceph says HOST's OSDs can stop without a placement group going inactive (`osd ok-to-stop`,
    /// which counts each pool's min_size and the OSDs already down).
    func checkOKToStop(_ osds: [Int], host: String) throws(ProvisionError) {
        guard !osds.isEmpty else { return }
        // EAGAIN: the managers do not know every placement group's state yet (one just became active): ask again.
        // EBUSY while placement groups are moving (peering after the autoscaler split a pool, backfill, a recovery):
        // the answer changes once they settle, so it is asked again too; EBUSY on a settled cluster (degraded, or
        // another host down) is the refusal.
        var result = try tools.run("ceph", ["osd", "ok-to-stop"] + osds.map(String.init), timeout: 60, accepted: [0, 16, 11])
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline {
            let moving = result.status == 16 ? Self.inTransition(try pgStates()) : false
            guard result.status == 11 || moving else { break }
            sleep(3)
            result = try tools.run("ceph", ["osd", "ok-to-stop"] + osds.map(String.init), timeout: 60, accepted: [0, 16, 11])
        }
        if result.status == 11 {
            throw .refused("Ceph cannot tell yet whether \(host)'s OSDs can stop (ceph osd ok-to-stop: "
                + "\(Self.lastLine(result.errorOutput))); nothing was changed. Try again in a minute")
        }
        guard result.status == 0 else {
            let why = Self.lastLine(result.errorOutput)
            throw .refused("stopping \(host)'s OSDs (" + osds.map { "osd.\($0)" }.joined(separator: ", ")
                + ") would leave placement groups with fewer copies than their pool's min_size, so I/O to them would "
                + "stop (ceph osd ok-to-stop: \(why.isEmpty ? "not ok" : why)); let the cluster recover first "
                + "(`ceph -s`), or bring back the hosts that are down")
        }
    }

    /// Whether some placement group is between states (`ceph pg stat`'s names, `+`-joined): peering, activating,
    /// remapped, backfilling, recovering, creating or unknown. Undersized and degraded alone are settled states.
    static func inTransition(_ states: [String: Int]) -> Bool {
        let moving: Set<String> = ["peering", "activating", "remapped", "backfilling", "backfill_wait", "recovering",
                                   "recovery_wait", "creating", "unknown", "peered"]
        return states.contains { name, count in count > 0 && name.split(separator: "+").contains { moving.contains(String($0)) } }
    }

    /// The host must be in the cluster: a CRUSH host or a monitor.
    func requireHost(_ host: String) throws(ProvisionError) -> [Int] {
        let hosts = try crushHosts()
        if let osds = hosts[host] { return osds }
        if try monitors().all.contains(host) { return [] }
        throw .invalidInput("there is no host \(host) in the cluster; its hosts: " + hosts.keys.sorted().joined(separator: ", "))
    }

    /// The OSDs that are up, by id.
    func upOSDs() throws(ProvisionError) -> Set<Int> {
        Set(try tools.json(CephJSON.OSDDump.self, ["osd", "dump"], timeout: 60)?.osds?.filter { $0.up == 1 }.compactMap(\.osd) ?? [])
    }

    /// Waits until HOST's daemons are down (its OSDs down, its monitor out of quorum) or up again.
    func waitForHost(_ host: String, osds: [Int], up: Bool, seconds: Double) throws(ProvisionError) {
        let monitors = try monitors().all
        var last = ""
        do {
            try CephTools.wait("\(host)'s daemons to \(up ? "come back" : "stop")", seconds: seconds, interval: 2) {
                let upNow = try upOSDs()
                let osdsDone = up ? osds.allSatisfy(upNow.contains) : osds.allSatisfy { !upNow.contains($0) }
                var monDone = true
                if monitors.contains(host) {
                    let inQuorum = try self.monitors().quorum.contains(host)
                    monDone = up ? inQuorum : !inQuorum
                }
                let line = "\(host): OSDs " + (osds.isEmpty ? "none" : osds.map { "osd.\($0)\(upNow.contains($0) ? " up" : " down")" }
                    .joined(separator: ", ")) + (monitors.contains(host) ? ", monitor \(monDone == up ? "in" : "out of") quorum" : "")
                if line != last { say(line); last = line }
                return osdsDone && monDone
            }
        } catch {
            throw .failed("\(error.description). The node's own `aquarium-provision maintenance watch` (the aquarium-maintenance "
                + "service) starts and stops its daemons: is it running on \(host)? On \(host) itself, run the same command there")
        }
    }

    // MARK: the node-side flags

    /// The `.aquarium` pool's object holding a request for HOST (`maintenance.HOST`, `removed.HOST`): the desired
    /// state each node's `maintenance watch` converges to.
    static func flagObject(_ kind: String, host: String) -> String { "\(kind).\(host)" }

    func readFlag(_ kind: String, host: String) throws(ProvisionError) -> MaintenanceFlag? {
        guard let data = try readObject(Self.flagObject(kind, host: host)) else { return nil }
        return try? JSONDecoder().decode(MaintenanceFlag.self, from: data)
    }

    /// `rados ARGUMENTS` on the `.aquarium` pool, as this node's client; on a storage node whose join key is no
    /// longer accepted (a day after the cluster formed, or revoked), as one of its OSDs (osd 'allow *').
    func radosReading(_ arguments: [String]) throws(ProvisionError) -> CommandResult {
        try reading("rados", ["--rados_osd_op_timeout", "10", "-p", ClusterEventLog.pool] + arguments, timeout: 20,
                    retryUnless: Self.missing)
    }

    /// Runs a reading `tool` as this node's client; when that is refused on a node that joined (before its own key
    /// arrived, or once the join key expired) it asks again as one of its own OSDs, whose key reads the maps and the
    /// `.aquarium` pool. `retryUnless` says which failures are answers (an object that does not exist), not refusals.
    func reading(_ tool: String, _ arguments: [String], timeout: Int,
                 retryUnless isAnswer: (CommandResult) -> Bool = { _ in false }) throws(ProvisionError) -> CommandResult {
        let result = try tools.run(tool, arguments, timeout: timeout, accepted: Set(0...255))
        if result.status != 0 && !isAnswer(result), identity.join != nil, let osd = ownOSDKeyring() {
            return try CephTools(layout: layout, logger: logger)
                .run(tool, ["--name", "osd.\(osd.id)", "--keyring", osd.keyring] + arguments, timeout: timeout, accepted: Set(0...255))
        }
        return result
    }

    /// The names of the `.aquarium` pool's objects (one look for every request of a `maintenance watch` round).
    func poolObjects() throws(ProvisionError) -> Set<String> {
        let result = try radosReading(["ls"])
        guard result.status == 0 else {
            throw .failed("cannot list the pool \(ClusterEventLog.pool): \(Self.lastLine(result.errorOutput))")
        }
        return Set(result.output.split(separator: "\n").map(String.init))
    }

    /// An object of the `.aquarium` pool; nil when there is none.
    func readObject(_ name: String) throws(ProvisionError) -> Data? {
        let result = try radosReading(["get", name, "-"])
        guard result.status == 0 else {
            if Self.missing(result) { return nil }
            throw .failed("cannot read \(name) from the pool \(ClusterEventLog.pool): \(Self.lastLine(result.errorOutput))")
        }
        return result.standardOutput
    }

    /// `rados get` found no such object.
    static func missing(_ result: CommandResult) -> Bool {
        result.errorOutput.contains("No such file") || result.errorOutput.contains("(2)")
    }

    /// One of this node's OSDs with its keyring (the state file's OSD ids, their data directories).
    func ownOSDKeyring() -> (id: Int, keyring: String)? {
        let state = try? ProvisionState.load(layout.stateFile)
        for id in (state?.osdIds.values.sorted() ?? []) where Files.exists(layout.osdData(id) + "/keyring") {
            return (id, layout.osdData(id) + "/keyring")
        }
        return nil
    }

    func writeFlag(_ kind: String, _ flag: MaintenanceFlag) throws(ProvisionError) {
        guard let data = try? JSONCoding.encoder(pretty: false).encode(flag) else { throw .failed("cannot encode the \(kind) flag") }
        try writeObject(Self.flagObject(kind, host: flag.host), data)
    }

    func writeObject(_ name: String, _ data: Data) throws(ProvisionError) {
        try tools.run("rados", ["--rados_osd_op_timeout", "10", "-p", ClusterEventLog.pool, "put", name, "-"], input: data, timeout: 20)
    }

    func removeFlag(_ kind: String, host: String) throws(ProvisionError) {
        try tools.run("rados", ["--rados_osd_op_timeout", "10", "-p", ClusterEventLog.pool, "rm", Self.flagObject(kind, host: host)],
                      timeout: 20, accepted: [0, 1, 2])
    }

    /// The last non-empty line of a tool's error output (Ceph's CLI prints warnings before its answer).
    static func lastLine(_ text: String) -> String {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.last { !$0.isEmpty } ?? ""
    }

    public static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }
}

/// A request kept in the cluster for one host (maintenance, removal), and, on the node itself, what it did about it.
public struct MaintenanceFlag: Codable, Equatable, Sendable {
    public var host: String
    /// `maintenance` (stay stopped until `maintenance exit`), `reboot` (the next boot ends it by itself), `removed`
    /// (the node left the cluster: never start again).
    public var reason: String
    public var since: String
    /// The node that asked.
    public var by: String

    public init(host: String, reason: String, since: String = Operations.now(), by: String) {
        self.host = host
        self.reason = reason
        self.since = since
        self.by = by
    }
}
