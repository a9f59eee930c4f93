import Foundation
import Seed
import TestSupport
import Testing
@testable import Provisioner

/// What the `iscsi` step hands ceph-iscsi: sizes it accepts, credentials within its rules, its configuration file. The
/// gateway itself (LIO, tcmu-runner, rbd-target-api) runs in the QEMU node of EndToEndTests: this machine's kernel has
/// no LIO.
@Suite struct ISCSILogicTests {
    /// ceph-iscsi's `valid_size` takes whole M, G or T only: bytes are rounded up to the next MiB.
    @Test("sizes become whole MiB, rounded up", arguments: [
        (UInt64(1 << 20), "1M", UInt64(1 << 20)),
        (UInt64(64 << 20), "64M", UInt64(64 << 20)),
        (UInt64((64 << 20) + 1), "65M", UInt64(65 << 20)),
        (UInt64(100 << 30), "102400M", UInt64(100 << 30)),
        (UInt64(1_500_000_000_000), "1430512M", UInt64(1430512) << 20),
    ])
    func sizes(bytes: UInt64, text: String, rounded: UInt64) {
        #expect(ISCSIAPI.size(bytes) == text)
        #expect(ISCSIAPI.roundedUp(bytes) == rounded)
    }

    /// The rules of ceph-iscsi's `valid_credentials` (gwcli/utils.py): user `^[\w.:@_-]{8,64}$`, password
    /// `^[\w@_/-]{12,16}$`; ours are letters and digits only, never ambiguous ones (0/O, 1/l/I).
    @Test("generated CHAP credentials pass ceph-iscsi's rules and differ every time")
    func credentials() throws {
        let user = try Regex("^[A-Za-z0-9.:@_-]{8,64}$"), password = try Regex("^[A-Za-z0-9@_/-]{12,16}$")
        var seen: Set<String> = []
        for _ in 0..<200 {
            let secret = Provisioner.iscsiSecret(length: 16)
            #expect(secret.wholeMatch(of: password) != nil, "\(secret)")
            #expect(!secret.contains(where: { "0O1lI".contains($0) }), "\(secret)")
            #expect(("aquarium-" + Provisioner.iscsiSecret(length: 8).lowercased()).wholeMatch(of: user) != nil)
            seen.insert(secret)
        }
        #expect(seen.count == 200)
    }

    @Test("iscsi-gateway.cfg: our API user and password, local and node addresses trusted, one gateway, no exporter")
    func gatewayConfig() {
        let credentials = ISCSICredentials(target: Seed.ISCSI.defaultTarget, portals: ["10.0.0.11:3260"], username: "aquarium-abcdefgh",
                                           password: "Chap1234567890ab", apiPassword: "Api123456789012345678901")
        let text = ISCSIGatewayConfig.render(cluster: "ceph", pool: "fast", credentials: credentials,
                                             trusted: ["127.0.0.1", "::1", "10.0.0.11"])
        let lines = Set(text.split(separator: "\n").map(String.init))
        for line in ["[config]", "cluster_name = ceph", "pool = fast", "gateway_keyring = ceph.client.admin.keyring",
                     "api_secure = false", "api_port = 5000", "api_user = aquarium", "api_password = Api123456789012345678901",
                     "trusted_ip_list = 127.0.0.1,::1,10.0.0.11", "minimum_gateways = 1", "prometheus_exporter = false"] {
            #expect(lines.contains(line), "missing: \(line)\n\(text)")
        }
        #expect(!text.contains(credentials.password), "the CHAP password does not belong in the gateway's configuration")
    }

    /// Several gateways (a rack): each trusts every gateway's address (they call each other's API); portals are
    /// `ADDRESS:3260`, an IPv6 address in brackets.
    @Test("trusted addresses and portals of one or several gateways", arguments: [
        ("10.0.0.11", ["10.0.0.11"], ["127.0.0.1", "::1", "10.0.0.11"], ["10.0.0.11:3260"]),
        ("10.77.0.2", ["10.77.0.1", "10.77.0.2", "10.77.0.3"], ["127.0.0.1", "::1", "10.77.0.2", "10.77.0.1", "10.77.0.3"],
         ["10.77.0.1:3260", "10.77.0.2:3260", "10.77.0.3:3260"]),
        ("fd77::1", ["fd77::1", "fd77::2"], ["127.0.0.1", "::1", "fd77::1", "fd77::2"], ["[fd77::1]:3260", "[fd77::2]:3260"]),
    ])
    func gateways(own: String, gateways: [String], trusted: [String], portals: [String]) {
        #expect(ISCSIGatewayConfig.trusted(own: own, gateways: gateways) == trusted)
        #expect(gateways.map(Provisioner.iscsiPortal) == portals)
    }

    /// `node remove HOST` finds HOST's gateway by the name rbd-target-api gave it: the host name, maybe qualified.
    @Test("a removed host's gateway name", arguments: [
        ("rack-node-1", "rack-node-1", true),
        ("rack-node-1.example.net", "rack-node-1", true),
        ("rack-node-10", "rack-node-1", false),
        ("rack-node-1x.example.net", "rack-node-1", false),
        ("rack-node-2", "rack-node-1", false),
        ("node", "rack-node-1", false),
    ])
    func gatewayName(name: String, host: String, matches: Bool) {
        #expect(Operations.isGatewayName(name, of: host) == matches)
    }

    /// `iscsi-credentials` shows the target's gateways as rbd-target-api has them now: a gateway `node remove` took
    /// out is gone, one added since is there, the file's order is kept.
    @Test("the portals shown are the target's gateways now", arguments: [
        (["10.77.0.1:3260", "10.77.0.2:3260", "10.77.0.3:3260"], ["10.77.0.3", "10.77.0.2"], ["10.77.0.2:3260", "10.77.0.3:3260"]),
        (["10.77.0.2:3260"], ["10.77.0.4", "10.77.0.2", "10.77.0.3"], ["10.77.0.2:3260", "10.77.0.3:3260", "10.77.0.4:3260"]),
        (["10.0.0.11:3260"], ["10.0.0.11"], ["10.0.0.11:3260"]),
        (["[fd77::1]:3260", "[fd77::2]:3260"], ["fd77::2"], ["[fd77::2]:3260"]),
        (["10.0.0.11:3260"], [], []),
    ])
    func livePortals(stored: [String], live: [String], shown: [String]) {
        #expect(ISCSICredentialsCommand.portals(stored: stored, live: live) == shown)
    }

    @Test("rbd-target-api's error messages are shown, or the start of the body")
    func apiMessages() {
        #expect(ISCSIAPI.message(#"{"message":"Gateway already exists in configuration"}"#) == "Gateway already exists in configuration")
        #expect(ISCSIAPI.message("<html>Internal Server Error</html>\n") == "<html>Internal Server Error</html>")
        #expect(ISCSIAPI.message(String(repeating: "x", count: 1000)).count == 300)
    }

    /// `iscsi-credentials` prints what initiators need, never rbd-target-api's password; without the file it says what
    /// to add to the seed.
    @Test("iscsi-credentials prints the target, portal and CHAP credentials, or what is missing")
    func credentialsCommand() throws {
        try withTemporaryDirectory { root in
            let missing = try Products.run("aquarium-provision", ["iscsi-credentials", "--root", root])
            #expect(missing.status == 2, "\(missing.status) \(missing.errorOutput)")
            #expect(missing.errorOutput.contains("/var/lib/aquarium/iscsi.json is missing: iSCSI is not set up on this node (add "
                                                 + "cluster.services.iscsi to the seed"), "\(missing.errorOutput)")
            let layout = Layout(root: root)
            try FileManager.default.createDirectory(atPath: layout.aquariumState, withIntermediateDirectories: true)
            let credentials = ISCSICredentials(target: Seed.ISCSI.defaultTarget, portals: ["10.0.0.11:3260"], username: "aquarium-abcdefgh",
                                               password: "Chap1234567890ab", apiPassword: "Api123456789012345678901")
            try JSONEncoder().encode(credentials).write(to: URL(fileURLWithPath: layout.iscsiCredentialsFile))
            let text = try Products.run("aquarium-provision", ["iscsi-credentials", "--root", root])
            #expect(text.status == 0, "\(text.errorOutput)")
            // No rbd-target-api on this machine: the file's portals, and the command says so.
            #expect(text.errorOutput.contains("rbd-target-api on this node does not answer: the portals are those of the last run"),
                    "\(text.errorOutput)")
            #expect(text.output == "target:   iqn.2026-01.local.aquarium:storage\nportals:  10.0.0.11:3260\n"
                    + "user:     aquarium-abcdefgh\npassword: Chap1234567890ab\n", "\(text.output)")
            let json = try Products.run("aquarium-provision", ["iscsi-credentials", "--root", root, "--json"])
            let shown = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
            #expect(shown["username"] as? String == "aquarium-abcdefgh" && shown["password"] as? String == "Chap1234567890ab")
            #expect(shown["portals"] as? [String] == ["10.0.0.11:3260"])
            #expect(!json.output.contains(credentials.apiPassword) && !text.output.contains(credentials.apiPassword))
            // Per-initiator ACLs and mutual CHAP: each initiator's credentials, the target's own, no target-wide ones.
            var acl = credentials
            acl.clients = [ISCSIClientCredentials(iqn: "iqn.1994-05.com.example:db1", username: "aquarium-db1aaaaa",
                                                  password: "Db1pass1234567")]
            acl.mutualUsername = "aquarium-target-abcdefgh"
            acl.mutualPassword = "Mutual12345678"
            try JSONEncoder().encode(acl).write(to: URL(fileURLWithPath: layout.iscsiCredentialsFile))
            let aclText = try Products.run("aquarium-provision", ["iscsi-credentials", "--root", root])
            #expect(aclText.output == "target:   iqn.2026-01.local.aquarium:storage\nportals:  10.0.0.11:3260\n"
                    + "initiator iqn.1994-05.com.example:db1:\n  user:     aquarium-db1aaaaa\n  password: Db1pass1234567\n"
                    + "mutual CHAP (the target's own, for initiators to check):\n  user:     aquarium-target-abcdefgh\n"
                    + "  password: Mutual12345678\n", "\(aclText.output)")
            let aclJSON = try Products.run("aquarium-provision", ["iscsi-credentials", "--root", root, "--json"])
            let aclShown = try #require(try JSONSerialization.jsonObject(with: Data(aclJSON.output.utf8)) as? [String: Any])
            #expect(aclShown["username"] == nil && aclShown["password"] == nil, "\(aclJSON.output)")
            #expect(aclShown["mutualPassword"] as? String == "Mutual12345678")
            #expect((aclShown["clients"] as? [[String: Any]])?.first?["password"] as? String == "Db1pass1234567")
            try "{}".write(toFile: layout.iscsiCredentialsFile, atomically: true, encoding: .utf8)
            let broken = try Products.run("aquarium-provision", ["iscsi-credentials", "--root", root])
            #expect(broken.status == 1 && broken.errorOutput.contains("is not the file the Provisioner writes for iSCSI"),
                    "\(broken.status) \(broken.errorOutput)")
        }
    }
}

/// The support bundle's redactor knows every iSCSI secret on the node.
@Suite struct ISCSIBundleTests {
    @Test("the target's, each initiator's and the mutual CHAP passwords and the API password are redacted")
    func bundleRedactsEveryISCSISecret() throws {
        try withTemporaryDirectory { root in
            let layout = Layout(root: root)
            try FileManager.default.createDirectory(atPath: layout.aquariumState, withIntermediateDirectories: true)
            let credentials = ISCSICredentials(
                target: Seed.ISCSI.defaultTarget, portals: ["10.0.0.11:3260"], username: "aquarium-abcdefgh",
                password: "Chap1234567890ab", apiPassword: "Api123456789012345678901", mutualUsername: "aquarium-target-abcdefgh",
                mutualPassword: "Mutual12345678",
                clients: [ISCSIClientCredentials(iqn: "iqn.1994-05.com.example:db1", username: "aquarium-db1aaaaa", password: "Db1pass1234567")])
            try JSONEncoder().encode(credentials).write(to: URL(fileURLWithPath: layout.iscsiCredentialsFile))
            let redactor = Redactor.collect(layout: layout, seed: nil)
            let text = "log: Chap1234567890ab Api123456789012345678901 Mutual12345678 Db1pass1234567 iqn.1994-05.com.example:db1"
            let redacted = redactor.redact(text)
            for secret in ["Chap1234567890ab", "Api123456789012345678901", "Mutual12345678", "Db1pass1234567"] {
                #expect(!redacted.contains(secret), "\(redacted)")
            }
            #expect(redacted.contains("iqn.1994-05.com.example:db1"), "an initiator's name is no secret: \(redacted)")
        }
    }
}

/// What the seed and the node's credentials ask of the target: mutual CHAP only where the seed says so.
@Suite struct ISCSIWantedTests {
    @Test("the seed's clients with their own credentials, mutual CHAP per initiator, disks in the seed's order")
    func wanted() {
        let credentials = ISCSICredentials(
            target: Seed.ISCSI.defaultTarget, portals: ["10.0.0.11:3260"], username: "aquarium-abcdefgh", password: "Chap1234567890ab",
            apiPassword: "Api123456789012345678901", mutualUsername: "aquarium-target-abcdefgh", mutualPassword: "Mutual12345678",
            clients: [ISCSIClientCredentials(iqn: "iqn.1994-05.com.example:db1", username: "aquarium-db1aaaaa", password: "Db1pass1234567"),
                      ISCSIClientCredentials(iqn: "iqn.1994-05.com.example:gone", username: "aquarium-goneaaaa", password: "Gonepass123456")])
        let disks = [Seed.ISCSIDisk(name: "vol1", size: 1 << 30), Seed.ISCSIDisk(name: "vol2", pool: "fast", size: 1 << 30)]
        let service = Seed.ISCSI(disks: disks, mutualChap: false, clients: [
            Seed.ISCSIClient(iqn: "iqn.1994-05.com.example:db1", disks: ["fast/vol2"], mutualChap: true)])
        let wanted = Provisioner.iscsiWanted(service, credentials: credentials)
        #expect(wanted.images == ["rbd/vol1", "fast/vol2"])
        #expect(wanted.auth == ISCSIAccess.Auth(username: "aquarium-abcdefgh", password: "Chap1234567890ab"))
        #expect(wanted.clients.map(\.iqn) == ["iqn.1994-05.com.example:db1"])
        #expect(wanted.clients.first?.auth == ISCSIAccess.Auth(username: "aquarium-db1aaaaa", password: "Db1pass1234567",
                                                               mutualUsername: "aquarium-target-abcdefgh", mutualPassword: "Mutual12345678"))
        #expect(wanted.clients.first?.images == ["fast/vol2"])
        var targetWide = service
        targetWide.clients = []
        targetWide.mutualChap = true
        #expect(Provisioner.iscsiWanted(targetWide, credentials: credentials).auth
                == ISCSIAccess.Auth(username: "aquarium-abcdefgh", password: "Chap1234567890ab",
                                    mutualUsername: "aquarium-target-abcdefgh", mutualPassword: "Mutual12345678"))
    }
}

/// The access plan (`ISCSIAccess.plan`): the requests to rbd-target-api from the target's configuration to the seed's,
/// and the claim behind their order: a run killed between any two of them never leaves a LUN that an initiator
/// reaches without CHAP (checked on a model of LIO's rules after every prefix of every plan).
@Suite struct ISCSIAccessTests {
    typealias Auth = ISCSIAccess.Auth
    typealias Current = ISCSIAccess.Current
    typealias Action = ISCSIAccess.Action

    static let target = Auth(username: "aquarium-target1", password: "Targetpass1234")
    static let mutual = Auth(username: "aquarium-target1", password: "Targetpass1234", mutualUsername: "aquarium-target-m1",
                             mutualPassword: "Mutualpass1234")
    static let host1 = Auth(username: "aquarium-host1aa", password: "Host1pass12345")
    static let host2 = Auth(username: "aquarium-host2aa", password: "Host2pass12345")
    static let h1 = "iqn.1994-05.com.example:host1", h2 = "iqn.1994-05.com.example:host2"
    static let disks = ["rbd/vol1", "rbd/vol2"]

    static let fresh = Current(aclEnabled: true, auth: .none, luns: [:], clients: [:])
    static let targetWide = Current(aclEnabled: false, auth: target, luns: ["rbd/vol1": 0, "rbd/vol2": 1], clients: [:])
    static let withACLs = Current(aclEnabled: true, auth: .none, luns: ["rbd/vol1": 0, "rbd/vol2": 1],
                                  clients: [h1: .init(auth: host1, images: ["rbd/vol1", "rbd/vol2"]),
                                            h2: .init(auth: host2, images: ["rbd/vol2"])])

    static func wanted(_ auth: Auth = target, images: [String] = disks,
                       clients: [(iqn: String, auth: Auth, images: [String])] = []) -> ISCSIAccess.Wanted {
        ISCSIAccess.Wanted(images: images, auth: auth, clients: clients)
    }

    static let cases: [(String, Current, ISCSIAccess.Wanted, [Action])] = [
        ("a new target, one set of credentials: ACLs off and CHAP on before any LUN", fresh, wanted(),
         [.disableACL, .setTargetAuth(target), .mapTargetLUN(image: "rbd/vol1", lun: nil), .mapTargetLUN(image: "rbd/vol2", lun: nil)]),
        ("as in the seed: nothing", targetWide, wanted(), []),
        ("mutual CHAP turned on: one request", targetWide, wanted(mutual), [.setTargetAuth(mutual)]),
        ("a disk added", targetWide, wanted(images: disks + ["fast/vol3"]), [.mapTargetLUN(image: "fast/vol3", lun: nil)]),
        ("a disk taken out of the seed stays mapped", targetWide, wanted(images: ["rbd/vol1"]), []),
        ("a new target with ACLs: each initiator's CHAP before its LUNs", fresh,
         wanted(clients: [(h1, host1, ["rbd/vol1"])]),
         [.createClient(iqn: h1), .setClientAuth(iqn: h1, host1), .mapTargetLUN(image: "rbd/vol1", lun: nil),
          .mapTargetLUN(image: "rbd/vol2", lun: nil), .mapClientLUN(iqn: h1, image: "rbd/vol1")]),
        ("one set of credentials to ACLs: the LUNs out first, back with their numbers", targetWide,
         wanted(clients: [(h1, host1, disks)]),
         [.unmapTargetLUN(image: "rbd/vol1"), .unmapTargetLUN(image: "rbd/vol2"), .setTargetAuth(.none), .enableACL,
          .createClient(iqn: h1), .setClientAuth(iqn: h1, host1), .mapTargetLUN(image: "rbd/vol1", lun: 0),
          .mapTargetLUN(image: "rbd/vol2", lun: 1), .mapClientLUN(iqn: h1, image: "rbd/vol1"), .mapClientLUN(iqn: h1, image: "rbd/vol2")]),
        ("ACLs as in the seed: nothing", withACLs, wanted(clients: [(h1, host1, disks), (h2, host2, ["rbd/vol2"])]), []),
        ("an initiator out of the seed and a disk taken from another", withACLs, wanted(clients: [(h1, host1, ["rbd/vol2"])]),
         [.deleteClient(iqn: h2), .unmapClientLUN(iqn: h1, image: "rbd/vol1")]),
        ("a disk out of the seed stays with the initiators that had it", withACLs,
         wanted(images: ["rbd/vol2"], clients: [(h1, host1, ["rbd/vol2"]), (h2, host2, ["rbd/vol2"])]), []),
        ("mutual CHAP for one initiator: one request", withACLs,
         wanted(clients: [(h1, Auth(username: host1.username, password: host1.password, mutualUsername: "aquarium-target-m1",
                                    mutualPassword: "Mutualpass1234"), disks), (h2, host2, ["rbd/vol2"])]),
         [.setClientAuth(iqn: h1, Auth(username: host1.username, password: host1.password, mutualUsername: "aquarium-target-m1",
                                       mutualPassword: "Mutualpass1234"))]),
        ("ACLs back to one set of credentials: the initiators and LUNs out first", withACLs, wanted(),
         [.deleteClient(iqn: h1), .deleteClient(iqn: h2), .unmapTargetLUN(image: "rbd/vol1"), .unmapTargetLUN(image: "rbd/vol2"),
          .disableACL, .setTargetAuth(target), .mapTargetLUN(image: "rbd/vol1", lun: 0), .mapTargetLUN(image: "rbd/vol2", lun: 1)]),
    ]

    @Test("each change of access is the requests it needs, in a safe order", arguments: cases.indices)
    func plans(index: Int) {
        let (name, current, wanted, expected) = Self.cases[index]
        #expect(ISCSIAccess.plan(from: current, to: wanted) == expected, "\(name)")
    }

    /// LIO as ceph-iscsi drives it: ACLs off (`generate_node_acls`) lets any initiator in, with the target's CHAP when
    /// it has one; ACLs on lets in only initiators with an ACL, each with its own CHAP when it has one.
    struct Model {
        var aclEnabled: Bool
        var auth: Auth
        var luns: Set<String>
        var clients: [String: (auth: Auth, images: Set<String>)]

        init(_ current: Current) {
            aclEnabled = current.aclEnabled
            auth = current.auth
            luns = Set(current.luns.keys)
            clients = current.clients.mapValues { ($0.auth, $0.images) }
        }

        /// Applies one request; nil where ceph-iscsi refuses it (its checks in rbd-target-api).
        mutating func apply(_ action: Action) -> String? {
            switch action {
            case .unmapTargetLUN(let image):
                if clients.values.contains(where: { $0.images.contains(image) }) { return "\(image) is mapped to an initiator" }
                luns.remove(image)
            case .disableACL:
                if !clients.isEmpty { return "disable_acl with initiators" }
                aclEnabled = false
            case .enableACL:
                if auth.isSet { return "enable_acl with the target's CHAP on" }
                aclEnabled = true
            case .setTargetAuth(let new):
                if new.isSet, aclEnabled { return "target CHAP with ACLs on" }
                auth = new
            case .deleteClient(let iqn): clients[iqn] = nil
            case .createClient(let iqn):
                if auth.isSet { return "an initiator while the target's CHAP is on" }
                clients[iqn] = (.none, [])
            case .setClientAuth(let iqn, let new): clients[iqn]?.auth = new
            case .mapTargetLUN(let image, _): luns.insert(image)
            case .mapClientLUN(let iqn, let image):
                if !luns.contains(image) { return "\(image) is not a LUN of the target" }
                clients[iqn]?.images.insert(image)
            case .unmapClientLUN(let iqn, let image): clients[iqn]?.images.remove(image)
            }
            return nil
        }

        /// A LUN that some initiator reaches without a password.
        var exposed: Bool {
            aclEnabled ? clients.values.contains { !$0.auth.isSet && !$0.images.isEmpty } : !auth.isSet && !luns.isEmpty
        }
    }

    @Test("killed between any two requests, no LUN is reachable without CHAP, and ceph-iscsi accepts every request",
          arguments: cases.indices)
    func safeAtEveryPrefix(index: Int) {
        let (name, current, wanted, _) = Self.cases[index]
        var model = Model(current)
        #expect(!model.exposed, "\(name): the starting point")
        for action in ISCSIAccess.plan(from: current, to: wanted) {
            if let refusal = model.apply(action) { Issue.record("\(name): ceph-iscsi refuses \(action): \(refusal)") }
            #expect(!model.exposed, "\(name): exposed after \(action)")
        }
        // And the result is what the seed asks: the plan from there is empty.
        let reached = Current(aclEnabled: model.aclEnabled, auth: model.auth,
                              luns: Dictionary(uniqueKeysWithValues: model.luns.map { ($0, 0) }),
                              clients: model.clients.mapValues { .init(auth: $0.auth, images: $0.images) })
        #expect(ISCSIAccess.plan(from: reached, to: wanted) == [], "\(name): not converged")
    }

    @Test("what the step reports names no secret")
    func descriptionsHoldNoSecret() {
        for (_, current, wanted, _) in Self.cases {
            for action in ISCSIAccess.plan(from: current, to: wanted) {
                for secret in [Self.target.password, Self.host1.password, Self.host2.password, "Mutualpass1234"] {
                    #expect(!action.description.contains(secret), "\(action.description)")
                }
            }
        }
    }
}
