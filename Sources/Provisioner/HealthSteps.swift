import Foundation

/// The `telemetry` and `health` steps (the `replication` step is in Replication.swift).
extension Provisioner {
    func waitForManager() throws(ProvisionError) {
        try CephTools.wait("the manager to become available", seconds: 90) {
            try tools.json(CephJSON.ManagerStat.self, ["mgr", "stat"], timeout: 20)?.available == true
        }
    }

    /// Ceph's telemetry module (a manager module that is always on, reporting nothing until opted in): opted in
    /// with `cluster.telemetry: true`, off otherwise; a rerun after the seed changed turns it off again.
    func telemetry() throws(ProvisionError) -> StepOutcome {
        try waitForManager()
        let enabled = try tools.json(CephJSON.TelemetryStatus.self, ["telemetry", "status"], timeout: 30)?.enabled == true
        let wanted = seed.cluster.telemetry
        if enabled == wanted {
            return StepOutcome(changed: false, detail: wanted ? "on (license sharing-1-0)" : "off")
        }
        if wanted {
            try tools.run("ceph", ["telemetry", "on", "--license", Self.telemetryLicense], timeout: 60)
            return StepOutcome(changed: true, detail: "turned on (license \(Self.telemetryLicense))")
        }
        try tools.run("ceph", ["telemetry", "off"], timeout: 60)
        return StepOutcome(changed: true, detail: "turned off (cluster.telemetry is false)")
    }

    static let telemetryLicense = "sharing-1-0"

    func health() throws(ProvisionError) -> StepOutcome {
        var last = ""
        // A joined node may not ask the manager (its key only has the OSD bootstrap profile); the monitor's health
        // covers what matters to it.
        if identity.join == nil { try waitForManager() }
        do {
            try CephTools.wait("HEALTH_OK (or only expected single-node warnings)", seconds: options.healthTimeout, interval: 1) {
                let health = try tools.json(CephJSON.Health.self, ["health"], timeout: 20)
                let status = health?.status ?? "?"
                let checks = Set((health?.checks ?? [:]).keys)
                last = status + (checks.isEmpty ? "" : " " + checks.sorted().joined(separator: ","))
                var maintained: [String] = []
                if status == "HEALTH_WARN", !checks.isSubset(of: CephConfig.expectedSingleNodeChecks) {
                    maintained = (try? tools.json(CephJSON.OSDDump.self, ["osd", "dump"], timeout: 20))??.hostsWithNoout ?? []
                    if !maintained.isEmpty { last += " while in maintenance: " + maintained.joined(separator: ", ") }
                }
                return CephConfig.healthAcceptable(status: status, checks: checks, hostsInMaintenance: maintained)
            }
        } catch {
            // Say what the cluster reported last (a node down: OSD_DOWN, PG_DEGRADED, ...); `ceph health detail` says more.
            throw last.isEmpty ? error : .failed("\(error.description); the cluster reports \(last) (see `ceph health detail`)")
        }
        if state.bootstrappedAt == nil {
            state.bootstrappedAt = ISO8601DateFormatter().string(from: Date())
            try saveState()
            events.append(ProvisionEvent(event: identity.join == nil ? "node.bootstrapped" : "node.joined",
                                         detail: "cluster \(identity.fsid): \(last)"))
        }
        return StepOutcome(changed: false, detail: last)
    }
}
