import Foundation

/// Ceph's JSON output (`ceph ... --format json`, `ceph-bluestore-tool show-label`, `radosgw-admin`), as far as the
/// Provisioner reads it. Every field is optional and read leniently: a field that is missing, null or of another type
/// than expected reads as nil (as a cast of `JSONSerialization`'s output did), so output that varies between Ceph
/// releases or daemon states never fails a whole decode.
public enum CephJSON {
    /// `ceph quorum_status`.
    public struct QuorumStatus: Decodable, Sendable {
        public var quorumNames: [String]?
        enum CodingKeys: String, CodingKey { case quorumNames = "quorum_names" }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            quorumNames = c.lenient(.quorumNames)
        }
    }

    /// One entry of `ceph config dump`.
    public struct ConfigEntry: Decodable, Sendable {
        public var section: String?
        public var name: String?
        public var value: String?
        enum CodingKeys: String, CodingKey { case section, name, value }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            section = c.lenient(.section)
            name = c.lenient(.name)
            value = c.lenient(.value)
        }
    }

    /// `ceph osd dump`: the OSDs and pools.
    public struct OSDDump: Decodable, Sendable {
        public struct OSD: Decodable, Sendable {
            public var osd: Int?
            public var uuid: String?
            public var up: Int?
            public var `in`: Int?
            enum CodingKeys: String, CodingKey { case osd, uuid, up, `in` }
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                osd = c.lenient(.osd)
                uuid = c.lenient(.uuid)
                up = c.lenient(.up)
                `in` = c.lenient(.in)
            }
        }

        public struct Pool: Decodable, Sendable {
            public var poolName: String?
            /// The applications enabled on the pool (`rbd`, `cephfs`, `rgw`, ...); their settings are not read.
            public var applications: [String]?
            enum CodingKeys: String, CodingKey { case poolName = "pool_name", applicationMetadata = "application_metadata" }
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                poolName = c.lenient(.poolName)
                applications = c.lenient(.applicationMetadata, as: [String: Ignored].self).map { Array($0.keys) }
            }
        }

        public var osds: [OSD]?
        public var pools: [Pool]?
        enum CodingKeys: String, CodingKey { case osds, pools }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            osds = c.lenient(.osds)
            pools = c.lenient(.pools)
        }
    }

    /// One pool of `ceph osd pool ls detail`.
    public struct PoolDetail: Decodable, Sendable {
        public var poolName: String?
        public var size: Int?
        public var minSize: Int?
        /// 1 replicated, 3 erasure-coded.
        public var type: Int?
        enum CodingKeys: String, CodingKey { case poolName = "pool_name", size, minSize = "min_size", type }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            poolName = c.lenient(.poolName)
            size = c.lenient(.size)
            minSize = c.lenient(.minSize)
            type = c.lenient(.type)
        }
    }

    /// `ceph osd tree`: its buckets and OSDs.
    public struct OSDTree: Decodable, Sendable {
        public struct Node: Decodable, Sendable {
            public var name: String?
            public var type: String?
            /// Bucket and OSD ids below this node; OSD ids are 0 and above.
            public var children: [Int]?
            enum CodingKeys: String, CodingKey { case name, type, children }
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                name = c.lenient(.name)
                type = c.lenient(.type)
                children = c.lenient(.children)
            }
        }

        public var nodes: [Node]?
        enum CodingKeys: String, CodingKey { case nodes }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            nodes = c.lenient(.nodes)
        }
    }

    /// One file system of `ceph fs ls`.
    public struct FileSystem: Decodable, Sendable {
        public var name: String?
        enum CodingKeys: String, CodingKey { case name }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = c.lenient(.name)
        }
    }

    /// `ceph fs dump`: each file system's MDS map, as far as the MDS states.
    public struct FSDump: Decodable, Sendable {
        public struct FileSystem: Decodable, Sendable {
            public var mdsmap: MDSMap?
            enum CodingKeys: String, CodingKey { case mdsmap }
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                mdsmap = c.lenient(.mdsmap)
            }
        }

        public struct MDSMap: Decodable, Sendable {
            public var fsName: String?
            /// The MDS daemons by `gid_N`.
            public var info: [String: MDS]?
            enum CodingKeys: String, CodingKey { case fsName = "fs_name", info }
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                fsName = c.lenient(.fsName)
                info = c.lenient(.info)
            }
        }

        public struct MDS: Decodable, Sendable {
            /// `up:active`, `up:standby`, ...
            public var state: String?
            enum CodingKeys: String, CodingKey { case state }
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                state = c.lenient(.state)
            }
        }

        public var filesystems: [FileSystem]?
        enum CodingKeys: String, CodingKey { case filesystems }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            filesystems = c.lenient(.filesystems)
        }
    }

    /// `ceph health`, and the `health` of `ceph status`.
    public struct Health: Decodable, Sendable {
        public struct Check: Decodable, Sendable {
            public var message: String?
            enum CodingKeys: String, CodingKey { case summary }
            enum SummaryKeys: String, CodingKey { case message }
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                message = (try? c.nestedContainer(keyedBy: SummaryKeys.self, forKey: .summary))?.lenient(.message)
            }

            init() {}
        }

        /// `HEALTH_OK`, `HEALTH_WARN`, `HEALTH_ERR`.
        public var status: String?
        /// By check name (`POOL_NO_REDUNDANCY`, `OSD_DOWN`, ...); a check whose details do not decode still counts.
        public var checks: [String: Check]?
        enum CodingKeys: String, CodingKey { case status, checks }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            status = c.lenient(.status)
            checks = c.lenient(.checks, as: [String: Lenient<Check>].self)?.mapValues { $0.value ?? Check() }
        }
    }

    /// `ceph status`, as far as `aquarium-provision status` reads it.
    public struct Status: Decodable, Sendable {
        public var health: Health?
        public var quorumNames: [String]?
        enum CodingKeys: String, CodingKey { case health, quorumNames = "quorum_names" }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            health = c.lenient(.health)
            quorumNames = c.lenient(.quorumNames)
        }
    }

    /// `ceph mgr stat`.
    public struct ManagerStat: Decodable, Sendable {
        public var available: Bool?
        enum CodingKeys: String, CodingKey { case available }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            available = c.lenient(.available)
        }
    }

    /// `ceph telemetry status`.
    public struct TelemetryStatus: Decodable, Sendable {
        public var enabled: Bool?
        enum CodingKeys: String, CodingKey { case enabled }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            enabled = c.lenient(.enabled)
        }
    }

    /// One entry of `ceph auth get ENTITY` / `ceph auth get-or-create ENTITY ...`.
    public struct AuthEntry: Decodable, Sendable {
        public var entity: String?
        public var key: String?
        /// By daemon type (`mon`, `osd`, ...).
        public var caps: [String: String]?
        enum CodingKeys: String, CodingKey { case entity, key, caps }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            entity = c.lenient(.entity)
            key = c.lenient(.key)
            caps = c.lenient(.caps)
        }
    }

    /// `ceph fsid`.
    public struct FSID: Decodable, Sendable {
        public var fsid: String?
        enum CodingKeys: String, CodingKey { case fsid }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            fsid = c.lenient(.fsid)
        }
    }

    /// One device's label of `ceph-bluestore-tool show-label` (the tool prints them by device path).
    public struct BluestoreLabel: Decodable, Sendable {
        public var osdUUID: String?
        public var cephFSID: String?
        /// The OSD id, as a string.
        public var whoami: String?
        /// `yes` once `ceph-osd --mkfs` finished.
        public var mkfsDone: String?
        enum CodingKeys: String, CodingKey { case osdUUID = "osd_uuid", cephFSID = "ceph_fsid", whoami, mkfsDone = "mkfs_done" }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            osdUUID = c.lenient(.osdUUID)
            cephFSID = c.lenient(.cephFSID)
            whoami = c.lenient(.whoami)
            mkfsDone = c.lenient(.mkfsDone)
        }
    }

    /// `radosgw-admin user info` / `user create`: the user's S3 keys.
    public struct RGWUser: Decodable, Sendable {
        public struct Key: Decodable, Sendable {
            public var user: String?
            public var accessKey: String?
            public var secretKey: String?
            enum CodingKeys: String, CodingKey { case user, accessKey = "access_key", secretKey = "secret_key" }
            public init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                user = c.lenient(.user)
                accessKey = c.lenient(.accessKey)
                secretKey = c.lenient(.secretKey)
            }
        }

        public var keys: [Key]?
        enum CodingKeys: String, CodingKey { case keys }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            keys = c.lenient(.keys)
        }
    }

    /// Any JSON value, not read (for keys whose values do not matter, such as a pool's application settings).
    public struct Ignored: Decodable, Sendable {
        public init(from decoder: any Decoder) throws {}
    }

    /// A value that reads as nil instead of failing the decode around it.
    public struct Lenient<Value: Decodable & Sendable>: Decodable, Sendable {
        public var value: Value?
        public init(from decoder: any Decoder) throws { value = try? Value(from: decoder) }
    }

    /// `data` decoded as `type`: nil when it is JSON of another shape (a lenient cast, as before); throws when it is
    /// not JSON at all.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data) -> Result<T?, any Error> {
        do {
            return .success(try JSONDecoder().decode(T.self, from: data))
        } catch {
            do {
                _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
                return .success(nil)
            } catch {
                return .failure(error)
            }
        }
    }

    /// `JSONSerialization`'s output (a test's fixture) decoded as `type`; nil when it has another shape.
    static func decode<T: Decodable>(_ type: T.Type, fromObject object: Any) -> T? {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.fragmentsAllowed]) else { return nil }
        return try? JSONDecoder().decode(T.self, from: data)
    }
}

extension KeyedDecodingContainer {
    /// The value at `key` when it is there and a `T`; nil when it is missing, null or of another type.
    func lenient<T: Decodable>(_ key: Key, as type: T.Type = T.self) -> T? {
        (try? decodeIfPresent(T.self, forKey: key)) ?? nil
    }
}
