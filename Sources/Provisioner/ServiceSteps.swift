import Crypto
import Foundation
import JSONCoding
import Seed

/// The seed's services on a bootstrap node: `rbd`, `cephfs`, `rgw`.
extension Provisioner {
    /// On a rack's monitor node other than the first: where the services are made instead.
    var servicesElsewhere: String? {
        runsServices ? nil : "made by the rack's first monitor node, \(rack?.monitors.first?.shortName ?? "?")"
    }

    func pools() throws(ProvisionError) -> Set<String> {
        Set(try tools.json([String].self, ["osd", "pool", "ls"]) ?? [])
    }

    func rbd() throws(ProvisionError) -> StepOutcome {
        guard let service = seed.cluster.services.rbd else { return StepOutcome(changed: false, detail: "not in the seed") }
        if let elsewhere = servicesElsewhere { return StepOutcome(changed: false, detail: elsewhere) }
        var actions: [String] = []
        let existing = try pools()
        for pool in service.pools {
            if !existing.contains(pool) {
                try tools.run("ceph", ["osd", "pool", "create", pool])
                actions.append("created pool \(pool)")
            }
            let applications = try tools.json([String: CephJSON.Ignored].self, ["osd", "pool", "application", "get", pool]) ?? [:]
            if applications["rbd"] == nil {
                try tools.run("rbd", ["pool", "init", pool], timeout: 180)
                actions.append("initialised \(pool) for RBD")
            }
        }
        return StepOutcome(changed: !actions.isEmpty,
                          detail: actions.isEmpty ? "pools " + service.pools.joined(separator: ", ") : actions.joined(separator: "; "))
    }

    func cephfs() throws(ProvisionError) -> StepOutcome {
        guard let service = seed.cluster.services.cephfs else { return StepOutcome(changed: false, detail: "not in the seed") }
        if let elsewhere = servicesElsewhere { return StepOutcome(changed: false, detail: elsewhere) }
        var actions: [String] = []
        let filesystems = try tools.json([CephJSON.FileSystem].self, ["fs", "ls"]) ?? []
        if !filesystems.contains(where: { $0.name == service.name }) {
            let metadata = "cephfs.\(service.name).meta"
            let data = "cephfs.\(service.name).data"
            let existing = try pools()
            for pool in [metadata, data] where !existing.contains(pool) {
                try tools.run("ceph", ["osd", "pool", "create", pool])
            }
            try tools.run("ceph", ["fs", "new", service.name, metadata, data])
            actions.append("created file system \(service.name)")
        }
        actions += try ensureMDS()
        try CephTools.wait("an active MDS for \(service.name)", seconds: 90) {
            let dump = try tools.json(CephJSON.FSDump.self, ["fs", "dump"], timeout: 20)
            let map = (dump?.filesystems ?? []).first { $0.mdsmap?.fsName == service.name }?.mdsmap
            return (map?.info ?? [:]).values.contains { $0.state == "up:active" }
        }
        return StepOutcome(changed: !actions.isEmpty, detail: actions.isEmpty ? service.name : actions.joined(separator: "; "))
    }

    var rgwHost: String { options.launcher == .process ? identity.address.description : "127.0.0.1" }

    func rgw() throws(ProvisionError) -> StepOutcome {
        guard let service = seed.cluster.services.rgw else { return StepOutcome(changed: false, detail: "not in the seed") }
        if let elsewhere = servicesElsewhere { return StepOutcome(changed: false, detail: elsewhere) }
        var actions: [String] = []
        let id = identity.daemonId
        if try ensureKeyring("client.rgw.\(id)", caps: ["mon", "allow rw", "osd", "allow rwx", "mgr", "allow rw"],
                             at: layout.rgwData(id) + "/keyring") {
            actions.append("created the key of client.rgw.\(id)")
        }
        let spec = daemon("rgw", id)
        // RGW reads its frontends (ceph.conf, written by an earlier step) and the HTTPS certificate and key when it
        // starts: the ones it started with are stamped beside its data once it listens. Another port or certificate
        // in the seed restarts it; a run killed between the stop and the stamp restarts it again, which is harmless.
        try rgwCertificates(service.https)
        let frontends = Self.rgwStamp(frontends: CephConfig.rgwFrontends(identity, layout: layout, port: service.port,
                                                                         httpsPort: service.https?.port),
                                      certificate: Files.read(layout.rgwCertificate), key: Files.read(layout.rgwPrivateKey))
        let stamp = layout.rgwData(id) + "/frontends"
        if launcher.isRunning(spec), let started = Files.read(stamp), started != frontends {
            try launcher.stop(spec)
            actions.append("restarted client.rgw.\(id) for its new ports or certificate")
        }
        if !launcher.isRunning(spec) && Ports.isListening(host: rgwHost, port: service.port) {
            throw .failed("port \(service.port) on \(rgwHost) is taken by another program; RGW cannot listen there. "
                + "Free it or change cluster.services.rgw.port in the seed")
        }
        if try launcher.ensureRunning(spec) { actions.append("started client.rgw.\(id) on port \(service.port)") }
        for port in [service.port] + (service.https.map { [$0.port] } ?? []) {
            try CephTools.wait("RGW to listen on \(rgwHost):\(port)", seconds: 120) { Ports.isListening(host: rgwHost, port: port) }
        }
        try Files.write(frontends, to: stamp, mode: 0o600)
        fault("rgw", .mid)
        let keys = try s3AdminKeys()
        let host = options.launcher == .process ? identity.address : (NodeAddresses.primary(seed: seed) ?? identity.address)
        let endpoint = "http://" + host.endpoint(port: service.port)
        let httpsEndpoint = service.https.map { "https://" + host.endpoint(port: $0.port) }
        let credentials = S3Credentials(endpoint: endpoint, httpsEndpoint: httpsEndpoint, user: Self.s3AdminUser,
                                        accessKey: keys.access, secretKey: keys.secret)
        guard let data = try? JSONCoding.encoder().encode(credentials) else { throw .failed("cannot encode the S3 credentials") }
        if try Files.write(data, to: layout.s3CredentialsFile, mode: 0o600) {
            actions.append("wrote \(layout.s3CredentialsFile)")
        }
        if keys.created { actions.append("created the S3 user \(Self.s3AdminUser)") }
        let users = try s3Users(service.users, endpoint: endpoint, httpsEndpoint: httpsEndpoint)
        actions += users.actions
        let detail = (actions.isEmpty ? [endpoint] : actions) + users.warnings.map { "warning: " + $0 }
        return StepOutcome(changed: !actions.isEmpty, detail: detail.joined(separator: "; "))
    }

    func s3AdminKeys() throws(ProvisionError) -> (access: String, secret: String, created: Bool) {
        if let keys = try userInfo(Self.s3AdminUser)?.keys(of: Self.s3AdminUser) { return (keys.access, keys.secret, false) }
        let created = try tools.run("radosgw-admin", ["user", "create", "--uid", Self.s3AdminUser,
                                                      "--display-name", "Aquarium administrator", "--admin"], timeout: 120)
        guard let keys = RGWUserInfo.parse(created.output)?.keys(of: Self.s3AdminUser) else {
            throw .failed("radosgw-admin user create printed no keys")
        }
        return (keys.access, keys.secret, true)
    }
}

/// The S3 administrator's credentials, written mode 0600 to `/var/lib/aquarium/s3-admin.json`.
public struct S3Credentials: Codable, Equatable, Sendable {
    public var endpoint: String
    /// With `services.rgw.https`.
    public var httpsEndpoint: String?
    public var user: String
    public var accessKey: String
    public var secretKey: String

    public init(endpoint: String, httpsEndpoint: String? = nil, user: String, accessKey: String, secretKey: String) {
        self.endpoint = endpoint
        self.httpsEndpoint = httpsEndpoint
        self.user = user
        self.accessKey = accessKey
        self.secretKey = secretKey
    }
}

extension Provisioner {
    /// Writes (or, without HTTPS, removes) RGW's certificate and key.
    func rgwCertificates(_ https: Seed.HTTPS?) throws(ProvisionError) {
        guard let https else {
            for file in [layout.rgwCertificate, layout.rgwPrivateKey] where Files.exists(file) { unlink(file) }
            return
        }
        try Files.makeDirectory(layout.etcCeph)
        try Files.write(https.privateKey.hasSuffix("\n") ? https.privateKey : https.privateKey + "\n",
                        to: layout.rgwPrivateKey, mode: 0o600)
        try Files.write(https.certificate.hasSuffix("\n") ? https.certificate : https.certificate + "\n",
                        to: layout.rgwCertificate)
    }

    /// What a running RGW was started with: its frontends and digests of the certificate and key (the key itself
    /// never leaves its 0600 file).
    static func rgwStamp(frontends: String, certificate: String?, key: String?) -> String {
        func digest(_ text: String?) -> String {
            text.map { SHA256.hash(data: Data($0.utf8)).map { String(format: "%02x", $0) }.joined() } ?? "none"
        }
        return "\(frontends)\ncertificate sha256 \(digest(certificate))\nkey sha256 \(digest(key))\n"
    }
}
