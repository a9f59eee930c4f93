import Foundation

// The services a cluster runs (`cluster.services`): RBD pools, RGW with its S3 users, CephFS, NFS, iSCSI and the
// dashboard (docs/services.md); read by SeedReader+Services.swift.

extension Seed {
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
        /// Bidirectional CHAP: the target proves itself to initiators with credentials of its own (made on the node).
        /// The default of every client's own `mutual_chap`.
        public var mutualChap: Bool
        /// Per-initiator ACLs: only these initiators log in, each with CHAP credentials of its own (made on the node)
        /// and its own disks. Empty: every initiator with the target's CHAP credentials sees every disk.
        public var clients: [ISCSIClient]

        public init(target: String = ISCSI.defaultTarget, disks: [ISCSIDisk] = [], mutualChap: Bool = false,
                    clients: [ISCSIClient] = []) {
            self.target = target
            self.disks = disks
            self.mutualChap = mutualChap
            self.clients = clients
        }
    }

    /// One initiator allowed by the target's ACL.
    public struct ISCSIClient: Sendable, Equatable, Encodable {
        /// The initiator's iSCSI name (its `InitiatorName`), lowercase.
        public var iqn: String
        /// The images (`pool/name`) it sees as LUNs, in the order of the service's disks; default every disk.
        public var disks: [String]
        public var mutualChap: Bool

        public init(iqn: String, disks: [String], mutualChap: Bool = false) {
            self.iqn = iqn
            self.disks = disks
            self.mutualChap = mutualChap
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
