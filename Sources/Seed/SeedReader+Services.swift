import Foundation
import Yams

/// The seed file v1 schema, continued: `cluster.services` (RBD, RGW with its S3 users, CephFS, NFS, iSCSI, the
/// dashboard) and the checks between services.
extension SeedReader {
    // MARK: services

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
        guard let fields = mapping(node, path, keys: ["target", "disks", "mutual_chap", "clients"]) else { return nil }
        var service = Seed.ISCSI()
        if let node = fields["target"] {
            service.target = checked(node, path.key("target"), SeedSyntax.iqnProblem) ?? service.target
        }
        if let node = fields["mutual_chap"] { service.mutualChap = bool(node, path.key("mutual_chap")) ?? false }
        service.disks = readISCSIDisks(fields, path, pools: pools)
        if let node = fields["clients"] { service.clients = readISCSIClients(node, path.key("clients"), service: service) }
        return service
    }

    /// `services.iscsi.disks`: at least one, each pool/name once, in a pool of `services.rbd`.
    func readISCSIDisks(_ fields: Fields, _ path: KeyPath, pools: [String]?) -> [Seed.ISCSIDisk] {
        let disksPath = path.key("disks")
        guard let node = required(fields, "disks"), let items = list(node, disksPath, of: "disks") else { return [] }
        if items.isEmpty { report(node.mark, disksPath, "is empty; give at least one disk (- {name: vol1, size: 100GiB})") }
        var images: Set<String> = []
        return items.enumerated().compactMap { index, item in
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
    }

    /// `services.iscsi.clients`: each initiator once (not the target's own name), its disks among the service's (by
    /// name or pool/name; default all of them), its `mutual_chap` defaulting to the service's.
    func readISCSIClients(_ node: Node, _ path: KeyPath, service: Seed.ISCSI) -> [Seed.ISCSIClient] {
        guard let items = list(node, path, of: "clients") else { return [] }
        if items.isEmpty {
            report(node.mark, path, "is empty; leave clients out to let every initiator with the target's CHAP credentials "
                   + "log in, or list each initiator (- {iqn: iqn.1994-05.com.redhat:host1})")
        }
        var seen: Set<String> = []
        return items.enumerated().compactMap { index, item in
            let itemPath = path.index(index)
            guard let client = mapping(item, itemPath, keys: ["iqn", "disks", "mutual_chap"]),
                  let iqnNode = required(client, "iqn"),
                  let iqn = checked(iqnNode, itemPath.key("iqn"), SeedSyntax.iqnProblem) else { return nil }
            if iqn == service.target {
                report(iqnNode.mark, itemPath.key("iqn"), "'\(iqn)' is the target's own name; give the initiator's "
                       + "(its InitiatorName, in /etc/iscsi/initiatorname.iscsi on Linux)")
            }
            if !seen.insert(iqn).inserted { report(iqnNode.mark, itemPath.key("iqn"), "initiator '\(iqn)' is listed twice") }
            var disks = service.disks.map(\.image)
            if let node = client["disks"], let names = list(node, itemPath.key("disks"), of: "disks") {
                if names.isEmpty {
                    report(node.mark, itemPath.key("disks"), "is empty; leave disks out for every disk of the target, or "
                           + "name the disks this initiator sees ([vol1])")
                }
                disks = []
                for (position, nameNode) in names.enumerated() {
                    guard let name = string(nameNode, itemPath.key("disks").index(position)) else { continue }
                    guard let disk = service.disks.first(where: { $0.image == name || $0.name == name }) else {
                        report(nameNode.mark, itemPath.key("disks").index(position), "'\(SeedSyntax.printable(name))' is not one of "
                               + "services.iscsi.disks (" + service.disks.map(\.name).joined(separator: ", ") + ")")
                        continue
                    }
                    if service.disks.filter({ $0.name == name }).count > 1 {
                        report(nameNode.mark, itemPath.key("disks").index(position), "'\(name)' names disks in several "
                               + "pools; write pool/name")
                    }
                    if disks.contains(disk.image) {
                        report(nameNode.mark, itemPath.key("disks").index(position), "disk '\(disk.image)' is listed twice")
                    }
                    disks.append(disk.image)
                }
                let order = service.disks.map(\.image)
                disks = order.filter { disks.contains($0) }
            }
            var mutual = service.mutualChap
            if let node = client["mutual_chap"] { mutual = bool(node, itemPath.key("mutual_chap")) ?? mutual }
            return Seed.ISCSIClient(iqn: iqn, disks: disks, mutualChap: mutual)
        }
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
