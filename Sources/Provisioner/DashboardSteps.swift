import ArgumentParser
import CommandSupport
import Foundation
import JSONCoding
import Seed

/// The `dashboard` step: Ceph's own dashboard (ceph-mgr-dashboard) on the managers, HTTPS only, each manager bound to
/// its node's public address; a per-cluster self-signed certificate; an administrator whose first password is made
/// here, kept 0600 in `/var/lib/aquarium/dashboard.json` and must be changed at the first login.
extension Provisioner {
    static let dashboardUser = "admin"

    /// Where this node's manager serves the dashboard (its public address; 127.0.0.1-style test roots: the address
    /// the process launcher binds).
    var dashboardHost: String {
        options.launcher == .process ? identity.address.description
            : (NodeAddresses.primary(seed: seed) ?? identity.address).description
    }

    func dashboard() throws(ProvisionError) -> StepOutcome {
        guard let service = seed.cluster.services.dashboard else { return StepOutcome(changed: false, detail: "not in the seed") }
        var actions: [String] = []
        // Every monitor node: its own manager's address and port (the active manager serves, standbys redirect).
        let id = identity.daemonId
        let wanted = [("mgr/dashboard/\(id)/server_addr", dashboardHost), ("mgr/dashboard/\(id)/ssl_server_port", String(service.port)),
                      ("mgr/dashboard/ssl", "true")]
        let dump = try tools.json([CephJSON.ConfigEntry].self, ["config", "dump"]) ?? []
        for (option, value) in wanted where dump.first(where: { $0.section == "mgr" && $0.name == option })?.value != value {
            try tools.run("ceph", ["config", "set", "mgr", option, value], timeout: 30)
            actions.append("\(option)=\(value)")
        }
        // This node's manager loads the dashboard only when ceph.conf allows it (`mgr_disabled_modules`); one started
        // before the seed asked for the dashboard is restarted.
        let mgr = daemon("mgr", id)
        let loaded = try tools.json(CephJSON.MgrDump.self, ["mgr", "dump"])?.modules(of: id)
        if let loaded, !loaded.contains("dashboard") {
            try launcher.stop(mgr)
            _ = try launcher.ensureRunning(mgr)
            actions.append("restarted mgr.\(id) to load the dashboard module")
            try CephTools.wait("mgr.\(id) to load the dashboard module", seconds: 180, interval: 2) {
                try tools.json(CephJSON.MgrDump.self, ["mgr", "dump"])?.modules(of: id)?.contains("dashboard") == true
            }
        }
        if let elsewhere = servicesElsewhere {
            return StepOutcome(changed: !actions.isEmpty, detail: (actions + [elsewhere]).joined(separator: "; "))
        }

        let modules = try tools.json(CephJSON.MgrModules.self, ["mgr", "module", "ls"])
        if modules?.enabledModules?.contains("dashboard") != true {
            try tools.run("ceph", ["mgr", "module", "enable", "dashboard"], timeout: 60)
            actions.append("enabled the dashboard module")
        }
        // The module's own commands answer once it has loaded.
        try CephTools.wait("the dashboard module to load", seconds: 120, interval: 2) {
            try tools.run("ceph", ["dashboard", "ac-user-show"], timeout: 20, accepted: Set(0...255)).status == 0
        }
        if let certificate = try dashboardCertificate(service) { actions.append(certificate) }

        // The first password goes to its file before the user exists: a crash in between leaves a password that the
        // next run creates the user with, never a user whose password nobody knows.
        var credentials = Files.read(layout.dashboardCredentialsFile).flatMap { try? JSONDecoder().decode(DashboardCredentials.self, from: Data($0.utf8)) }
        let shown = try tools.run("ceph", ["dashboard", "ac-user-show", Self.dashboardUser], timeout: 30, accepted: Set(0...255))
        if shown.status != 0 {
            let password = credentials?.password ?? Self.dashboardPassword()
            credentials = DashboardCredentials(url: "", user: Self.dashboardUser, password: password)
            try writeDashboardCredentials(credentials!)
            try tools.run("ceph", ["dashboard", "ac-user-create", Self.dashboardUser, "administrator", "--force-password",
                                   "--pwd-update-required", "-i", "-"], input: Data(password.utf8), timeout: 60)
            actions.append("created the dashboard administrator \(Self.dashboardUser) (first password in \(layout.dashboardCredentialsFile), to be changed at the first login)")
        }

        // The URL the active manager publishes: https, the public address, the port.
        var url = ""
        let ceph = tools
        let published: () throws(ProvisionError) -> Bool = {
            url = (try ceph.json([String: String].self, ["mgr", "services"]) ?? [:])["dashboard"] ?? ""
            return url.hasPrefix("https://")
        }
        do {
            try CephTools.wait("the dashboard to be published by the active manager", seconds: 60, interval: 2, published)
        } catch {
            // A module that started before its certificate existed (a run killed between making it and restarting
            // the module) serves nothing until it starts again.
            try restartDashboardModule()
            actions.append("restarted the dashboard module, which published no address")
            try CephTools.wait("the dashboard to be published by the active manager", seconds: 180, interval: 2, published)
        }
        if var known = credentials, known.url != url {
            known.url = url
            try writeDashboardCredentials(known)
        }
        let detail = actions.isEmpty ? url : (actions + [url]).joined(separator: "; ")
        return StepOutcome(changed: !actions.isEmpty, detail: detail)
    }

    /// The seed's certificate when it has one and it is not the one the module was last restarted with (the copy in
    /// /etc/ceph, written after that restart: a run killed in between installs it again); else the cluster's
    /// self-signed one when there is none yet. Restarts the module after a change; returns what it did, or nil.
    /// Taking the certificate out of the seed keeps the one installed.
    func dashboardCertificate(_ service: Seed.Dashboard) throws(ProvisionError) -> String? {
        func normalized(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) + "\n" }
        if let certificate = service.certificate.map(normalized), let key = service.privateKey.map(normalized) {
            if Files.read(layout.dashboardCertificate) == certificate { return nil }
            try Files.makeDirectory(layout.etcCeph)
            let staged = layout.dashboardCertificate + ".new"
            try Files.write(key, to: layout.dashboardPrivateKey, mode: 0o600)
            try Files.write(certificate, to: staged)
            try tools.run("ceph", ["dashboard", "set-ssl-certificate", "-i", staged], timeout: 60)
            try tools.run("ceph", ["dashboard", "set-ssl-certificate-key", "-i", layout.dashboardPrivateKey], timeout: 60)
            try restartDashboardModule()
            guard rename(staged, layout.dashboardCertificate) == 0 else {
                throw .failed("cannot rename \(staged) to \(layout.dashboardCertificate): \(String(cString: strerror(errno)))")
            }
            return "installed the seed's certificate"
        }
        if try tools.run("ceph", ["config-key", "exists", "mgr/dashboard/crt"], timeout: 30, accepted: [0, 2]).status == 0 {
            return nil
        }
        try tools.run("ceph", ["dashboard", "create-self-signed-cert"], timeout: 60)
        try restartDashboardModule()
        return "made the cluster's self-signed certificate"
    }

    /// The module reads its certificate when it starts: off and on again.
    func restartDashboardModule() throws(ProvisionError) {
        try tools.run("ceph", ["mgr", "module", "disable", "dashboard"], timeout: 60)
        try tools.run("ceph", ["mgr", "module", "enable", "dashboard"], timeout: 60)
    }

    func writeDashboardCredentials(_ credentials: DashboardCredentials) throws(ProvisionError) {
        guard let data = try? JSONCoding.encoder().encode(credentials) else { throw .failed("cannot encode the dashboard credentials") }
        try Files.write(data, to: layout.dashboardCredentialsFile, mode: 0o600)
    }

    /// 20 characters from letters and digits (about 119 bits), with at least one lowercase, uppercase and digit.
    static func dashboardPassword() -> String {
        let lower = Array("abcdefghijkmnopqrstuvwxyz"), upper = Array("ABCDEFGHJKLMNPQRSTUVWXYZ"), digits = Array("23456789")
        let all = lower + upper + digits
        var generator = SystemRandomNumberGenerator()
        while true {
            let password = String((0..<20).map { _ in all.randomElement(using: &generator)! })
            if password.contains(where: lower.contains) && password.contains(where: upper.contains)
                && password.contains(where: digits.contains) {
                return password
            }
        }
    }
}

/// The dashboard's URL and its administrator's first password, mode 0600 in `/var/lib/aquarium/dashboard.json`.
public struct DashboardCredentials: Codable, Equatable, Sendable {
    public var url: String
    public var user: String
    public var password: String
}

/// `aquarium-provision dashboard-password`: the dashboard's URL, user and first password.
public struct DashboardPasswordCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dashboard-password",
        abstract: "Print the dashboard's URL, administrator and first password (a secret; it must be changed at the first login).",
        discussion: """
            Made by the Provisioner on the node that runs the services (cluster.services.dashboard in the seed) and \
            kept there, mode 0600; the dashboard asks for a new password at the first login, after which this one no \
            longer works.

            Examples:
              aquarium-provision dashboard-password
              aquarium-provision dashboard-password --json
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions
    @Flag(name: .long, help: "Print JSON.") public var json = false

    public init() {}

    public func run() throws {
        let layout = Layout(root: rootOptions.root, cluster: rootOptions.cluster)
        let credentials = try ServiceSecrets.read(DashboardCredentials.self, at: layout.dashboardCredentialsFile,
                                                  service: "the dashboard", seedKey: "dashboard")
        if json {
            print(String(decoding: try JSONCoding.encoder().encode(credentials), as: UTF8.self))
        } else {
            print("url:      \(credentials.url)\nuser:     \(credentials.user)\npassword: \(credentials.password) (change it at the first login)")
        }
    }
}

/// The secrets the Provisioner made for a service on the node that runs the services (mode 0600), read by the command
/// that prints them.
enum ServiceSecrets {
    static func read<T: Decodable>(_ type: T.Type, at path: String, service: String, seedKey: String) throws(ProvisionError) -> T {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidInput("\(path) is missing: \(service) is not set up on this node (add cluster.services.\(seedKey) "
                + "to the seed and run the Provisioner, on the node that runs the services)")
        }
        guard let value = try? JSONDecoder().decode(T.self, from: data) else {
            throw .failed("\(path) is not the file the Provisioner writes for \(service); move it away and run the Provisioner again")
        }
        return value
    }
}
