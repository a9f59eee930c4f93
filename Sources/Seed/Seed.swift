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

    public struct Services: Sendable, Equatable, Encodable {
        public var rbd: RBD?
        public var rgw: RGW?
        public var cephfs: CephFS?
        public var nfs: NFS?
        public var dashboard: Dashboard?
        public var iscsi: ISCSI?

        public init(rbd: RBD? = nil, rgw: RGW? = nil, cephfs: CephFS? = nil, nfs: NFS? = nil, dashboard: Dashboard? = nil,
                    iscsi: ISCSI? = nil) {
            self.rbd = rbd
            self.rgw = rgw
            self.cephfs = cephfs
            self.nfs = nfs
            self.dashboard = dashboard
            self.iscsi = iscsi
        }
    }

    /// `services.iscsi`: RBD images served as the LUNs of one iSCSI target by ceph-iscsi (rbd-target-api configures
    /// the kernel's LIO target, tcmu-runner serves the images), on the node that runs the services. The CHAP
    /// credentials initiators log in with are made on that node and kept there (mode 0600), never in the seed.
    public struct ISCSI: Sendable, Equatable, Encodable {
        public static let port = 3260
        public static let defaultTarget = "iqn.2026-01.local.aquarium:storage"
        public static let minimumDiskSize: UInt64 = 1 << 20
        /// The target's IQN (`iqn.YYYY-MM.reversed.domain[:name]`, lowercase).
        public var target: String
        /// At least one; each pool/name once.
        public var disks: [ISCSIDisk]

        public init(target: String = ISCSI.defaultTarget, disks: [ISCSIDisk] = []) {
            self.target = target
            self.disks = disks
        }
    }

    /// One LUN: the RBD image `pool/name` (made when missing, never shrunk or deleted by the Provisioner).
    public struct ISCSIDisk: Sendable, Equatable, Encodable {
        public var name: String
        /// One of `services.rbd.pools`; default the first of them.
        public var pool: String
        public var size: UInt64

        public init(name: String, pool: String = "rbd", size: UInt64) {
            self.name = name
            self.pool = pool
            self.size = size
        }

        public var image: String { pool + "/" + name }
    }

    /// Ceph's dashboard on the managers, HTTPS only (a per-cluster self-signed certificate), with an administrator
    /// whose first password is made on the node and must be changed at the first login.
    public struct Dashboard: Sendable, Equatable, Encodable {
        public static let defaultPort = 8443
        /// 1...65535, default 8443.
        public var port: Int
        /// The operator's certificate (PEM, then its chain) and unencrypted key, both or neither; neither: the
        /// cluster's self-signed certificate. The key is a secret.
        public var certificate: String?
        public var privateKey: String?
        public init(port: Int = Dashboard.defaultPort, certificate: String? = nil, privateKey: String? = nil) {
            self.port = port
            self.certificate = certificate
            self.privateKey = privateKey
        }
    }

    public struct RBD: Sendable, Equatable, Encodable {
        /// Pool names (`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`); default `[rbd]`.
        public var pools: [String]
        public init(pools: [String] = ["rbd"]) { self.pools = pools }
    }

    public struct RGW: Sendable, Equatable, Encodable {
        public static let defaultPort = 7480
        /// 1...65535, default 7480.
        public var port: Int
        /// S3 users the Provisioner creates and keeps converged, with their buckets and quotas.
        public var users: [S3User]
        /// HTTPS beside HTTP, with the operator's certificate.
        public var https: HTTPS?
        public init(port: Int = RGW.defaultPort, users: [S3User] = [], https: HTTPS? = nil) {
            self.port = port
            self.users = users
            self.https = https
        }
    }

    /// An HTTPS endpoint with the operator's certificate (PEM, the chain after the server's own) and its private key
    /// (PEM; a secret: see `Seed.secrets`).
    public struct HTTPS: Sendable, Equatable, Encodable {
        public static let defaultRGWPort = 7443
        public var port: Int
        public var certificate: String
        public var privateKey: String

        public init(port: Int = HTTPS.defaultRGWPort, certificate: String, privateKey: String) {
            self.port = port
            self.certificate = certificate
            self.privateKey = privateKey
        }
    }

    /// An S3 user of `services.rgw.users`: its keys are made on the node (never in the seed) and kept there, mode 0600.
    public struct S3User: Sendable, Equatable, Encodable {
        /// The S3 user the Provisioner keeps for itself (`/var/lib/aquarium/s3-admin.json`): no seed user may take it.
        public static let administrator = "aquarium-admin"
        /// `^[a-z0-9][a-z0-9_-]{0,62}$`, not the Provisioner's own administrator.
        public var name: String
        /// Buckets this user owns, created by the Provisioner (S3 bucket name rules; unique over all users).
        public var buckets: [String]
        /// RGW's user quota (enforced: writes beyond it fail with QuotaExceeded), if any.
        public var quota: S3Quota?

        public init(name: String, buckets: [String] = [], quota: S3Quota? = nil) {
            self.name = name
            self.buckets = buckets
            self.quota = quota
        }
    }

    /// Limits on everything one S3 user stores, over all its buckets. At least one limit. The hard limits are RGW's
    /// user quota (writes beyond them fail with QuotaExceeded); the soft ones only warn (each run reports a user at
    /// or over one, in the rgw step and the event `s3.quota.soft`), and are at most the hard ones.
    public struct S3Quota: Sendable, Equatable, Encodable {
        public var maxSize: UInt64?
        public var maxObjects: Int?
        public var softMaxSize: UInt64?
        public var softMaxObjects: Int?

        public init(maxSize: UInt64? = nil, maxObjects: Int? = nil, softMaxSize: UInt64? = nil, softMaxObjects: Int? = nil) {
            self.maxSize = maxSize
            self.maxObjects = maxObjects
            self.softMaxSize = softMaxSize
            self.softMaxObjects = softMaxObjects
        }

        public var hasHardLimit: Bool { maxSize != nil || maxObjects != nil }
        public var hasSoftLimit: Bool { softMaxSize != nil || softMaxObjects != nil }
    }

    public struct CephFS: Sendable, Equatable, Encodable {
        /// The file system name, default `cephfs` (same rules as pool names).
        public var name: String
        public init(name: String = "cephfs") { self.name = name }
    }

    /// `services.nfs`: CephFS subvolumes exported by NFS-Ganesha (FSAL_CEPH) on the node that runs the services, or on
    /// every monitor node of a rack; with `virtualIP`, keepalived keeps that address on one of them.
    public struct NFS: Sendable, Equatable, Encodable {
        public static let port = 2049
        public static let defaultVersions = ["4.1", "4.2"]
        public static let allowedVersions = ["4.0", "4.1", "4.2"]
        /// The floating address clients mount, in the public network; held by one NFS node at a time (VRRP).
        public var virtualIP: IPAddress?
        /// NFSv4 minor versions served (`4.0`, `4.1`, `4.2`), default 4.1 and 4.2.
        public var versions: [String]
        public var exports: [NFSExport]

        public init(virtualIP: IPAddress? = nil, versions: [String] = NFS.defaultVersions, exports: [NFSExport] = []) {
            self.virtualIP = virtualIP
            self.versions = versions
            self.exports = exports
        }
    }

    /// One export: a CephFS subvolume `name` (made when missing), seen by clients as `/name`.
    public struct NFSExport: Sendable, Equatable, Encodable {
        public enum Access: String, Sendable, Equatable, Encodable, CaseIterable {
            case rw, ro
        }
        /// `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$` (pool name rules); also the pseudo path `/name`.
        public var name: String
        public var access: Access
        /// Networks allowed to mount it; empty: every client that reaches the address.
        public var clients: [IPNetwork]
        /// The subvolume's quota (CephFS enforces it: writes beyond it fail with EDQUOT), if any.
        public var size: UInt64?

        public init(name: String, access: Access = .rw, clients: [IPNetwork] = [], size: UInt64? = nil) {
            self.name = name
            self.access = access
            self.clients = clients
            self.size = size
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
