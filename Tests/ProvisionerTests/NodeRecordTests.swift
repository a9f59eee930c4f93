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
