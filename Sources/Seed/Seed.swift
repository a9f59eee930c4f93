import Foundation

// The seed file v1 model: what one node is told to become. Documented in docs/seed.md;
// the JSON Schema is Resources/seed.schema.json. Every value here has been validated by
// `SeedLoader`, so consumers can put it on a command line or into a file as it is.

/// A validated seed file (version 1), with defaults applied.
public struct Seed: Sendable, Equatable, Encodable {
    /// Always 1: the only version this parser reads.
    public var version: Int
    public var host: Host
    public var network: Network
    public var disks: Disks
    public var cluster: Cluster
    /// After this moment the seed is refused (`expires`, RFC 3339), so an old signed seed cannot be replayed.
    public var expires: SeedTime?

    public init(version: Int = 1, host: Host, network: Network = Network(), disks: Disks = Disks(),
                cluster: Cluster, expires: SeedTime? = nil) {
        self.version = version
        self.host = host
        self.network = network
        self.disks = disks
        self.cluster = cluster
        self.expires = expires
    }

    /// True when a disk may be wiped under this seed without looking at its content (`wipe: always` anywhere).
    public var wipesAnything: Bool { disks.system.wipe == .always || disks.storage.wipe == .always }

    // MARK: host

    public struct Host: Sendable, Equatable, Encodable {
        /// RFC 1123 host name, lowercase; may be fully qualified.
        public var hostname: String
        /// An IANA zone name that exists under /usr/share/zoneinfo (e.g. `Etc/UTC`), or nil for the image default.
        public var timezone: String?
        /// Host names or IP addresses.
        public var ntpServers: [String]
        /// Users to create or configure. The user `aquarium` always exists; it is locked unless listed here.
        public var users: [User]
        /// The machine this seed is for (`host.machine`): FirstBoot refuses the seed on any other machine.
        public var machine: Machine?
        /// `host.reinstall`: the node UUID (lowercase) whose Aquarium system disk this seed may replace.
        public var reinstall: String?
        /// `host.requirements`: what the machine must have before FirstBoot touches a disk.
        public var requirements: Requirements

        public init(hostname: String, timezone: String? = nil, ntpServers: [String] = [], users: [User] = [],
                    machine: Machine? = nil, reinstall: String? = nil, requirements: Requirements = Requirements()) {
            self.hostname = hostname
            self.timezone = timezone
            self.ntpServers = ntpServers
            self.users = users
            self.machine = machine
            self.reinstall = reinstall
            self.requirements = requirements
        }
    }

    /// Binds a seed to one machine: its DMI system serial and/or the MAC address of one of its NICs. When both are
    /// given, both must match.
    public struct Machine: Sendable, Equatable, Encodable {
        /// The DMI system serial (`/sys/class/dmi/id/product_serial`), compared exactly.
        public var serial: String?
        /// A NIC's MAC address, normalised to lowercase `52:54:00:12:34:56`.
        public var mac: String?

        public init(serial: String? = nil, mac: String? = nil) {
            self.serial = serial
            self.mac = mac
        }

        /// Why this machine (its DMI serial and NIC MACs) is not the one named, or nil when it is.
        public func mismatch(dmiSerial: String?, macs: [String]) -> String? {
            var problems: [String] = []
            if let serial {
                let actual = dmiSerial?.trimmingCharacters(in: .whitespacesAndNewlines)
                if actual != serial {
                    problems.append("host.machine.serial is '\(serial)' but this machine's DMI serial is "
                        + (actual.map { "'\($0)'" } ?? "unknown"))
                }
            }
            if let mac, !macs.map({ $0.lowercased() }).contains(mac) {
                problems.append("host.machine.mac is \(mac) but this machine's NICs are "
                    + (macs.isEmpty ? "none" : macs.sorted().joined(separator: ", ")))
            }
            return problems.isEmpty ? nil : problems.joined(separator: "; ")
        }
    }

    public struct User: Sendable, Equatable, Encodable {
        /// Matches Debian's NAME_REGEX `^[a-z][-a-z0-9_]*$`, at most 32 characters, not a system account.
        public var name: String
        /// A crypt(3) hash: SHA-512 (`$6$`) or yescrypt (`$y$`). A secret: see `Seed.secrets`.
        public var passwordHash: String?
        /// OpenSSH public keys, one `type base64 [comment]` line each, checked to be well formed.
        public var sshAuthorizedKeys: [String]

        public init(name: String, passwordHash: String? = nil, sshAuthorizedKeys: [String] = []) {
            self.name = name
            self.passwordHash = passwordHash
            self.sshAuthorizedKeys = sshAuthorizedKeys
        }
    }

    // MARK: network

    public struct Network: Sendable, Equatable, Encodable {
        /// Interfaces to configure. Empty means: DHCP on every wired interface.
        public var interfaces: [Interface]
        public var nameservers: [IPAddress]
        /// The Ceph public (front) network.
        public var publicNetwork: IPNetwork?
        /// The Ceph cluster (back) network.
        public var clusterNetwork: IPNetwork?

        public init(interfaces: [Interface] = [], nameservers: [IPAddress] = [], publicNetwork: IPNetwork? = nil,
                    clusterNetwork: IPNetwork? = nil) {
            self.interfaces = interfaces
            self.nameservers = nameservers
            self.publicNetwork = publicNetwork
            self.clusterNetwork = clusterNetwork
        }
    }

    public struct Interface: Sendable, Equatable, Encodable {
        /// Which link this is: by kernel name or by MAC address.
        public var selector: InterfaceSelector
        public var dhcp: Bool
        /// Static addresses with their prefix length (host bits are the address itself).
        public var addresses: [InterfaceAddress]
        /// Inside the subnet of one of `addresses`.
        public var gateway: IPAddress?
        /// 68...9216.
        public var mtu: Int?

        public init(selector: InterfaceSelector, dhcp: Bool = false, addresses: [InterfaceAddress] = [],
                    gateway: IPAddress? = nil, mtu: Int? = nil) {
            self.selector = selector
            self.dhcp = dhcp
            self.addresses = addresses
            self.gateway = gateway
            self.mtu = mtu
        }
    }

    public enum InterfaceSelector: Sendable, Equatable, Hashable, Encodable {
        /// A kernel interface name such as `eno1` (at most 15 characters, no `/` or spaces).
        case name(String)
        /// A MAC address, normalised to lowercase `52:54:00:12:34:56`.
        case mac(String)

        public func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .name(let name): try container.encode(["name": name])
            case .mac(let mac): try container.encode(["mac": mac])
            }
        }
    }

    // MARK: disks

    public struct Disks: Sendable, Equatable, Encodable {
        public var system: SystemDisk
        public var storage: StorageDisks
        /// `disks.models`: disk models known to be bad (or the only ones known good), for system and storage alike.
        public var models: DiskModels

        public init(system: SystemDisk = SystemDisk(), storage: StorageDisks = StorageDisks(), models: DiskModels = DiskModels()) {
            self.system = system
            self.storage = storage
            self.models = models
        }
    }

    /// How FirstBoot chooses and prepares the system disk.
    public struct SystemDisk: Sendable, Equatable, Encodable {
        /// The default lower bound for a system disk when the seed gives no `min_size`.
        public static let defaultMinSize: UInt64 = 10 * 1024 * 1024 * 1024

        /// `minSize` is always set for the system disk (default 10 GiB).
        public var match: DiskMatch
        public var prefer: DiskPreference
        public var wipe: WipePolicy
        public var filesystem: FilesystemKind

        public init(match: DiskMatch = DiskMatch(minSize: SystemDisk.defaultMinSize), prefer: DiskPreference = .smallest,
                    wipe: WipePolicy = .never, filesystem: FilesystemKind = .xfs) {
            self.match = match
            self.prefer = prefer
            self.wipe = wipe
            self.filesystem = filesystem
        }
    }

    /// Which of the remaining disks become OSDs.
    public struct StorageDisks: Sendable, Equatable, Encodable {
        /// An empty match (`DiskMatch.isEmpty`) means every remaining eligible disk.
        public var match: DiskMatch
        public var wipe: WipePolicy

        public init(match: DiskMatch = DiskMatch(), wipe: WipePolicy = .never) {
            self.match = match
            self.wipe = wipe
        }
    }

    // MARK: cluster

    public struct Cluster: Sendable, Equatable, Encodable {
        /// The Ceph cluster name (default `ceph`): `^[a-z][a-z0-9_-]{0,31}$`.
        public var name: String
        public var role: ClusterRole
        /// Set exactly when `role == .join`.
        public var join: Join?
        /// Set exactly when the role is `monitor` or `storage` (a node of a rack made by `aquarium-image rack seeds`).
        public var rack: Rack?
        public var services: Services
        public var telemetry: Bool

        public init(name: String = "ceph", role: ClusterRole, join: Join? = nil, rack: Rack? = nil,
                    services: Services = Services(), telemetry: Bool = false) {
            self.name = name
            self.role = role
            self.join = join
            self.rack = rack
            self.services = services
            self.telemetry = telemetry
        }
    }

    public struct Join: Sendable, Equatable, Encodable {
        /// A monitor of the cluster to join.
        public var address: IPAddress
        /// The cluster's join token. A secret: see `Seed.secrets`.
        public var token: String

        public init(address: IPAddress, token: String) {
            self.address = address
            self.token = token
        }
    }
}

/// A moment in time as the seed gives it (RFC 3339), kept with its text for messages.
public struct SeedTime: Sendable, Equatable, Encodable, CustomStringConvertible {
    public var date: Date
    public var text: String

    public init(date: Date, text: String) {
        self.date = date
        self.text = text
    }

    /// Parses RFC 3339 (`2026-12-31T23:59:59Z`, `2026-12-31T23:59:59+01:00`, fractional seconds allowed).
    public init?(rfc3339 text: String) {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard text.count <= 40, let date = plain.date(from: text) ?? fractional.date(from: text) else { return nil }
        self.init(date: date, text: text)
    }

    public var description: String { text }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}

/// What a disk must satisfy. Every key that is set must hold; unset keys match anything.
public struct DiskMatch: Sendable, Equatable, Encodable {
    /// A path under `/dev/disk/by-id/`.
    public var byId: String?
    /// A shell glob (fnmatch) over the disk's serial number.
    public var serial: String?
    /// The disk's WWN, e.g. `0x5000c500a1b2c3d4` or `eui.0025385b71b0a1c2`.
    public var wwn: String?
    /// A shell glob (fnmatch) over the disk's model string.
    public var model: String?
    /// Any of these transports; nil means any transport.
    public var transport: [DiskTransport]?
    public var rotational: Bool?
    /// In bytes.
    public var minSize: UInt64?
    /// In bytes.
    public var maxSize: UInt64?

    public init(byId: String? = nil, serial: String? = nil, wwn: String? = nil, model: String? = nil,
                transport: [DiskTransport]? = nil, rotational: Bool? = nil, minSize: UInt64? = nil,
                maxSize: UInt64? = nil) {
        self.byId = byId
        self.serial = serial
        self.wwn = wwn
        self.model = model
        self.transport = transport
        self.rotational = rotational
        self.minSize = minSize
        self.maxSize = maxSize
    }

    /// True when no key is set: every disk matches.
    public var isEmpty: Bool { self == DiskMatch() }
}

/// Whether FirstBoot may destroy what is on a disk (see docs/seed.md).
public enum WipePolicy: String, Sendable, Equatable, CaseIterable, Encodable {
    /// Only empty disks (no partition table, no filesystem signature) are used.
    case never
    /// Disks that hold an earlier Aquarium installation may be reused; anything else is refused.
    case aquarium
    /// Any matching disk may be wiped.
    case always
}

/// Which disk to take when several match.
public enum DiskPreference: String, Sendable, Equatable, CaseIterable, Encodable {
    case smallest
    case largest
}

public enum FilesystemKind: String, Sendable, Equatable, CaseIterable, Encodable {
    case xfs
    case ext4
}

/// How a disk is attached, as udev/lsblk name it.
public enum DiskTransport: String, Sendable, Equatable, CaseIterable, Encodable {
    case nvme, sata, ata, sas, scsi, usb, virtio, mmc, iscsi, fc
}

public enum ClusterRole: String, Sendable, Equatable, CaseIterable, Encodable {
    /// Creates the cluster (first monitor).
    case bootstrap
    /// Joins an existing cluster given in `cluster.join`.
    case join
    /// One of a rack's monitor nodes (`cluster.rack`): runs a monitor and a manager, forms the cluster with the other
    /// monitor nodes, and adds its disks as OSDs.
    case monitor
    /// One of a rack's storage nodes (`cluster.rack`): adds its disks as OSDs of the rack's cluster.
    case storage

    /// True for the roles that run no monitor and join with the join key (`join`, `storage`).
    public var joins: Bool { self == .join || self == .storage }

    /// True for the roles of a rack (`cluster.rack`).
    public var isRack: Bool { self == .monitor || self == .storage }
}
