import Foundation
import Testing
@testable import Provisioner

@Suite struct NodeRecordTests {
    @Test(arguments: [
        // camelCase with objects
        (#"{"hostname":"node-01","nodeUUID":"u-1","systemDisk":{"path":"/dev/sda","byId":["/dev/disk/by-id/wwn-0x1"]},"storageDisks":[{"path":"/dev/sdb","byId":["/dev/disk/by-id/wwn-0x2"],"serial":"S2","sizeBytes":1000}]}"#,
         "node-01", "u-1", ["/dev/disk/by-id/wwn-0x2"], "/dev/sdb"),
        // snake_case, a bare by-id name, extra keys
        (#"{"host_name":"node-02","node_uuid":"u-2","storage_disks":[{"device":"/dev/vdb","by_id":"virtio-abc","wwn":"0x5"}],"future":{"x":1}}"#,
         "node-02", "u-2", ["/dev/disk/by-id/virtio-abc"], "/dev/vdb"),
        // plain strings, nested identity, disks.storage
        (#"{"node":{"hostname":"node-03","uuid":"u-3"},"disks":{"storage":["/dev/loop7"]}}"#,
         "node-03", "u-3", [], "/dev/loop7"),
    ])
    func lenientDecoding(json: String, hostname: String, uuid: String, byId: [String], path: String) throws {
        let record = try JSONDecoder().decode(NodeRecord.self, from: Data(json.utf8))
        #expect(record.hostname == hostname)
        #expect(record.nodeUUID == uuid)
        #expect(record.storageDisks.count == 1)
        #expect(record.storageDisks.first?.byId == byId)
        #expect(record.storageDisks.first?.path == path)
    }

    /// The record as FirstBoot writes it (docs/firstboot.md).
    @Test func firstBootRecord() throws {
        let json = #"""
        {"version": 1, "nodeUUID": "df66e47e-113a-4997-8444-9e0226766017", "hostname": "node1", "cluster": "ceph",
         "seedSHA256": "f77af33d", "systemDisk": {"stableIdentity": "wwn:0x5000c500a1b2c3d4", "path": "/dev/sda",
         "wwn": "0x5000c500a1b2c3d4", "serial": "S3Z", "byId": ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"],
         "diskGUID": "c0dc06c9", "partitionUUIDs": {"aquarium-state": "dfd9c80f"}, "filesystem": "xfs"},
         "storageDisks": [{"stableIdentity": "serial:S4X", "path": "/dev/sdd", "wwn": null, "serial": "S4X", "byId": [],
                           "sizeBytes": 960000000000}],
         "createdAt": "2026-11-26T10:47:05Z", "updatedAt": "2026-11-26T10:47:06Z"}
        """#
        let record = try JSONDecoder().decode(NodeRecord.self, from: Data(json.utf8))
        #expect(record.hostname == "node1")
        #expect(record.nodeUUID == "df66e47e-113a-4997-8444-9e0226766017")
        #expect(record.systemDisk?.byId == ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"])
        #expect(record.storageDisks == [NodeRecord.DiskRef(path: "/dev/sdd", serial: "S4X", sizeBytes: 960000000000,
                                                            stableIdentity: "serial:S4X")])
        #expect(record.storageDisks.first?.stateKey == "serial:S4X")
    }

    @Test func roundTripsThroughItsOwnEncoding() throws {
        let record = NodeRecord(hostname: "n", nodeUUID: "u", systemDisk: .init(path: "/dev/sda"),
                                storageDisks: [.init(path: "/dev/sdb", byId: ["/dev/disk/by-id/x"], wwn: "0x1", serial: "s", sizeBytes: 5)])
        let decoded = try JSONDecoder().decode(NodeRecord.self, from: JSONEncoder().encode(record))
        #expect(decoded == record)
    }

    @Test func missingFileIsInvalidInput() {
        #expect(throws: ProvisionError.self) { try NodeRecord.load(path: "/nonexistent/node.json") }
    }
}
