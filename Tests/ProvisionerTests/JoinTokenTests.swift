import Foundation
import Seed
import Testing
import TestSupport
@testable import Provisioner

@Suite struct JoinTokenTests {
    static let fsid = "c1548103-2615-4764-ae5d-1ab67261fb22"
    /// A real cephx key (`ceph-authtool --gen-print-key`).
    static let key = "AQDqMAhrepG9FRAAErvysczVyEK6242XgUrsJA=="

    @Test func formatAndParseRoundTrip() throws {
        let token = JoinToken(fsid: Self.fsid.uppercased(), key: Self.key)
        #expect(token.text == "\(Self.fsid).\(Self.key)")
        #expect(try JoinToken(parsing: token.text + "\n") == token)
        // Fits the seed's token rule: 16-256 of A-Z a-z 0-9 + / = . _ -
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=._-")
        #expect((16...256).contains(token.text.count) && token.text.allSatisfy(allowed.contains))
        #expect(!token.description.contains(Self.key))
    }

    @Test(arguments: [
        ("a1b2-c3d4-e5f6-a7b8", "no '.'"),
        ("not-a-uuid.\(key)", "does not start with a cluster fsid"),
        ("c1548103-2615-4764-ae5d-1ab67261fb2.\(key)", "does not start with a cluster fsid"),
        ("\(fsid).", "not a cephx key"),
        ("\(fsid).AQDqMAhrepG9FRAAErvysczVyEK6242XgUrsJA", "not a cephx key"),       // padding missing
        ("\(fsid).AQDqMAhrepG9FRAAErvysczVyEK6242XgUrsJA==.x", "not an expiry time"),
        ("\(fsid).AQDqMAhrepG9FRAAErvysczVyEK6242XgUrsJA==.", "not an expiry time"),
        ("\(fsid).AQDqMAhrepG9FRAAErvysczVyEK6242XgUrsJA==.1764000000.1", "not an expiry time"),
        ("\(fsid).AQDqMAhrepG9FRAAErvysczVyEK6242XgUrsJA==.-1764000000", "not an expiry time"),
        ("\(fsid).AgDqMAhrepG9FRAAErvysczVyEK6242XgUrsJA==", "not a cephx key"),     // key type 2
        ("\(fsid).QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB", "not a cephx key"),         // base64, wrong shape
        ("\(fsid).\(fsid)", "not a cephx key"),
    ])
    func malformedTokens(text: String, message: String) {
        #expect {
            _ = try JoinToken(parsing: text)
        } throws: { error in
            guard let error = error as? ProvisionError, case .invalidInput(let description) = error else { return false }
            // Exit 2, says what is wrong and where a token comes from, never repeats it.
            return error.exitCode == .invalidInput && description.contains(message)
                && description.contains("aquarium-provision join-token") && !description.contains(text)
        }
    }

    @Test("a token with its expiry: printed as FSID.KEY.EXPIRES, read back; refused (exit 3) from the second it expires")
    func expiry() throws {
        let token = JoinToken(fsid: Self.fsid, key: Self.key, expires: 1_764_000_000)
        #expect(token.text == "\(Self.fsid).\(Self.key).1764000000")
        #expect(try JoinToken(parsing: token.text) == token)
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=._-")
        #expect((16...256).contains(token.text.count) && token.text.allSatisfy(allowed.contains))
        try token.refuseIfExpired(now: Date(timeIntervalSince1970: 1_763_999_999))
        for now in [1_764_000_000, 1_800_000_000] {
            #expect {
                try token.refuseIfExpired(now: Date(timeIntervalSince1970: TimeInterval(now)))
            } throws: { error in
                guard let error = error as? ProvisionError, case .refused(let text) = error else { return false }
                return error.exitCode == .refused && text.contains("expired at 2025-11-24T16:00:00Z")
                    && text.contains("join-token --rotate") && !text.contains(Self.key)
            }
        }
        // A token without an expiry (made before keys expired) never expires on this side: the cluster decides.
        try JoinToken(fsid: Self.fsid, key: Self.key).refuseIfExpired(now: Date.distantFuture)
    }

    @Test("the cluster's record: usable until it expires or is revoked", arguments: [
        (JoinKeyRecord(expires: 1000), 999, nil as String?),
        (JoinKeyRecord(expires: 1000), 1000, "expired at 1970-01-01T00:16:40Z"),
        (JoinKeyRecord(expires: 1000, revoked: true), 10, "revoked"),
    ])
    func record(record: JoinKeyRecord, now: Int, reason: String?) {
        #expect(record.unusableReason(at: Date(timeIntervalSince1970: TimeInterval(now))) == reason)
        #expect(record.isUsable(at: Date(timeIntervalSince1970: TimeInterval(now))) == (reason == nil))
    }

    @Test("lifetimes: a whole number and s, m, h or d", arguments: [
        ("30s", 30), ("90m", 5400), ("24h", 86400), ("7d", 604_800), (" 2h ", 7200),
        ("0h", nil), ("24", nil), ("1.5h", nil), ("h", nil), ("-1h", nil), ("2w", nil), ("99999999d", nil),
    ] as [(String, Int?)])
    func lifetimes(text: String, seconds: Int?) throws {
        if let seconds {
            #expect(try JoinKeyRecord.parseLifetime(text) == seconds)
        } else {
            #expect(throws: ProvisionError.self) { try JoinKeyRecord.parseLifetime(text) }
        }
    }

    @Test(arguments: [(Self.key, true), ("AQDqMAhrepG9FRAAErvysczVyEK6242XgUrsJA=", false), ("", false),
                      ("AQAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAA==", true)])
    func cephxKeys(key: String, valid: Bool) {
        #expect(JoinToken.isCephxKey(key) == valid)
    }

    @Test func cephConfOfAJoinedNode() throws {
        let identity = ClusterIdentity(fsid: Self.fsid, name: "ceph", daemonId: "node-02", address: IPAddress("127.0.0.1")!,
                                       basePort: 42000, publicNetwork: "127.0.0.0/8", clusterNetwork: "127.0.0.0/8",
                                       launcher: .process, join: JoinTarget(address: IPAddress("127.0.0.1")!, port: 41000))
        let text = CephConfig.render(identity, layout: Layout(root: "/tmp/b"), rgwPort: nil)
        #expect(text.contains("\tfsid = \(Self.fsid)\n"))
        #expect(text.contains("\tmon_host = [v2:127.0.0.1:41000]\n"))
        #expect(!text.contains("mon_initial_members") && !text.contains("osd_pool_default_size"))
        #expect(text.contains("\tms_bind_port_min = 42010\n\tms_bind_port_max = 42099\n"))
        #expect(text.contains("\tcrush_location = root=default host=node-02\n"))
        // The client it acts as: the join key's entity until it has a key of its own (NodeKey), then that one.
        try withTemporaryDirectory { root in
            let layout = Layout(root: root)
            #expect(identity.client(in: layout) == "client.aquarium-join")
            try FileManager.default.createDirectory(atPath: root + "/etc/ceph", withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: layout.nodeKeyring("node-02"), contents: Data("[client.aquarium-node.node-02]\n".utf8)))
            #expect(layout.nodeKeyring("node-02") == root + "/etc/ceph/ceph.client.aquarium-node.node-02.keyring")
            #expect(identity.client(in: layout) == "client.aquarium-node.node-02")
        }
        #expect(JoinTarget(address: IPAddress("fd00::11")!, port: 3300).monHost == "[v2:[fd00::11]:3300]")
        var bootstrap = identity
        bootstrap.join = nil
        #expect(bootstrap.client(in: Layout(root: "/tmp/b")) == "client.admin")
        #expect(CephConfig.render(bootstrap, layout: Layout(root: "/tmp/b"), rgwPort: nil).contains("\tmon_initial_members = node-02\n"))
    }

    /// The managers' modules: `restful` is never turned on (it cannot load beside the dashboard on Debian 12), and the
    /// dashboard is not even loaded unless the seed asks for it.
    @Test(arguments: [(false, "diskprediction_local dashboard"), (true, "diskprediction_local")])
    func managerModules(dashboard: Bool, disabled: String) throws {
        let identity = ClusterIdentity(fsid: Self.fsid, name: "ceph", daemonId: "node-01", address: IPAddress("127.0.0.1")!,
                                       basePort: 42000, publicNetwork: "127.0.0.0/8", clusterNetwork: "127.0.0.0/8",
                                       launcher: .process)
        let text = CephConfig.render(identity, layout: Layout(root: "/tmp/b"), rgwPort: nil, dashboard: dashboard)
        let mon = try #require(text.components(separatedBy: "\n[mon]\n").last?.components(separatedBy: "\n[").first)
        let mgr = try #require(text.components(separatedBy: "\n[mgr]\n").last?.components(separatedBy: "\n[").first)
        #expect(mon.contains("\tmgr_initial_modules = iostat nfs\n"), "\(mon)")
        #expect(mgr.contains("\tmgr_disabled_modules = \(disabled)\n"), "\(mgr)")
    }

    /// `ceph mgr dump`: the modules the active manager and each standby loaded.
    @Test func managerDump() throws {
        let json = """
            {"active_name": "node-01", "available_modules": [{"name": "dashboard", "can_run": true}, {"name": "iostat"}],
             "standbys": [{"gid": 4, "name": "node-02", "available_modules": [{"name": "iostat"}]}]}
            """
        let dump = try JSONDecoder().decode(CephJSON.MgrDump.self, from: Data(json.utf8))
        #expect(dump.modules(of: "node-01") == ["dashboard", "iostat"])
        #expect(dump.modules(of: "node-02") == ["iostat"])
        #expect(dump.modules(of: "node-03") == nil)
    }

    @Test func joinedNodeToolsActAsTheJoinEntity() {
        let tools = CephTools(layout: Layout(root: "/tmp/b"), logger: .init(label: "test"), client: JoinToken.entity)
        #expect(tools.command("ceph", ["fsid"]).arguments.suffix(3) == ["--name", "client.aquarium-join", "fsid"])
        // The daemons' own tools keep their own names.
        #expect(!tools.command("ceph-osd", ["-i", "1"]).arguments.contains("--name"))
        let admin = CephTools(layout: Layout(root: "/tmp/b"), logger: .init(label: "test"), client: "client.admin")
        #expect(!admin.command("ceph", ["fsid"]).arguments.contains("--name"))
    }

    @Test func redactorKnowsTheJoinToken() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("aquarium-token-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = Layout(root: root)
        try FileManager.default.createDirectory(atPath: layout.aquariumState, withIntermediateDirectories: true)
        try "\(Self.fsid).\(Self.key)\n".write(toFile: layout.joinTokenFile, atomically: true, encoding: .utf8)
        let redactor = Redactor.collect(layout: layout, seed: nil)
        let clean = redactor.redact("token \(Self.fsid).\(Self.key) and key \(Self.key)")
        #expect(!clean.contains(Self.key) && redactor.leaks(in: clean).isEmpty)
    }
}
