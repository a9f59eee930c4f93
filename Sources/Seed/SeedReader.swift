import Foundation
import Yams

/// The seed file v1 schema on the diagnosing reader: builds the `Seed` from the composed document and collects every
/// issue on the way. The sections are read here (the root, host, cluster) and in SeedReader+Network.swift (network,
/// disks). The rack file (`RackReader`) reads its sections with these same readers.
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

    enum ServiceBody {
        case invalid
        /// Given as an empty value (`rgw:`): enabled with its defaults.
        case defaults
        case fields(Fields)
    }

    func serviceBody(_ node: Node, _ path: KeyPath, keys: [String]) -> ServiceBody {
        if case .scalar(let scalar) = node, case .null? = ScalarValue(scalar), node.anchor == nil { return .defaults }
        guard let fields = mapping(node, path, keys: keys) else { return .invalid }
        return .fields(fields)
    }

    func readServices(_ node: Node, _ path: KeyPath) -> Seed.Services {
        var services = Seed.Services()
        guard let fields = mapping(node, path, keys: ["rbd", "rgw", "cephfs", "nfs", "dashboard", "iscsi"]) else {
            return services
        }
        if let node = fields["rbd"] {
            let servicePath = path.key("rbd")
            switch serviceBody(node, servicePath, keys: ["pools"]) {
            case .invalid: break
            case .defaults: services.rbd = Seed.RBD()
            case .fields(let rbd):
                var service = Seed.RBD()
                let itemsPath = servicePath.key("pools")
                if let node = rbd["pools"], let items = list(node, itemsPath, of: "pool names") {
                    if items.isEmpty {
                        report(node.mark, itemsPath, "is empty; name at least one pool, or leave pools out for [rbd]")
                    }
                    var seen: Set<String> = []
                    service.pools = items.enumerated().compactMap { index, item in
                        guard let name = checked(item, itemsPath.index(index), SeedSyntax.poolNameProblem) else {
                            return nil
                        }
                        if !seen.insert(name).inserted {
                            report(item.mark, itemsPath.index(index), "pool '\(name)' is listed twice")
                        }
                        return name
                    }
                }
                services.rbd = service
            }
        }
        if let node = fields["rgw"] {
            let servicePath = path.key("rgw")
            switch serviceBody(node, servicePath, keys: ["port", "users", "https"]) {
            case .invalid: break
            case .defaults: services.rgw = Seed.RGW()
            case .fields(let rgw):
                var service = Seed.RGW()
                if let node = rgw["port"] {
                    service.port = integer(node, servicePath.key("port"), range: 1...65535, what: "a TCP port")
                        ?? Seed.RGW.defaultPort
                }
                if let node = rgw["users"] { service.users = readS3Users(node, servicePath.key("users")) }
                if let node = rgw["https"] {
                    service.https = readHTTPS(node, servicePath.key("https"), defaultPort: Seed.HTTPS.defaultRGWPort)
                    if let https = service.https, https.port == service.port {
                        report(node.mapping?["port"]?.mark ?? node.mark, servicePath.key("https").key("port"),
                               "is also the HTTP port (\(service.port)); give HTTPS a port of its own, such as 7443")
                    }
                }
                services.rgw = service
            }
        }
        if let node = fields["dashboard"] {
            let servicePath = path.key("dashboard")
            switch serviceBody(node, servicePath, keys: ["port", "certificate", "private_key"]) {
            case .invalid: break
            case .defaults: services.dashboard = Seed.Dashboard()
            case .fields(let dashboard):
                var service = Seed.Dashboard()
                if let node = dashboard["port"] {
                    service.port = integer(node, servicePath.key("port"), range: 1...65535, what: "a TCP port")
                        ?? Seed.Dashboard.defaultPort
                }
                if let node = dashboard["certificate"] {
                    service.certificate = checked(node, servicePath.key("certificate"), SeedSyntax.certificateProblem)
                }
                if let node = dashboard["private_key"] {
                    service.privateKey = checked(node, servicePath.key("private_key"), secret: true, SeedSyntax.rsaPrivateKeyProblem)
                }
                switch (dashboard["certificate"], dashboard["private_key"]) {
                case (.some, nil):
                    report(dashboard.keyMark("certificate"), servicePath.key("private_key"),
                           "is missing: give the certificate's private_key too (or neither, for the cluster's self-signed certificate)")
                case (nil, .some):
                    report(dashboard.keyMark("private_key"), servicePath.key("certificate"),
                           "is missing: give the private_key's certificate too (or neither, for the cluster's self-signed certificate)")
                default:
                    break
                }
                services.dashboard = service
            }
        }
        if let node = fields["cephfs"] {
            let servicePath = path.key("cephfs")
            switch serviceBody(node, servicePath, keys: ["name"]) {
            case .invalid: break
            case .defaults: services.cephfs = Seed.CephFS()
            case .fields(let cephfs):
                var service = Seed.CephFS()
                if let node = cephfs["name"] {
                    service.name = checked(node, servicePath.key("name"), SeedSyntax.poolNameProblem) ?? service.name
                }
                services.cephfs = service
            }
        }
        if let node = fields["nfs"] {
            services.nfs = readNFS(node, path.key("nfs"))
            if services.nfs != nil, services.cephfs == nil {
                report(fields.keyMark("nfs"), path.key("nfs"), "exports CephFS subvolumes: add cephfs (for example "
                       + "cephfs: {name: cephfs}) to the services")
            }
        }
        if let node = fields["iscsi"] {
            services.iscsi = readISCSI(node, path.key("iscsi"), pools: services.rbd?.pools)
            if services.iscsi != nil, services.rbd == nil {
                report(fields.keyMark("iscsi"), path.key("iscsi"), "serves RBD images: add rbd (for example "
                       + "rbd: {pools: [rbd]}) to the services")
            }
        }
        return services
    }

    /// `services.iscsi`: a target name and at least one disk, each pool/name once, in a pool of `services.rbd`.
    func readISCSI(_ node: Node, _ path: KeyPath, pools: [String]?) -> Seed.ISCSI? {
        guard let fields = mapping(node, path, keys: ["target", "disks"]) else { return nil }
        var service = Seed.ISCSI()
        if let node = fields["target"] {
            service.target = checked(node, path.key("target"), SeedSyntax.iqnProblem) ?? service.target
        }
        let disksPath = path.key("disks")
        guard let node = required(fields, "disks"), let items = list(node, disksPath, of: "disks") else { return service }
        if items.isEmpty { report(node.mark, disksPath, "is empty; give at least one disk (- {name: vol1, size: 100GiB})") }
        var images: Set<String> = []
        service.disks = items.enumerated().compactMap { index, item in
            let itemPath = disksPath.index(index)
            guard let disk = mapping(item, itemPath, keys: ["name", "pool", "size"]),
                  let nameNode = required(disk, "name"),
                  let name = checked(nameNode, itemPath.key("name"), SeedSyntax.poolNameProblem),
                  let sizeNode = required(disk, "size"),
                  let size = size(sizeNode, itemPath.key("size")) else { return nil }
            var pool = pools?.first ?? "rbd"
            if let node = disk["pool"] {
                guard let name = checked(node, itemPath.key("pool"), SeedSyntax.poolNameProblem) else { return nil }
                if let pools, !pools.contains(name) {
                    report(node.mark, itemPath.key("pool"), "pool '\(name)' is not one of services.rbd.pools ("
                           + pools.joined(separator: ", ") + "); add it there")
                }
                pool = name
            }
            if size < Seed.ISCSI.minimumDiskSize {
                report(sizeNode.mark, itemPath.key("size"), "\(SeedSyntax.describeSize(size)) is too small for a disk; "
                       + "give at least 1MiB")
            }
            let entry = Seed.ISCSIDisk(name: name, pool: pool, size: size)
            if !images.insert(entry.image).inserted {
                report(nameNode.mark, itemPath.key("name"), "disk '\(entry.image)' is listed twice")
            }
            return entry
        }
        return service
    }

    /// `https: {port, certificate, private_key}`: PEM blocks as a YAML literal block (`certificate: |`).
    func readHTTPS(_ node: Node, _ path: KeyPath, defaultPort: Int) -> Seed.HTTPS? {
        guard let fields = mapping(node, path, keys: ["port", "certificate", "private_key"]) else { return nil }
        var port = defaultPort
        if let node = fields["port"] { port = integer(node, path.key("port"), range: 1...65535, what: "a TCP port") ?? defaultPort }
        let certificate = required(fields, "certificate").flatMap { checked($0, path.key("certificate"), SeedSyntax.certificateProblem) }
        let key = required(fields, "private_key").flatMap {
            checked($0, path.key("private_key"), secret: true, SeedSyntax.privateKeyProblem)
        }
        guard let certificate, let key else { return nil }
        return Seed.HTTPS(port: port, certificate: certificate, privateKey: key)
    }

    /// `services.nfs`: at least one export, each name once.
    func readNFS(_ node: Node, _ path: KeyPath) -> Seed.NFS? {
        guard let fields = mapping(node, path, keys: ["virtual_ip", "versions", "exports"]) else { return nil }
        var service = Seed.NFS()
        if let node = fields["virtual_ip"] { service.virtualIP = address(node, path.key("virtual_ip")) }
        if let node = fields["versions"], let items = list(node, path.key("versions"), of: "NFS versions") {
            let versionsPath = path.key("versions")
            service.versions = items.enumerated().compactMap { index, item in
                let text: String?
                switch scalar(item, versionsPath.index(index)) {
                case .float(let value)?, .string(let value)?, .int(let value)?: text = value
                default: text = nil
                }
                guard let text, Seed.NFS.allowedVersions.contains(text) else {
                    report(item.mark, versionsPath.index(index), "expected an NFS version: "
                           + Seed.NFS.allowedVersions.joined(separator: ", "))
                    return nil
                }
                return text
            }
            if items.isEmpty { report(node.mark, versionsPath, "is empty; leave versions out for 4.1 and 4.2") }
        }
        let exportsPath = path.key("exports")
        if let node = required(fields, "exports"), let items = list(node, exportsPath, of: "exports") {
            if items.isEmpty { report(node.mark, exportsPath, "is empty; give at least one export (- name: shared)") }
            var names: Set<String> = []
            service.exports = items.enumerated().compactMap { index, item in
                let itemPath = exportsPath.index(index)
                guard let export = mapping(item, itemPath, keys: ["name", "access", "clients", "size"]),
                      let nameNode = required(export, "name"),
                      let name = checked(nameNode, itemPath.key("name"), SeedSyntax.poolNameProblem) else { return nil }
                if !names.insert(name).inserted { report(nameNode.mark, itemPath.key("name"), "export '\(name)' is listed twice") }
                var entry = Seed.NFSExport(name: name)
                if let node = export["access"] {
                    entry.access = enumeration(node, itemPath.key("access"), Seed.NFSExport.Access.self) ?? .rw
                }
                if let node = export["clients"], let networks = list(node, itemPath.key("clients"), of: "networks") {
                    entry.clients = networks.enumerated().compactMap { position, network in
                        cidr(network, itemPath.key("clients").index(position))
                    }
                }
                if let node = export["size"] { entry.size = size(node, itemPath.key("size")) }
                return entry
            }
        }
        return service
    }

    /// The NFS floating address must be in the public network, where the NFS nodes hold their own addresses.
    func checkVirtualIP(_ services: Seed.Services, publicNetwork: IPNetwork?, servicesNode: Node?, path: KeyPath) {
        guard let address = services.nfs?.virtualIP, let publicNetwork, !publicNetwork.contains(address) else { return }
        let node = servicesNode?.mapping?["nfs"]?.mapping?["virtual_ip"]
        report(node?.mark ?? servicesNode?.mark, path.key("nfs").key("virtual_ip"),
               "\(address) is not in the public network \(publicNetwork); the NFS nodes announce it there")
    }

    static let s3UserKeys = ["name", "buckets", "quota"]

    /// `services.rgw.users`: each user once, each bucket once over all users (S3 bucket names are global).
    func readS3Users(_ node: Node, _ path: KeyPath) -> [Seed.S3User] {
        guard let items = list(node, path, of: "S3 users") else { return [] }
        var names: Set<String> = []
        var buckets: [String: String] = [:]
        return items.enumerated().compactMap { index, item in
            let itemPath = path.index(index)
            guard let fields = mapping(item, itemPath, keys: Self.s3UserKeys),
                  let nameNode = required(fields, "name"),
                  let name = checked(nameNode, itemPath.key("name"), SeedSyntax.s3UserProblem) else { return nil }
            if !names.insert(name).inserted { report(nameNode.mark, itemPath.key("name"), "S3 user '\(name)' is listed twice") }
            var user = Seed.S3User(name: name)
            let bucketsPath = itemPath.key("buckets")
            if let node = fields["buckets"], let entries = list(node, bucketsPath, of: "bucket names") {
                user.buckets = entries.enumerated().compactMap { position, entry in
                    guard let bucket = checked(entry, bucketsPath.index(position), SeedSyntax.bucketNameProblem) else { return nil }
                    if let owner = buckets[bucket] {
                        report(entry.mark, bucketsPath.index(position), owner == name
                               ? "bucket '\(bucket)' is listed twice" : "bucket '\(bucket)' is already S3 user '\(owner)'s; bucket names are global")
                        return nil
                    }
                    buckets[bucket] = name
                    return bucket
                }
            }
            if let node = fields["quota"] {
                let quotaPath = itemPath.key("quota")
                if let quota = mapping(node, quotaPath, keys: ["max_size", "max_objects", "soft_max_size", "soft_max_objects"]) {
                    var limits = Seed.S3Quota()
                    if let node = quota["max_size"] { limits.maxSize = size(node, quotaPath.key("max_size")) }
                    if let node = quota["max_objects"] {
                        limits.maxObjects = integer(node, quotaPath.key("max_objects"), range: 1...Int(Int32.max), what: "a number of objects")
                    }
                    if let node = quota["soft_max_size"] { limits.softMaxSize = size(node, quotaPath.key("soft_max_size")) }
                    if let node = quota["soft_max_objects"] {
                        limits.softMaxObjects = integer(node, quotaPath.key("soft_max_objects"), range: 1...Int(Int32.max),
                                                        what: "a number of objects")
                    }
                    if ["max_size", "max_objects", "soft_max_size", "soft_max_objects"].allSatisfy({ quota[$0] == nil }) {
                        report(node.mark, quotaPath, "names no limit; give max_size (for example 500GiB), max_objects, or both, "
                               + "with soft_max_size or soft_max_objects to be warned first, or leave quota out")
                    }
                    if let soft = limits.softMaxSize, let hard = limits.maxSize, soft > hard, let node = quota["soft_max_size"] {
                        report(node.mark, quotaPath.key("soft_max_size"), "\(SeedSyntax.describeSize(soft)) is above max_size "
                               + "(\(SeedSyntax.describeSize(hard))); the soft limit warns before the hard one refuses: make it smaller")
                    }
                    if let soft = limits.softMaxObjects, let hard = limits.maxObjects, soft > hard, let node = quota["soft_max_objects"] {
                        report(node.mark, quotaPath.key("soft_max_objects"), "\(soft) is above max_objects (\(hard)); the soft "
                               + "limit warns before the hard one refuses: make it smaller")
                    }
                    if limits != Seed.S3Quota() { user.quota = limits }
                }
            }
            return user
        }
    }
}
