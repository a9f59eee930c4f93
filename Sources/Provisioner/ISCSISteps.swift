import CommandSupport
import Exec
import Foundation
import JSONCoding
import Seed

/// `services.iscsi`: RBD images served as the LUNs of one iSCSI target, on the node that runs the services and, in a
/// rack, on every monitor node (`ISCSIGateways`: a gateway each, with its own portal, ALUA). ceph-iscsi's
/// rbd-target-api keeps the target's configuration in the cluster (object `gateway.conf` in the first RBD pool) and
/// builds it in the kernel's LIO target; tcmu-runner serves each image to LIO through librbd (backstore `user:rbd`).
/// The Provisioner drives rbd-target-api through its REST API on 127.0.0.1 and converges the target, this node's
/// portal, the disks, their LUNs and who may log in (the target's CHAP credentials, or per-initiator ACLs each with
/// its own; mutual CHAP on request; all made here, kept 0600, never in the seed).
extension Provisioner {
    func iscsi() throws(ProvisionError) -> StepOutcome {
        guard let service = seed.cluster.services.iscsi else { return StepOutcome(changed: false, detail: "not in the seed") }
        guard runsISCSI else { return StepOutcome(changed: false, detail: "runs on the monitor nodes") }
        var actions: [String] = []
        try ensureLIO()
        let credentials: ISCSICredentials
        if runsServices {
            let made: Bool
            (credentials, made) = try iscsiCredentials(service)
            if made { actions.append("made the CHAP credentials (\(layout.iscsiCredentialsFile))") }
        } else {
            let changed: Bool
            (credentials, changed) = try sharedISCSICredentials(service)
            if changed { actions.append("took the target's credentials from the first monitor node (\(layout.iscsiCredentialsFile))") }
        }
        let pool = seed.cluster.services.rbd?.pools.first ?? "rbd"
        let config = ISCSIGatewayConfig.render(cluster: layout.cluster, pool: pool, credentials: credentials,
                                               trusted: ISCSIGatewayConfig.trusted(own: identity.address.description,
                                                                                   gateways: iscsiGatewayAddresses))
        // Both use the cluster when they stop (rbd-target-api takes the target out of LIO, which waits for tcmu-runner
        // to close each image): ordered after this node's Ceph daemons, and rbd-target-api after tcmu-runner, systemd
        // stops them first. Unordered, a shutdown waited the whole stop timeout for rbd-target-api.
        let cephDaemons = launcher.running().map(\.name).filter { ![Self.tcmuRunnerName, Self.rbdTargetAPIName].contains($0) }
        let runner = tcmuRunnerDaemon(after: cephDaemons)
        let api = rbdTargetAPIDaemon(after: cephDaemons + [runner.fileName])
        if try Files.write(config, to: layout.iscsiGatewayConf, mode: 0o600), launcher.isRunning(api) {
            try launcher.stop(api)
            actions.append("wrote \(layout.iscsiGatewayConf)")
        }
        if try launcher.ensureRunning(runner) { actions.append("started tcmu-runner") }
        fault("iscsi", .mid)
        if try launcher.ensureRunning(api) { actions.append("started rbd-target-api") }
        let client = ISCSIAPI(user: ISCSIGatewayConfig.apiUser, password: credentials.apiPassword)
        try CephTools.wait("rbd-target-api to answer on 127.0.0.1:\(ISCSIGatewayConfig.apiPort)", seconds: 120) {
            (try? client.request("GET", "/api/_ping"))?.code == 200
        }
        if runsServices {
            actions += try convergeTarget(service, credentials: credentials, client: client)
            // Only now, with the target made: the other gateways wait for this to add themselves.
            if try shareISCSICredentials(credentials) {
                actions.append("shared the credentials with the other gateways (config-key \(Self.iscsiCredentialsKey))")
            }
        } else {
            actions += try joinISCSITarget(service, client: client)
        }
        let address = identity.address.description
        try CephTools.wait("the iSCSI portal \(address):\(Seed.ISCSI.port) to listen", seconds: 60) {
            Ports.isListening(host: address, port: Seed.ISCSI.port)
        }
        return StepOutcome(changed: !actions.isEmpty, detail: actions.isEmpty
            ? "\(service.target) with \(service.disks.count) disk(s) as in the seed" : actions.joined(separator: "; "))
    }

    /// LIO lives in configfs: the modules loaded and `/sys/kernel/config` mounted, or a clear refusal on a kernel
    /// without them.
    func ensureLIO() throws(ProvisionError) {
        let configfs = layout.path("/sys/kernel/config")
        for module in ["target_core_mod", "target_core_user", "iscsi_target_mod"] {
            _ = try? tools.run("modprobe", [module], timeout: 30, accepted: Set(0...255))
        }
        if !FileManager.default.fileExists(atPath: configfs + "/target") {
            _ = try? tools.run("mount", ["-t", "configfs", "configfs", configfs], timeout: 30, accepted: Set(0...255))
        }
        guard FileManager.default.fileExists(atPath: configfs + "/target") else {
            throw .failed("this kernel has no LIO iSCSI target (\(configfs)/target is missing after modprobe target_core_mod "
                + "iscsi_target_mod): boot the Aquarium image's kernel, or remove services.iscsi from the seed")
        }
    }

    /// The node's CHAP credentials and rbd-target-api password: made once, then kept (mode 0600). The target's own
    /// (mutual CHAP) credentials when the seed asks for mutual CHAP, and each initiator's of `clients`, are made when
    /// first needed; an initiator taken out of the seed loses its credentials with its ACL.
    func iscsiCredentials(_ service: Seed.ISCSI) throws(ProvisionError) -> (ISCSICredentials, Bool) {
        let path = layout.iscsiCredentialsFile
        let portals = iscsiGatewayAddresses.map(Self.iscsiPortal)
        var credentials: ISCSICredentials
        var made = false
        if let data = FileManager.default.contents(atPath: path) {
            guard let read = try? JSONDecoder().decode(ISCSICredentials.self, from: data) else {
                throw .failed("\(path) is not an iSCSI credentials file: move it away and run again to make new ones "
                    + "(initiators must then log in with the new ones)")
            }
            credentials = read
        } else {
            credentials = ISCSICredentials(
                target: service.target, portals: portals, username: Self.iscsiUser(),
                password: Self.iscsiSecret(length: 16), apiPassword: Self.iscsiSecret(length: 24))
            made = true
        }
        let before = credentials
        credentials.target = service.target
        credentials.portals = portals
        if (service.mutualChap || service.clients.contains(where: \.mutualChap)), credentials.mutualUsername == nil {
            credentials.mutualUsername = Self.iscsiUser(prefix: "aquarium-target-")
            credentials.mutualPassword = Self.iscsiSecret(length: 16)
        }
        let known = credentials.clients ?? []
        let clients = service.clients.map { client in
            known.first { $0.iqn == client.iqn }
                ?? ISCSIClientCredentials(iqn: client.iqn, username: Self.iscsiUser(), password: Self.iscsiSecret(length: 16))
        }
        credentials.clients = clients.isEmpty ? nil : clients
        if made || credentials != before { try writeISCSICredentials(credentials) }
        return (credentials, made)
    }

    /// A CHAP user name: the prefix and 8 random letters and digits (ceph-iscsi allows 8 to 64 of `[0-9a-zA-Z.:@_-]`).
    static func iscsiUser(prefix: String = "aquarium-") -> String { prefix + iscsiSecret(length: 8).lowercased() }

    func writeISCSICredentials(_ credentials: ISCSICredentials) throws(ProvisionError) {
        guard let data = try? JSONCoding.encoder().encode(credentials) else { throw .failed("cannot encode the iSCSI credentials") }
        try Files.write(data, to: layout.iscsiCredentialsFile, mode: 0o600)
    }

    /// Letters and digits (ceph-iscsi allows CHAP passwords of 12 to 16 characters from `[0-9a-zA-Z@-_/]`).
    static func iscsiSecret(length: Int) -> String {
        let characters = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in characters.randomElement(using: &generator)! })
    }

    /// The target as the seed says: made, this node's portal, each disk made (grown, never shrunk), then who logs in
    /// and what each initiator sees (`ISCSIAccess`: the target's CHAP credentials or per-initiator ACLs, LUNs mapped
    /// only under credentials already in force). Returns what changed.
    func convergeTarget(_ service: Seed.ISCSI, credentials: ISCSICredentials,
                        client: ISCSIAPI) throws(ProvisionError) -> [String] {
        var actions: [String] = []
        var config = try client.config()
        let target = service.target
        if config.targets[target] == nil {
            try client.put("/api/target/\(target)", [:], "create the target \(target)")
            actions.append("created the target \(target)")
            config = try client.config()
        }
        // ceph-iscsi names a gateway by the host's fully qualified name (what Python's socket.getfqdn() says).
        let gateway = try client.hostName()
        if config.targets[target]?.portals[gateway] == nil {
            try client.put("/api/gateway/\(target)/\(gateway)", ["ip_address": identity.address.description, "skipchecks": "true"],
                           "add the portal \(identity.address.description) of \(gateway)")
            actions.append("added the portal \(identity.address.description):\(Seed.ISCSI.port)")
            config = try client.config()
        }
        for disk in service.disks {
            if config.disks[disk.image] != nil {
                let size = try rbdImageSize(disk)
                if let size, size < ISCSIAPI.roundedUp(disk.size) {
                    try client.put("/api/disk/\(disk.image)", ["mode": "resize", "size": ISCSIAPI.size(disk.size)], "grow \(disk.image)")
                    actions.append("grew \(disk.image) to \("\(ISCSIAPI.roundedUp(disk.size) >> 20) MiB")")
                } else if let size, size > ISCSIAPI.roundedUp(disk.size) {
                    logger.warning("iSCSI disk \(disk.image) is \(size) bytes, more than the seed's \(disk.size): disks are never shrunk")
                }
            } else {
                let size = try rbdImageSize(disk)
                try client.put("/api/disk/\(disk.image)", ["mode": "create", "size": ISCSIAPI.size(max(size ?? 0, disk.size)),
                                                            "pool": disk.pool, "create_image": "true", "backstore": "user:rbd"],
                               "define the disk \(disk.image)")
                actions.append(size == nil ? "created the disk \(disk.image) (\("\(ISCSIAPI.roundedUp(disk.size) >> 20) MiB"))"
                               : "took the existing RBD image \(disk.image) as a disk")
            }
        }
        config = try client.config()
        guard let current = config.targets[target].map({ ISCSIAccess.Current($0) }) else {
            throw .failed("rbd-target-api's configuration has no target \(target) after creating it")
        }
        for action in ISCSIAccess.plan(from: current, to: Self.iscsiWanted(service, credentials: credentials)) {
            try client.apply(action, target: target)
            actions.append(action.description)
        }
        return actions
    }

    /// The seed's access with the node's credentials: the target's, or each initiator's of `clients`; mutual CHAP
    /// with the target's own credentials where the seed asks for it.
    static func iscsiWanted(_ service: Seed.ISCSI, credentials: ISCSICredentials) -> ISCSIAccess.Wanted {
        func auth(_ username: String, _ password: String, mutual: Bool) -> ISCSIAccess.Auth {
            guard mutual, let mutualUsername = credentials.mutualUsername, let mutualPassword = credentials.mutualPassword else {
                return ISCSIAccess.Auth(username: username, password: password)
            }
            return ISCSIAccess.Auth(username: username, password: password, mutualUsername: mutualUsername,
                                    mutualPassword: mutualPassword)
        }
        let known = credentials.clients ?? []
        return ISCSIAccess.Wanted(
            images: service.disks.map(\.image),
            auth: auth(credentials.username, credentials.password, mutual: service.mutualChap),
            clients: service.clients.compactMap { client in
                known.first { $0.iqn == client.iqn }.map {
                    (iqn: client.iqn, auth: auth($0.username, $0.password, mutual: client.mutualChap), images: client.disks)
                }
            })
    }

    /// The RBD image's size in bytes, or nil when it does not exist.
    func rbdImageSize(_ disk: Seed.ISCSIDisk) throws(ProvisionError) -> UInt64? {
        struct Info: Decodable { var size: UInt64 }
        let result = try tools.run("rbd", ["info", "--format", "json", disk.image], timeout: 60, accepted: Set(0...255))
        if result.status == 2 { return nil }  // ENOENT
        guard result.status == 0, let info = try? JSONDecoder().decode(Info.self, from: Data(result.output.utf8)) else {
            throw .failed("cannot read the RBD image \(disk.image): rbd info exit \(result.status): "
                + result.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return info.size
    }

    static let tcmuRunnerName = "tcmu-runner"
    static let rbdTargetAPIName = "rbd-target-api"

    func tcmuRunnerDaemon(after: [String]) -> DaemonSpec {
        DaemonSpec(name: Self.tcmuRunnerName, executable: "tcmu-runner", arguments: [], configPath: layout.iscsiGatewayConf,
                   after: after)
    }

    func rbdTargetAPIDaemon(after: [String]) -> DaemonSpec {
        DaemonSpec(name: Self.rbdTargetAPIName, executable: "rbd-target-api", arguments: [], configPath: layout.iscsiGatewayConf,
                   after: after)
    }
}

/// `/etc/ceph/iscsi-gateway.cfg`, read by rbd-target-api (mode 0600: it holds the API password).
enum ISCSIGatewayConfig {
    static let apiUser = "aquarium"
    static let apiPort = 5000

    /// Who may call the API: this host, and every gateway (ceph-iscsi's gateways call each other's API), once each.
    static func trusted(own: String, gateways: [String]) -> [String] {
        var trusted = ["127.0.0.1", "::1"]
        for address in [own] + gateways where !trusted.contains(address) { trusted.append(address) }
        return trusted
    }

    static func render(cluster: String, pool: String, credentials: ISCSICredentials, trusted: [String]) -> String {
        """
        # Written by aquarium-provision (services.iscsi); changes are overwritten.
        [config]
        cluster_name = \(cluster)
        pool = \(pool)
        gateway_keyring = \(cluster).client.admin.keyring
        cluster_client_name = client.admin
        api_secure = false
        api_port = \(apiPort)
        api_user = \(apiUser)
        api_password = \(credentials.apiPassword)
        trusted_ip_list = \(trusted.joined(separator: ","))
        minimum_gateways = 1
        prometheus_exporter = false
        log_to_stderr = true
        log_to_file = false

        """
    }
}
