import Foundation

/// The node record FirstBoot hands to the Provisioner (`/var/lib/aquarium/node.json`).
///
/// The reader is deliberately lenient (documented in docs/provisioner.md): key names are matched without regard to
/// case, `_` or `-` (`node_uuid`, `nodeUUID` and `node-uuid` are the same key), several synonyms are accepted for each
/// field, unknown keys are ignored, and a disk may be a plain device path or an object. What it needs: the host name,
/// the node's UUID, the storage disks (device path plus whatever stable identity is known) and, to refuse it, the
/// system disk.
public struct NodeRecord: Codable, Equatable, Sendable {
    public var hostname: String?
    public var nodeUUID: String?
    public var systemDisk: DiskRef?
    public var bootMedia: DiskRef?
    public var storageDisks: [DiskRef]
    /// Where FirstBoot left the verified seed, when it says so.
    public var seedPath: String?

    public init(hostname: String? = nil, nodeUUID: String? = nil, systemDisk: DiskRef? = nil, bootMedia: DiskRef? = nil,
                storageDisks: [DiskRef] = [], seedPath: String? = nil) {
        self.hostname = hostname
        self.nodeUUID = nodeUUID
        self.systemDisk = systemDisk
        self.bootMedia = bootMedia
        self.storageDisks = storageDisks
        self.seedPath = seedPath
    }

    /// One disk as the node record names it.
    public struct DiskRef: Codable, Equatable, Sendable {
        /// The kernel device path at the time FirstBoot ran (`/dev/sdb`), may change between boots.
        public var path: String?
        /// `/dev/disk/by-id/...` links, the most stable names.
        public var byId: [String]
        public var wwn: String?
        public var serial: String?
        public var sizeBytes: UInt64?
        /// FirstBoot's stable identity (`wwn:0x5000c5...`, `serial:S4X...`), when it gives one.
        public var stableIdentity: String?

        public init(path: String? = nil, byId: [String] = [], wwn: String? = nil, serial: String? = nil,
                    sizeBytes: UInt64? = nil, stableIdentity: String? = nil) {
            self.stableIdentity = stableIdentity
            self.path = path
            self.byId = byId
            self.wwn = wwn
            self.serial = serial
            self.sizeBytes = sizeBytes
        }

        /// A name for messages and keys: the first by-id link, else the path.
        public var displayName: String { byId.first ?? path ?? wwn ?? serial ?? "<unnamed disk>" }

        /// The name the Provisioner remembers the disk by: the stable identity, else the first by-id link, else the path.
        public var stateKey: String { stableIdentity ?? byId.first ?? path ?? displayName }

        enum CodingKeys: String, CodingKey { case path, byId, wwn, serial, sizeBytes, stableIdentity }

        public init(from decoder: Decoder) throws {
            if let single = try? decoder.singleValueContainer(), let text = try? single.decode(String.self) {
                self.init(path: text.hasPrefix("/dev/disk/by-id/") ? nil : text,
                          byId: text.hasPrefix("/dev/disk/by-id/") ? [text] : [])
                return
            }
            let container = try decoder.container(keyedBy: LenientKey.self)
            var path = container.string(["path", "device", "devnode", "devicePath", "node", "dev", "kernelPath"])
            let links = container.strings(["byId", "byIds", "idLinks", "stablePath", "byIdPath", "id"])
                .filter { !$0.isEmpty }
            if path == nil, let name = container.string(["name", "kernelName"]) {
                path = name.hasPrefix("/") ? name : "/dev/" + name
            }
            // A bare by-id name (without the directory) is completed.
            self.init(path: path, byId: links.map { $0.hasPrefix("/") ? $0 : "/dev/disk/by-id/" + $0 },
                      wwn: container.string(["wwn", "wwid"]),
                      serial: container.string(["serial", "serialNumber", "idSerial"]),
                      sizeBytes: container.unsigned(["sizeBytes", "size", "bytes"]),
                      stableIdentity: container.string(["stableIdentity", "identity", "stableId"]))
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(path, forKey: .path)
            try container.encode(byId, forKey: .byId)
            try container.encodeIfPresent(wwn, forKey: .wwn)
            try container.encodeIfPresent(serial, forKey: .serial)
            try container.encodeIfPresent(sizeBytes, forKey: .sizeBytes)
            try container.encodeIfPresent(stableIdentity, forKey: .stableIdentity)
        }
    }

    enum CodingKeys: String, CodingKey { case hostname, nodeUUID, systemDisk, bootMedia, storageDisks, seedPath }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: LenientKey.self)
        // Some writers nest the identity under "node" or "host".
        let nested = [container.nested(["node", "host", "identity"])].compactMap { $0 }
        func string(_ names: [String]) -> String? {
            container.string(names) ?? nested.lazy.compactMap { $0.string(names) }.first
        }
        hostname = string(["hostname", "hostName", "host", "nodeName", "name"])
        nodeUUID = string(["nodeUUID", "nodeId", "uuid", "machineId", "id"])
        seedPath = string(["seedPath", "seed", "seedFile"])
        systemDisk = container.disk(["systemDisk", "system", "rootDisk", "chosenDisk", "selectedDisk"])
        bootMedia = container.disk(["bootMedia", "bootDisk", "stick", "usb"])
        var storage = container.disks(["storageDisks", "storage", "osdDisks", "eligibleStorage", "eligibleStorageDisks",
                                       "dataDisks", "eligibleDisks"])
        if storage.isEmpty, let disks = container.nested(["disks"]) {
            storage = disks.disks(["storage", "storageDisks", "eligible", "osd"])
        }
        storageDisks = storage
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(hostname, forKey: .hostname)
        try container.encodeIfPresent(nodeUUID, forKey: .nodeUUID)
        try container.encodeIfPresent(systemDisk, forKey: .systemDisk)
        try container.encodeIfPresent(bootMedia, forKey: .bootMedia)
        try container.encode(storageDisks, forKey: .storageDisks)
        try container.encodeIfPresent(seedPath, forKey: .seedPath)
    }

    /// Reads and decodes the node record at `path`. Errors name the file and exit 2.
    public static func load(path: String) throws(ProvisionError) -> NodeRecord {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProvisionError.invalidInput("cannot read the node record \(path); FirstBoot writes it to "
                + "/var/lib/aquarium/node.json, or pass --node-record FILE")
        }
        do {
            return try JSONDecoder().decode(NodeRecord.self, from: data)
        } catch {
            throw ProvisionError.invalidInput("the node record \(path) is not a JSON object this reader understands: \(error)")
        }
    }
}

/// A coding key that matches names without regard to case, `_` and `-`.
struct LenientKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.stringValue = String(intValue); self.intValue = intValue }

    static func normalise(_ name: String) -> String {
        String(name.lowercased().filter { $0 != "_" && $0 != "-" })
    }
}

extension KeyedDecodingContainer where Key == LenientKey {
    fileprivate func key(_ names: [String]) -> [LenientKey] {
        let wanted = names.map(LenientKey.normalise)
        // In the order of `names`: the first synonym wins.
        return wanted.compactMap { name in allKeys.first { LenientKey.normalise($0.stringValue) == name } }
    }

    func string(_ names: [String]) -> String? {
        for key in key(names) {
            if let value = try? decode(String.self, forKey: key), !value.isEmpty { return value }
            if let value = try? decode(Int.self, forKey: key) { return String(value) }
        }
        return nil
    }

    func strings(_ names: [String]) -> [String] {
        for key in key(names) {
            if let value = try? decode([String].self, forKey: key) { return value }
            if let value = try? decode(String.self, forKey: key), !value.isEmpty { return [value] }
        }
        return []
    }

    func unsigned(_ names: [String]) -> UInt64? {
        for key in key(names) {
            if let value = try? decode(UInt64.self, forKey: key) { return value }
            if let text = try? decode(String.self, forKey: key), let value = UInt64(text) { return value }
        }
        return nil
    }

    func nested(_ names: [String]) -> KeyedDecodingContainer<LenientKey>? {
        for key in key(names) {
            if let value = try? nestedContainer(keyedBy: LenientKey.self, forKey: key) { return value }
        }
        return nil
    }

    func disk(_ names: [String]) -> NodeRecord.DiskRef? {
        for key in key(names) {
            if let value = try? decode(NodeRecord.DiskRef.self, forKey: key) { return value }
        }
        return nil
    }

    func disks(_ names: [String]) -> [NodeRecord.DiskRef] {
        for key in key(names) {
            if let value = try? decode([NodeRecord.DiskRef].self, forKey: key) { return value }
        }
        return []
    }
}
