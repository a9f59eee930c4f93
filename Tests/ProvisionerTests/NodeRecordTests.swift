import Disks
import Foundation
import NodeContract
import Testing

/// The one node record (NodeContract): strict, versioned; a disk is found by its identity only.
@Suite struct NodeRecordTests {
    static let valid = #"""
    {"version": 1, "nodeUUID": "df66e47e-113a-4997-8444-9e0226766017", "hostname": "node1", "cluster": "ceph",
     "seedSHA256": "f77af33d", "systemDisk": {"stableIdentity": "wwn:0x5000c500a1b2c3d4", "path": "/dev/sda",
     "wwn": "0x5000c500a1b2c3d4", "serial": "S3Z", "byId": ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"],
     "diskGUID": "c0dc06c9", "partitionUUIDs": {"aquarium-state": "dfd9c80f"}, "filesystem": "xfs", "filesystemUUID": "e1"},
     "storageDisks": [{"stableIdentity": "serial:S4X", "path": "/dev/sdd", "wwn": null, "serial": "S4X", "byId": [],
                       "sizeBytes": 960000000000}],
     "bootMedia": null, "seedPath": "/var/lib/aquarium/seed.yaml",
     "createdAt": "2026-11-26T10:47:05Z", "updatedAt": "2026-11-26T10:47:06Z"}
    """#

    @Test func decodesTheRecordFirstBootWrites() throws {
        let record = try NodeRecord.decode(Data(Self.valid.utf8), file: "node.json")
        #expect(record.hostname == "node1")
        #expect(record.systemDisk.byId == ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"])
        #expect(record.storageDisks == [DiskIdentity(stableIdentity: "serial:S4X", path: "/dev/sdd", serial: "S4X",
                                                     sizeBytes: 960000000000)])
        let again = try NodeRecord.decode(try record.encoded(), file: "again.json")
        #expect(again == record)
    }

    /// What the old lenient reader accepted (synonyms, no version, no system disk) is now an error naming the key.
    @Test(arguments: [
        (#"{"hostname":"node-02","node_uuid":"u-2","storage_disks":[{"device":"/dev/vdb"}]}"#, "version"),
        ("VERSION2", "version 2 is not supported"),
        ("NOSYSTEM", "systemDisk"),
        ("NULLSYSTEM", "systemDisk"),
        ("NOSHA", "seedSHA256"),
        ("STRINGDISKS", "storageDisks"),
        ("not json", "not JSON"),
    ])
    func rejects(_ input: String, _ expected: String) throws {
        var text = input
        switch input {
        case "VERSION2": text = Self.valid.replacingOccurrences(of: #""version": 1"#, with: #""version": 2"#)
        case "NOSYSTEM": text = Self.replace(Self.valid, key: "systemDisk", with: nil)
        case "NULLSYSTEM": text = Self.replace(Self.valid, key: "systemDisk", with: NSNull())
        case "NOSHA": text = Self.replace(Self.valid, key: "seedSHA256", with: nil)
        case "STRINGDISKS": text = Self.replace(Self.valid, key: "storageDisks", with: ["/dev/sdb"])
        default: break
        }
        do {
            _ = try NodeRecord.decode(Data(text.utf8), file: "/x/node.json")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.exitCode == .invalidInput)
            #expect(error.message.contains("/x/node.json") && error.message.contains(expected), "\(error.message)")
            #expect(!error.message.contains("CodingKeys"), "\(error.message)")
        }
    }

    static func replace(_ json: String, key: String, with value: Any?) -> String {
        var object = (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]) ?? [:]
        object[key] = value
        if value == nil { object.removeValue(forKey: key) }
        return String(decoding: (try? JSONSerialization.data(withJSONObject: object)) ?? Data(), as: UTF8.self)
    }

    @Test func missingFileIsInvalidInput() {
        #expect(throws: ContractError.self) { try NodeRecord.load(path: "/nonexistent/node.json") }
    }

    static func disk(_ name: String, serial: String? = nil, wwn: String? = nil, size: UInt64 = 1000,
                     backing: String? = nil) -> Disk {
        Disk(name: name, path: "/dev/" + name, sizeBytes: size, serial: serial, wwn: wwn, backingFile: backing)
    }

    /// Case 3 of the safety issue: the disk is gone and another has its old kernel name: missing, never that disk.
    @Test(arguments: [
        ("pulled disk, another now sdb", DiskIdentity(stableIdentity: "serial:S1", path: "/dev/sdb", serial: "S1", sizeBytes: 1000),
         [disk("sdb", serial: "OTHER")], "missing"),
        ("found under a new name", DiskIdentity(stableIdentity: "serial:S1", path: "/dev/sdb", serial: "S1", sizeBytes: 1000),
         [disk("sdc", serial: "S1")], "found sdc"),
        ("WWN identity, found", DiskIdentity(stableIdentity: "wwn:0x5000", path: "/dev/sda", wwn: "0x5000", sizeBytes: 1000),
         [disk("sdb", serial: "X"), disk("sdd", wwn: "0x5000")], "found sdd"),
        ("two disks claim it", DiskIdentity(stableIdentity: "serial:S1", path: "/dev/sdb", serial: "S1", sizeBytes: 1000),
         [disk("sdb", serial: "S1"), disk("sdc", serial: "S1")], "ambiguous"),
        ("same serial, other size", DiskIdentity(stableIdentity: "serial:S1", path: "/dev/sdb", serial: "S1", sizeBytes: 1000),
         [disk("sdb", serial: "S1", size: 2000)], "changed"),
        ("path identity never matches", DiskIdentity(stableIdentity: "path:/dev/sdb", path: "/dev/sdb", sizeBytes: 1000),
         [disk("sdb")], "missing"),
        ("loop device by backing file", DiskIdentity(stableIdentity: "file:/var/tmp/a.img", path: "/dev/loop3", sizeBytes: 1000),
         [disk("loop3", backing: "/var/tmp/b.img"), disk("loop7", backing: "/var/tmp/a.img")], "found loop7"),
    ])
    func locate(_ name: String, _ identity: DiskIdentity, _ disks: [Disk], _ expected: String) {
        let result: String = switch identity.locate(in: Inventory(disks: disks)) {
        case .found(let disk): "found \(disk.name)"
        case .missing: "missing"
        case .ambiguous: "ambiguous"
        case .changed: "changed"
        }
        #expect(result == expected, "\(name)")
    }
}
