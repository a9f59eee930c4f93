import Foundation

// Seeds as YAML text, for the seeds `aquarium-image rack seeds` writes: every key the seed's model holds, defaults left
// out, in the order of docs/seed.md. `SeedLoader` reads the text back to the same `Seed` (the tests check that for every
// example; `rack seeds` checks it for every seed it writes).

extension Seed {
    /// The seed as a seed file, with `header` as comment lines on top.
    public func yamlText(header: [String] = []) -> String {
        var yaml = YAMLText()
        for line in header { yaml.comment(line) }
        yaml.key(0, "version", "\(version)")
        renderHost(&yaml)
        renderNetwork(&yaml)
        renderDisks(&yaml)
        renderCluster(&yaml)
        if let expires { yaml.entry(0, "expires", expires.text) }
        return yaml.text
    }

    private func renderHost(_ yaml: inout YAMLText) {
        yaml.key(0, "host")
        yaml.entry(1, "hostname", host.hostname)
        if let timezone = host.timezone { yaml.entry(1, "timezone", timezone) }
        if !host.ntpServers.isEmpty { yaml.key(1, "ntp_servers", YAMLText.flowList(host.ntpServers)) }
        if !host.users.isEmpty {
            yaml.key(1, "users")
            for user in host.users {
                yaml.item(2, "name: " + YAMLText.scalar(user.name))
                if let hash = user.passwordHash { yaml.entry(3, "password_hash", hash) }
                if !user.sshAuthorizedKeys.isEmpty {
                    yaml.key(3, "ssh_authorized_keys")
                    for key in user.sshAuthorizedKeys { yaml.item(4, YAMLText.scalar(key)) }
                }
            }
        }
        if let machine = host.machine {
            yaml.key(1, "machine")
            if let serial = machine.serial { yaml.entry(2, "serial", serial) }
            if let mac = machine.mac { yaml.entry(2, "mac", mac) }
        }
        if let reinstall = host.reinstall { yaml.entry(1, "reinstall", reinstall) }
        let requirements = host.requirements
        if requirements != Requirements() {
            yaml.key(1, "requirements")
            if requirements.cpuThreads != Requirements.minimumCPUThreads { yaml.key(2, "cpu_threads", "\(requirements.cpuThreads)") }
            if requirements.memory != Requirements.minimumMemory {
                yaml.entry(2, "memory", SeedSyntax.describeSize(requirements.memory))
            }
            if requirements.memoryPerOSD != Requirements.minimumMemoryPerOSD {
                yaml.entry(2, "memory_per_osd", SeedSyntax.describeSize(requirements.memoryPerOSD))
            }
            if let disks = requirements.storageDisks { yaml.key(2, "storage_disks", "\(disks)") }
        }
    }

    private func renderNetwork(_ yaml: inout YAMLText) {
        guard network != Network() else { return }
        yaml.key(0, "network")
        if !network.interfaces.isEmpty {
            yaml.key(1, "interfaces")
            for interface in network.interfaces {
                switch interface.selector {
                case .name(let name): yaml.item(2, "name: " + YAMLText.scalar(name))
                case .mac(let mac): yaml.item(2, "mac: " + YAMLText.scalar(mac))
                }
                if interface.dhcp { yaml.key(3, "dhcp", "true") }
                if !interface.addresses.isEmpty {
                    yaml.key(3, "addresses", YAMLText.flowList(interface.addresses.map(\.description)))
                }
                if let gateway = interface.gateway { yaml.entry(3, "gateway", gateway.description) }
                if let mtu = interface.mtu { yaml.key(3, "mtu", "\(mtu)") }
            }
        }
        if !network.nameservers.isEmpty {
            yaml.key(1, "nameservers", YAMLText.flowList(network.nameservers.map(\.description)))
        }
        if let publicNetwork = network.publicNetwork { yaml.entry(1, "public_network", publicNetwork.description) }
        if let clusterNetwork = network.clusterNetwork { yaml.entry(1, "cluster_network", clusterNetwork.description) }
    }

    private func renderDisks(_ yaml: inout YAMLText) {
        guard disks != Disks() else { return }
        yaml.key(0, "disks")
        let system = disks.system
        if system != SystemDisk() {
            yaml.key(1, "system")
            if system.match != SystemDisk().match { render(system.match, indent: 2, into: &yaml) }
            if system.prefer != .smallest { yaml.key(2, "prefer", system.prefer.rawValue) }
            if system.wipe != .never { yaml.key(2, "wipe", system.wipe.rawValue) }
            if system.filesystem != .xfs { yaml.key(2, "filesystem", system.filesystem.rawValue) }
        }
        let storage = disks.storage
        if storage != StorageDisks() {
            yaml.key(1, "storage")
            if !storage.match.isEmpty { render(storage.match, indent: 2, into: &yaml) }
            if storage.wipe != .never { yaml.key(2, "wipe", storage.wipe.rawValue) }
        }
        if !disks.models.isEmpty {
            yaml.key(1, "models")
            for (key, rules) in [("allow", disks.models.allow), ("deny", disks.models.deny)] where !rules.isEmpty {
                yaml.key(2, key)
                for rule in rules {
                    let pairs = [("vendor", rule.vendor), ("model", rule.model), ("firmware", rule.firmware), ("reason", rule.reason)]
                    yaml.item(3, YAMLText.flowMapping(pairs.compactMap { name, value in value.map { (name, $0) } }))
                }
            }
        }
    }

    private func render(_ match: DiskMatch, indent: Int, into yaml: inout YAMLText) {
        yaml.key(indent, "match")
        if let byId = match.byId { yaml.entry(indent + 1, "by_id", byId) }
        if let serial = match.serial { yaml.entry(indent + 1, "serial", serial) }
        if let wwn = match.wwn { yaml.entry(indent + 1, "wwn", wwn) }
        if let model = match.model { yaml.entry(indent + 1, "model", model) }
        if let transport = match.transport { yaml.key(indent + 1, "transport", YAMLText.flowList(transport.map(\.rawValue))) }
        if let rotational = match.rotational { yaml.key(indent + 1, "rotational", rotational ? "true" : "false") }
        if let size = match.minSize { yaml.entry(indent + 1, "min_size", SeedSyntax.describeSize(size)) }
        if let size = match.maxSize { yaml.entry(indent + 1, "max_size", SeedSyntax.describeSize(size)) }
    }

    private func renderCluster(_ yaml: inout YAMLText) {
        yaml.key(0, "cluster")
        yaml.entry(1, "name", cluster.name)
        yaml.key(1, "role", cluster.role.rawValue)
        if let join = cluster.join {
            yaml.key(1, "join")
            yaml.entry(2, "address", join.address.description)
            yaml.entry(2, "token", join.token)
        }
        if let rack = cluster.rack {
            yaml.key(1, "rack")
            yaml.entry(2, "fsid", rack.fsid)
            yaml.key(2, "monitors")
            for monitor in rack.monitors {
                yaml.item(3, YAMLText.flowMapping([("host", monitor.host), ("address", monitor.address.description)]))
            }
            yaml.entry(2, "join_key", rack.joinKey)
            if let key = rack.monitorKey { yaml.entry(2, "monitor_key", key) }
            if let key = rack.adminKey { yaml.entry(2, "admin_key", key) }
            if let lifetime = rack.joinKeyLifetime { yaml.entry(2, "join_key_lifetime", SeedSyntax.lifetimeText(lifetime)) }
        }
        let services = cluster.services
        if services != Services() {
            yaml.key(1, "services")
            if let rbd = services.rbd { yaml.key(2, "rbd", "{pools: \(YAMLText.flowList(rbd.pools))}") }
            if let rgw = services.rgw {
                if rgw.users.isEmpty && rgw.https == nil {
                    yaml.key(2, "rgw", "{port: \(rgw.port)}")
                } else {
                    yaml.key(2, "rgw")
                    yaml.key(3, "port", String(rgw.port))
                    if let https = rgw.https {
                        yaml.key(3, "https")
                        yaml.key(4, "port", String(https.port))
                        yaml.literal(4, "certificate", https.certificate)
                        yaml.literal(4, "private_key", https.privateKey)
                    }
                    if !rgw.users.isEmpty { yaml.key(3, "users") }
                    for user in rgw.users {
                        var parts = ["name: " + YAMLText.scalar(user.name)]
                        if !user.buckets.isEmpty { parts.append("buckets: " + YAMLText.flowList(user.buckets)) }
                        if let quota = user.quota {
                            var limits: [String] = []
                            if let size = quota.maxSize { limits.append("max_size: " + SeedSyntax.describeSize(size)) }
                            if let objects = quota.maxObjects { limits.append("max_objects: \(objects)") }
                            if let size = quota.softMaxSize { limits.append("soft_max_size: " + SeedSyntax.describeSize(size)) }
                            if let objects = quota.softMaxObjects { limits.append("soft_max_objects: \(objects)") }
                            parts.append("quota: {" + limits.joined(separator: ", ") + "}")
                        }
                        yaml.item(4, "{" + parts.joined(separator: ", ") + "}")
                    }
                }
            }
            if let cephfs = services.cephfs { yaml.key(2, "cephfs", YAMLText.flowMapping([("name", cephfs.name)])) }
            if let nfs = services.nfs {
                yaml.key(2, "nfs")
                if let address = nfs.virtualIP { yaml.entry(3, "virtual_ip", address.description) }
                if nfs.versions != Seed.NFS.defaultVersions {
                    yaml.key(3, "versions", "[" + nfs.versions.joined(separator: ", ") + "]")
                }
                yaml.key(3, "exports")
                for export in nfs.exports {
                    var parts = ["name: " + YAMLText.scalar(export.name)]
                    if export.access != .rw { parts.append("access: " + export.access.rawValue) }
                    if !export.clients.isEmpty { parts.append("clients: " + YAMLText.flowList(export.clients.map(\.description))) }
                    if let size = export.size { parts.append("size: " + SeedSyntax.describeSize(size)) }
                    yaml.item(4, "{" + parts.joined(separator: ", ") + "}")
                }
            }
            if let iscsi = services.iscsi {
                yaml.key(2, "iscsi")
                if iscsi.target != Seed.ISCSI.defaultTarget { yaml.entry(3, "target", iscsi.target) }
                yaml.key(3, "disks")
                for disk in iscsi.disks {
                    yaml.item(4, "{name: " + YAMLText.scalar(disk.name) + ", pool: " + YAMLText.scalar(disk.pool)
                              + ", size: " + SeedSyntax.describeSize(disk.size) + "}")
                }
                if iscsi.mutualChap { yaml.key(3, "mutual_chap", "true") }
                if !iscsi.clients.isEmpty {
                    yaml.key(3, "clients")
                    for client in iscsi.clients {
                        var parts = ["iqn: " + YAMLText.scalar(client.iqn)]
                        if client.disks != iscsi.disks.map(\.image) { parts.append("disks: " + YAMLText.flowList(client.disks)) }
                        if client.mutualChap != iscsi.mutualChap { parts.append("mutual_chap: \(client.mutualChap)") }
                        yaml.item(4, "{" + parts.joined(separator: ", ") + "}")
                    }
                }
            }
            if let dashboard = services.dashboard {
                if let certificate = dashboard.certificate, let key = dashboard.privateKey {
                    yaml.key(2, "dashboard")
                    yaml.key(3, "port", String(dashboard.port))
                    yaml.literal(3, "certificate", certificate)
                    yaml.literal(3, "private_key", key)
                } else {
                    yaml.key(2, "dashboard", "{port: \(dashboard.port)}")
                }
            }
        }
        if cluster.telemetry { yaml.key(1, "telemetry", "true") }
    }
}

extension SeedSyntax {
    /// A lifetime in seconds as `lifetime(_:)` reads it, as people write it: days from a week on, else the largest of
    /// hours, minutes and seconds that divides it (`24h`, `48h`, `7d`, `90m`).
    static func lifetimeText(_ seconds: Int) -> String {
        if seconds >= 7 * 86400 && seconds % 86400 == 0 { return "\(seconds / 86400)d" }
        for (unit, factor) in [("h", 3600), ("m", 60)] where seconds % factor == 0 {
            return "\(seconds / factor)\(unit)"
        }
        return "\(seconds)s"
    }
}

/// Block-style YAML written line by line, two spaces per level. Text that could read as anything but the same text
/// (a number, a boolean, null, YAML syntax, a MAC with its colons) is double-quoted.
struct YAMLText {
    private(set) var lines: [String] = []

    var text: String { lines.joined(separator: "\n") + "\n" }

    mutating func comment(_ text: String) { lines.append(text.isEmpty ? "#" : "# " + text) }

    /// `key:` alone (a section follows) or `key: value` with `value` already YAML.
    mutating func key(_ indent: Int, _ key: String, _ value: String? = nil) {
        let prefix = String(repeating: "  ", count: indent) + key + ":"
        lines.append(value.map { prefix + " " + $0 } ?? prefix)
    }

    /// `key: text`, quoted as needed.
    mutating func entry(_ indent: Int, _ key: String, _ text: String) {
        self.key(indent, key, Self.scalar(text))
    }

    /// `key: |` and `text` as a literal block (PEM certificates and keys), `|-` when it has no final line break.
    mutating func literal(_ indent: Int, _ key: String, _ text: String) {
        let body = text.hasSuffix("\n") ? String(text.dropLast()) : text
        self.key(indent, key, text.hasSuffix("\n") ? "|" : "|-")
        let prefix = String(repeating: "  ", count: indent + 1)
        lines += body.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : prefix + $0 }
    }

    /// `- value` with `value` already YAML; a mapping item's further keys go at `indent + 1`.
    mutating func item(_ indent: Int, _ value: String) {
        lines.append(String(repeating: "  ", count: indent) + "- " + value)
    }

    static let plainCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/+-")
    static let yaml11Booleans: Set<String> = ["y", "n", "yes", "no", "on", "off"]

    /// `text` plain when it reads back as exactly this text in YAML 1.2 and 1.1, else double-quoted.
    static func scalar(_ text: String) -> String {
        if let first = text.first, first.isLetter || first.isNumber || first == "_" || first == "/",
           text.allSatisfy({ plainCharacters.contains($0) }), !yaml11Booleans.contains(text.lowercased()),
           case .string = ScalarValue(plain: text) {
            return text
        }
        return doubleQuoted(text)
    }

    /// `text` as a YAML double-quoted scalar that reads back exactly: backslash, quote and control characters escaped.
    static func doubleQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || (scalar.value >= 0x80 && scalar.value < 0xa0)
                    || scalar.value == 0x2028 || scalar.value == 0x2029 || scalar.value == 0xfeff {
                    out += String(format: "\\u%04X", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `[a, "b:c"]`.
    static func flowList(_ items: [String]) -> String {
        "[" + items.map(scalar).joined(separator: ", ") + "]"
    }

    /// `{host: node1, address: 10.0.0.1}`.
    static func flowMapping(_ pairs: [(String, String)]) -> String {
        "{" + pairs.map { "\($0.0): \(scalar($0.1))" }.joined(separator: ", ") + "}"
    }
}

extension Seed {
    /// `text` as a YAML double-quoted scalar, escaped as the seeds this library writes are (for other writers of seeds).
    public static func yamlQuoted(_ text: String) -> String { YAMLText.doubleQuoted(text) }
}
