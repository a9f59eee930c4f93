import CommandSupport
import Disks
import Foundation
import JSONCoding

/// A broken or unreadable node contract document (exit 2), or a mismatch that must stop the caller (exit 3).
public struct ContractError: Error, AquariumExitCoded, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case invalid, refused, runtime }
    public var kind: Kind
    public var message: String
    /// What failed underneath (a decoding error), for the person debugging.
    public var cause: (any Error)?

    public init(_ kind: Kind, _ message: String, cause: (any Error)? = nil) {
        self.kind = kind
        self.message = message
        self.cause = cause
    }

    public var exitCode: AquariumExit {
        switch kind {
        case .invalid: .invalidInput
        case .refused: .refused
        case .runtime: .runtimeFailure
        }
    }
    public var description: String { message }
}

/// One disk as the node record names it: its stable identity and every identifier that leads to it. A disk is found
/// again by these only, never by its kernel name (`path` is what it was called when FirstBoot ran, for messages).
public struct DiskIdentity: Codable, Equatable, Sendable {
    /// `wwn:...`, `serial:...`, `by-id:...` or `file:...` (a loop device's backing file); see `Disk.stableIdentity`.
    public var stableIdentity: String
    public var path: String
    @Nullable public var wwn: String?
    @Nullable public var serial: String?
    public var byId: [String]
    public var sizeBytes: UInt64

    public init(stableIdentity: String, path: String, wwn: String? = nil, serial: String? = nil, byId: [String] = [],
                sizeBytes: UInt64) {
        self.stableIdentity = stableIdentity
        self.path = path
        self.wwn = wwn
        self.serial = serial
        self.byId = byId
        self.sizeBytes = sizeBytes
    }

    public init(_ disk: Disk) {
        self.init(stableIdentity: disk.stableIdentity, path: disk.path, wwn: disk.wwn, serial: disk.serial,
                  byId: disk.byId, sizeBytes: disk.sizeBytes)
    }

    enum CodingKeys: String, CodingKey { case stableIdentity, path, wwn, serial, byId, sizeBytes }

    /// A name for messages: a by-id link, else the stable identity.
    public var displayName: String { byId.sorted().first ?? stableIdentity }

    /// Whether `disk` is this disk: the same stable identity, WWN or serial. Kernel names never count.
    public func matches(_ disk: Disk) -> Bool {
        if stableIdentity.hasPrefix("path:") { return false }
        if disk.stableIdentity == stableIdentity { return true }
        if let wwn, !wwn.isEmpty, let other = disk.wwn, WWN.comparable(other) == WWN.comparable(wwn) { return true }
        if let serial, !serial.isEmpty, disk.serial == serial { return true }
        if !byId.isEmpty, !Set(byId).isDisjoint(with: disk.byId) { return true }
        return false
    }

    /// The disk of `inventory` that is this disk: `.found`, `.missing` (never replaced by whatever has its old kernel
    /// name) or `.ambiguous` (several disks claim its identity).
    public func locate(in inventory: Inventory) -> Location {
        let matches = inventory.disks.filter(matches)
        switch matches.count {
        case 0: return .missing
        case 1:
            if matches[0].sizeBytes != sizeBytes { return .changed(matches[0], "its size is \(matches[0].sizeBytes) bytes, "
                + "the node record says \(sizeBytes)") }
            return .found(matches[0])
        default: return .ambiguous(matches.map(\.path))
        }
    }

    public enum Location: Equatable, Sendable {
        case found(Disk)
        case missing
        case ambiguous([String])
        /// A disk with this identity whose size differs: not the disk the record names.
        case changed(Disk, String)
    }
}

/// The node record FirstBoot hands to the Provisioner: /var/lib/aquarium/node.json (docs/firstboot.md). Both read and
/// write it through this type only; an unknown version or a missing field is an error, never a default.
public struct NodeRecord: Codable, Equatable, Sendable {
    public static let currentVersion = 1

    public struct SystemDisk: Codable, Equatable, Sendable {
        public var stableIdentity: String
        public var path: String
        @Nullable public var wwn: String?
        @Nullable public var serial: String?
        public var byId: [String]
        public var diskGUID: String
        /// GPT partition name -> PARTUUID.
        public var partitionUUIDs: [String: String]
        public var filesystem: String
        public var filesystemUUID: String

        public init(stableIdentity: String, path: String, wwn: String?, serial: String?, byId: [String], diskGUID: String,
                    partitionUUIDs: [String: String], filesystem: String, filesystemUUID: String) {
            self.stableIdentity = stableIdentity
            self.path = path
            self.wwn = wwn
            self.serial = serial
            self.byId = byId
            self.diskGUID = diskGUID
            self.partitionUUIDs = partitionUUIDs
            self.filesystem = filesystem
            self.filesystemUUID = filesystemUUID
        }

        enum CodingKeys: String, CodingKey {
            case stableIdentity, path, wwn, serial, byId, diskGUID, partitionUUIDs, filesystem, filesystemUUID
        }

        /// The system disk as an identity to locate.
        public var identity: DiskIdentity {
            DiskIdentity(stableIdentity: stableIdentity, path: path, wwn: wwn, serial: serial, byId: byId, sizeBytes: 0)
        }
    }

    public var version: Int
    public var nodeUUID: String
    public var hostname: String
    public var cluster: String
    /// SHA-256 (hex) of the seed FirstBoot verified and copied to `seedPath`.
    public var seedSHA256: String
    public var systemDisk: SystemDisk
    public var storageDisks: [DiskIdentity]
    /// The disk FirstBoot was booted from (holding / or the seed volume), which the Provisioner must never touch.
    @Nullable public var bootMedia: DiskIdentity?
    /// The verified seed, copied (mode 0600) into the node's state for the Provisioner: `/var/lib/aquarium/seed.yaml`.
    public var seedPath: String
    /// When the system disk was prepared.
    public var createdAt: String
    /// The last boot that mounted it.
    public var updatedAt: String

    public init(version: Int = NodeRecord.currentVersion, nodeUUID: String, hostname: String, cluster: String,
                seedSHA256: String, systemDisk: SystemDisk, storageDisks: [DiskIdentity], bootMedia: DiskIdentity?,
                seedPath: String, createdAt: String, updatedAt: String) {
        self.version = version
        self.nodeUUID = nodeUUID
        self.hostname = hostname
        self.cluster = cluster
        self.seedSHA256 = seedSHA256
        self.systemDisk = systemDisk
        self.storageDisks = storageDisks
        self.bootMedia = bootMedia
        self.seedPath = seedPath
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case version, nodeUUID, hostname, cluster, seedSHA256, systemDisk, storageDisks, bootMedia, seedPath, createdAt
        case updatedAt
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        guard version == Self.currentVersion else {
            throw DecodingError.dataCorruptedError(forKey: .version, in: c, debugDescription:
                "node record version \(version) is not supported; this tool reads version \(Self.currentVersion)")
        }
        nodeUUID = try c.decode(String.self, forKey: .nodeUUID)
        hostname = try c.decode(String.self, forKey: .hostname)
        cluster = try c.decode(String.self, forKey: .cluster)
        seedSHA256 = try c.decode(String.self, forKey: .seedSHA256)
        systemDisk = try c.decode(SystemDisk.self, forKey: .systemDisk)
        storageDisks = try c.decode([DiskIdentity].self, forKey: .storageDisks)
        bootMedia = try c.decodeIfPresent(DiskIdentity.self, forKey: .bootMedia)
        seedPath = try c.decode(String.self, forKey: .seedPath)
        createdAt = try c.decode(String.self, forKey: .createdAt)
        updatedAt = try c.decode(String.self, forKey: .updatedAt)
    }

    /// Relative to the target root.
    public static let relativePath = "var/lib/aquarium/node.json"
    /// Where the verified seed is copied, relative to the target root.
    public static let seedRelativePath = "var/lib/aquarium/seed.yaml"

    /// The record as written: sorted keys, pretty printed.
    public func encoded() throws -> Data { try JSONCoding.encoder().encode(self) }

    /// Decodes a record; errors (exit 2) name `file` and what is wrong in JSON terms.
    public static func decode(_ data: Data, file: String) throws(ContractError) -> NodeRecord {
        do {
            return try JSONDecoder().decode(NodeRecord.self, from: data)
        } catch let error as DecodingError {
            throw ContractError(.invalid, "the node record \(file) is not a valid version-\(currentVersion) node record: "
                + Self.explain(error) + "; FirstBoot writes it (rerun `aquarium-firstboot apply`)", cause: error)
        } catch {
            throw ContractError(.invalid, "the node record \(file) cannot be read: \(error)", cause: error)
        }
    }

    /// Reads the record at `path` (exit 2 when it is missing or invalid).
    public static func load(path: String) throws(ContractError) -> NodeRecord {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ContractError(.invalid, "cannot read the node record \(path); FirstBoot writes it to "
                + "/\(relativePath), or pass --node-record FILE")
        }
        return try decode(data, file: path)
    }

    /// A decoding error in JSON terms: the key path and what was expected.
    static func explain(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.isEmpty ? "the document" : keys.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }
                .joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "key '\(path(context.codingPath + [key]))' is missing"
        case .valueNotFound(_, let context):
            return "'\(path(context.codingPath))' is null"
        case .typeMismatch(let type, let context):
            return "'\(path(context.codingPath))' is not a \(type == String.self ? "string" : "\(type)")"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON (\(context.debugDescription))"
                : "'\(path(context.codingPath))': \(context.debugDescription)"
        @unknown default:
            return String(describing: error)
        }
    }
}
