import Foundation
import Seed
import Testing
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
        ("\(fsid).AQDqMAhrepG9FRAAErvysczVyEK6242XgUrsJA==.x", "not a cephx key"),
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

    @Test(arguments: [(Self.key, true), ("AQDqMAhrepG9FRAAErvysczVyEK6242XgUrsJA=", false), ("", false),
                      ("AQAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAA==", true)])
    func cephxKeys(key: String, valid: Bool) {
        #expect(JoinToken.isCephxKey(key) == valid)
    }

    @Test func cephConfOfAJoinedNode() {
        let identity = ClusterIdentity(fsid: Self.fsid, name: "ceph", daemonId: "node-02", address: IPAddress("127.0.0.1")!,
                                       basePort: 42000, publicNetwork: "127.0.0.0/8", clusterNetwork: "127.0.0.0/8",
                                       launcher: .process, join: JoinTarget(address: IPAddress("127.0.0.1")!, port: 41000))
        let text = CephConfig.render(identity, layout: Layout(root: "/tmp/b"), rgwPort: nil)
        #expect(text.contains("\tfsid = \(Self.fsid)\n"))
        #expect(text.contains("\tmon_host = [v2:127.0.0.1:41000]\n"))
        #expect(!text.contains("mon_initial_members") && !text.contains("osd_pool_default_size"))
        #expect(text.contains("\tms_bind_port_min = 42010\n\tms_bind_port_max = 42099\n"))
        #expect(text.contains("\tcrush_location = root=default host=node-02\n"))
        #expect(identity.clientName == "client.aquarium-join")
        #expect(JoinTarget(address: IPAddress("fd00::11")!, port: 3300).monHost == "[v2:[fd00::11]:3300]")
        var bootstrap = identity
        bootstrap.join = nil
        #expect(bootstrap.clientName == "client.admin")
        #expect(CephConfig.render(bootstrap, layout: Layout(root: "/tmp/b"), rgwPort: nil).contains("\tmon_initial_members = node-02\n"))
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
