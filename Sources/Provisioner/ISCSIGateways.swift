import Foundation
import JSONCoding
import Seed

/// Several iSCSI gateways: in a rack every monitor node is a gateway of the one target, with a portal of its own.
/// ceph-iscsi keeps the target in the cluster and builds it in each gateway's LIO, one target portal group per gateway;
/// each LUN is owned by one gateway (ALUA active/optimized there, active/non-optimized on the others), and
/// tcmu-runner moves the RBD image's exclusive lock to the gateway an initiator sends I/O through, so a multipath
/// initiator carries on through another portal when a gateway dies.
///
/// The rack's first monitor node makes the target, its disks and who may log in (`convergeTarget`), then shares the
/// credentials (rbd-target-api's password included: the gateways call each other's API with it) in the monitors'
/// config-key store. Every other monitor node takes them from there and adds its own gateway, one node at a time (an
/// exclusive RADOS lock: ceph-iscsi builds each new gateway's portal list from the configuration it read, so two
/// gateways added at once would leave one out of the other's list).
extension Provisioner {
    /// Single node: this node. Rack: every monitor node.
    var runsISCSI: Bool { rack == nil || seed.cluster.role == .monitor }

    /// Where the credentials every gateway shares are kept (mode of the cluster: readable by admin keys).
    static let iscsiCredentialsKey = "aquarium/iscsi/credentials"
    /// The RADOS object (in the cluster's own pool) whose lock one gateway at a time holds while it adds itself.
    static let iscsiGatewayLock = "iscsi.gateways"

    /// The gateways' addresses: every monitor node's in a rack (the first's first), else this node's.
    var iscsiGatewayAddresses: [String] {
        guard let rack else { return [identity.address.description] }
        return rack.monitors.map(\.address.description)
    }

    /// `ADDRESS:3260`, an IPv6 address in brackets.
    static func iscsiPortal(_ address: String) -> String {
        address.contains(":") ? "[\(address)]:\(Seed.ISCSI.port)" : "\(address):\(Seed.ISCSI.port)"
    }

    /// The first monitor node's credentials as it shared them, with this node's view of the portals; written to this
    /// node's own file (0600) when they differ. Waits (up to the rack timeout) until the first node made the target.
    func sharedISCSICredentials(_ service: Seed.ISCSI) throws(ProvisionError) -> (ISCSICredentials, changed: Bool) {
        var shared: ISCSICredentials?
        let first = rack?.monitors.first?.shortName ?? "the first monitor node"
        try CephTools.wait("the iSCSI target \(service.target) (made by \(first), which shares its credentials in "
                           + "config-key \(Self.iscsiCredentialsKey))", seconds: options.rackTimeout, interval: 5) {
            guard let stored = try storedISCSICredentials() else { return false }
            guard let read = stored else {
                throw ProvisionError.failed("config-key \(Self.iscsiCredentialsKey) holds no iSCSI credentials; "
                    + "`aquarium-provision` on \(first) writes them again")
            }
            shared = read
            return read.target == service.target
        }
        guard var credentials = shared else { throw .failed("no iSCSI credentials in config-key \(Self.iscsiCredentialsKey)") }
        credentials.portals = iscsiGatewayAddresses.map(Self.iscsiPortal)
        let current = FileManager.default.contents(atPath: layout.iscsiCredentialsFile)
            .flatMap { try? JSONDecoder().decode(ISCSICredentials.self, from: $0) }
        guard current != credentials else { return (credentials, false) }
        try writeISCSICredentials(credentials)
        return (credentials, true)
    }

    /// The first monitor node shares its credentials (a rack only); true when it wrote them.
    func shareISCSICredentials(_ credentials: ISCSICredentials) throws(ProvisionError) -> Bool {
        guard rack != nil, let text = try? JSONCoding.text(credentials, pretty: false) else { return false }
        if try storedISCSICredentials() == .some(credentials) { return false }
        try tools.run("ceph", ["config-key", "set", Self.iscsiCredentialsKey, "-i", "-"], input: Data(text.utf8), timeout: 30)
        return true
    }

    /// The shared credentials: nil when the key is not there yet, `.some(nil)` when it holds something else.
    func storedISCSICredentials() throws(ProvisionError) -> ISCSICredentials?? {
        let result = try tools.run("ceph", ["config-key", "get", Self.iscsiCredentialsKey], timeout: 30, accepted: [0, 2])
        guard result.status == 0 else { return nil }
        return .some(try? JSONDecoder().decode(ISCSICredentials.self, from: result.standardOutput))
    }

    /// This node's gateway in the target (a rack's monitor node other than the first): added through the local
    /// rbd-target-api, which builds it here and tells every other gateway, under the cluster-wide lock. ceph-iscsi
    /// refuses while a gateway already in the target does not answer; the error says which.
    func joinISCSITarget(_ service: Seed.ISCSI, client: ISCSIAPI) throws(ProvisionError) -> [String] {
        let gateway = try client.hostName()
        let address = identity.address.description
        if try client.config().targets[service.target]?.portals[gateway] != nil { return [] }
        let lock = ClusterLock(tools: tools, pool: ClusterEventLog.pool, object: Self.iscsiGatewayLock, owner: daemonId)
        try lock.holding("add an iSCSI gateway", seconds: options.rackTimeout) { () throws(ProvisionError) in
            let config = try client.config()
            guard let target = config.targets[service.target] else {
                throw .failed("rbd-target-api's configuration has no target \(service.target) yet; the first monitor node "
                    + "makes it: run aquarium-provision there, then here")
            }
            guard target.portals[gateway] == nil else { return }
            try client.put("/api/gateway/\(service.target)/\(gateway)", ["ip_address": address, "skipchecks": "true"],
                           "add this node's gateway \(gateway) (\(address)) to \(service.target)")
        }
        let after = try client.config().targets[service.target]
        guard after?.portals[gateway] != nil else {
            throw .failed("rbd-target-api accepted the gateway \(gateway) but its configuration does not list it")
        }
        return ["added the gateway \(gateway) with the portal \(Self.iscsiPortal(address)) "
                + "(\(after?.portals.count ?? 0) gateway(s) now)"]
    }
}

/// An exclusive advisory lock on a RADOS object (`rados lock`), held across processes and nodes: taken by one node at
/// a time, released by its holder, and expiring by itself if the holder dies (`duration`).
struct ClusterLock {
    var tools: CephTools
    var pool: String
    var object: String
    /// Names the holder (the lock's cookie): a run of the same node takes back the lock an earlier one left.
    var owner: String
    var name = "aquarium"
    var duration = 600

    /// Takes the lock (waiting up to `seconds` for another holder), runs `body`, and releases it, also when `body`
    /// throws.
    func holding<T>(_ what: String, seconds: Double,
                    _ body: () throws(ProvisionError) -> T) throws(ProvisionError) -> T {
        _ = try tools.run("rados", ["-p", pool, "create", object], timeout: 30, accepted: Set(0...255))
        try release()  // this node's own lock, left by a run that was killed
        try CephTools.wait("the lock \(pool)/\(object) to \(what) (another node holds it: `rados -p \(pool) lock info "
                           + "\(object) \(name)` says which)", seconds: seconds, interval: 3) {
            try take()
        }
        defer { try? release() }
        return try body()
    }

    /// One try: true when this call took the lock.
    func take() throws(ProvisionError) -> Bool {
        try tools.run("rados", ["-p", pool, "lock", "get", object, name, "--lock-cookie", owner, "--lock-type", "exclusive",
                                "--lock-duration", String(duration)], timeout: 30, accepted: Set(0...255)).status == 0
    }

    struct Locker: Decodable {
        var name: String
        var cookie: String
    }

    /// Who holds the lock now.
    func lockers() throws(ProvisionError) -> [Locker] {
        struct Info: Decodable { var lockers: [Locker]? }
        let result = try tools.run("rados", ["-p", pool, "lock", "info", object, name, "--format", "json"], timeout: 30,
                                   accepted: Set(0...255))
        guard result.status == 0 else { return [] }
        return (try? JSONDecoder().decode(Info.self, from: result.standardOutput))?.lockers ?? []
    }

    /// Breaks the locks this owner holds (each `rados` run is a client of its own, so the lock is broken by name).
    func release() throws(ProvisionError) {
        for locker in try lockers() where locker.cookie == owner {
            try tools.run("rados", ["-p", pool, "lock", "break", object, name, locker.name, "--lock-cookie", owner],
                          timeout: 30)
        }
    }
}

extension Operations {
    /// `node remove HOST` on a gateway (in a rack every monitor node is one): HOST's gateway taken out of the iSCSI
    /// target through this node's rbd-target-api, once HOST's daemons are down. ceph-iscsi's forced deletion (HOST
    /// does not answer): the configuration changed here, every other gateway drops HOST's portal group, and the LUNs
    /// HOST owned get another owner. Under the lock the gateways take when they add themselves (each gateway's portal
    /// list is built from the configuration it read). What it did; nil when HOST is no gateway or there is no target.
    func removeISCSIGateway(_ host: String, timeout: Double) throws(ProvisionError) -> String? {
        guard let data = FileManager.default.contents(atPath: layout.iscsiCredentialsFile),
              let credentials = try? JSONDecoder().decode(ISCSICredentials.self, from: data) else { return nil }
        let client = ISCSIAPI(user: ISCSIGatewayConfig.apiUser, password: credentials.apiPassword)
        let target = credentials.target
        func gateway() throws(ProvisionError) -> String? {
            let config: ISCSIAPI.Config
            do { config = try client.config() } catch {
                throw .failed("\(host) may still be a gateway of the iSCSI target \(target), and this node's rbd-target-api "
                    + "did not answer (\(error)); start it (`aquarium-provision` here), then run `node remove \(host)` again")
            }
            return config.targets[target]?.portals.keys.first { Self.isGatewayName($0, of: host) }
        }
        guard try gateway() != nil else { return nil }
        let lock = ClusterLock(tools: tools, pool: ClusterEventLog.pool, object: Provisioner.iscsiGatewayLock, owner: localHost)
        return try lock.holding("remove the iSCSI gateway of \(host)", seconds: timeout) { () throws(ProvisionError) -> String? in
            guard let name = try gateway() else { return nil }
            try client.send("DELETE", "/api/gateway/\(target)/\(name)", ["force": "true"],
                            "take the gateway \(name) of the removed node out of \(target)")
            let left = try client.config().targets[target]?.portals ?? [:]
            guard left[name] == nil else {
                throw .failed("rbd-target-api accepted the deletion of the gateway \(name) but its configuration still lists it")
            }
            let line = "took the gateway \(name) out of the iSCSI target \(target) (\(left.count) gateway(s) left: "
                + left.keys.sorted().joined(separator: ", ") + ")"
            record("iscsi.gateway.removed", line)
            return line
        }
    }

    /// True when rbd-target-api's gateway name `name` (the host's name, possibly fully qualified) is `host`'s.
    static func isGatewayName(_ name: String, of host: String) -> Bool {
        name == host || name.hasPrefix(host + ".")
    }
}
