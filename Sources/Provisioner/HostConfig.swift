import Foundation
import Seed

/// Writes the host configuration from the seed into the target root: host name, /etc/hosts, users (passwd, group,
/// shadow, authorized_keys), systemd-networkd files, resolv.conf, chrony sources, time zone. Every file is compared
/// first and written only when it differs; the result lists what changed.
public struct HostConfigurator {
    public let layout: Layout
    public let seed: Seed

    /// The user that always exists; locked unless the seed lists it.
    public static let applianceUser = "aquarium"
    static let managedMarker = "aquarium-provision"

    public init(layout: Layout, seed: Seed) {
        self.layout = layout
        self.seed = seed
    }

    /// Applies everything; returns the changed paths (as on the node, e.g. `/etc/hostname`).
    public func apply() throws(ProvisionError) -> [String] {
        var changed: [String] = []
        func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws(ProvisionError) {
            if try Files.write(text, to: layout.path(path), mode: mode) { changed.append(path) }
        }
        try write("/etc/hostname", seed.host.hostname + "\n")
        try write("/etc/hosts", hostsFile())
        changed += try applyUsers()
        changed += try applyNetwork()
        if !seed.network.nameservers.isEmpty {
            try write("/etc/resolv.conf", "# Written by \(Self.managedMarker) from the seed.\n"
                + seed.network.nameservers.map { "nameserver \($0)\n" }.joined())
        }
        let time = timeFiles()
        for (path, text) in time.sorted(by: { $0.key < $1.key }) {
            if let text {
                try write(path, text)
            } else if Files.exists(layout.path(path)) {
                unlink(layout.path(path))
                changed.append(path)
            }
        }
        if let zone = seed.host.timezone {
            try write("/etc/timezone", zone + "\n")
            let link = layout.path("/etc/localtime")
            let target = "/usr/share/zoneinfo/" + zone
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) != target {
                unlink(link)
                guard symlink(target, link) == 0 else {
                    throw .failed("cannot link \(link) to \(target): \(String(cString: strerror(errno)))")
                }
                changed.append("/etc/localtime")
            }
        }
        return changed
    }

    static let chronySources = "/etc/chrony/sources.d/aquarium.sources"
    static let chronyServe = "/etc/chrony/conf.d/aquarium-rack.conf"

    /// chrony's files (Debian's chrony.conf reads `sources.d/*.sources` and `conf.d/*.conf`); nil removes one of
    /// ours. With NTP servers in the seed, every node uses them. A rack whose seeds name none (no outside network)
    /// keeps time among itself, within what the monitors need (50 ms): each monitor node serves time to the rack's
    /// public network and follows the other monitors, in orphan mode (the monitors agree on one of them as the
    /// reference while no better source exists); storage nodes follow the monitors.
    public func timeFiles() -> [String: String?] {
        let header = "# Written by \(Self.managedMarker) from the seed.\n"
        if !seed.host.ntpServers.isEmpty {
            return [Self.chronySources: header + seed.host.ntpServers.map { "server \($0) iburst\n" }.joined(),
                    Self.chronyServe: nil]
        }
        guard let rack = seed.cluster.rack, seed.cluster.role.isRack else {
            return [Self.chronySources: nil, Self.chronyServe: nil]
        }
        let mine = rack.monitor(forHost: seed.host.hostname)
        let others = rack.monitors.filter { $0 != mine }.map(\.address)
        let sources = header + "# No NTP servers in the seed: the rack's monitor nodes keep its time.\n"
            + others.map { "server \($0) iburst minpoll 2 maxpoll 6\n" }.joined()
        guard seed.cluster.role == .monitor else { return [Self.chronySources: sources, Self.chronyServe: nil] }
        var serve = header + "# A monitor node of a rack without NTP servers: serve time to the rack, agree with the "
            + "other monitors.\nlocal stratum 10 orphan\n"
        if let network = seed.network.publicNetwork { serve += "allow \(network)\n" }
        return [Self.chronySources: sources, Self.chronyServe: serve]
    }

    func hostsFile() -> String {
        let fqdn = seed.host.hostname
        let short = fqdn.split(separator: ".").first.map(String.init) ?? fqdn
        let names = fqdn == short ? fqdn : "\(fqdn) \(short)"
        var text = "# Written by \(Self.managedMarker) from the seed.\n127.0.0.1\tlocalhost\n"
        // The node's own static addresses, else Debian's 127.0.1.1 convention.
        let addresses = seed.network.interfaces.flatMap(\.addresses).map(\.address.description)
        if addresses.isEmpty {
            text += "127.0.1.1\t\(names)\n"
        } else {
            for address in addresses { text += "\(address)\t\(names)\n" }
        }
        // The rack's other monitor nodes by name: their iSCSI gateways call each other by host name (ceph-iscsi).
        for monitor in seed.cluster.rack?.monitors ?? [] where monitor.shortName != short {
            let other = monitor.host == monitor.shortName ? monitor.host : "\(monitor.host) \(monitor.shortName)"
            text += "\(monitor.address.description)\t\(other)\n"
        }
        text += "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        return text
    }

    // MARK: network

    /// `10-aquarium-N.network` per seed interface, or one DHCP file for every wired link when the seed lists none.
    /// Files of ours that the seed no longer asks for are removed.
    func networkFiles() -> [String: String] {
        var files: [String: String] = [:]
        let dns = seed.network.nameservers.map { "DNS=\($0)\n" }.joined()
        if seed.network.interfaces.isEmpty {
            files["99-aquarium-dhcp.network"] = """
            # Written by \(Self.managedMarker): the seed lists no interfaces, so every wired link uses DHCP.
            [Match]
            Type=ether
            Name=en* eth*

            [Network]
            DHCP=yes
            \(dns)
            """
            return files
        }
        for (index, interface) in seed.network.interfaces.enumerated() {
            var text = "# Written by \(Self.managedMarker) from the seed (network.interfaces[\(index)]).\n[Match]\n"
            switch interface.selector {
            case .name(let name): text += "Name=\(name)\n"
            case .mac(let mac): text += "MACAddress=\(mac)\n"
            }
            if let mtu = interface.mtu { text += "\n[Link]\nMTUBytes=\(mtu)\n" }
            text += "\n[Network]\n"
            if interface.dhcp { text += "DHCP=yes\n" }
            for address in interface.addresses { text += "Address=\(address)\n" }
            if let gateway = interface.gateway { text += "Gateway=\(gateway)\n" }
            text += dns
            files[String(format: "10-aquarium-%02d.network", index)] = text
        }
        return files
    }

    func applyNetwork() throws(ProvisionError) -> [String] {
        let directory = "/etc/systemd/network"
        var changed: [String] = []
        let wanted = networkFiles()
        for (name, text) in wanted.sorted(by: { $0.key < $1.key }) {
            if try Files.write(text, to: layout.path(directory + "/" + name)) { changed.append(directory + "/" + name) }
        }
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: layout.path(directory))) ?? []
        for name in existing where (name.hasPrefix("10-aquarium-") || name.hasPrefix("99-aquarium-"))
            && name.hasSuffix(".network") && wanted[name] == nil {
            unlink(layout.path(directory + "/" + name))
            changed.append(directory + "/" + name + " (removed)")
        }
        return changed
    }

    // MARK: users

    /// The users to configure: the seed's, plus `aquarium` (locked, no keys) when the seed does not list it.
    var users: [Seed.User] {
        var users = seed.host.users
        if !users.contains(where: { $0.name == Self.applianceUser }) {
            users.append(Seed.User(name: Self.applianceUser))
        }
        return users
    }

    func applyUsers() throws(ProvisionError) -> [String] {
        var passwd = Table(layout.path("/etc/passwd"))
        var group = Table(layout.path("/etc/group"))
        var shadow = Table(layout.path("/etc/shadow"))
        var gshadow = Table(layout.path("/etc/gshadow"))
        if passwd.lines.isEmpty {
            passwd.lines = ["root:x:0:0:root:/root:/bin/bash"]
            group.lines = group.lines.isEmpty ? ["root:x:0:", "sudo:x:27:"] : group.lines
            shadow.lines = shadow.lines.isEmpty ? ["root:*:19000:0:99999:7:::"] : shadow.lines
        }
        var changed: [String] = []
        let listed = Set(seed.host.users.map(\.name))
        for user in users {
            let uid: Int
            let gid: Int
            if let entry = passwd.entry(user.name), entry.count >= 4, let existingUid = Int(entry[2]), let existingGid = Int(entry[3]) {
                uid = existingUid
                gid = existingGid
            } else {
                uid = passwd.nextFreeId(column: 2, from: 1000)
                gid = group.entry(user.name).flatMap { $0.count > 2 ? Int($0[2]) : nil }
                    ?? (group.usedIds(column: 2).contains(uid) ? group.nextFreeId(column: 2, from: 1000) : uid)
                passwd.set(user.name, "\(user.name):x:\(uid):\(gid):\(user.name):/home/\(user.name):/bin/bash")
            }
            if group.entry(user.name) == nil { group.set(user.name, "\(user.name):x:\(gid):") }
            if gshadow.exists && gshadow.entry(user.name) == nil { gshadow.set(user.name, "\(user.name):!::") }
            // A listed user with a hash may log in with it; everyone else only with keys (`!*` locks the password).
            let hash = user.passwordHash ?? "!*"
            var fields = shadow.entry(user.name) ?? [user.name, "", String(Int(Date().timeIntervalSince1970 / 86400)), "0", "99999", "7", "", "", ""]
            while fields.count < 9 { fields.append("") }
            if fields[1] != hash {
                fields[1] = hash
                shadow.set(user.name, fields.joined(separator: ":"))
            }
            // Users the seed lists administer the appliance.
            if listed.contains(user.name) { group.addMember(user.name, to: "sudo") }
            changed += try writeAuthorizedKeys(user, uid: uid, gid: gid)
        }
        if try passwd.save(mode: 0o644) { changed.append("/etc/passwd") }
        if try group.save(mode: 0o644) { changed.append("/etc/group") }
        if try shadow.save(mode: 0o640) { changed.append("/etc/shadow") }
        if gshadow.exists, try gshadow.save(mode: 0o640) { changed.append("/etc/gshadow") }
        return changed
    }

    func writeAuthorizedKeys(_ user: Seed.User, uid: Int, gid: Int) throws(ProvisionError) -> [String] {
        let home = layout.path("/home/\(user.name)")
        let sshDirectory = home + "/.ssh"
        let file = sshDirectory + "/authorized_keys"
        if user.sshAuthorizedKeys.isEmpty && !Files.exists(file) { return [] }
        try Files.makeDirectory(sshDirectory, mode: 0o700)
        chmod(sshDirectory, 0o700)
        let text = user.sshAuthorizedKeys.map { $0 + "\n" }.joined()
        let changed = try Files.write(text, to: file, mode: 0o600)
        chown(home, uid_t(uid), gid_t(gid))
        chown(sshDirectory, uid_t(uid), gid_t(gid))
        chown(file, uid_t(uid), gid_t(gid))
        return changed ? ["/home/\(user.name)/.ssh/authorized_keys"] : []
    }
}

/// A colon-separated account table (/etc/passwd, group, shadow, gshadow), edited line by line so entries we do not
/// manage stay exactly as they were.
struct Table {
    let path: String
    let exists: Bool
    var lines: [String]
    private let original: String?

    init(_ path: String) {
        self.path = path
        original = Files.read(path)
        exists = original != nil
        lines = original?.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) ?? []
    }

    func entry(_ name: String) -> [String]? {
        lines.first { $0.hasPrefix(name + ":") }.map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
    }

    mutating func set(_ name: String, _ line: String) {
        if let index = lines.firstIndex(where: { $0.hasPrefix(name + ":") }) { lines[index] = line } else { lines.append(line) }
    }

    mutating func addMember(_ user: String, to groupName: String) {
        guard var fields = entry(groupName), fields.count >= 4 else { return }
        var members = fields[3].split(separator: ",").map(String.init)
        guard !members.contains(user) else { return }
        members.append(user)
        fields[3] = members.joined(separator: ",")
        set(groupName, fields.joined(separator: ":"))
    }

    func usedIds(column: Int) -> Set<Int> {
        Set(lines.compactMap { line -> Int? in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            return fields.count > column ? Int(fields[column]) : nil
        })
    }

    func nextFreeId(column: Int, from lowest: Int) -> Int {
        let used = usedIds(column: column)
        var candidate = lowest
        while used.contains(candidate) { candidate += 1 }
        return candidate
    }

    /// Writes the table when it changed; returns true if it did.
    func save(mode: mode_t) throws(ProvisionError) -> Bool {
        let text = lines.map { $0 + "\n" }.joined()
        if text == original { return false }
        return try Files.write(text, to: path, mode: mode)
    }
}
