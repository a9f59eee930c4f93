import Foundation

/// Ceph's JSON output (`ceph ... --format json`, `ceph-bluestore-tool show-label`, `radosgw-admin`), as far as the
/// Provisioner reads it. Every field is optional and read leniently: a field that is missing, null or of another type
/// than expected reads as nil (as a cast of `JSONSerialization`'s output did), so output that varies between Ceph
/// releases or daemon states never fails a whole decode.
public enum CephJSON {
    /// `ceph quorum_status`.
    public struct QuorumStatus: Decodable, Sendable {
        @Lenient public var quorumNames: [String]?
        enum CodingKeys: String, CodingKey { case quorumNames = "quorum_names" }
    }

    /// `ceph mon dump`: the monitor map's fsid and each monitor's name and public address vector.
    public struct MonDump: Decodable, Sendable {
        public struct Mon: Decodable, Sendable {
            public struct Addresses: Decodable, Sendable {
                public struct Entry: Decodable, Sendable {
                    @Lenient public var type: String?
                    @Lenient public var addr: String?
                    enum CodingKeys: String, CodingKey { case type, addr }
                }
                @Lenient public var addrvec: [Entry]?
                enum CodingKeys: String, CodingKey { case addrvec }
            }
            @Lenient public var name: String?
            @Lenient public var publicAddrs: Addresses?
            enum CodingKeys: String, CodingKey {
                case name
                case publicAddrs = "public_addrs"
            }
        }
        @Lenient public var fsid: String?
        @Lenient public var mons: [Mon]?
        enum CodingKeys: String, CodingKey { case fsid, mons }
    }

    /// `ceph quorum_status` with the monitor map's names.
    public struct MonDumpQuorum: Decodable, Sendable {
        public struct MonMap: Decodable, Sendable {
            public struct Mon: Decodable, Sendable {
                @Lenient public var name: String?
                enum CodingKeys: String, CodingKey { case name }
            }
            @Lenient public var mons: [Mon]?
            enum CodingKeys: String, CodingKey { case mons }
        }
        @Lenient public var quorumNames: [String]?
        @Lenient public var monmap: MonMap?
        enum CodingKeys: String, CodingKey {
            case quorumNames = "quorum_names"
            case monmap
        }
    }

    /// `ceph --admin-daemon MON.asok mon_status` (answers without a quorum).
    public struct MonStatus: Decodable, Sendable {
        /// probing, electing, synchronizing, leader, peon.
        @Lenient public var state: String?
        /// The monitors this one sees but that are not in a quorum with it (itself included while it has none).
        @Lenient public var outsideQuorum: [String]?
        enum CodingKeys: String, CodingKey {
            case state
            case outsideQuorum = "outside_quorum"
        }
    }

    /// One entry of `ceph config dump`.
    public struct ConfigEntry: Decodable, Sendable {
        @Lenient public var section: String?
        @Lenient public var name: String?
        @Lenient public var value: String?
        enum CodingKeys: String, CodingKey { case section, name, value }
    }

    /// `ceph osd dump`: the OSDs and pools.
    public struct OSDDump: Decodable, Sendable {
        public struct OSD: Decodable, Sendable {
            @Lenient public var osd: Int?
            @Lenient public var uuid: String?
            @Lenient public var up: Int?
            @Lenient public var `in`: Int?
            /// `exists`, `up`, `destroyed`, ...
            @Lenient public var state: [String]?
            enum CodingKeys: String, CodingKey { case osd, uuid, up, `in`, state }
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

        @Lenient public var osds: [OSD]?
        @Lenient public var pools: [Pool]?
        /// Flags set on CRUSH nodes (`ceph osd set-group noout HOST`): name -> flags.
        @Lenient public var crushNodeFlags: [String: [String]]?
        enum CodingKeys: String, CodingKey { case osds, pools, crushNodeFlags = "crush_node_flags" }

        /// The CRUSH hosts with `noout` set (`maintenance enter HOST`, `reboot`): their daemons are down on purpose.
        public var hostsWithNoout: [String] { (crushNodeFlags ?? [:]).filter { $0.value.contains("noout") }.keys.sorted() }
    }

    /// One pool of `ceph osd pool ls detail`.
    public struct PoolDetail: Decodable, Sendable {
        @Lenient public var poolName: String?
        @Lenient public var size: Int?
        @Lenient public var minSize: Int?
        /// 1 replicated, 3 erasure-coded.
        @Lenient public var type: Int?
        enum CodingKeys: String, CodingKey { case poolName = "pool_name", size, minSize = "min_size", type }
    }

    /// `ceph osd tree`: its buckets and OSDs.
    public struct OSDTree: Decodable, Sendable {
        public struct Node: Decodable, Sendable {
            @Lenient public var name: String?
            @Lenient public var type: String?
            /// Bucket and OSD ids below this node; OSD ids are 0 and above.
            @Lenient public var children: [Int]?
            enum CodingKeys: String, CodingKey { case name, type, children }
        }

        @Lenient public var nodes: [Node]?
        enum CodingKeys: String, CodingKey { case nodes }
    }

    /// `ceph df`: raw capacity and each pool's use.
    public struct DF: Decodable, Sendable {
        public struct Stats: Decodable, Sendable {
            @Lenient public var totalBytes: UInt64?
            @Lenient public var totalUsedRawBytes: UInt64?
            enum CodingKeys: String, CodingKey { case totalBytes = "total_bytes", totalUsedRawBytes = "total_used_raw_bytes" }
        }

        public struct Pool: Decodable, Sendable {
            public struct Stats: Decodable, Sendable {
                @Lenient public var stored: UInt64?
                @Lenient public var maxAvail: UInt64?
                enum CodingKeys: String, CodingKey { case stored, maxAvail = "max_avail" }
            }

            @Lenient public var name: String?
            @Lenient public var stats: Stats?
            enum CodingKeys: String, CodingKey { case name, stats }
        }

        @Lenient public var stats: Stats?
        @Lenient public var pools: [Pool]?
        enum CodingKeys: String, CodingKey { case stats, pools }
    }

    /// One file system of `ceph fs ls`.
    public struct FileSystem: Decodable, Sendable {
        @Lenient public var name: String?
        enum CodingKeys: String, CodingKey { case name }
    }

    /// `ceph fs dump`: each file system's MDS map, as far as the MDS states.
    public struct FSDump: Decodable, Sendable {
        public struct FileSystem: Decodable, Sendable {
            @Lenient public var mdsmap: MDSMap?
            enum CodingKeys: String, CodingKey { case mdsmap }
        }

        public struct MDSMap: Decodable, Sendable {
            @Lenient public var fsName: String?
            /// The MDS daemons by `gid_N`.
            @Lenient public var info: [String: MDS]?
            enum CodingKeys: String, CodingKey { case fsName = "fs_name", info }
        }

        public struct MDS: Decodable, Sendable {
            /// `up:active`, `up:standby`, ...
            @Lenient public var state: String?
            enum CodingKeys: String, CodingKey { case state }
        }

        @Lenient public var filesystems: [FileSystem]?
        enum CodingKeys: String, CodingKey { case filesystems }
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
            checks = c.lenient(.checks, as: [String: Lenient<Check>].self)?.mapValues { $0.wrappedValue ?? Check() }
        }
    }

    /// `ceph status`, as far as `aquarium-provision status` reads it.
    public struct Status: Decodable, Sendable {
        @Lenient public var health: Health?
        @Lenient public var quorumNames: [String]?
        enum CodingKeys: String, CodingKey { case health, quorumNames = "quorum_names" }
    }

    /// `ceph mgr stat`.
    public struct ManagerStat: Decodable, Sendable {
        @Lenient public var available: Bool?
        enum CodingKeys: String, CodingKey { case available }
    }

    /// `ceph telemetry status`.
    public struct TelemetryStatus: Decodable, Sendable {
        @Lenient public var enabled: Bool?
        enum CodingKeys: String, CodingKey { case enabled }
    }

    /// One entry of `ceph auth get ENTITY` / `ceph auth get-or-create ENTITY ...`.
    public struct AuthEntry: Decodable, Sendable {
        @Lenient public var entity: String?
        @Lenient public var key: String?
        /// By daemon type (`mon`, `osd`, ...).
        @Lenient public var caps: [String: String]?
        enum CodingKeys: String, CodingKey { case entity, key, caps }
    }

    /// `ceph fsid`.
    public struct FSID: Decodable, Sendable {
        @Lenient public var fsid: String?
        enum CodingKeys: String, CodingKey { case fsid }
    }

    /// One device's label of `ceph-bluestore-tool show-label` (the tool prints them by device path).
    public struct BluestoreLabel: Decodable, Sendable {
        @Lenient public var osdUUID: String?
        @Lenient public var cephFSID: String?
        /// The OSD id, as a string.
        @Lenient public var whoami: String?
        /// `yes` once `ceph-osd --mkfs` finished.
        @Lenient public var mkfsDone: String?
        enum CodingKeys: String, CodingKey { case osdUUID = "osd_uuid", cephFSID = "ceph_fsid", whoami, mkfsDone = "mkfs_done" }
    }

    /// `radosgw-admin user info` / `user create`: the user's S3 keys.
    /// `ceph mgr module ls`: which manager modules are on.
    public struct MgrModules: Decodable, Sendable {
        @Lenient public var enabledModules: [String]?
        enum CodingKeys: String, CodingKey { case enabledModules = "enabled_modules" }
    }

    /// `ceph mgr dump`: the modules each manager loaded (a manager started before ceph.conf let it load the
    /// dashboard does not have it).
    public struct MgrDump: Decodable, Sendable {
        public struct Standby: Decodable, Sendable {
            public var name: String
            @Lenient public var availableModules: [Module]?
            enum CodingKeys: String, CodingKey { case name, availableModules = "available_modules" }
        }
        public struct Module: Decodable, Sendable { public var name: String }
        public var activeName: String?
        @Lenient public var availableModules: [Module]?
        @Lenient public var standbys: [Standby]?
        enum CodingKeys: String, CodingKey {
            case activeName = "active_name", availableModules = "available_modules", standbys
        }

        /// The modules manager `id` loaded; nil when it is not in the map.
        public func modules(of id: String) -> [String]? {
            if activeName == id { return (availableModules ?? []).map(\.name) }
            return standbys?.first { $0.name == id }.map { ($0.availableModules ?? []).map(\.name) }
        }
    }

    /// Any JSON value, not read (for keys whose values do not matter, such as a pool's application settings).
    public struct Ignored: Decodable, Sendable {
        public init(from decoder: any Decoder) throws {}
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

/// An optional field of Ceph's JSON read leniently: missing, `null` or of another type reads as nil (Ceph's output
/// varies between versions; what the Provisioner does not find it treats as unknown).
@propertyWrapper
public struct Lenient<Value: Decodable & Sendable>: Decodable, Sendable {
    public var wrappedValue: Value?

    public init(wrappedValue: Value? = nil) { self.wrappedValue = wrappedValue }

    public init(from decoder: any Decoder) throws {
        wrappedValue = try? Value(from: decoder)
    }
}

extension KeyedDecodingContainer {
    /// A missing key is nil, like a `null` or mistyped one.
    public func decode<Value>(_ type: Lenient<Value>.Type, forKey key: Key) throws -> Lenient<Value> {
        (try? decodeIfPresent(type, forKey: key)) ?? Lenient()
    }
}
