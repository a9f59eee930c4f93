import Foundation
import Testing
@testable import Provisioner

/// Reading what an MDS says when it waits for a dead NFS server's session (the eviction itself runs in RackTests).
@Suite struct NFSRecoveryTests {
    /// `session ls` of the MDS that took rank 0 over from node 1 (trimmed from a RackTests run that failed): node 1's
    /// NFS-Ganesha never reconnected, and its session is kept for a reclaim (`timeout` in its metadata).
    static let sessions = """
        [{"id": 4232, "state": "open", "reconnecting": false, "inst": "client.4232 10.77.0.2:0/3863000764",
          "client_metadata": {"client_features": {"feature_bits": "0x7ffff"}, "entity_id": "nfs.node-2", "timeout": "300",
                              "uuid": "ganesha-node-2-0001"}},
         {"id": 4258, "state": "open", "reconnecting": true, "inst": "client.4258 10.77.0.1:0/4077150794",
          "completed_requests": [{"tid": 7, "created_ino": "0x100000005e2"}],
          "client_metadata": {"entity_id": "nfs.node-1", "pid": "13839", "timeout": "300", "uuid": "ganesha-node-1-0001"}},
         {"id": 4240, "state": "open", "reconnecting": true, "inst": "client.4240 10.77.0.5:0/1",
          "client_metadata": {"entity_id": "admin"}},
         {"id": 4241, "state": "open", "reconnecting": true, "inst": "client.4241 v1:[fd77::3]:0/77",
          "client_metadata": {"entity_id": "nfs.node-3", "timeout": "300"}},
         {"id": 4252, "state": "open", "client_metadata": {}}]
        """

    @Test(arguments: [
        ("nfs.node-1", [4258] as [Int]?),
        ("nfs.node-2", [4232]),
        ("nfs.node-9", []),
    ])
    func sessionIDsOfAnEntity(_ entity: String, _ ids: [Int]?) {
        #expect(NFSRecovery.sessionIDs(of: entity, sessionList: Self.sessions) == ids)
    }

    /// `session ls` with the floating address's server on node 1 (dead) and on node 2 (the previous holder, alive).
    static let floatingSessions = """
        [{"id": 4258, "inst": "client.4258 10.77.0.1:0/4077150794", "client_metadata": {"entity_id": "nfs.node-1"}},
         {"id": 4259, "inst": "client.4259 10.77.0.1:0/4077150795", "client_metadata": {"entity_id": "nfs.virtual_ip"}},
         {"id": 4260, "inst": "client.4260 10.77.0.2:0/3", "client_metadata": {"entity_id": "nfs.virtual_ip"}},
         {"id": 4232, "inst": "client.4232 10.77.0.2:0/3863000764", "client_metadata": {"entity_id": "nfs.node-2"}},
         {"id": 4261, "client_metadata": {"entity_id": "nfs.virtual_ip"}}]
        """

    /// A dead NFS node's sessions: its own server's and the floating server's from its address, nobody else's.
    @Test(arguments: [
        ("node-1", "10.77.0.1", [4258, 4259] as [Int]?),
        ("node-2", "10.77.0.2", [4232, 4260]),
        ("node-3", "10.77.0.3", []),
        ("node-1", "10.77.0.9", [4258]),
    ])
    func deadNodeSessions(_ name: String, _ address: String, _ ids: [Int]?) {
        #expect(NFSRecovery.deadNodeSessions(name: name, address: address, sessionList: Self.floatingSessions) == ids)
        #expect(NFSRecovery.deadNodeSessions(name: name, address: address, sessionList: "Error EAGAIN") == nil)
    }

    @Test func sessionIDsOfNoList() {
        #expect(NFSRecovery.sessionIDs(of: "nfs.node-1", sessionList: "Error ENOENT: ...") == nil)
        #expect(NFSRecovery.sessionIDs(of: "nfs.node-1", sessionList: "[]") == [])
    }

    /// Only sessions kept for a reclaim and not reconnected: not node 2's (reconnected), not the admin's (no timeout:
    /// the MDS closes it by itself), not the one without metadata.
    @Test func keptSessions() {
        #expect(NFSRecovery.keptSessions(sessionList: Self.sessions) == [
            NFSRecovery.KeptSession(id: 4258, entity: "nfs.node-1", address: "10.77.0.1"),
            NFSRecovery.KeptSession(id: 4241, entity: "nfs.node-3", address: "fd77::3"),
        ])
        #expect(NFSRecovery.keptSessions(sessionList: "not json").isEmpty)
    }

    @Test(arguments: [
        ("client.4258 10.77.0.1:0/4077150794", "10.77.0.1"),
        ("client.7 v1:[fd77::1]:0/9", "fd77::1"),
        ("client.7 [fd77::1]:0/9", "fd77::1"),
        ("client.7 v2:192.0.2.4:3300/12", "192.0.2.4"),
        ("client.7 -", nil),
        ("10.77.0.1:0/1", nil),
    ] as [(String, String?)])
    func addressOfAnInstance(_ inst: String, _ address: String?) {
        #expect(NFSRecovery.address(inst: inst) == address)
    }

    /// `fs dump` with rank 0 in up:clientreplay (another file system's rank 0 active, a standby elsewhere).
    @Test func ranksInClientReplay() {
        let dump = """
            {"epoch": 9, "standbys": [{"gid": 4171, "name": "node-3", "rank": -1, "state": "up:standby"}],
             "filesystems": [
              {"mdsmap": {"fs_name": "cephfs", "max_mds": 1, "info": {
                "gid_4175": {"gid": 4175, "name": "node-2", "rank": 0, "state": "up:clientreplay", "addr": "10.77.0.2:3315/1"}}}},
              {"mdsmap": {"fs_name": "media", "info": {
                "gid_4180": {"gid": 4180, "name": "node-1", "rank": 0, "state": "up:active"}}}}]}
            """
        #expect(NFSRecovery.ranksInClientReplay(fsDump: dump) == [NFSRecovery.WaitingRank(filesystem: "cephfs", rank: 0, daemon: "node-2")])
        #expect(NFSRecovery.ranksInClientReplay(fsDump: "{}").isEmpty)
    }

    /// The takeover counts "no session of the dead peer" only once rank 0's MDS has replayed its journal: in
    /// up:replay, sessions only the journal holds are not listed yet. No daemon on the rank, or another rank or file
    /// system replayed, does not count.
    @Test(arguments: [
        ("up:replay", "cephfs", 0, false),
        ("up:reconnect", "cephfs", 0, true),
        ("up:rejoin", "cephfs", 0, true),
        ("up:clientreplay", "cephfs", 0, true),
        ("up:active", "cephfs", 0, true),
        ("up:active", "cephfs", 1, false),
        ("up:active", "media", 0, false),
    ])
    func hasReplayed(state: String, filesystem: String, rank: Int, replayed: Bool) {
        let dump = """
            {"epoch": 12, "standbys": [{"gid": 4171, "name": "node-3", "rank": -1, "state": "up:standby"}],
             "filesystems": [{"mdsmap": {"fs_name": "cephfs", "info": {
                "gid_4175": {"gid": 4175, "name": "node-2", "rank": 0, "state": "\(state)"}}}}]}
            """
        #expect(NFSRecovery.hasReplayed(fsDump: dump, filesystem: filesystem, rank: rank) == replayed)
        #expect(!NFSRecovery.hasReplayed(fsDump: "{}", filesystem: filesystem, rank: rank))
    }
}
