import Exec
import Foundation
import JSONCoding

/// What a node stopped for maintenance and how to start it again (`ROOT/var/lib/aquarium/maintenance.json`). While
/// the file is there, `run` (the boot's and the timer's) leaves the daemons stopped, unless the reason is `reboot`:
/// then the run is the boot after the reboot, and it ends the maintenance once the daemons are up.
public struct LocalMaintenance: Codable, Equatable, Sendable {
    public struct Stopped: Codable, Equatable, Sendable {
        public var name: String
        /// The process launcher: the daemon's command line.
        public var argv: [String]?
        /// The systemd launcher: its unit.
        public var unit: String?
    }

    public var flag: MaintenanceFlag
    public var stopped: [Stopped]

    public static func path(_ layout: Layout) -> String { layout.path("/var/lib/aquarium/maintenance.json") }

    public static func load(_ layout: Layout) -> LocalMaintenance? {
        guard let data = FileManager.default.contents(atPath: path(layout)) else { return nil }
        return try? JSONDecoder().decode(LocalMaintenance.self, from: data)
    }

    func save(_ layout: Layout) throws(ProvisionError) {
        guard let data = try? JSONCoding.encoder().encode(self) else { throw .failed("cannot encode \(Self.path(layout))") }
        try Files.write(data, to: Self.path(layout), mode: 0o644)
    }
}

extension Operations {
    /// `maintenance enter HOST`: checks, `noout` for HOST only, the request in the cluster, and HOST's daemons stopped
    /// (here when HOST is this node, else by HOST's own `maintenance watch`).
    public func enterMaintenance(_ host: String, reason: String = "maintenance", timeout: Double) throws(ProvisionError) {
        let osds = try requireHost(host)
        if let flag = try readFlag("maintenance", host: host) {
            say("\(host) is already in maintenance (since \(flag.since), asked by \(flag.by))")
            try tools.run("ceph", ["osd", "set-group", "noout", host], timeout: 60)
            // An earlier `enter` may have given up waiting (the host's watch was not running): wait again.
            if host == localHost { try stopLocalDaemons(flag) } else { try waitForHost(host, osds: osds, up: false, seconds: timeout) }
            return
        }
        try checkQuorum(without: host, removing: false)
        try checkOKToStop(osds.filter((try upOSDs()).contains), host: host)
        // noout for this host's CRUSH bucket only: its OSDs stay "in" while down, nothing is moved.
        try tools.run("ceph", ["osd", "set-group", "noout", host], timeout: 60)
        let flag = MaintenanceFlag(host: host, reason: reason, by: localHost)
        try writeFlag("maintenance", flag)
        say("\(host): noout set for its OSDs; stopping its daemons")
        if host == localHost {
            try stopLocalDaemons(flag)
        } else {
            try waitForHost(host, osds: osds, up: false, seconds: timeout)
        }
        record("maintenance.entered", "\(host)\(reason == "maintenance" ? "" : " (\(reason))"): noout set for "
            + (osds.isEmpty ? "it (no OSDs)" : osds.map { "osd.\($0)" }.joined(separator: ", ")) + ", daemons stopped")
    }

    /// `maintenance exit HOST`: the request and `noout` go, HOST's daemons start again.
    public func exitMaintenance(_ host: String, timeout: Double, startLocal: () throws(ProvisionError) -> Void) throws(ProvisionError) {
        let osds = try requireHost(host)
        let flag = try readFlag("maintenance", host: host)
        try removeFlag("maintenance", host: host)
        try tools.run("ceph", ["osd", "unset-group", "noout", host], timeout: 60)
        if host == localHost {
            try startLocal()
        } else if flag != nil {
            say("\(host): noout cleared; waiting for its daemons")
            try waitForHost(host, osds: osds, up: true, seconds: timeout)
        }
        guard flag != nil else {
            say("\(host) was not in maintenance")
            return
        }
        record("maintenance.exited", "\(host): daemons running again, noout cleared")
    }

    /// Stops this node's daemons and remembers how to start them again.
    func stopLocalDaemons(_ flag: MaintenanceFlag) throws(ProvisionError) {
        let launcher = launcher
        var stopped = LocalMaintenance.load(layout)?.stopped ?? []
        // Not the floating address's NFS server: keepalived starts it again where the address is.
        for daemon in launcher.running() where daemon.running && daemon.name != NFSConfig.floatingUser
            && !stopped.contains(where: { $0.name == daemon.name }) {
            stopped.append(LocalMaintenance.Stopped(name: daemon.name,
                                                    argv: daemon.pid.map { ProcessLauncher.commandLine($0) },
                                                    unit: daemon.unit))
        }
        // Written before the daemons stop: a crash in between still leaves the node in maintenance.
        try LocalMaintenance(flag: flag, stopped: stopped).save(layout)
        let names = try launcher.stopAll()
        if !names.isEmpty { say("stopped " + names.joined(separator: ", ")) }
    }

    /// Starts what `stopLocalDaemons` stopped and forgets the maintenance.
    func resumeLocalDaemons() throws(ProvisionError) {
        guard let local = LocalMaintenance.load(layout) else { return }
        let launcher = launcher
        for daemon in local.stopped {
            if let unit = daemon.unit {
                do { try Command("systemctl", ["start", unit]).run() } catch { throw .failedBecause("cannot start \(unit): \(error)", cause: error) }
            } else if let argv = daemon.argv, let executable = argv.first {
                _ = try launcher.ensureRunning(DaemonSpec(name: daemon.name, executable: executable,
                                                         arguments: Array(argv.dropFirst()), configPath: layout.cephConf))
            }
        }
        try launcher.confirmStarted()
        unlink(LocalMaintenance.path(layout))
        say("started " + local.stopped.map(\.name).joined(separator: ", "))
    }

    /// One look at this node's requests in the cluster: stops the daemons when the node was put in maintenance or
    /// removed, starts them again when the maintenance ended. Returns what it did (nil: nothing to do).
    public func syncOnce() throws(ProvisionError) -> String? {
        let local = LocalMaintenance.load(layout)
        if local?.flag.reason == "removed" { return nil }
        // One look at the pool; only the requests for this node that exist are read.
        let present = try poolObjects()
        // ceph.conf keeps pointing at the monitors there are, after `node remove` moved one (best effort: a failed look
        // is tried again next round).
        if let followed = try? followMonitors() {
            say(followed)
            record("monitors.followed", followed)
        }
        // Joined nodes get a key of their own from a monitor node, so they outlive the join key.
        do {
            if let issued = try issueNodeKeys(objects: present) { say(issued) }
            if let taken = try takeNodeKey(objects: present) { say(taken) }
        } catch {
            logger.warning("node keys: \(error.description)")
        }
        let host = localHost
        func asked(_ kind: String) -> Bool { present.contains(Self.flagObject(kind, host: host)) }
        // A bench on another node measuring the network to this one (a few seconds).
        if asked("bench"), let served = serveBenchRequest() { say(served) }
        if asked("removed"), let removed = try readFlag("removed", host: localHost) {
            try stopLocalDaemons(removed)
            return "removed from the cluster by \(removed.by): daemons stopped for good"
        }
        if local == nil, asked("monitor"), let placed = try takeMonitorRequest() { return placed }
        if local == nil, asked("update"), let updated = try takeUpdateRequest(updater: { () throws -> SlotUpdater in
            try SlotUpdater.running(layout: layout, logger: logger)
        }) { return updated }
        let flag = asked("maintenance") ? try readFlag("maintenance", host: localHost) : nil
        // A reboot is this node's own: the boot after it ends the maintenance (the run's `maintenance` step).
        if flag?.reason == "reboot" || local?.flag.reason == "reboot" { return nil }
        switch (flag, local) {
        case (let flag?, _):
            // Daemons a boot started while the node is in maintenance are stopped again.
            guard local == nil || launcher.running().contains(where: \.running) else { return nil }
            try stopLocalDaemons(flag)
            return "in maintenance (asked by \(flag.by)): daemons stopped"
        case (nil, _?):
            try resumeLocalDaemons()
            return "left maintenance: daemons started"
        case (nil, nil):
            return nil
        }
    }

    /// After a reboot that `reboot` started: the daemons are up again, so the maintenance ends (request, noout, the
    /// node's file). Returns what it did.
    func endRebootMaintenance() throws(ProvisionError) -> String? {
        guard let local = LocalMaintenance.load(layout), local.flag.reason == "reboot" else { return nil }
        try removeFlag("maintenance", host: localHost)
        try tools.run("ceph", ["osd", "unset-group", "noout", localHost], timeout: 60)
        unlink(LocalMaintenance.path(layout))
        record("maintenance.exited", "\(localHost): back after the reboot of \(local.flag.since), daemons up, noout cleared")
        return "ended the maintenance of the reboot at \(local.flag.since)"
    }
}

extension Provisioner {
    /// The `maintenance` step, after the daemons are up and before health: a boot after `aquarium-provision reboot`
    /// ends that maintenance here.
    func maintenanceStep() throws(ProvisionError) -> StepOutcome {
        guard LocalMaintenance.load(layout)?.flag.reason == "reboot" else { return StepOutcome(changed: false, detail: nil) }
        let operations = try Operations(root: layout.root, cluster: layout.cluster, logger: logger)
        let done = try operations.endRebootMaintenance()
        return StepOutcome(changed: done != nil, detail: done)
    }
}
