import CommandSupport
import Exec
import Foundation

/// rbd-target-api's REST API on 127.0.0.1, with curl (the password on curl's standard input, not its command line).
struct ISCSIAPI {
    var user: String
    var password: String
    /// Seconds one request may take (curl's --max-time).
    var maxTime = 300

    struct Response {
        var code: Int
        var body: String
    }

    struct Config: Decodable {
        var targets: [String: Target]
        var disks: [String: Disk]
    }

    struct Target: Decodable {
        var portals: [String: Portal]
        var disks: [String: Mapping]
        var auth: Auth
        var aclEnabled: Bool
        var clients: [String: Client]

        enum CodingKeys: String, CodingKey {
            case portals, disks, auth, clients
            case aclEnabled = "acl_enabled"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            portals = try container.decode([String: Portal].self, forKey: .portals)
            disks = try container.decode([String: Mapping].self, forKey: .disks)
            auth = try container.decode(Auth.self, forKey: .auth)
            aclEnabled = try container.decode(Bool.self, forKey: .aclEnabled)
            clients = try container.decodeIfPresent([String: Client].self, forKey: .clients) ?? [:]
        }
    }

    /// A gateway's portal group: the addresses its portal listens on.
    struct Portal: Decodable {
        var addresses: [String]

        enum CodingKeys: String, CodingKey { case addresses = "portal_ip_addresses" }

        init(from decoder: any Decoder) throws {
            addresses = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent([String].self, forKey: .addresses) ?? []
        }
    }
    struct Disk: Decodable {}

    /// A LUN: its number on the target.
    struct Mapping: Decodable {
        var lunID: Int?

        enum CodingKeys: String, CodingKey { case lunID = "lun_id" }
    }

    struct Client: Decodable {
        var auth: Auth
        var luns: [String: Mapping]
    }

    struct Auth: Decodable {
        var username: String?
        var password: String?
        var mutualUsername: String?
        var mutualPassword: String?

        enum CodingKeys: String, CodingKey {
            case username, password
            case mutualUsername = "mutual_username"
            case mutualPassword = "mutual_password"
        }

        var access: ISCSIAccess.Auth {
            ISCSIAccess.Auth(username: username ?? "", password: password ?? "", mutualUsername: mutualUsername ?? "",
                             mutualPassword: mutualPassword ?? "")
        }
    }

    func request(_ method: String, _ path: String, form: [String: String] = [:]) throws(ProvisionError) -> Response {
        var config = "user = \"\(user):\(password)\"\n"
        for (key, value) in form.sorted(by: { $0.key < $1.key }) {
            config += "data-urlencode = \"\(key)=\(value)\"\n"
        }
        let url = "http://127.0.0.1:\(ISCSIGatewayConfig.apiPort)" + path
        let result: CommandResult
        do {
            result = try Command("curl", ["--silent", "--show-error", "--write-out", "\n%{http_code}", "-K", "-",
                                          "--request", method, "--max-time", String(maxTime), "--", url])
                .run(input: Data(config.utf8), acceptedStatuses: Set(0...255))
        } catch { throw .failedBecause("curl did not run for \(method) \(path): \(error)", cause: error) }
        let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "") ?? 0
        return Response(code: code, body: lines.dropLast().joined(separator: "\n"))
    }

    func put(_ path: String, _ form: [String: String], _ what: String) throws(ProvisionError) {
        try send("PUT", path, form, what)
    }

    func send(_ method: String, _ path: String, _ form: [String: String], _ what: String) throws(ProvisionError) {
        let response = try request(method, path, form: form)
        guard response.code == 200 else {
            throw .failed("rbd-target-api could not \(what): HTTP \(response.code) \(Self.message(response.body)); "
                + "see `journalctl -u aquarium-ceph-CLUSTER-rbd-target-api`")
        }
    }

    func config() throws(ProvisionError) -> Config {
        let response = try request("GET", "/api/config")
        guard response.code == 200, let config = try? JSONDecoder().decode(Config.self, from: Data(response.body.utf8)) else {
            throw .failed("rbd-target-api did not return its configuration: HTTP \(response.code) \(Self.message(response.body))")
        }
        return config
    }

    /// One request of an access plan.
    func apply(_ action: ISCSIAccess.Action, target: String) throws(ProvisionError) {
        func credentials(_ auth: ISCSIAccess.Auth) -> [String: String] {
            ["username": auth.username, "password": auth.password, "mutual_username": auth.mutualUsername,
             "mutual_password": auth.mutualPassword]
        }
        switch action {
        case .unmapTargetLUN(let image):
            try send("DELETE", "/api/targetlun/\(target)", ["disk": image], "take \(image) out of \(target)")
        case .disableACL:
            try put("/api/targetauth/\(target)", ["action": "disable_acl"], "turn off the per-initiator ACLs of \(target)")
        case .enableACL:
            try put("/api/targetauth/\(target)", ["action": "enable_acl"], "turn on the per-initiator ACLs of \(target)")
        case .setTargetAuth(let auth):
            try put("/api/targetauth/\(target)", credentials(auth), "set the CHAP credentials of \(target)")
        case .deleteClient(let iqn):
            try send("DELETE", "/api/client/\(target)/\(iqn)", [:],
                     "remove initiator \(iqn) (it must be logged out: `iscsiadm -m node -T \(target) --logout` on it)")
        case .createClient(let iqn):
            try put("/api/client/\(target)/\(iqn)", [:], "allow initiator \(iqn)")
        case .setClientAuth(let iqn, let auth):
            try put("/api/clientauth/\(target)/\(iqn)", credentials(auth), "set the CHAP credentials of \(iqn)")
        case .mapTargetLUN(let image, let lun):
            var form = ["disk": image]
            if let lun { form["lun_id"] = String(lun) }
            try put("/api/targetlun/\(target)", form, "map \(image) as a LUN of \(target)")
        case .mapClientLUN(let iqn, let image):
            try put("/api/clientlun/\(target)/\(iqn)", ["disk": image], "give \(iqn) the LUN \(image)")
        case .unmapClientLUN(let iqn, let image):
            try send("DELETE", "/api/clientlun/\(target)/\(iqn)", ["disk": image], "take the LUN \(image) from \(iqn)")
        }
    }

    /// The name rbd-target-api knows this host by.
    func hostName() throws(ProvisionError) -> String {
        struct Info: Decodable { var data: String? }
        let response = try request("GET", "/api/sysinfo/hostname")
        guard response.code == 200, let name = (try? JSONDecoder().decode(Info.self, from: Data(response.body.utf8)))?.data,
              !name.isEmpty else {
            throw .failed("rbd-target-api did not say this host's name: HTTP \(response.code) \(Self.message(response.body))")
        }
        return name
    }

    /// ceph-iscsi takes sizes in whole M, G or T (powers of 1024): the size in MiB, rounded up.
    static func size(_ bytes: UInt64) -> String { String(roundedUp(bytes) >> 20) + "M" }
    static func roundedUp(_ bytes: UInt64) -> UInt64 { ((bytes + (1 << 20) - 1) >> 20) << 20 }

    static func message(_ body: String) -> String {
        struct Message: Decodable { var message: String }
        return (try? JSONDecoder().decode(Message.self, from: Data(body.utf8)))?.message
            ?? String(body.trimmingCharacters(in: .whitespacesAndNewlines).prefix(300))
    }
}

extension ISCSIAccess.Current {
    /// What rbd-target-api's configuration says about the target's access.
    init(_ target: ISCSIAPI.Target) {
        self.init(aclEnabled: target.aclEnabled, auth: target.auth.access,
                  luns: target.disks.reduce(into: [:]) { $0[$1.key] = $1.value.lunID ?? 0 },
                  clients: target.clients.mapValues { Client(auth: $0.auth.access, images: Set($0.luns.keys)) })
    }
}
