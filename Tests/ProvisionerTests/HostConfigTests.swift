import Foundation
import Seed
import TestSupport
import Testing
@testable import Provisioner

/// Host configuration written into a temporary root, read back as files.
@Suite struct HostConfigTests {
    static let hash = "$6$saltsalt$JvH1i6yrYXSGi8x0OQJ8bjdSJbWhJ7UeTq0ZJXW2Z3sM0hXX0U1Qw5Nq5bI5L2VxbFDh0n6gSm5kJ8Q0Z0Q0Z."
    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICLdnpvPSKsKgSFQEi21Q0gaeHThjBwMFBKrqtNgmqn4 ops@example"

    static func seed(interfaces: String = """
          - name: eno1
            dhcp: true
          - mac: "52:54:00:12:34:56"
            addresses: [10.1.0.11/24]
            gateway: 10.1.0.1
            mtu: 9000
        """, users: String? = nil) throws -> Seed {
        let userBlock = users ?? """
            - name: ops
              password_hash: "\(hash)"
              ssh_authorized_keys:
                - "\(key)"
        """
        return try SeedLoader.parse("""
        version: 1
        host:
          hostname: node-01.example.com
          timezone: Europe/Berlin
          ntp_servers: [10.0.0.1, ntp.example.com]
          users:
        \(userBlock)
        network:
          interfaces:
        \(interfaces)
          nameservers: [10.0.0.53, 10.0.0.54]
          public_network: 10.1.0.0/24
        cluster:
          role: bootstrap
        """, file: "test-seed.yaml")
    }

    func read(_ root: String, _ path: String) -> String {
        (try? String(contentsOfFile: root + path, encoding: .utf8)) ?? ""
    }

    func mode(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_mode & 0o7777) : -1
    }

    @Test func writesEveryFileAndRerunChangesNothing() throws {
        try withTemporaryDirectory { root in
            // A root that already has accounts we do not manage.
            try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
            try "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/sh\n"
                .write(toFile: root + "/etc/passwd", atomically: true, encoding: .utf8)
            try "root:x:0:\nsudo:x:27:\nalice:x:1000:\n".write(toFile: root + "/etc/group", atomically: true, encoding: .utf8)
            try "root:*:19000:0:99999:7:::\nalice:$y$abc:19000:0:99999:7:::\n".write(toFile: root + "/etc/shadow", atomically: true, encoding: .utf8)

            chown(root + "/etc/shadow", 0, 42)  // Debian: root:shadow
            let configurator = HostConfigurator(layout: Layout(root: root), seed: try Self.seed())
            let changed = try configurator.apply()
            #expect(changed.contains("/etc/hostname"))
            #expect(read(root, "/etc/hostname") == "node-01.example.com\n")
            #expect(read(root, "/etc/hosts").contains("10.1.0.11\tnode-01.example.com node-01\n"))
            #expect(read(root, "/etc/hosts").contains("127.0.0.1\tlocalhost\n"))

            let passwd = read(root, "/etc/passwd")
            #expect(passwd.contains("alice:x:1000:1000::/home/alice:/bin/sh\n"))  // untouched
            #expect(passwd.contains("ops:x:1001:1001:ops:/home/ops:/bin/bash\n"))
            #expect(passwd.contains("aquarium:x:1002:1002:aquarium:/home/aquarium:/bin/bash\n"))
            let shadow = read(root, "/etc/shadow")
            #expect(shadow.contains("alice:$y$abc:"))
            #expect(shadow.contains("ops:\(Self.hash):"))
            #expect(shadow.contains("aquarium:!*:"))  // always exists, locked when not in the seed
            #expect(mode(root + "/etc/shadow") == 0o640)
            var shadowInfo = stat()
            if getuid() == 0 { #expect(stat(root + "/etc/shadow", &shadowInfo) == 0 && shadowInfo.st_gid == 42) }  // group kept
            let group = read(root, "/etc/group")
            #expect(group.contains("sudo:x:27:ops\n"))
            #expect(group.contains("ops:x:1001:\n"))
            #expect(group.contains("aquarium:x:1002:\n"))
            #expect(read(root, "/home/ops/.ssh/authorized_keys") == Self.key + "\n")
            #expect(mode(root + "/home/ops/.ssh/authorized_keys") == 0o600)
            #expect(mode(root + "/home/ops/.ssh") == 0o700)

            let first = read(root, "/etc/systemd/network/10-aquarium-00.network")
            #expect(first.contains("[Match]\nName=eno1\n"))
            #expect(first.contains("DHCP=yes\n"))
            #expect(first.contains("DNS=10.0.0.53\nDNS=10.0.0.54\n"))
            let second = read(root, "/etc/systemd/network/10-aquarium-01.network")
            #expect(second.contains("MACAddress=52:54:00:12:34:56\n"))
            #expect(second.contains("[Link]\nMTUBytes=9000\n"))
            #expect(second.contains("Address=10.1.0.11/24\nGateway=10.1.0.1\n"))
            #expect(!second.contains("DHCP"))
            #expect(read(root, "/etc/resolv.conf").contains("nameserver 10.0.0.53\nnameserver 10.0.0.54\n"))
            #expect(read(root, "/etc/chrony/sources.d/aquarium.sources").contains("server 10.0.0.1 iburst\nserver ntp.example.com iburst\n"))
            #expect(read(root, "/etc/timezone") == "Europe/Berlin\n")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin")

            // Rerun: nothing changes.
            #expect(try configurator.apply() == [])
        }
    }

    @Test func seedChangesConverge() throws {
        try withTemporaryDirectory { root in
            _ = try HostConfigurator(layout: Layout(root: root), seed: try Self.seed()).apply()
            // The seed now lists the aquarium user with a key and only one interface.
            let users = """
                - name: aquarium
                  ssh_authorized_keys:
                    - "\(Self.key)"
            """
            let next = try Self.seed(interfaces: "    - name: eno1\n      dhcp: true", users: users)
            let changed = try HostConfigurator(layout: Layout(root: root), seed: next).apply()
            #expect(changed.contains("/etc/systemd/network/10-aquarium-01.network (removed)"))
            #expect(!FileManager.default.fileExists(atPath: root + "/etc/systemd/network/10-aquarium-01.network"))
            #expect(read(root, "/home/aquarium/.ssh/authorized_keys") == Self.key + "\n")
            // Listed without a hash: key-only, password still locked; now an administrator.
            #expect(read(root, "/etc/shadow").contains("aquarium:!*:"))
            #expect(read(root, "/etc/group").contains("sudo:x:27:ops,aquarium\n"))
            // ops stays (the Provisioner never deletes accounts), with its hash.
            #expect(read(root, "/etc/shadow").contains("ops:\(Self.hash):"))
        }
    }

    @Test func noInterfacesMeansDHCPEverywhere() throws {
        try withTemporaryDirectory { root in
            let seed = try SeedLoader.parse("version: 1\nhost: {hostname: solo}\ncluster: {role: bootstrap}\n", file: "s.yaml")
            _ = try HostConfigurator(layout: Layout(root: root), seed: seed).apply()
            let text = read(root, "/etc/systemd/network/99-aquarium-dhcp.network")
            #expect(text.contains("Type=ether\nName=en* eth*\n"))
            #expect(text.contains("DHCP=yes"))
            #expect(read(root, "/etc/hosts").contains("127.0.1.1\tsolo\n"))
            #expect(read(root, "/etc/shadow").contains("aquarium:!*:"))
            #expect(!FileManager.default.fileExists(atPath: root + "/etc/resolv.conf"))
        }
    }

    /// In a rack, /etc/hosts also names the other monitor nodes (ceph-iscsi's gateways call each other by host name),
    /// never the node itself twice; a storage node lists them too.
    @Test(arguments: [("monitor", "node-2"), ("storage", "node-4")])
    func rackHostsNameTheMonitorNodes(role: String, hostname: String) throws {
        try withTemporaryDirectory { root in
            let seed = try RackTimeTests.seed(role: role, hostname: hostname)
            _ = try HostConfigurator(layout: Layout(root: root), seed: seed).apply()
            let hosts = read(root, "/etc/hosts")
            for n in 1...3 where "node-\(n)" != hostname {
                #expect(hosts.contains("10.77.0.\(n)\tnode-\(n)\n"), "\(hosts)")
            }
            #expect(hosts.components(separatedBy: "\t\(hostname)\n").count == 2, "\(hosts)")
        }
    }
}
