import BootSlots
import Foundation
import JSONCoding

/// A request for HOST to update its stick from IMAGE and reboot into it (object `update.HOST` of the pool
/// `.aquarium`), written by `update --rolling` on a monitor node, taken by HOST's `maintenance watch`. The node writes
/// back what happened: `taken`, then `rebooting` (with the release written) or `failed` (with the reason).
public struct UpdateRequest: Codable, Equatable, Sendable {
    public var host: String
    /// A path on the node or an http(s) URL: what `update IMAGE` takes.
    public var image: String
    /// The bmap the node checks IMAGE against (nil: the one beside it).
    public var bmap: BmapSource?
    public var state: State
    public var release: String?
    public var detail: String?
    public var since: String
    public var by: String

    public enum State: String, Codable, Sendable { case requested, taken, rebooting, failed }
}

extension Operations {
    /// The order `update --rolling` takes the hosts in: nodes without a monitor first, then the monitor nodes, this
    /// node last (it reboots itself, ending the command).
    static func rollingOrder(hosts: [String], monitors: [String], local: String) -> [String] {
        let others = Set(hosts).union(monitors).subtracting([local])
        let storage = others.filter { !monitors.contains($0) }.sorted()
        let monitorHosts = others.filter { monitors.contains($0) }.sorted()
        return storage + monitorHosts + (Set(hosts).union(monitors).contains(local) ? [local] : [])
    }

    /// `update --rolling IMAGE`: one node after the other — the cluster must be HEALTH_OK, the node updates its stick
    /// and reboots into the new slot (its `maintenance watch`, as `reboot` does), and the next node only starts once
    /// the node reports the new release with its maintenance over and the cluster is HEALTH_OK again. Stops at the first
    /// node whose update fails or does not come back (exit 1), or when the cluster is not healthy (exit 3).
    public func rollingUpdate(image: String, bmap: BmapSource = .beside, timeout: Double, healthTimeout: Double = 300) throws(ProvisionError) {
        guard identity.runsMonitor else {
            throw .refused("`update --rolling` runs on a monitor node (it needs the admin key); this is a storage node")
        }
        // The cluster must be healthy before anything else; the host list is read once it is (on a busy cluster a
        // read can take long: it is tried again until the health timeout, as the polls below are).
        try requireHealthy(before: "starting", seconds: healthTimeout, done: [], left: [])
        let (hosts, monitorNames) = try patiently("the hosts and monitors", seconds: healthTimeout) { () throws(ProvisionError) in
            (Array(try crushHosts().keys), try monitors().all)
        }
        let order = Self.rollingOrder(hosts: hosts, monitors: monitorNames, local: localHost)
        record("update.rolling.started", "\(image) to " + order.joined(separator: ", ") + ", one at a time")
        say("updating " + order.joined(separator: ", ") + " in this order, one at a time")
        var done: [String] = []
        for host in order {
            try requireHealthy(before: "updating \(host)", seconds: healthTimeout, done: done, left: order.filter { $0 != host && !done.contains($0) })
            let previous = try ClusterEventLog(tools: tools).versions().first { $0.host == host }
            let request = UpdateRequest(host: host, image: image, bmap: bmap, state: .requested, since: Self.now(), by: localHost)
            try writeRequest(request)
            if host == localHost {
                record("update.rolling.last", "\(host) (this node) updates itself last and reboots; `status` shows the release after")
                say("\(host) is this node: its watch updates the stick and reboots it now; after the boot, `aquarium-provision "
                    + "status` shows its release")
                return
            }
            say("\(host): asked to update from \(image) (was \(previous?.release ?? "unknown"))")
            let release = try waitForUpdate(host, since: request.since, seconds: timeout, done: done, order: order)
            done.append(host)
            say("\(host): runs \(release)")
        }
        try requireHealthy(before: "finishing", seconds: healthTimeout, done: done, left: [])
        record("update.rolling.finished", "every node updated: " + done.joined(separator: ", "))
    }

    /// Waits until HOST reports the release its update wrote, with its reboot's maintenance over; throws when it
    /// reports a failure, comes back on another release (rolled back), or does not come back in time.
    func waitForUpdate(_ host: String, since: String, seconds: Double, done: [String], order: [String]) throws(ProvisionError) -> String {
        let left = order.drop { $0 != host }.dropFirst()
        let notUpdated = left.isEmpty ? "" : "; not updated: " + left.joined(separator: ", ")
        let deadline = Date().addingTimeInterval(seconds)
        var last = "no answer from \(host)'s `maintenance watch` yet"
        var release: String?
        while Date() < deadline {
            // One poll; a read that fails (a monitor election while a monitor node reboots, a command that timed out
            // on a busy cluster) is not the node's failure: it is said in `last` and the next poll tries again.
            let outcome = Result { () throws(ProvisionError) -> UpdatePoll in
                try pollUpdate(host, since: since, release: &release, last: &last, notUpdated: notUpdated)
            }
            switch outcome {
            case .success(.runs(let release)): return release
            case .success(.stopped(let text)): throw .failed(text)
            case .success(.waiting): break
            case .failure(let error) where error.exitCode == .runtimeFailure:
                last = "cannot read the cluster's state just now (\(error.description.prefix(200)))"
            case .failure(let error): throw error
            }
            usleep(2_000_000)
        }
        record("update.rolling.stopped", "\(host): \(last) after \(Int(seconds)) s" + notUpdated)
        throw .failed("\(host) did not come back updated within \(Int(seconds)) s (\(last)); the request stays in "
            + "\(ClusterEventLog.pool)/update.\(host)" + notUpdated)
    }

    /// Tries `read` again after a runtime failure (exit 1) until `seconds` passed; other errors end it at once.
    func patiently<T>(_ what: String, seconds: Double, _ read: () throws(ProvisionError) -> T) throws(ProvisionError) -> T {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            switch Result(catching: read) {
            case .success(let value): return value
            case .failure(let error) where error.exitCode == .runtimeFailure && Date() < deadline:
                logger.notice("reading \(what) failed (\(error.description.prefix(200))); trying again")
                usleep(2_000_000)
            case .failure(let error): throw error
            }
        }
    }

    enum UpdatePoll { case waiting, runs(String), stopped(String) }

    /// One look at HOST's update: its request and the release it reports. `runs` once HOST runs the new release with
    /// its maintenance over, `stopped` when its update failed or it rolled back; throws only when a read failed.
    func pollUpdate(_ host: String, since: String, release: inout String?, last: inout String,
                    notUpdated: String) throws(ProvisionError) -> UpdatePoll {
        if let request = try readRequest(host) {
            switch request.state {
            case .failed:
                try removeFlag("update", host: host)
                let text = "\(host): the update failed: \(request.detail ?? "no reason given")" + notUpdated
                record("update.rolling.stopped", text)
                return .stopped(text)
            case .rebooting:
                release = request.release
                last = "\(host) wrote \(request.release ?? "?") and reboots"
            case .taken:
                last = "\(host) is writing the update"
            case .requested:
                break
            }
        }
        if let release, let version = try ClusterEventLog(tools: tools).versions().first(where: { $0.host == host }),
           version.time > since {
            let maintained = try readFlag("maintenance", host: host) != nil
            if version.release == release && !maintained {
                try removeFlag("update", host: host)
                record("update.rolling.node", "\(host) runs \(release)")
                return .runs(release)
            }
            if version.release != release && !maintained {
                try removeFlag("update", host: host)
                let text = "\(host) came back with \(version.release ?? "an unknown release"), not \(release): its new slot "
                    + "failed and it rolled back (`aquarium-provision events` on \(host))" + notUpdated
                record("update.rolling.stopped", text)
                return .stopped(text)
            }
            last = "\(host) is back, its maintenance not over yet"
        }
        return .waiting
    }

    /// Refuses (exit 3) unless the cluster reaches HEALTH_OK within `seconds`.
    func requireHealthy(before what: String, seconds: Double, done: [String], left: [String]) throws(ProvisionError) {
        var last = ""
        do {
            try CephTools.wait("HEALTH_OK before \(what)", seconds: seconds, interval: 2) {
                let health = try tools.json(CephJSON.Health.self, ["health"], timeout: 20)
                last = (health?.status ?? "?") + " " + (health?.checks ?? [:]).keys.sorted().joined(separator: ",")
                return health?.status == "HEALTH_OK"
            }
        } catch {
            let text = "the cluster is not healthy (\(last)) before \(what)"
                + (done.isEmpty ? "" : "; updated: " + done.joined(separator: ", "))
                + (left.isEmpty ? "" : "; not updated: " + left.joined(separator: ", "))
            record("update.rolling.stopped", text)
            throw .refused(text + "; let the cluster recover (`ceph health detail`), then run `update --rolling` again")
        }
    }

    func readRequest(_ host: String) throws(ProvisionError) -> UpdateRequest? {
        guard let data = try readObject(Self.flagObject("update", host: host)) else { return nil }
        return try? JSONDecoder().decode(UpdateRequest.self, from: data)
    }

    func writeRequest(_ request: UpdateRequest) throws(ProvisionError) {
        guard let data = try? JSONCoding.encoder(pretty: false).encode(request) else { throw .failed("cannot encode the update request") }
        try writeObject(Self.flagObject("update", host: request.host), data)
    }

    // MARK: the node that is asked

    /// On the node (its `maintenance watch`): takes an `update.HOST` request once — writes the image into the stick's
    /// inactive slot (`update IMAGE`), then enters the reboot's maintenance and reboots; a failure is written back to
    /// the request (and the events) instead. `updater` makes the stick's updater (the running root's stick).
    func takeUpdateRequest(reboot: Bool = true, updater: () throws -> SlotUpdater) throws(ProvisionError) -> String? {
        guard var request = try readRequest(localHost), request.state == .requested else { return nil }
        request.state = .taken
        try writeRequest(request)
        let installed: SlotUpdater.Installed
        do {
            installed = try updater().install(image: request.image, bmap: request.bmap ?? .beside)
        } catch {
            request.state = .failed
            request.detail = String(describing: error)
            try writeRequest(request)
            record("update.failed", "\(localHost): \(request.image): \(request.detail ?? "")")
            return "the update asked by \(request.by) failed: \(request.detail ?? "")"
        }
        request.state = .rebooting
        request.release = installed.release
        try writeRequest(request)
        record("update.rolling.rebooting", "\(localHost): \(installed.release) written to \(installed.slot.name); rebooting into it")
        try enterMaintenance(localHost, reason: "reboot", timeout: 0)
        if reboot { try tools.run("systemctl", ["reboot"], timeout: 60) }
        return "\(installed.release) written to \(installed.slot.name); rebooting"
    }
}
