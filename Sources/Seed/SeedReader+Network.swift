import Foundation
import Yams

/// The seed file v1 schema, continued: the network and disks sections.
extension SeedReader {
    // MARK: network

    func readNetwork(_ node: Node, _ path: KeyPath) -> Seed.Network {
        var network = Seed.Network()
        guard let fields = mapping(node, path, keys: ["interfaces", "nameservers", "public_network", "cluster_network"])
        else { return network }
        if let node = fields["interfaces"], let items = list(node, path.key("interfaces"), of: "interfaces") {
            var selectors: [Seed.InterfaceSelector: Int] = [:]
            var addresses: [IPAddress: Int] = [:]
            for (index, item) in items.enumerated() {
                let itemPath = path.key("interfaces").index(index)
                guard let interface = readInterface(item, itemPath) else { continue }
                if let first = selectors[interface.selector] {
                    let (key, shown): (String, String) = switch interface.selector {
                    case .name(let name): ("name", name)
                    case .mac(let mac): ("mac", mac)
                    }
                    report(item.mapping?[key]?.mark ?? item.mark, itemPath.key(key),
                           "interface '\(shown)' is already configured in network.interfaces[\(first)]")
                } else {
                    selectors[interface.selector] = index
                }
                for address in interface.addresses {
                    if let first = addresses[address.address] {
                        report(item.mapping?["addresses"]?.mark ?? item.mark, itemPath.key("addresses"),
                               "address \(address.address) is already given to network.interfaces[\(first)]")
                    } else {
                        addresses[address.address] = index
                    }
                }
                network.interfaces.append(interface)
            }
        }
        if let node = fields["nameservers"], let items = list(node, path.key("nameservers"), of: "IP addresses") {
            network.nameservers = items.enumerated().compactMap { index, item in
                address(item, path.key("nameservers").index(index))
            }
        }
        if let node = fields["public_network"] { network.publicNetwork = cidr(node, path.key("public_network")) }
        if let node = fields["cluster_network"] { network.clusterNetwork = cidr(node, path.key("cluster_network")) }
        return network
    }

    func address(_ node: Node, _ path: KeyPath) -> IPAddress? {
        parsed(node, path) { text in
            IPAddress(text).map { .success($0) } ?? .failure(Problem(
                "'\(SeedSyntax.printable(text))' is not an IP address such as 10.0.0.1 or fd00::1"))
        }
    }

    func cidr(_ node: Node, _ path: KeyPath) -> IPNetwork? {
        parsed(node, path) { text in
            guard let parsed = InterfaceAddress(text) else {
                return .failure(Problem("'\(SeedSyntax.printable(text))' is not a network in CIDR notation, such as "
                                        + "10.0.0.0/24 or fd00:1::/64"))
            }
            guard parsed.address == parsed.network.address else {
                return .failure(Problem("'\(text)' has host bits set; the network is \(parsed.network)"))
            }
            return .success(parsed.network)
        }
    }

    /// An address with its prefix length (`10.1.0.11/24`); for IPv4 not the network or broadcast address of its subnet.
    func interfaceAddress(_ node: Node, _ path: KeyPath) -> InterfaceAddress? {
        parsed(node, path) { text in
            guard let value = InterfaceAddress(text) else {
                return .failure(Problem("'\(SeedSyntax.printable(text))' is not an address with a prefix "
                                        + "length, such as 10.1.0.11/24 or fd00:1::11/64"))
            }
            if value.address.family == .v4, value.prefixLength <= 30 {
                if value.address == value.network.address {
                    return .failure(Problem("\(value) is the network address of its subnet; give this "
                                            + "node's own address"))
                }
                if value.address == value.address.filled(from: value.prefixLength) {
                    return .failure(Problem("\(value) is the broadcast address of its subnet; give this "
                                            + "node's own address"))
                }
            }
            return .success(value)
        }
    }

    func readInterface(_ node: Node, _ path: KeyPath) -> Seed.Interface? {
        guard let fields = mapping(node, path, keys: ["name", "mac", "dhcp", "addresses", "gateway", "mtu"]) else {
            return nil
        }
        let before = issues.count
        var selector: Seed.InterfaceSelector?
        switch (fields["name"], fields["mac"]) {
        case (.some, .some):
            report(fields.keyMark("mac"), path.key("mac"), "give either name or mac to select the interface, not both")
        case (.some(let node), nil):
            selector = checked(node, path.key("name"), SeedSyntax.interfaceNameProblem).map { .name($0) }
        case (nil, .some(let node)):
            selector = parsed(node, path.key("mac")) { text in
                SeedSyntax.normalizedMAC(text).map { .success(.mac($0)) }
                    ?? .failure(Problem("'\(SeedSyntax.printable(text))' is not a MAC address such as 52:54:00:12:34:56"))
            }
        case (nil, nil):
            report(node.mark, path.key("name"), "required key is missing: give name (e.g. eno1) or mac to select the interface")
        }
        var interface = Seed.Interface(selector: selector ?? .name(""))
        if let node = fields["dhcp"] { interface.dhcp = bool(node, path.key("dhcp")) ?? false }
        var addressesOK = true
        if let node = fields["addresses"], let items = list(node, path.key("addresses"), of: "addresses with a prefix length") {
            for (index, item) in items.enumerated() {
                let parsedAddress = interfaceAddress(item, path.key("addresses").index(index))
                if let parsedAddress { interface.addresses.append(parsedAddress) } else { addressesOK = false }
            }
        } else if fields["addresses"] != nil {
            addressesOK = false
        }
        if let node = fields["gateway"], let gateway = address(node, path.key("gateway")) {
            interface.gateway = gateway
            if addressesOK {
                let sameFamily = interface.addresses.filter { $0.address.family == gateway.family }
                if interface.addresses.isEmpty {
                    report(node.mark, path.key("gateway"), "a gateway needs a static address on this interface "
                           + "(with dhcp the gateway comes from the DHCP server)")
                } else if sameFamily.contains(where: { $0.address == gateway }) {
                    report(node.mark, path.key("gateway"), "\(gateway) is this interface's own address, not a gateway")
                } else if !sameFamily.contains(where: { $0.network.contains(gateway) }) {
                    let subnets = sameFamily.map { $0.network.description }
                    report(node.mark, path.key("gateway"), subnets.isEmpty
                           ? "\(gateway) has no address of its family on this interface"
                           : "\(gateway) is outside the interface's subnet\(subnets.count > 1 ? "s" : "") "
                             + subnets.joined(separator: ", "))
                }
            }
        }
        if let node = fields["mtu"] {
            interface.mtu = integer(node, path.key("mtu"), range: 68...9216, what: "an MTU")
            if let mtu = interface.mtu, mtu < 1280, interface.addresses.contains(where: { $0.address.family == .v6 }) {
                report(node.mark, path.key("mtu"), "\(mtu) is below 1280, the minimum MTU for IPv6")
            }
        }
        if !interface.dhcp, interface.addresses.isEmpty, addressesOK, issues.count == before {
            report(node.mark, path, "has neither dhcp: true nor addresses; say how the interface gets its address")
        }
        return issues.count == before ? interface : nil
    }

    // MARK: disks

    static let matchKeys = ["by_id", "serial", "wwn", "model", "transport", "rotational", "min_size", "max_size"]

    func readDisks(_ node: Node, _ path: KeyPath) -> Seed.Disks {
        var disks = Seed.Disks()
        guard let fields = mapping(node, path, keys: ["system", "storage", "models"]) else { return disks }
        if let node = fields["models"] { disks.models = readModels(node, path.key("models")) }
        if let node = fields["system"] {
            let systemPath = path.key("system")
            if let system = mapping(node, systemPath, keys: ["match", "prefer", "wipe", "filesystem"]) {
                let match = system["match"].flatMap { readMatch($0, systemPath.key("match"), defaultMin: true) }
                    ?? DiskMatch(minSize: Seed.SystemDisk.defaultMinSize)
                disks.system.match = match
                if let node = system["prefer"] {
                    disks.system.prefer = enumeration(node, systemPath.key("prefer"), DiskPreference.self) ?? .smallest
                }
                if let node = system["wipe"] {
                    disks.system.wipe = enumeration(node, systemPath.key("wipe"), WipePolicy.self) ?? .never
                }
                if let node = system["filesystem"] {
                    disks.system.filesystem = enumeration(node, systemPath.key("filesystem"), FilesystemKind.self) ?? .xfs
                }
            }
        }
        if let node = fields["storage"] {
            let storagePath = path.key("storage")
            if let storage = mapping(node, storagePath, keys: ["match", "wipe"]) {
                disks.storage.match = storage["match"].flatMap { readMatch($0, storagePath.key("match"), defaultMin: false) }
                    ?? DiskMatch()
                if let node = storage["wipe"] {
                    disks.storage.wipe = enumeration(node, storagePath.key("wipe"), WipePolicy.self) ?? .never
                }
            }
        }
        return disks
    }

    /// `disks.models`: `allow` and `deny`, lists of rules with vendor, model and firmware globs (at least one) and
    /// a reason (required to deny).
    func readModels(_ node: Node, _ path: KeyPath) -> Seed.DiskModels {
        var models = Seed.DiskModels()
        guard let fields = mapping(node, path, keys: ["allow", "deny"]) else { return models }
        func rules(_ key: String) -> [Seed.DiskModelRule] {
            guard let node = fields[key], let items = list(node, path.key(key), of: "disk model rules") else { return [] }
            return items.enumerated().compactMap { index, item in
                let itemPath = path.key(key).index(index)
                guard let rule = mapping(item, itemPath, keys: ["vendor", "model", "firmware", "reason"]) else { return nil }
                var result = Seed.DiskModelRule()
                if let node = rule["vendor"] { result.vendor = checked(node, itemPath.key("vendor"), SeedSyntax.globProblem) }
                if let node = rule["model"] { result.model = checked(node, itemPath.key("model"), SeedSyntax.globProblem) }
                if let node = rule["firmware"] { result.firmware = checked(node, itemPath.key("firmware"), SeedSyntax.globProblem) }
                if let node = rule["reason"] { result.reason = string(node, itemPath.key("reason")) }
                if rule["vendor"] == nil && rule["model"] == nil && rule["firmware"] == nil {
                    report(item.mark, itemPath, "names no disk: give vendor, model or firmware (shell globs)")
                    return nil
                }
                if key == "deny", rule["reason"] == nil {
                    report(item.mark, itemPath, "needs a reason: the plan shows it for every disk this rule keeps out")
                    return nil
                }
                return result
            }
        }
        models.allow = rules("allow")
        models.deny = rules("deny")
        return models
    }

    func size(_ node: Node, _ path: KeyPath) -> UInt64? {
        // A bare number is a size without its unit, not text that lost its quotes.
        if case .scalar(let scalar) = node, case .int(let digits)? = ScalarValue(scalar) {
            report(node.mark, path, "\(digits) is a size without a unit: write \(digits)GB or \(digits)GiB (or MB, MiB, TB, TiB, ...)")
            return nil
        }
        return parsed(node, path) { text in
            SeedSyntax.parseSize(text).mapError { Problem($0.message) }
        }
    }

    func readMatch(_ node: Node, _ path: KeyPath, defaultMin: Bool) -> DiskMatch? {
        guard let fields = mapping(node, path, keys: Self.matchKeys) else { return nil }
        var match = DiskMatch()
        if let node = fields["by_id"] { match.byId = checked(node, path.key("by_id"), SeedSyntax.byIdProblem) }
        if let node = fields["serial"] { match.serial = checked(node, path.key("serial"), SeedSyntax.globProblem) }
        if let node = fields["wwn"] { match.wwn = checked(node, path.key("wwn"), SeedSyntax.wwnProblem) }
        if let node = fields["model"] { match.model = checked(node, path.key("model"), SeedSyntax.globProblem) }
        if let node = fields["transport"], let items = list(node, path.key("transport"), of: "transports") {
            let transports = items.enumerated().compactMap { index, item in
                enumeration(item, path.key("transport").index(index), DiskTransport.self)
            }
            if items.isEmpty {
                report(node.mark, path.key("transport"), "is an empty list, which no disk matches; leave the key out "
                       + "to allow any transport")
            }
            match.transport = transports
        }
        if let node = fields["rotational"] { match.rotational = bool(node, path.key("rotational")) }
        if let node = fields["min_size"] { match.minSize = size(node, path.key("min_size")) }
        if let node = fields["max_size"] { match.maxSize = size(node, path.key("max_size")) }
        if let node = fields["min_size"], fields["max_size"] != nil, let min = match.minSize, let max = match.maxSize,
           min > max {
            report(node.mark, path.key("min_size"), "min_size \(SeedSyntax.describeSize(min)) is larger than "
                   + "max_size \(SeedSyntax.describeSize(max))")
        }
        if defaultMin, match.minSize == nil, fields["min_size"] == nil {
            match.minSize = Seed.SystemDisk.defaultMinSize
            if let max = match.maxSize, max < Seed.SystemDisk.defaultMinSize, let node = fields["max_size"] {
                report(node.mark, path.key("max_size"), "max_size \(SeedSyntax.describeSize(max)) is below the "
                       + "default min_size 10GiB; set min_size as well")
            }
        }
        return match
    }
}
