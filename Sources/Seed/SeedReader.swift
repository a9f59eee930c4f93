import Foundation
import Yams

/// The seed file v1 schema on the diagnosing reader: builds the `Seed` from the composed document and collects every
/// issue on the way. The sections are read here (the root, host, cluster), in SeedReader+Network.swift (network,
/// disks) and in SeedReader+Services.swift (cluster.services). The rack file (`RackReader`) reads its sections with these same readers.
class SeedReader: DiagnosingReader {
    let options: SeedLoader.Options

    init(file: String, document: SeedLoader.Document, options: SeedLoader.Options, documentKind: String = "seed files") {
        self.options = options
        super.init(file: file, document: document, documentKind: documentKind)
    }

    // MARK: the seed

    static let rootKeys = ["version", "host", "network", "disks", "cluster", "expires"]

    func readSeed() -> Seed? {
        guard let rootNode = document.root else {
            report(nil, KeyPath(), "the file is empty; a seed needs at least version, host and cluster "
                   + "(see `aquarium-image seed example`)")
            return nil
        }
        guard let root = mapping(rootNode, KeyPath(), keys: Self.rootKeys) else { return nil }
        let path = KeyPath()
        readVersion(root)
        let host = required(root, "host").map { readHost($0, path.key("host")) }
        let network = root["network"].map { readNetwork($0, path.key("network")) } ?? Seed.Network()
        let disks = root["disks"].map { readDisks($0, path.key("disks")) } ?? Seed.Disks()
        let cluster = required(root, "cluster").map { readCluster($0, path.key("cluster")) }
        let expires = root["expires"].flatMap { readTime($0, path.key("expires")) }
        if let host, let cluster, let node = root["cluster"] { checkRack(cluster, host: host, network: network, node) }
        if let cluster {
            checkVirtualIP(cluster.services, publicNetwork: network.publicNetwork,
                           servicesNode: root["cluster"]?.mapping?["services"], path: path.key("cluster").key("services"))
        }
        guard issues.isEmpty, let host, let cluster else { return nil }
        return Seed(version: 1, host: host, network: network, disks: disks, cluster: cluster, expires: expires)
    }

    /// `version: 1`, required.
    func readVersion(_ root: Fields) {
        let path = KeyPath().key("version")
        if let node = required(root, "version"), case .scalar = node, let value = scalar(node, path) {
            switch value {
            case .int("1"): break
            case .int(let text):
                report(node.mark, path, "version \(SeedSyntax.printable(text)) is not supported; this parser reads "
                       + "version 1")
            default:
                report(node.mark, path, "expected the number 1, found \(value.describe(secret: false))")
            }
        } else if let node = root["version"], !isScalar(node) {
            report(node.mark, path, "expected the number 1, found \(describe(node))")
        }
    }

    /// An RFC 3339 time (`expires`).
    func readTime(_ node: Node, _ path: KeyPath) -> SeedTime? {
        parsed(node, path) { text in
            SeedTime(rfc3339: text).map { .success($0) }
                ?? .failure(Problem("'\(SeedSyntax.printable(text))' is not an RFC 3339 time such as "
                                    + "2026-12-31T23:59:59Z (quote it)"))
        }
    }

    // MARK: host

    /// The host keys that are not about one machine (a rack file's `defaults.host` takes only these).
    static let sharedHostKeys = ["timezone", "ntp_servers", "users", "requirements"]

    func readHost(_ node: Node, _ path: KeyPath) -> Seed.Host {
        var host = Seed.Host(hostname: "")
        guard let fields = mapping(node, path, keys: ["hostname", "timezone", "ntp_servers", "users", "machine", "reinstall",
                                                      "requirements"])
        else { return host }
        if let node = fields["machine"] { host.machine = readMachine(node, path.key("machine")) }
        if let node = fields["reinstall"] {
            host.reinstall = parsed(node, path.key("reinstall")) { text in
                UUID(uuidString: text).map { .success($0.uuidString.lowercased()) }
                    ?? .failure(Problem("'\(SeedSyntax.printable(text))' is not a node UUID such as "
                                        + "0f8e2c1a-5b7d-4e09-9a3c-2d6f1e8b7c40 (the report or the refusal names it)"))
            }
        }
        if let node = required(fields, "hostname") {
            host.hostname = checked(node, path.key("hostname"), SeedSyntax.hostnameProblem) ?? ""
        }
        readSharedHostFields(fields, path, into: &host)
        return host
    }

    /// `host.requirements`: each at least Aquarium's minimum (a seed raises them, never lowers them).
    func readRequirements(_ node: Node, _ path: KeyPath) -> Seed.Requirements {
        typealias R = Seed.Requirements
        var requirements = R()
        guard let fields = mapping(node, path, keys: ["cpu_threads", "memory", "memory_per_osd", "storage_disks"]) else {
            return requirements
        }
        if let node = fields["cpu_threads"] {
            requirements.cpuThreads = integer(node, path.key("cpu_threads"), range: R.minimumCPUThreads...4096,
                                              what: "a number of CPU threads") ?? R.minimumCPUThreads
        }
        func atLeast(_ key: String, _ minimum: UInt64) -> UInt64 {
            guard let node = fields[key], let value = size(node, path.key(key)) else { return minimum }
            if value < minimum {
                report(node.mark, path.key(key), "\(SeedSyntax.describeSize(value)) is below Aquarium's minimum "
                       + "\(SeedSyntax.describeSize(minimum)): a seed may raise a requirement, not lower it")
                return minimum
            }
            return value
        }
        requirements.memory = atLeast("memory", R.minimumMemory)
        requirements.memoryPerOSD = atLeast("memory_per_osd", R.minimumMemoryPerOSD)
        if let node = fields["storage_disks"] {
            requirements.storageDisks = integer(node, path.key("storage_disks"), range: 0...4096, what: "a number of disks")
        }
        return requirements
    }

    /// `timezone`, `ntp_servers`, `users` and `requirements` of a host section.
    func readSharedHostFields(_ fields: Fields, _ path: KeyPath, into host: inout Seed.Host) {
        if let node = fields["requirements"] { host.requirements = readRequirements(node, path.key("requirements")) }
        if let node = fields["timezone"] {
            host.timezone = checked(node, path.key("timezone")) {
                SeedSyntax.timezoneProblem($0, zoneinfoDirectory: options.zoneinfoDirectory)
            }
        }
        if let node = fields["ntp_servers"], let items = list(node, path.key("ntp_servers"), of: "host names or addresses") {
            host.ntpServers = items.enumerated().compactMap { index, item in
                checked(item, path.key("ntp_servers").index(index), SeedSyntax.hostOrAddressProblem)
            }
        }
        if let node = fields["users"], let items = list(node, path.key("users"), of: "users") {
            var seen: [String: Mark?] = [:]
            for (index, item) in items.enumerated() {
                let itemPath = path.key("users").index(index)
                guard let user = readUser(item, itemPath) else { continue }
                if let firstMark = seen[user.name] {
                    let (line, _) = position(firstMark)
                    report(item.mapping?["name"]?.mark ?? item.mark, itemPath.key("name"),
                           "user '\(user.name)' is already listed at line \(line); list each user once")
                } else {
                    seen[user.name] = item.mapping?["name"]?.mark ?? item.mark
                }
                host.users.append(user)
            }
        }
    }

    func readMachine(_ node: Node, _ path: KeyPath) -> Seed.Machine? {
        guard let fields = mapping(node, path, keys: ["serial", "mac"]) else { return nil }
        var machine = Seed.Machine()
        if let node = fields["serial"] {
            machine.serial = checked(node, path.key("serial")) { text in
                if text.isEmpty || text.count > 128 || text.contains(where: { $0.isNewline || $0 == "/" }) {
                    return "'\(SeedSyntax.printable(text))' is not a DMI system serial (1 to 128 characters, no '/' "
                        + "or line breaks; `cat /sys/class/dmi/id/product_serial` shows it)"
                }
                return nil
            }
        }
        if let node = fields["mac"] {
            machine.mac = parsed(node, path.key("mac")) { text in
                SeedSyntax.normalizedMAC(text).map { .success($0) }
                    ?? .failure(Problem("'\(SeedSyntax.printable(text))' is not a MAC address such as 52:54:00:12:34:56"))
            }
        }
        if fields["serial"] == nil && fields["mac"] == nil {
            report(node.mark, path, "give serial (the DMI system serial) and/or mac (a NIC's MAC address)")
        }
        return machine
    }

    func readUser(_ node: Node, _ path: KeyPath) -> Seed.User? {
        guard let fields = mapping(node, path, keys: ["name", "password_hash", "ssh_authorized_keys"]) else { return nil }
        var user = Seed.User(name: "")
        var ok = true
        if let node = required(fields, "name"), let name = checked(node, path.key("name"), SeedSyntax.userNameProblem) {
            user.name = name
        } else {
            ok = false
        }
        if let node = fields["password_hash"] {
            user.passwordHash = checked(node, path.key("password_hash"), secret: true, SeedSyntax.passwordHashProblem)
        }
        if let node = fields["ssh_authorized_keys"],
           let items = list(node, path.key("ssh_authorized_keys"), of: "SSH public keys") {
            user.sshAuthorizedKeys = items.enumerated().compactMap { index, item in
                checked(item, path.key("ssh_authorized_keys").index(index), SeedSyntax.sshKeyProblem)
            }
        }
        return ok ? user : nil
    }

    // MARK: cluster

    func readCluster(_ node: Node, _ path: KeyPath) -> Seed.Cluster {
        var cluster = Seed.Cluster(role: .bootstrap)
        guard let fields = mapping(node, path, keys: ["name", "role", "join", "rack", "services", "telemetry"]) else {
            return cluster
        }
        if let node = fields["name"] {
            cluster.name = checked(node, path.key("name"), SeedSyntax.clusterNameProblem) ?? cluster.name
        }
        let role = required(fields, "role").flatMap { enumeration($0, path.key("role"), ClusterRole.self) }
        if let role { cluster.role = role }
        if let node = fields["join"] {
            if let role, role != .join {
                report(fields.keyMark("join"), path.key("join"), "is only allowed with role: join (this node has "
                       + "role: \(role.rawValue)); remove it, or set role: join")
            }
            cluster.join = readJoin(node, path.key("join"))
        } else if role == .join, let roleNode = fields["role"] {
            report(roleNode.mark, path.key("join"), "role: join needs cluster.join with the address and token of "
                   + "the cluster to join")
        }
        if let node = fields["rack"] {
            if let role, !role.isRack {
                report(fields.keyMark("rack"), path.key("rack"), "is only allowed with role: monitor or role: storage "
                       + "(this node has role: \(role.rawValue)); rack seeds are made by `aquarium-image rack seeds`")
            }
            cluster.rack = readRack(node, path.key("rack"), role: role)
        } else if let role, role.isRack, let roleNode = fields["role"] {
            report(roleNode.mark, path.key("rack"), "role: \(role.rawValue) needs cluster.rack (the rack's fsid, monitors "
                   + "and keys); make rack seeds with `aquarium-image rack seeds RACK.yaml`")
        }
        if let node = fields["services"] { cluster.services = readServices(node, path.key("services")) }
        if let node = fields["telemetry"] { cluster.telemetry = bool(node, path.key("telemetry")) ?? false }
        return cluster
    }

    func readJoin(_ node: Node, _ path: KeyPath) -> Seed.Join? {
        guard let fields = mapping(node, path, keys: ["address", "token"]) else { return nil }
        let address = required(fields, "address").flatMap { self.address($0, path.key("address")) }
        let token = required(fields, "token").flatMap {
            checked($0, path.key("token"), secret: true, SeedSyntax.tokenProblem)
        }
        guard let address, let token else { return nil }
        return Seed.Join(address: address, token: token)
    }
}
