import Foundation
import JSONCoding

/// What the Provisioner remembers between runs (`ROOT/var/lib/aquarium/provision-state.json`). It holds no secret.
/// Steps are still checked against reality on every run; the state only keeps decisions (fsid, ports, OSD UUIDs)
/// stable and records which steps completed.
public struct ProvisionState: Codable, Equatable, Sendable {
    public var identity: ClusterIdentity?
    public var completedSteps: [String] = []
    /// OSD UUID chosen for each storage disk, by the disk's stable name.
    public var osdUUIDs: [String: String] = [:]
    /// OSD id for each storage disk once the monitor assigned it.
    public var osdIds: [String: Int] = [:]
    public var bootstrappedAt: String?
    /// The `replication` step: the min_size each pool it grew is still to get (see `ReplicationPlan.make`). Optional so
    /// state files written before it still load.
    public var replicationPending: [String: Int]?
    /// Storage disks of the node record that the last run did not find on this machine (by their stable identity).
    public var missingDisks: [String]?
    /// How many lines of the node's event file are in the cluster's event log (`ClusterEventLog`).
    public var eventsPublished: Int?

    public init() {}

    public static func load(_ path: String) throws(ProvisionError) -> ProvisionState {
        guard let data = FileManager.default.contents(atPath: path) else { return ProvisionState() }
        do {
            return try JSONDecoder().decode(ProvisionState.self, from: data)
        } catch {
            throw .failed("the state file \(path) is damaged (\(error)); move it away to let the next run rebuild it "
                + "from what it finds on the node")
        }
    }

    public func save(_ path: String) throws(ProvisionError) {
        guard let data = try? JSONCoding.encoder().encode(self) else { throw .failed("cannot encode the state for \(path)") }
        try Files.write(data, to: path, mode: 0o644)
    }

    mutating func markCompleted(_ step: String) {
        if !completedSteps.contains(step) { completedSteps.append(step) }
    }
}
