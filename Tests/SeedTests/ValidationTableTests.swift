import Foundation
@testable import Seed
import Testing

/// What the JSON Schema says about a case that the parser rejects.
enum SchemaVerdict: Sendable {
    /// The schema rejects it too.
    case rejects
    /// A rule the schema cannot express (subnets, sizes compared, files on disk, key contents, uniqueness); the
    /// schema accepts it and only `seed validate` refuses it. Documented in docs/seed.md.
    case beyondSchema
    /// Not a single JSON-representable document (YAML syntax, duplicate keys, anchors).
    case notJSON
}

struct InvalidCase: Sendable, CustomTestStringConvertible {
    let name: String
    let yaml: String
    let keyPath: String
    let line: Int
    let column: Int
    /// A part of the message.
    let message: String
    let schema: SchemaVerdict
    /// Text that must not appear in any message (secrets).
    var mustNotContain: String? = nil

    var testDescription: String { name }
}

struct ValidCase: Sendable, CustomTestStringConvertible {
    let name: String
    let yaml: String
    var testDescription: String { name }
}

enum SeedCases {
    static let m = Fixture.minimal

    /// A bootstrap node's cluster with RGW and `users` (lines 8 and on: `users:` is line 8, its first item line 9).
    static let pemCertificate = "          -----BEGIN CERTIFICATE-----\n          MIIBszCCAVmgAwIBAgIUJ\n          -----END CERTIFICATE-----\n"
    /// The start of a PKCS#8 RSA key (Ceph's dashboard takes RSA keys only).
    static let pemRSAKey = "          -----BEGIN PRIVATE KEY-----\n          MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQ\n          -----END PRIVATE KEY-----\n"
    static let pemKey = "          -----BEGIN PRIVATE KEY-----\n          MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n          -----END PRIVATE KEY-----\n"

    /// `services.rgw.https`: line 8 is `https:`, line 9 the first of `body`.
    static func https(_ body: String) -> String {
        "cluster:\n  role: bootstrap\n  services:\n    rgw:\n      https:\n" + body
    }

    static func nfs(_ body: String) -> String {
        "cluster:\n  role: bootstrap\n  services:\n    cephfs:\n    nfs:\n" + body
    }

    static func iscsi(_ body: String) -> String {
        "cluster:\n  role: bootstrap\n  services:\n    rbd: {pools: [rbd, fast]}\n    iscsi:\n" + body
    }

    static func s3(_ users: String) -> String {
        "cluster:\n  role: bootstrap\n  services:\n    rgw:\n      users:\n" + users
    }

    // Every rule: the invalid side, with the exact key path, line and column.
    static let invalid: [InvalidCase] = [
        // version
        InvalidCase(name: "version other than 1", yaml: m.replacingOccurrences(of: "version: 1", with: "version: 2"),
                    keyPath: "version", line: 1, column: 10, message: "version 2 is not supported", schema: .rejects),
        InvalidCase(name: "version missing", yaml: String(m.dropFirst("version: 1\n".count)),
                    keyPath: "version", line: 1, column: 1, message: "required key is missing", schema: .rejects),
        InvalidCase(name: "version as text", yaml: m.replacingOccurrences(of: "version: 1", with: "version: \"1\""),
                    keyPath: "version", line: 1, column: 10, message: "expected the number 1, found the text '1'", schema: .rejects),
        InvalidCase(name: "version as a list", yaml: m.replacingOccurrences(of: "version: 1", with: "version: [1]"),
                    keyPath: "version", line: 1, column: 10, message: "expected the number 1, found a list", schema: .rejects),
        // structure
        InvalidCase(name: "unknown top-level key with suggestion", yaml: Fixture.minimal(plus: "netwrk:\n  nameservers: [10.0.0.1]\n"),
                    keyPath: "netwrk", line: 6, column: 1, message: "unknown key; did you mean 'network'?", schema: .rejects),
        InvalidCase(name: "unknown nested key with suggestion", yaml: Fixture.withHost("  hostname: node-01\n  time_zone: Etc/UTC\n"),
                    keyPath: "host.time_zone", line: 4, column: 3, message: "did you mean 'timezone'?", schema: .rejects),
        InvalidCase(name: "unknown key without a close match", yaml: Fixture.withHost("  hostname: node-01\n  flavour: vanilla\n"),
                    keyPath: "host.flavour", line: 4, column: 3, message: "allowed here: hostname, timezone, ntp_servers, users",
                    schema: .rejects),
        InvalidCase(name: "camelCase key suggests snake_case", yaml: Fixture.withHost("  hostname: node-01\n  ntpServers: [10.0.0.1]\n"),
                    keyPath: "host.ntpServers", line: 4, column: 3, message: "did you mean 'ntp_servers'?", schema: .rejects),
        InvalidCase(name: "duplicate key", yaml: Fixture.withHost("  hostname: node-01\n  hostname: node-02\n"),
                    keyPath: "host.hostname", line: 4, column: 3, message: "duplicate key: already given at line 3, column 3",
                    schema: .notJSON),
        InvalidCase(name: "duplicate top-level section", yaml: Fixture.minimal(plus: "cluster:\n  role: join\n"),
                    keyPath: "cluster", line: 6, column: 1, message: "duplicate key: already given at line 4, column 1",
                    schema: .notJSON),
        InvalidCase(name: "duplicate key in a flow mapping", yaml: Fixture.minimal(plus: "disks:\n  storage: {wipe: never, wipe: always}\n"),
                    keyPath: "disks.storage.wipe", line: 7, column: 26, message: "duplicate key: already given at line 7, column 13",
                    schema: .notJSON),
        InvalidCase(name: "section of the wrong type", yaml: "version: 1\nhost: node-01\ncluster:\n  role: bootstrap\n",
                    keyPath: "host", line: 2, column: 7, message: "expected a mapping with keys hostname", schema: .rejects),
        InvalidCase(name: "root is a list", yaml: "- version: 1\n",
                    keyPath: "", line: 1, column: 1, message: "expected a mapping with keys version, host", schema: .rejects),
        InvalidCase(name: "empty file", yaml: "# nothing here\n",
                    keyPath: "", line: 1, column: 1, message: "the file is empty", schema: .notJSON),
        InvalidCase(name: "YAML syntax error: tab indentation", yaml: "version: 1\nhost:\n\thostname: node-01\n",
                    keyPath: "", line: 3, column: 1, message: "invalid YAML", schema: .notJSON),
        InvalidCase(name: "YAML syntax error: unclosed flow list", yaml: Fixture.minimal(plus: "network:\n  nameservers: [10.0.0.1\n"),
                    keyPath: "", line: 8, column: 1, message: "invalid YAML", schema: .notJSON),
        InvalidCase(name: "two YAML documents", yaml: m + "---\n" + m,
                    keyPath: "", line: 6, column: 1, message: "one YAML document", schema: .notJSON),
        InvalidCase(name: "anchors and aliases", yaml: "version: 1\nhost: &h\n  hostname: node-01\ncluster:\n  role: bootstrap\n",
                    keyPath: "host", line: 2, column: 7, message: "anchors and aliases", schema: .notJSON),
        InvalidCase(name: "Unicode line separator", yaml: Fixture.withHost("  hostname: node-01\u{2028}\n"),
                    keyPath: "", line: 3, column: 20, message: "a Unicode line separator is not allowed", schema: .notJSON),
        InvalidCase(name: "carriage return inside a line", yaml: Fixture.withHost("  hostname: node-01\r  timezone: Etc/UTC\n"),
                    keyPath: "", line: 3, column: 20, message: "a carriage return that does not end a line", schema: .notJSON),
        InvalidCase(name: "explicit tag", yaml: Fixture.withHost("  hostname: !!binary bm9kZQ==\n"),
                    keyPath: "host.hostname", line: 3, column: 13, message: "explicit YAML tags", schema: .notJSON),
        InvalidCase(name: "control character", yaml: Fixture.withHost("  hostname: \"node\u{7}\"\n"),
                    keyPath: "", line: 3, column: 18, message: "control character U+7", schema: .notJSON),
        // host names
        InvalidCase(name: "host name with underscore", yaml: Fixture.withHost("  hostname: node_01\n"),
                    keyPath: "host.hostname", line: 3, column: 13, message: "must be an RFC 1123 host name", schema: .rejects),
        InvalidCase(name: "host name with uppercase", yaml: Fixture.withHost("  hostname: Node-01\n"),
                    keyPath: "host.hostname", line: 3, column: 13, message: "write it in lowercase: 'node-01'", schema: .rejects),
        InvalidCase(name: "host name starting with '-'", yaml: Fixture.withHost("  hostname: \"-node\"\n"),
                    keyPath: "host.hostname", line: 3, column: 13, message: "must be an RFC 1123 host name", schema: .rejects),
        InvalidCase(name: "host name label over 63 characters", yaml: Fixture.withHost("  hostname: \(String(repeating: "a", count: 64))\n"),
                    keyPath: "host.hostname", line: 3, column: 13, message: "must be an RFC 1123 host name", schema: .rejects),
        InvalidCase(name: "host name that looks like an address", yaml: Fixture.withHost("  hostname: node.123\n"),
                    keyPath: "host.hostname", line: 3, column: 13, message: "all-numeric label", schema: .rejects),
        InvalidCase(name: "host name with shell characters", yaml: Fixture.withHost("  hostname: \"node;reboot\"\n"),
                    keyPath: "host.hostname", line: 3, column: 13, message: "must be an RFC 1123 host name", schema: .rejects),
        InvalidCase(name: "host name as a number", yaml: Fixture.withHost("  hostname: 1234\n"),
                    keyPath: "host.hostname", line: 3, column: 13, message: "expected text, found the number 1234; put it in quotes",
                    schema: .rejects),
        InvalidCase(name: "host name as a list", yaml: Fixture.withHost("  hostname: [a, b]\n"),
                    keyPath: "host.hostname", line: 3, column: 13, message: "expected text, found a list", schema: .rejects),
        InvalidCase(name: "host name missing", yaml: Fixture.withHost("  timezone: Etc/UTC\n"),
                    keyPath: "host.hostname", line: 3, column: 3, message: "required key is missing", schema: .rejects),
        // time zones
        InvalidCase(name: "unknown time zone", yaml: Fixture.withHost("  hostname: node-01\n  timezone: Mars/Olympus_Mons\n"),
                    keyPath: "host.timezone", line: 4, column: 13, message: "is not a known time zone", schema: .beyondSchema),
        InvalidCase(name: "time zone path traversal", yaml: Fixture.withHost("  hostname: node-01\n  timezone: ../../etc/passwd\n"),
                    keyPath: "host.timezone", line: 4, column: 13, message: "is not a time zone name", schema: .rejects),
        InvalidCase(name: "time zone directory", yaml: Fixture.withHost("  hostname: node-01\n  timezone: Europe\n"),
                    keyPath: "host.timezone", line: 4, column: 13, message: "is not a known time zone", schema: .beyondSchema),
        // NTP
        InvalidCase(name: "NTP server that is neither name nor address", yaml: Fixture.withHost("  hostname: node-01\n  ntp_servers: [\"ntp server\"]\n"),
                    keyPath: "host.ntp_servers[0]", line: 4, column: 17, message: "must be an IP address or a host name", schema: .rejects),
        InvalidCase(name: "NTP servers not a list", yaml: Fixture.withHost("  hostname: node-01\n  ntp_servers: 10.0.0.1\n"),
                    keyPath: "host.ntp_servers", line: 4, column: 16, message: "expected a list of host names or addresses", schema: .rejects),
        // users
        InvalidCase(name: "user name with uppercase", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: Admin\n"),
                    keyPath: "host.users[0].name", line: 5, column: 13, message: "is not a valid user name", schema: .rejects),
        InvalidCase(name: "user name too long", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: \(String(repeating: "u", count: 33))\n"),
                    keyPath: "host.users[0].name", line: 5, column: 13, message: "at most 32 are allowed", schema: .rejects),
        InvalidCase(name: "user name of a system account", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: root\n"),
                    keyPath: "host.users[0].name", line: 5, column: 13, message: "is a system account", schema: .rejects),
        InvalidCase(name: "user listed twice", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: ops\n    - name: ops\n"),
                    keyPath: "host.users[1].name", line: 6, column: 13, message: "already listed at line 5", schema: .beyondSchema),
        InvalidCase(name: "user without a name", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - ssh_authorized_keys: []\n"),
                    keyPath: "host.users[0].name", line: 5, column: 7, message: "required key is missing", schema: .rejects),
        InvalidCase(name: "plaintext password", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: ops\n      password_hash: hunter2-secret\n"),
                    keyPath: "host.users[0].password_hash", line: 6, column: 22, message: "plaintext password, which is refused",
                    schema: .rejects, mustNotContain: "hunter2"),
        InvalidCase(name: "MD5 password hash", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: ops\n      password_hash: \"$1$abcdefgh$0123456789abcdefghijkl\"\n"),
                    keyPath: "host.users[0].password_hash", line: 6, column: 22, message: "other than SHA-512",
                    schema: .rejects, mustNotContain: "0123456789abcdefghijkl"),
        InvalidCase(name: "truncated SHA-512 hash", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: ops\n      password_hash: \"\(Fixture.sha512Hash.dropLast())\"\n"),
                    keyPath: "host.users[0].password_hash", line: 6, column: 22, message: "not a well-formed SHA-512",
                    schema: .rejects, mustNotContain: String(Fixture.sha512Hash.dropLast().suffix(20))),
        InvalidCase(name: "password hash as a number is not echoed", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: ops\n      password_hash: 8675309123\n"),
                    keyPath: "host.users[0].password_hash", line: 6, column: 22, message: "expected text, found a number",
                    schema: .rejects, mustNotContain: "8675309123"),
        InvalidCase(name: "SSH key with bad base64", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: ops\n      ssh_authorized_keys: [\"ssh-ed25519 AAAA!!!! me\"]\n"),
                    keyPath: "host.users[0].ssh_authorized_keys[0]", line: 6, column: 29, message: "is not valid base64", schema: .rejects),
        InvalidCase(name: "SSH key whose data is another type", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: ops\n      ssh_authorized_keys: [\"ssh-rsa \(Fixture.ed25519Blob) me\"]\n"),
                    keyPath: "host.users[0].ssh_authorized_keys[0]", line: 6, column: 29,
                    message: "says 'ssh-rsa' but the key data is a 'ssh-ed25519' key", schema: .beyondSchema),
        InvalidCase(name: "SSH key with options", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: ops\n      ssh_authorized_keys: ['command=\"/bin/sh\" \(Fixture.ed25519Key)']\n"),
                    keyPath: "host.users[0].ssh_authorized_keys[0]", line: 6, column: 29, message: "options, which are not supported",
                    schema: .rejects),
        InvalidCase(name: "SSH key of an unsupported type", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: ops\n      ssh_authorized_keys: [\"ssh-dss AAAAB3NzaC1kc3M= me\"]\n"),
                    keyPath: "host.users[0].ssh_authorized_keys[0]", line: 6, column: 29, message: "is not a supported SSH key type",
                    schema: .rejects),
        InvalidCase(name: "SSH key with a newline", yaml: Fixture.withHost("  hostname: node-01\n  users:\n    - name: ops\n      ssh_authorized_keys: [\"\(Fixture.ed25519Key)\\nssh-ed25519 AAAA\"]\n"),
                    keyPath: "host.users[0].ssh_authorized_keys[0]", line: 6, column: 29, message: "contains control characters",
                    schema: .rejects),
        // interfaces
        InvalidCase(name: "interface without name or mac", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - dhcp: true\n"),
                    keyPath: "network.interfaces[0].name", line: 8, column: 7, message: "give name (e.g. eno1) or mac", schema: .rejects),
        InvalidCase(name: "interface with name and mac", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno1\n      mac: \"52:54:00:12:34:56\"\n      dhcp: true\n"),
                    keyPath: "network.interfaces[0].mac", line: 9, column: 7, message: "not both", schema: .rejects),
        InvalidCase(name: "malformed MAC address", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - mac: \"52:54:00:12:34\"\n      dhcp: true\n"),
                    keyPath: "network.interfaces[0].mac", line: 8, column: 12, message: "is not a MAC address", schema: .rejects),
        InvalidCase(name: "interface name too long", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: enp0s31f6abcdefgh\n      dhcp: true\n"),
                    keyPath: "network.interfaces[0].name", line: 8, column: 13, message: "is not a valid interface name", schema: .rejects),
        InvalidCase(name: "interface name with a slash", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: ../eth0\n      dhcp: true\n"),
                    keyPath: "network.interfaces[0].name", line: 8, column: 13, message: "is not a valid interface name", schema: .rejects),
        InvalidCase(name: "dhcp: yes", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno1\n      dhcp: yes\n"),
                    keyPath: "network.interfaces[0].dhcp", line: 9, column: 13, message: "expected true or false, found the text 'yes'; write true or false",
                    schema: .rejects),
        InvalidCase(name: "interface with neither dhcp nor addresses", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno1\n      mtu: 1500\n"),
                    keyPath: "network.interfaces[0]", line: 8, column: 7, message: "has neither dhcp: true nor addresses", schema: .rejects),
        InvalidCase(name: "address out of range", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno2\n      addresses: [10.1.0.300/24]\n"),
                    keyPath: "network.interfaces[0].addresses[0]", line: 9, column: 19, message: "is not an address with a prefix length",
                    schema: .beyondSchema),
        InvalidCase(name: "address without prefix length", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno2\n      addresses: [10.1.0.11]\n"),
                    keyPath: "network.interfaces[0].addresses[0]", line: 9, column: 19, message: "is not an address with a prefix length",
                    schema: .rejects),
        InvalidCase(name: "prefix length too long", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno2\n      addresses: [10.1.0.11/33]\n"),
                    keyPath: "network.interfaces[0].addresses[0]", line: 9, column: 19, message: "is not an address with a prefix length",
                    schema: .beyondSchema),
        InvalidCase(name: "network address as interface address", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno2\n      addresses: [10.1.0.0/24]\n"),
                    keyPath: "network.interfaces[0].addresses[0]", line: 9, column: 19, message: "is the network address of its subnet",
                    schema: .beyondSchema),
        InvalidCase(name: "gateway outside the subnet", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno2\n      addresses: [10.1.0.11/24]\n      gateway: 10.2.0.1\n"),
                    keyPath: "network.interfaces[0].gateway", line: 10, column: 16, message: "10.2.0.1 is outside the interface's subnet 10.1.0.0/24",
                    schema: .beyondSchema),
        InvalidCase(name: "IPv6 gateway outside the subnet", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno2\n      addresses: [\"fd00:1::11/64\"]\n      gateway: \"fd00:2::1\"\n"),
                    keyPath: "network.interfaces[0].gateway", line: 10, column: 16, message: "fd00:2::1 is outside the interface's subnet fd00:1::/64",
                    schema: .beyondSchema),
        InvalidCase(name: "gateway of another family", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno2\n      addresses: [10.1.0.11/24]\n      gateway: \"fd00::1\"\n"),
                    keyPath: "network.interfaces[0].gateway", line: 10, column: 16, message: "has no address of its family", schema: .beyondSchema),
        InvalidCase(name: "gateway without static address", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno1\n      dhcp: true\n      gateway: 10.1.0.1\n"),
                    keyPath: "network.interfaces[0].gateway", line: 10, column: 16, message: "a gateway needs a static address", schema: .rejects),
        InvalidCase(name: "gateway that is not an address", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno2\n      addresses: [10.1.0.11/24]\n      gateway: router\n"),
                    keyPath: "network.interfaces[0].gateway", line: 10, column: 16, message: "is not an IP address", schema: .rejects),
        InvalidCase(name: "MTU too large", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno1\n      dhcp: true\n      mtu: 9217\n"),
                    keyPath: "network.interfaces[0].mtu", line: 10, column: 12, message: "9217 is out of range: expected an MTU from 68 to 9216",
                    schema: .rejects),
        InvalidCase(name: "MTU too small", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno1\n      dhcp: true\n      mtu: 67\n"),
                    keyPath: "network.interfaces[0].mtu", line: 10, column: 12, message: "out of range", schema: .rejects),
        InvalidCase(name: "MTU as text", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno1\n      dhcp: true\n      mtu: jumbo\n"),
                    keyPath: "network.interfaces[0].mtu", line: 10, column: 12, message: "expected an MTU from 68 to 9216, found the text 'jumbo'",
                    schema: .rejects),
        InvalidCase(name: "IPv6 with MTU below 1280", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno2\n      addresses: [\"fd00:1::11/64\"]\n      mtu: 1000\n"),
                    keyPath: "network.interfaces[0].mtu", line: 10, column: 12, message: "minimum MTU for IPv6", schema: .beyondSchema),
        InvalidCase(name: "interface configured twice", yaml: Fixture.minimal(plus: "network:\n  interfaces:\n    - name: eno1\n      dhcp: true\n    - name: eno1\n      dhcp: true\n"),
                    keyPath: "network.interfaces[1].name", line: 10, column: 13, message: "already configured in network.interfaces[0]",
                    schema: .beyondSchema),
        InvalidCase(name: "nameserver that is not an address", yaml: Fixture.minimal(plus: "network:\n  nameservers: [10.0.0]\n"),
                    keyPath: "network.nameservers[0]", line: 7, column: 17, message: "is not an IP address", schema: .rejects),
        InvalidCase(name: "public network with host bits", yaml: Fixture.minimal(plus: "network:\n  public_network: 10.0.0.5/24\n"),
                    keyPath: "network.public_network", line: 7, column: 19, message: "has host bits set; the network is 10.0.0.0/24",
                    schema: .beyondSchema),
        InvalidCase(name: "cluster network not in CIDR notation", yaml: Fixture.minimal(plus: "network:\n  cluster_network: 10.1.0.0\n"),
                    keyPath: "network.cluster_network", line: 7, column: 20, message: "is not a network in CIDR notation", schema: .rejects),
        // disks
        InvalidCase(name: "wipe: yes", yaml: Fixture.minimal(plus: "disks:\n  system:\n    wipe: yes\n"),
                    keyPath: "disks.system.wipe", line: 8, column: 11, message: "'yes' is not one of never, aquarium, always", schema: .rejects),
        InvalidCase(name: "storage wipe: true", yaml: Fixture.minimal(plus: "disks:\n  storage:\n    wipe: true\n"),
                    keyPath: "disks.storage.wipe", line: 8, column: 11, message: "'true' is not one of never, aquarium, always", schema: .rejects),
        InvalidCase(name: "prefer: biggest", yaml: Fixture.minimal(plus: "disks:\n  system:\n    prefer: biggest\n"),
                    keyPath: "disks.system.prefer", line: 8, column: 13, message: "'biggest' is not one of smallest, largest", schema: .rejects),
        InvalidCase(name: "filesystem: btrfs", yaml: Fixture.minimal(plus: "disks:\n  system:\n    filesystem: btrfs\n"),
                    keyPath: "disks.system.filesystem", line: 8, column: 17, message: "'btrfs' is not one of xfs, ext4", schema: .rejects),
        InvalidCase(name: "size without unit", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match:\n      min_size: 500\n"),
                    keyPath: "disks.system.match.min_size", line: 9, column: 17, message: "500 is a size without a unit: write 500GB or 500GiB", schema: .rejects),
        InvalidCase(name: "size with a wrong-case unit", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match:\n      min_size: 10gib\n"),
                    keyPath: "disks.system.match.min_size", line: 9, column: 17, message: "did you mean '10GiB'?", schema: .rejects),
        InvalidCase(name: "requirements: fewer CPU threads than the minimum",
                    yaml: Fixture.withHost("  hostname: node-01\n  requirements:\n    cpu_threads: 1\n"),
                    keyPath: "host.requirements.cpu_threads", line: 5, column: 18,
                    message: "1 is out of range: expected a number of CPU threads from 2 to 4096", schema: .rejects),
        InvalidCase(name: "requirements: less memory than the minimum",
                    yaml: Fixture.withHost("  hostname: node-01\n  requirements:\n    memory: 512MiB\n"),
                    keyPath: "host.requirements.memory", line: 5, column: 13,
                    message: "512MiB is below Aquarium's minimum 1GiB: a seed may raise a requirement, not lower it",
                    schema: .beyondSchema),
        InvalidCase(name: "requirements: memory without a unit",
                    yaml: Fixture.withHost("  hostname: node-01\n  requirements:\n    memory_per_osd: 4\n"),
                    keyPath: "host.requirements.memory_per_osd", line: 5, column: 21,
                    message: "4 is a size without a unit: write 4GB or 4GiB", schema: .rejects),
        InvalidCase(name: "requirements: an unknown key",
                    yaml: Fixture.withHost("  hostname: node-01\n  requirements:\n    ram: 8GiB\n"),
                    keyPath: "host.requirements.ram", line: 5, column: 5, message: "unknown key", schema: .rejects),
        InvalidCase(name: "disk models: a deny rule without a reason",
                    yaml: Fixture.minimal(plus: "disks:\n  models:\n    deny:\n      - {model: \"ST4000*\"}\n"),
                    keyPath: "disks.models.deny[0]", line: 9, column: 9,
                    message: "needs a reason: the plan shows it for every disk this rule keeps out", schema: .rejects),
        InvalidCase(name: "disk models: a rule that names no disk",
                    yaml: Fixture.minimal(plus: "disks:\n  models:\n    allow:\n      - {reason: tested}\n"),
                    keyPath: "disks.models.allow[0]", line: 9, column: 9,
                    message: "names no disk: give vendor, model or firmware (shell globs)", schema: .rejects),
        InvalidCase(name: "disk models: a misspelt key",
                    yaml: Fixture.minimal(plus: "disks:\n  models:\n    deny:\n      - {modle: \"ST4000*\", reason: bad}\n"),
                    keyPath: "disks.models.deny[0].modle", line: 9, column: 10, message: "did you mean 'model'?", schema: .rejects),
        InvalidCase(name: "size with a bare prefix", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match:\n      min_size: 100G\n"),
                    keyPath: "disks.system.match.min_size", line: 9, column: 17,
                    message: "'100G' has no valid unit: use one of B, kB, MB, GB, TB, KiB, MiB, GiB, TiB; did you mean '100GiB' or '100GB'?",
                    schema: .rejects),
        InvalidCase(name: "size with a binary prefix only", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match:\n      max_size: 1.5Ti\n"),
                    keyPath: "disks.system.match.max_size", line: 9, column: 17, message: "did you mean '1.5TiB' or '1.5TB'?", schema: .rejects),
        InvalidCase(name: "size with k", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match:\n      max_size: 64k\n"),
                    keyPath: "disks.system.match.max_size", line: 9, column: 17, message: "did you mean '64KiB' or '64kB'?", schema: .rejects),
        InvalidCase(name: "size with an unknown unit", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match:\n      min_size: 10 gigs\n"),
                    keyPath: "disks.system.match.min_size", line: 9, column: 17, message: "has no valid unit", schema: .rejects),
        InvalidCase(name: "size too large", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match:\n      max_size: 99999999999TiB\n"),
                    keyPath: "disks.system.match.max_size", line: 9, column: 17, message: "is too large", schema: .beyondSchema),
        InvalidCase(name: "min_size larger than max_size", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match:\n      min_size: 3TB\n      max_size: 2TB\n"),
                    keyPath: "disks.system.match.min_size", line: 9, column: 17, message: "min_size 3TB is larger than max_size 2TB",
                    schema: .beyondSchema),
        InvalidCase(name: "max_size below the default min_size", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match:\n      max_size: 8GiB\n"),
                    keyPath: "disks.system.match.max_size", line: 9, column: 17, message: "below the default min_size 10GiB",
                    schema: .beyondSchema),
        InvalidCase(name: "unknown transport", yaml: Fixture.minimal(plus: "disks:\n  storage:\n    match: {transport: [nvme, floppy]}\n"),
                    keyPath: "disks.storage.match.transport[1]", line: 8, column: 31, message: "'floppy' is not one of nvme, sata",
                    schema: .rejects),
        InvalidCase(name: "transport not a list", yaml: Fixture.minimal(plus: "disks:\n  storage:\n    match: {transport: nvme}\n"),
                    keyPath: "disks.storage.match.transport", line: 8, column: 24, message: "expected a list of transports", schema: .rejects),
        InvalidCase(name: "rotational: no", yaml: Fixture.minimal(plus: "disks:\n  storage:\n    match: {rotational: no}\n"),
                    keyPath: "disks.storage.match.rotational", line: 8, column: 25, message: "write true or false", schema: .rejects),
        InvalidCase(name: "by_id outside /dev/disk/by-id", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match: {by_id: /dev/sda}\n"),
                    keyPath: "disks.system.match.by_id", line: 8, column: 20, message: "is not a path like /dev/disk/by-id/", schema: .rejects),
        InvalidCase(name: "by_id with traversal", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match: {by_id: /dev/disk/by-id/../../sda}\n"),
                    keyPath: "disks.system.match.by_id", line: 8, column: 20, message: "is not a path like /dev/disk/by-id/", schema: .rejects),
        InvalidCase(name: "WWN written as a number", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match: {wwn: 0x5000c500a1b2c3d4}\n"),
                    keyPath: "disks.system.match.wwn", line: 8, column: 18, message: "put it in quotes", schema: .rejects),
        InvalidCase(name: "unknown match key", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match: {vendor: ACME}\n"),
                    keyPath: "disks.system.match.vendor", line: 8, column: 13, message: "unknown key; allowed here: by_id, serial", schema: .rejects),
        InvalidCase(name: "serial glob with a control character", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match: {serial: \"S3\\tZ9*\"}\n"),
                    keyPath: "disks.system.match.serial", line: 8, column: 21, message: "is not a pattern", schema: .rejects),
        // cluster
        InvalidCase(name: "role missing", yaml: Fixture.withCluster("cluster:\n  name: ceph\n"),
                    keyPath: "cluster.role", line: 5, column: 3, message: "required key is missing", schema: .rejects),
        InvalidCase(name: "unknown role", yaml: Fixture.withCluster("cluster:\n  role: leader\n"),
                    keyPath: "cluster.role", line: 5, column: 9, message: "'leader' is not one of bootstrap, join", schema: .rejects),
        InvalidCase(name: "join without role join", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  join:\n    address: 10.0.0.11\n    token: a1b2-c3d4-e5f6-a7b8\n"),
                    keyPath: "cluster.join", line: 6, column: 3, message: "is only allowed with role: join", schema: .rejects),
        InvalidCase(name: "role join without join", yaml: Fixture.withCluster("cluster:\n  role: join\n"),
                    keyPath: "cluster.join", line: 5, column: 9, message: "role: join needs cluster.join", schema: .rejects),
        InvalidCase(name: "join token too short, not echoed", yaml: Fixture.withCluster("cluster:\n  role: join\n  join:\n    address: 10.0.0.11\n    token: s3cr3t\n"),
                    keyPath: "cluster.join.token", line: 8, column: 12, message: "is not a valid join token", schema: .rejects,
                    mustNotContain: "s3cr3t"),
        InvalidCase(name: "join token with shell characters", yaml: Fixture.withCluster("cluster:\n  role: join\n  join:\n    address: 10.0.0.11\n    token: \"a1b2-c3d4-e5f6-a7b8$(reboot)\"\n"),
                    keyPath: "cluster.join.token", line: 8, column: 12, message: "is not a valid join token", schema: .rejects,
                    mustNotContain: "a1b2-c3d4"),
        InvalidCase(name: "join address not an address", yaml: Fixture.withCluster("cluster:\n  role: join\n  join:\n    address: mon-1\n    token: a1b2-c3d4-e5f6-a7b8\n"),
                    keyPath: "cluster.join.address", line: 7, column: 14, message: "is not an IP address", schema: .rejects),
        InvalidCase(name: "join without token", yaml: Fixture.withCluster("cluster:\n  role: join\n  join:\n    address: 10.0.0.11\n"),
                    keyPath: "cluster.join.token", line: 7, column: 5, message: "required key is missing", schema: .rejects),
        InvalidCase(name: "cluster name with uppercase", yaml: Fixture.withCluster("cluster:\n  name: Ceph\n  role: bootstrap\n"),
                    keyPath: "cluster.name", line: 5, column: 9, message: "is not a valid cluster name", schema: .rejects),
        InvalidCase(name: "pool name with a space", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    rbd: {pools: [\"my pool\"]}\n"),
                    keyPath: "cluster.services.rbd.pools[0]", line: 7, column: 19, message: "is not a valid name", schema: .rejects),
        InvalidCase(name: "pool listed twice", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    rbd: {pools: [rbd, rbd]}\n"),
                    keyPath: "cluster.services.rbd.pools[1]", line: 7, column: 24, message: "pool 'rbd' is listed twice", schema: .rejects),
        InvalidCase(name: "no pools", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    rbd: {pools: []}\n"),
                    keyPath: "cluster.services.rbd.pools", line: 7, column: 18, message: "is empty", schema: .rejects),
        InvalidCase(name: "S3 user name with capitals", yaml: Fixture.withCluster(Self.s3("        - name: Alice\n")),
                    keyPath: "cluster.services.rgw.users[0].name", line: 9, column: 17, message: "is not a valid S3 user name", schema: .rejects),
        InvalidCase(name: "S3 user named like the administrator", yaml: Fixture.withCluster(Self.s3("        - name: aquarium-admin\n")),
                    keyPath: "cluster.services.rgw.users[0].name", line: 9, column: 17, message: "the Provisioner's own S3 administrator", schema: .rejects),
        InvalidCase(name: "S3 user listed twice", yaml: Fixture.withCluster(Self.s3("        - name: backup\n        - name: backup\n")),
                    keyPath: "cluster.services.rgw.users[1].name", line: 10, column: 17, message: "S3 user 'backup' is listed twice", schema: .beyondSchema),
        InvalidCase(name: "S3 user without a name", yaml: Fixture.withCluster(Self.s3("        - buckets: [photos]\n")),
                    keyPath: "cluster.services.rgw.users[0].name", line: 9, column: 11, message: "required key is missing", schema: .rejects),
        InvalidCase(name: "bucket name with an underscore", yaml: Fixture.withCluster(Self.s3("        - {name: backup, buckets: [my_bucket]}\n")),
                    keyPath: "cluster.services.rgw.users[0].buckets[0]", line: 9, column: 36, message: "is not a valid S3 bucket name", schema: .rejects),
        InvalidCase(name: "bucket name like an IPv4 address", yaml: Fixture.withCluster(Self.s3("        - {name: backup, buckets: [192.168.5.4]}\n")),
                    keyPath: "cluster.services.rgw.users[0].buckets[0]", line: 9, column: 36, message: "reads as an IPv4 address", schema: .beyondSchema),
        InvalidCase(name: "bucket of two users", yaml: Fixture.withCluster(Self.s3("        - {name: backup, buckets: [shared]}\n        - {name: media, buckets: [shared]}\n")),
                    keyPath: "cluster.services.rgw.users[1].buckets[0]", line: 10, column: 35, message: "is already S3 user 'backup's", schema: .beyondSchema),
        InvalidCase(name: "quota size without a unit", yaml: Fixture.withCluster(Self.s3("        - {name: backup, quota: {max_size: 500}}\n")),
                    keyPath: "cluster.services.rgw.users[0].quota.max_size", line: 9, column: 44, message: "500 is a size without a unit: write 500GB or 500GiB", schema: .rejects),
        InvalidCase(name: "quota with no limit", yaml: Fixture.withCluster(Self.s3("        - {name: backup, quota: {}}\n")),
                    keyPath: "cluster.services.rgw.users[0].quota", line: 9, column: 33, message: "names no limit", schema: .rejects),
        InvalidCase(name: "quota of zero objects", yaml: Fixture.withCluster(Self.s3("        - {name: backup, quota: {max_objects: 0}}\n")),
                    keyPath: "cluster.services.rgw.users[0].quota.max_objects", line: 9, column: 47, message: "a number of objects", schema: .rejects),
        InvalidCase(name: "soft object limit above the hard one", yaml: Fixture.withCluster(Self.s3(
            "        - {name: backup, quota: {max_objects: 3, soft_max_objects: 5}}\n")),
                    keyPath: "cluster.services.rgw.users[0].quota.soft_max_objects", line: 9, column: 68,
                    message: "5 is above max_objects (3); the soft limit warns before the hard one refuses", schema: .beyondSchema),
        InvalidCase(name: "soft size limit above the hard one", yaml: Fixture.withCluster(Self.s3(
            "        - {name: backup, quota: {max_size: 1GiB, soft_max_size: 2GiB}}\n")),
                    keyPath: "cluster.services.rgw.users[0].quota.soft_max_size", line: 9, column: 65,
                    message: "2GiB is above max_size (1GiB)", schema: .beyondSchema),
        InvalidCase(name: "unknown S3 user key", yaml: Fixture.withCluster(Self.s3("        - {name: backup, bucket: [photos]}\n")),
                    keyPath: "cluster.services.rgw.users[0].bucket", line: 9, column: 26, message: "did you mean 'buckets'?", schema: .rejects),
        InvalidCase(name: "dashboard port out of range", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    dashboard: {port: 0}\n"),
                    keyPath: "cluster.services.dashboard.port", line: 7, column: 23, message: "expected a TCP port from 1 to 65535", schema: .rejects),
        InvalidCase(name: "dashboard certificate without its key", yaml: Fixture.withCluster(
            "cluster:\n  role: bootstrap\n  services:\n    dashboard:\n      certificate: |\n" + Self.pemCertificate),
                    keyPath: "cluster.services.dashboard.private_key", line: 8, column: 7,
                    message: "is missing: give the certificate's private_key too", schema: .rejects),
        InvalidCase(name: "dashboard key given as the certificate", yaml: Fixture.withCluster(
            "cluster:\n  role: bootstrap\n  services:\n    dashboard:\n      certificate: |\n" + Self.pemKey
                + "      private_key: |\n" + Self.pemKey),
                    keyPath: "cluster.services.dashboard.certificate", line: 8, column: 20, message: "holds a PRIVATE KEY block", schema: .rejects),
        InvalidCase(name: "dashboard with an EC key", yaml: Fixture.withCluster(
            "cluster:\n  role: bootstrap\n  services:\n    dashboard:\n      certificate: |\n" + Self.pemCertificate
                + "      private_key: |\n" + Self.pemKey),
                    keyPath: "cluster.services.dashboard.private_key", line: 12, column: 20,
                    message: "is not an RSA key; Ceph's dashboard takes RSA keys only", schema: .beyondSchema),
        InvalidCase(name: "unknown dashboard key", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    dashboard: {prot: 8443}\n"),
                    keyPath: "cluster.services.dashboard.prot", line: 7, column: 17, message: "did you mean 'port'?", schema: .rejects),
        InvalidCase(name: "RGW port out of range", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    rgw: {port: 70000}\n"),
                    keyPath: "cluster.services.rgw.port", line: 7, column: 17, message: "expected a TCP port from 1 to 65535", schema: .rejects),
        InvalidCase(name: "CephFS name starting with '-'", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    cephfs: {name: -fs}\n"),
                    keyPath: "cluster.services.cephfs.name", line: 7, column: 20, message: "is not a valid name", schema: .rejects),
        InvalidCase(name: "unknown service", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    ftp: {}\n"),
                    keyPath: "cluster.services.ftp", line: 7, column: 5, message: "unknown key", schema: .rejects),
        // services.iscsi
        InvalidCase(name: "iSCSI target name in capitals", yaml: Fixture.withCluster(Self.iscsi(
            "      target: iqn.2026-01.Local.aquarium\n      disks: [{name: vol1, size: 1GiB}]\n")),
                    keyPath: "cluster.services.iscsi.target", line: 9, column: 15, message: "is not an iSCSI name", schema: .rejects),
        InvalidCase(name: "iSCSI without disks", yaml: Fixture.withCluster(Self.iscsi("      disks: []\n")),
                    keyPath: "cluster.services.iscsi.disks", line: 9, column: 14, message: "is empty", schema: .rejects),
        InvalidCase(name: "iSCSI disk in a pool that is not an RBD pool", yaml: Fixture.withCluster(Self.iscsi(
            "      disks:\n        - {name: vol1, pool: slow, size: 1GiB}\n")),
                    keyPath: "cluster.services.iscsi.disks[0].pool", line: 10, column: 30,
                    message: "pool 'slow' is not one of services.rbd.pools (rbd, fast)", schema: .beyondSchema),
        InvalidCase(name: "iSCSI disk below 1MiB", yaml: Fixture.withCluster(Self.iscsi("      disks:\n        - {name: vol1, size: 512KiB}\n")),
                    keyPath: "cluster.services.iscsi.disks[0].size", line: 10, column: 30, message: "is too small for a disk", schema: .beyondSchema),
        InvalidCase(name: "iSCSI disk listed twice", yaml: Fixture.withCluster(Self.iscsi(
            "      disks:\n        - {name: vol1, size: 1GiB}\n        - {name: vol1, size: 2GiB}\n")),
                    keyPath: "cluster.services.iscsi.disks[1].name", line: 11, column: 18, message: "disk 'rbd/vol1' is listed twice",
                    schema: .beyondSchema),
        InvalidCase(name: "iSCSI disk without a size", yaml: Fixture.withCluster(Self.iscsi("      disks:\n        - {name: vol1}\n")),
                    keyPath: "cluster.services.iscsi.disks[0].size", line: 10, column: 11, message: "required key is missing", schema: .rejects),
        InvalidCase(name: "iSCSI initiator name in capitals", yaml: Fixture.withCluster(Self.iscsi(
            "      disks: [{name: vol1, size: 1GiB}]\n      clients:\n        - {iqn: iqn.1994-05.com.Example:host1}\n")),
                    keyPath: "cluster.services.iscsi.clients[0].iqn", line: 11, column: 17, message: "is not an iSCSI name", schema: .rejects),
        InvalidCase(name: "iSCSI initiator with a disk the target does not have", yaml: Fixture.withCluster(Self.iscsi(
            "      disks: [{name: vol1, size: 1GiB}]\n      clients:\n        - {iqn: iqn.1994-05.com.example:host1, disks: [vol9]}\n")),
                    keyPath: "cluster.services.iscsi.clients[0].disks[0]", line: 11, column: 56,
                    message: "'vol9' is not one of services.iscsi.disks (vol1)", schema: .beyondSchema),
        InvalidCase(name: "iSCSI initiator listed twice", yaml: Fixture.withCluster(Self.iscsi(
            "      disks: [{name: vol1, size: 1GiB}]\n      clients:\n        - {iqn: iqn.1994-05.com.example:host1}\n"
            + "        - {iqn: iqn.1994-05.com.example:host1}\n")),
                    keyPath: "cluster.services.iscsi.clients[1].iqn", line: 12, column: 17,
                    message: "initiator 'iqn.1994-05.com.example:host1' is listed twice", schema: .beyondSchema),
        InvalidCase(name: "iSCSI initiator with the target's name", yaml: Fixture.withCluster(Self.iscsi(
            "      disks: [{name: vol1, size: 1GiB}]\n      clients:\n        - {iqn: iqn.2026-01.local.aquarium:storage}\n")),
                    keyPath: "cluster.services.iscsi.clients[0].iqn", line: 11, column: 17, message: "is the target's own name",
                    schema: .beyondSchema),
        InvalidCase(name: "iSCSI with an empty list of initiators", yaml: Fixture.withCluster(Self.iscsi(
            "      disks: [{name: vol1, size: 1GiB}]\n      clients: []\n")),
                    keyPath: "cluster.services.iscsi.clients", line: 10, column: 16, message: "is empty", schema: .rejects),
        InvalidCase(name: "iSCSI mutual_chap not a boolean", yaml: Fixture.withCluster(Self.iscsi(
            "      disks: [{name: vol1, size: 1GiB}]\n      mutual_chap: sometimes\n")),
                    keyPath: "cluster.services.iscsi.mutual_chap", line: 10, column: 20, message: "true or false", schema: .rejects),
        InvalidCase(name: "iSCSI without rbd", yaml: Fixture.withCluster(
            "cluster:\n  role: bootstrap\n  services:\n    iscsi:\n      disks: [{name: vol1, size: 1GiB}]\n"),
                    keyPath: "cluster.services.iscsi", line: 7, column: 5, message: "serves RBD images: add rbd", schema: .beyondSchema),
        // services.rgw.https
        InvalidCase(name: "HTTPS certificate that is not PEM", yaml: Fixture.withCluster(Self.https(
            "        certificate: my-cert.pem\n        private_key: |\n" + Self.pemKey)),
                    keyPath: "cluster.services.rgw.https.certificate", line: 9, column: 22, message: "is not a PEM certificate", schema: .rejects),
        InvalidCase(name: "HTTPS key given as the certificate", yaml: Fixture.withCluster(Self.https(
            "        certificate: |\n" + Self.pemKey + "        private_key: |\n" + Self.pemKey)),
                    keyPath: "cluster.services.rgw.https.certificate", line: 9, column: 22, message: "holds a PRIVATE KEY block", schema: .rejects),
        InvalidCase(name: "HTTPS encrypted private key", yaml: Fixture.withCluster(Self.https(
            "        certificate: |\n" + Self.pemCertificate + "        private_key: |\n"
            + Self.pemKey.replacingOccurrences(of: "PRIVATE KEY", with: "ENCRYPTED PRIVATE KEY"))),
                    keyPath: "cluster.services.rgw.https.private_key", line: 13, column: 22, message: "an encrypted key cannot be used",
                    schema: .rejects, mustNotContain: "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"),
        InvalidCase(name: "HTTPS without a private key", yaml: Fixture.withCluster(Self.https("        certificate: |\n" + Self.pemCertificate)),
                    keyPath: "cluster.services.rgw.https.private_key", line: 9, column: 9, message: "required key is missing", schema: .rejects),
        InvalidCase(name: "HTTPS on the HTTP port", yaml: Fixture.withCluster(Self.https(
            "        port: 7480\n        certificate: |\n" + Self.pemCertificate + "        private_key: |\n" + Self.pemKey)),
                    keyPath: "cluster.services.rgw.https.port", line: 9, column: 15, message: "is also the HTTP port (7480)", schema: .beyondSchema),
        // services.nfs
        InvalidCase(name: "NFS without CephFS", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    nfs: {exports: [{name: shared}]}\n"),
                    keyPath: "cluster.services.nfs", line: 7, column: 5, message: "exports CephFS subvolumes: add cephfs", schema: .beyondSchema),
        InvalidCase(name: "NFS without exports", yaml: Fixture.withCluster(Self.nfs("      virtual_ip: 10.0.0.100\n")),
                    keyPath: "cluster.services.nfs.exports", line: 9, column: 7, message: "required key is missing", schema: .rejects),
        InvalidCase(name: "NFS with an empty export list", yaml: Fixture.withCluster(Self.nfs("      exports: []\n")),
                    keyPath: "cluster.services.nfs.exports", line: 9, column: 16, message: "is empty; give at least one export", schema: .rejects),
        InvalidCase(name: "NFS export listed twice", yaml: Fixture.withCluster(Self.nfs("      exports: [{name: a}, {name: a}]\n")),
                    keyPath: "cluster.services.nfs.exports[1].name", line: 9, column: 35, message: "export 'a' is listed twice", schema: .beyondSchema),
        InvalidCase(name: "NFS export access unknown", yaml: Fixture.withCluster(Self.nfs("      exports: [{name: a, access: rwx}]\n")),
                    keyPath: "cluster.services.nfs.exports[0].access", line: 9, column: 35, message: "rw, ro", schema: .rejects),
        InvalidCase(name: "NFS export size without a unit", yaml: Fixture.withCluster(Self.nfs("      exports: [{name: a, size: 100}]\n")),
                    keyPath: "cluster.services.nfs.exports[0].size", line: 9, column: 33, message: "100 is a size without a unit", schema: .rejects),
        InvalidCase(name: "NFS export clients not a network", yaml: Fixture.withCluster(Self.nfs("      exports: [{name: a, clients: [office]}]\n")),
                    keyPath: "cluster.services.nfs.exports[0].clients[0]", line: 9, column: 37, message: "is not a network in CIDR notation", schema: .rejects),
        InvalidCase(name: "NFS version 3", yaml: Fixture.withCluster(Self.nfs("      versions: [3]\n      exports: [{name: a}]\n")),
                    keyPath: "cluster.services.nfs.versions[0]", line: 9, column: 18, message: "expected an NFS version: 4.0, 4.1, 4.2", schema: .rejects),
        InvalidCase(name: "NFS virtual address outside the public network",
                    yaml: "version: 1\nhost:\n  hostname: node-01\nnetwork:\n  public_network: 10.0.0.0/24\ncluster:\n  role: bootstrap\n"
                        + "  services:\n    cephfs:\n    nfs:\n      virtual_ip: 10.9.0.100\n      exports: [{name: a}]\n",
                    keyPath: "cluster.services.nfs.virtual_ip", line: 11, column: 19, message: "10.9.0.100 is not in the public network 10.0.0.0/24",
                    schema: .beyondSchema),
        InvalidCase(name: "telemetry as text", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  telemetry: \"false\"\n"),
                    keyPath: "cluster.telemetry", line: 6, column: 14, message: "expected true or false, found the text 'false'", schema: .rejects),
        // rack roles (cluster.rack, made by `aquarium-image rack seeds`)
        InvalidCase(name: "role monitor without rack", yaml: Fixture.withCluster("cluster:\n  role: monitor\n"),
                    keyPath: "cluster.rack", line: 5, column: 9, message: "role: monitor needs cluster.rack", schema: .rejects),
        InvalidCase(name: "role storage without rack", yaml: Fixture.withCluster("cluster:\n  role: storage\n"),
                    keyPath: "cluster.rack", line: 5, column: 9, message: "aquarium-image rack seeds RACK.yaml", schema: .rejects),
        InvalidCase(name: "rack with role bootstrap", yaml: Fixture.rackMonitor.replacingOccurrences(of: "role: monitor", with: "role: bootstrap"),
                    keyPath: "cluster.rack", line: 8, column: 3, message: "is only allowed with role: monitor or role: storage",
                    schema: .rejects),
        InvalidCase(name: "storage seed with the admin key", yaml: Fixture.rackStorage + "    admin_key: \"\(Fixture.cephxKeys[2])\"\n",
                    keyPath: "cluster.rack.admin_key", line: 12, column: 5, message: "is only for monitor nodes; a storage node's seed must not hold it",
                    schema: .rejects, mustNotContain: Fixture.cephxKeys[2]),
        InvalidCase(name: "storage seed with the monitor key", yaml: Fixture.rackStorage + "    monitor_key: \"\(Fixture.cephxKeys[1])\"\n",
                    keyPath: "cluster.rack.monitor_key", line: 12, column: 5, message: "a stolen stick would yield the whole cluster",
                    schema: .rejects, mustNotContain: Fixture.cephxKeys[1]),
        InvalidCase(name: "storage seed with a join key lifetime", yaml: Fixture.rackStorage + "    join_key_lifetime: 24h\n",
                    keyPath: "cluster.rack.join_key_lifetime", line: 12, column: 5, message: "is only for monitor nodes", schema: .rejects),
        InvalidCase(name: "monitor seed without the admin key", yaml: Fixture.rackMonitor.replacingOccurrences(of: "    admin_key: \"\(Fixture.cephxKeys[2])\"\n", with: ""),
                    keyPath: "cluster.rack.admin_key", line: 9, column: 5, message: "a monitor node needs the monitor and admin keys",
                    schema: .rejects),
        InvalidCase(name: "monitor node that is not among the monitors", yaml: Fixture.rackMonitor.replacingOccurrences(of: "hostname: node1", with: "hostname: node4"),
                    keyPath: "cluster.rack.monitors", line: 10, column: 15, message: "has role: monitor but is not one of the rack's monitors (node1, node2, node3)",
                    schema: .beyondSchema),
        InvalidCase(name: "storage node that is a monitor", yaml: Fixture.rackStorage.replacingOccurrences(of: "hostname: node4", with: "hostname: node2"),
                    keyPath: "cluster.rack.monitors", line: 10, column: 15, message: "has role: storage but is the monitor node2",
                    schema: .beyondSchema),
        InvalidCase(name: "monitor address outside the public network", yaml: Fixture.rackMonitor.replacingOccurrences(of: "10.77.0.0/24", with: "10.88.0.0/24"),
                    keyPath: "cluster.rack.monitors", line: 10, column: 15, message: "monitor node1's address 10.77.0.1 is not in network.public_network 10.88.0.0/24",
                    schema: .beyondSchema),
        InvalidCase(name: "rack node without a public network", yaml: Fixture.rackMonitor.replacingOccurrences(of: "network:\n  public_network: 10.77.0.0/24\n", with: ""),
                    keyPath: "network.public_network", line: 1, column: 1, message: "a rack node (role: monitor) needs the public network",
                    schema: .beyondSchema),
        InvalidCase(name: "monitor listed twice", yaml: Fixture.rackMonitor.replacingOccurrences(of: "{host: node3, address: 10.77.0.3}", with: "{host: node1, address: 10.77.0.3}"),
                    keyPath: "cluster.rack.monitors[2].host", line: 10, column: 86, message: "monitor host 'node1' is listed twice",
                    schema: .beyondSchema),
        InvalidCase(name: "eight monitors", yaml: Fixture.rackMonitor.replacingOccurrences(of: "monitors: [", with: "monitors: [" + (4...8).map { "{host: n\($0), address: 10.77.0.\($0)}, " }.joined()),
                    keyPath: "cluster.rack.monitors", line: 10, column: 15, message: "lists 8 monitors; a rack has 1 to 7", schema: .rejects),
        InvalidCase(name: "cephx key that is not base64 of 28 bytes", yaml: Fixture.rackMonitor.replacingOccurrences(of: Fixture.cephxKeys[0], with: "AQnotakeyAtAll"),
                    keyPath: "cluster.rack.join_key", line: 11, column: 15, message: "is not a cephx key (40 characters of base64, starting with AQ)",
                    schema: .rejects, mustNotContain: "AQnotakeyAtAll"),
        InvalidCase(name: "cephx key with a wrong length field", yaml: Fixture.rackMonitor.replacingOccurrences(of: Fixture.cephxKeys[1], with: "AQAAuVVpAAAAACAAAAECAwQFBgcICQoLDA0ODw=="),
                    keyPath: "cluster.rack.monitor_key", line: 12, column: 18, message: "is base64 but not a cephx key",
                    schema: .beyondSchema, mustNotContain: "AQAAuVVpAAAAACAAAAECAwQFBgcICQoLDA0ODw=="),
        InvalidCase(name: "fsid not a UUID", yaml: Fixture.rackMonitor.replacingOccurrences(of: "c1548103-2615-4764-ae5d-1ab67261fb22", with: "c1548103-2615-4764"),
                    keyPath: "cluster.rack.fsid", line: 9, column: 11, message: "is not a cluster fsid", schema: .rejects),
        InvalidCase(name: "fsid in uppercase", yaml: Fixture.rackMonitor.replacingOccurrences(of: "c1548103-2615-4764-ae5d-1ab67261fb22", with: "C1548103-2615-4764-AE5D-1AB67261FB22"),
                    keyPath: "cluster.rack.fsid", line: 9, column: 11, message: "write the fsid in lowercase", schema: .rejects),
        InvalidCase(name: "join key missing", yaml: Fixture.rackStorage.replacingOccurrences(of: "    join_key: \"\(Fixture.cephxKeys[0])\"\n", with: ""),
                    keyPath: "cluster.rack.join_key", line: 9, column: 5, message: "required key is missing", schema: .rejects),
        InvalidCase(name: "join key lifetime without unit", yaml: Fixture.rackMonitor + "    join_key_lifetime: \"24\"\n",
                    keyPath: "cluster.rack.join_key_lifetime", line: 14, column: 24, message: "is not a lifetime", schema: .rejects),
    ]

    // The valid side of the rules.
    static let valid: [ValidCase] = [
        ValidCase(name: "minimal", yaml: m),
        ValidCase(name: "fully qualified host name", yaml: Fixture.withHost("  hostname: node-01.rack-3.example.org\n")),
        ValidCase(name: "raised hardware requirements and disk model rules", yaml: """
            version: 1
            host:
              hostname: node-01
              requirements: {cpu_threads: 8, memory: 8GiB, memory_per_osd: 4GiB, storage_disks: 4}
            disks:
              models:
                allow:
                  - {vendor: "ATA", model: "Micron_5300*"}
                  - {model: "ST4000NM*", reason: tested here}
                deny:
                  - {model: "Samsung SSD 870 QVO*", firmware: "SVQ01B6Q", reason: "QLC: slow under sustained writes"}
            cluster:
              role: bootstrap

            """),
        ValidCase(name: "time zones", yaml: Fixture.withHost("  hostname: node-01\n  timezone: Europe/Berlin\n")),
        ValidCase(name: "NTP servers by name and address", yaml: Fixture.withHost("  hostname: node-01\n  ntp_servers: [ntp.example.org, 10.0.0.1, \"fd00::1\"]\n")),
        ValidCase(name: "users with hashes and keys", yaml: Fixture.withHost("""
              hostname: node-01
              users:
                - name: aquarium
                  password_hash: "\(Fixture.yescryptHash)"
                  ssh_authorized_keys: ["\(Fixture.ed25519Key)", "\(Fixture.ecdsaKey)"]
                - name: ops_team-2
                  password_hash: '\(Fixture.sha512Hash)'
                  ssh_authorized_keys: ["\(Fixture.rsaKey)"]
                - name: audit
                  password_hash: '\(Fixture.sha512RoundsHash)'

            """)),
        ValidCase(name: "interfaces by name, by mac, dual stack", yaml: Fixture.minimal(plus: """
            network:
              interfaces:
                - name: eno1
                  dhcp: true
                - mac: "52:54:00:AB:cd:ef"
                  addresses: [10.1.0.11/24, "fd00:1::11/64"]
                  gateway: 10.1.0.1
                  mtu: 9216
                - name: bond0.100
                  addresses: ["fd00:2::11/64"]
                  gateway: "fd00:2::1"
                  mtu: 1280
                - name: eno3
                  dhcp: false
                  addresses: [192.168.7.5/31]
                  mtu: 68
              nameservers: [10.0.0.1, "fd00::53"]
              public_network: 10.0.0.0/24
              cluster_network: "fd00:1::/64"

            """)),
        ValidCase(name: "disk sizes in every unit", yaml: Fixture.minimal(plus: """
            disks:
              system:
                match:
                  by_id: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
                  serial: "S3Z9*"
                  wwn: "0x5000c500a1b2c3d4"
                  model: "SAMSUNG [MP]Z*"
                  transport: [nvme, sata, virtio]
                  rotational: false
                  min_size: 1.92TB
                  max_size: 2TiB
                prefer: largest
                wipe: aquarium
                filesystem: ext4
              storage:
                match: {min_size: 512 MiB, max_size: 16TB}
                wipe: always

            """)),
        ValidCase(name: "min_size equal to max_size, small units", yaml: Fixture.minimal(plus: "disks:\n  system:\n    match: {min_size: 1000kB, max_size: 1MB}\n  storage:\n    match: {min_size: 1KiB, max_size: 1048576B}\n")),
        ValidCase(name: "role join with join", yaml: Fixture.withCluster("cluster:\n  name: ceph-prod\n  role: join\n  join:\n    address: 10.0.0.11\n    token: a1b2-c3d4-e5f6-a7b8\n")),
        ValidCase(name: "services with defaults", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    rbd:\n    rgw: {}\n    cephfs:\n    dashboard:\n  telemetry: true\n")),
        ValidCase(name: "dashboard with the operator's certificate", yaml: Fixture.withCluster(
            "cluster:\n  role: bootstrap\n  services:\n    dashboard:\n      port: 9443\n      certificate: |\n" + Self.pemCertificate
                + "      private_key: |\n" + Self.pemRSAKey)),
        ValidCase(name: "iSCSI with a target and disks in two pools", yaml: Fixture.withCluster(Self.iscsi(
            "      target: iqn.2026-11.com.example:rack-1\n      disks:\n        - {name: vol1, size: 100GiB}\n"
            + "        - {name: vol2, pool: fast, size: 1.5TB}\n"))),
        ValidCase(name: "iSCSI with per-initiator ACLs and mutual CHAP", yaml: Fixture.withCluster(Self.iscsi(
            "      disks:\n        - {name: vol1, size: 100GiB}\n        - {name: vol2, pool: fast, size: 1TiB}\n"
            + "      mutual_chap: true\n      clients:\n        - {iqn: iqn.1994-05.com.example:db1, disks: [fast/vol2]}\n"
            + "        - iqn: iqn.1991-05.com.microsoft:backup\n          mutual_chap: false\n"))),
        ValidCase(name: "dashboard on another port", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    dashboard: {port: 9443}\n")),
        ValidCase(name: "S3 users with buckets and quotas", yaml: Fixture.withCluster(Self.s3(
            "        - {name: backup, buckets: [backups, archive.2026], quota: {max_size: 500GiB, max_objects: 1000000}}\n"
            + "        - name: media\n          buckets: [photos]\n        - name: reader\n"))),
        ValidCase(name: "S3 users with soft quotas", yaml: Fixture.withCluster(Self.s3(
            "        - {name: backup, quota: {max_size: 500GiB, soft_max_size: 400GiB, max_objects: 10, soft_max_objects: 10}}\n"
            + "        - {name: media, quota: {soft_max_size: 1TB}}\n"))),
        ValidCase(name: "RGW with HTTPS", yaml: Fixture.withCluster(Self.https(
            "        port: 8443\n        certificate: |\n" + Self.pemCertificate + Self.pemCertificate + "        private_key: |\n" + Self.pemKey))),
        ValidCase(name: "NFS with a virtual address, versions and exports", yaml:
            "version: 1\nhost:\n  hostname: node-01\nnetwork:\n  public_network: 10.0.0.0/24\ncluster:\n  role: bootstrap\n  services:\n"
            + "    cephfs:\n    nfs:\n      virtual_ip: 10.0.0.100\n      versions: [4.0, 4.1, 4.2]\n      exports:\n"
            + "        - name: shared\n        - {name: media, access: ro, clients: [10.0.0.0/24, fd00::/64], size: 100GiB}\n"),
        ValidCase(name: "services spelled out", yaml: Fixture.withCluster("cluster:\n  role: bootstrap\n  services:\n    rbd: {pools: [rbd, vm-images, backup.2]}\n    rgw: {port: 8080}\n    cephfs: {name: shared_fs}\n")),
        ValidCase(name: "comments, quotes and CRLF line ends", yaml: "# a seed\r\nversion: 1 # v1\r\nhost:\r\n  hostname: 'node-01'\r\ncluster: {role: \"bootstrap\"}\r\n"),
        ValidCase(name: "empty optional lists", yaml: Fixture.withHost("  hostname: node-01\n  ntp_servers: []\n  users: []\n")),
        ValidCase(name: "rack monitor node", yaml: Fixture.rackMonitor + "    join_key_lifetime: 24h\n  services: {rbd: , rgw: }\n"),
        ValidCase(name: "rack storage node", yaml: Fixture.rackStorage),
        ValidCase(name: "rack monitor node by its fully qualified name, with its static address", yaml: Fixture.rackMonitor
            .replacingOccurrences(of: "hostname: node1", with: "hostname: node1.rack.example.org")
            .replacingOccurrences(of: "network:\n", with: "network:\n  interfaces:\n    - name: eno1\n      addresses: [10.77.0.1/24]\n")),
    ]
}

@Suite("Seed validation rules")
struct ValidationTableTests {
    @Test("invalid seeds are rejected with the exact key path, line and column", arguments: SeedCases.invalid)
    func rejects(_ testCase: InvalidCase) throws {
        let found = issues(of: testCase.yaml)
        try #require(!found.isEmpty, "accepted: \(testCase.yaml)")
        let match = found.first { $0.keyPath == testCase.keyPath && $0.message.contains(testCase.message) }
        #expect(match != nil, "no issue at \(testCase.keyPath) containing \"\(testCase.message)\"; got:\n\(found.map(\.description).joined(separator: "\n"))")
        if let match {
            #expect(match.line == testCase.line && match.column == testCase.column,
                    "expected \(testCase.line):\(testCase.column), got \(match)")
            #expect(match.file == "seed.yaml")
        }
        if let secret = testCase.mustNotContain {
            #expect(!SeedValidationError(issues: found).description.contains(secret), "a message repeats a secret")
        }
        for issue in found {
            #expect(issue.line >= 1 && issue.column >= 1)
        }
    }

    @Test("valid seeds are accepted", arguments: SeedCases.valid)
    func accepts(_ testCase: ValidCase) throws {
        let found = issues(of: testCase.yaml)
        #expect(found.isEmpty, "\(found.map(\.description).joined(separator: "\n"))")
    }

    @Test("several errors are reported together, sorted by position")
    func severalErrors() throws {
        let text = """
            version: 2
            host:
              hostname: Node_01
              users:
                - name: ops
                  password_hash: letmein
            disks:
              system:
                wipe: yes
            cluster:
              role: join

            """
        let found = issues(of: text)
        #expect(found.map(\.keyPath) == ["version", "host.hostname", "host.users[0].password_hash", "disks.system.wipe",
                                         "cluster.join"])
        #expect(found.map(\.line) == [1, 3, 6, 9, 11])
        let rendered = SeedValidationError(issues: found).description
        #expect(rendered.contains("seed.yaml:9:11: disks.system.wipe: 'yes' is not one of never, aquarium, always"))
        #expect(!rendered.contains("letmein"))
    }

    @Test("three occurrences of one key are all reported")
    func tripleDuplicate() {
        let found = issues(of: Fixture.withHost("  hostname: a\n  hostname: b\n  hostname: c\n"))
        #expect(found.count == 2)
        #expect(found.allSatisfy { $0.keyPath == "host.hostname" && $0.line == 5 })
        #expect(found.map(\.message).sorted() == [
            "duplicate key: already given at line 3, column 3; give every key once",
            "duplicate key: already given at line 4, column 3; give every key once",
        ])
    }

    @Test("duplicates under an unknown key are still reported")
    func duplicateUnderUnknownKey() {
        let found = issues(of: Fixture.minimal(plus: "extra:\n  a: 1\n  a: 2\n"))
        #expect(found.contains { $0.keyPath == "extra" && $0.line == 6 })
        #expect(found.contains { $0.message.contains("duplicate key 'a'") && $0.line == 7 && $0.column == 3 })
    }

    @Test("too many problems are capped with a count")
    func cap() {
        var text = "version: 1\nhost:\n  hostname: node-01\ncluster:\n  role: bootstrap\n"
        for index in 0..<80 { text += "unknown_\(index): 1\n" }
        let found = issues(of: text)
        #expect(found.count == 51)
        #expect(found.last?.message == "and 30 more problems not shown")
    }

    @Test("a file that is too large is refused before parsing")
    func tooLarge() {
        let text = Fixture.minimal + "# " + String(repeating: "x", count: SeedLoader.maximumFileSize) + "\n"
        #expect(issues(of: text).first?.message.contains("a seed may be at most") == true)
    }

    struct Nesting: Sendable, CustomTestStringConvertible {
        let name: String
        let text: String
        var testDescription: String { name }
    }

    @Test("deep nesting is refused with a position, not a crash", arguments: [
        Nesting(name: "100000 [", text: String(repeating: "[", count: 100_000)),
        Nesting(name: "50000 block sequence dashes", text: "host: " + String(repeating: "- ", count: 50_000) + "x\n"),
        Nesting(name: "30000 flow mappings", text: String(repeating: "{a: ", count: 30_000)),
        Nesting(name: "deep indentation", text: (0..<400).map { String(repeating: " ", count: $0) + "k\($0):\n" }.joined()),
    ])
    func deepNesting(_ nesting: Nesting) {
        let found = issues(of: nesting.text)
        #expect(found.count == 1)
        #expect(found.first?.message.contains("nested too deeply") == true)
        #expect((found.first?.line ?? 0) >= 1)
    }

    @Test("invalid UTF-8 names the line and column")
    func invalidUTF8() {
        var data = Data("version: 1\nhost:\n  hostname: n".utf8)
        data.append(0xff)
        do {
            _ = try SeedLoader.parse(data: data, file: "s.yaml")
            Issue.record("accepted invalid UTF-8")
        } catch {
            #expect(error.issues.first?.description == "s.yaml:3:14: the file is not valid UTF-8; save it as UTF-8 text")
        }
    }

    @Test("a missing file is reported with its name")
    func missingFile() {
        do {
            _ = try SeedLoader.load(path: "/nonexistent/seed.yaml")
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.issues.first?.file == "/nonexistent/seed.yaml")
            #expect(error.issues.first?.message.hasPrefix("cannot read the file") == true)
        }
    }

    @Test("the time zone directory can be absent (syntax only)")
    func zoneinfoAbsent() throws {
        let text = Fixture.withHost("  hostname: node-01\n  timezone: Mars/Olympus_Mons\n")
        let seed = try SeedLoader.parse(text, file: "s.yaml", options: .init(zoneinfoDirectory: "/nonexistent-zoneinfo"))
        #expect(seed.host.timezone == "Mars/Olympus_Mons")
    }
}
