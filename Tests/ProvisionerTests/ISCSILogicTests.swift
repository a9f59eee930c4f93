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
            #expect(text.output == "target:   iqn.2026-01.local.aquarium:storage\nportals:  10.0.0.11:3260\n"
                    + "user:     aquarium-abcdefgh\npassword: Chap1234567890ab\n", "\(text.output)")
            let json = try Products.run("aquarium-provision", ["iscsi-credentials", "--root", root, "--json"])
            let shown = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
            #expect(shown["username"] as? String == "aquarium-abcdefgh" && shown["password"] as? String == "Chap1234567890ab")
            #expect(shown["portals"] as? [String] == ["10.0.0.11:3260"])
            #expect(!json.output.contains(credentials.apiPassword) && !text.output.contains(credentials.apiPassword))
            try "{}".write(toFile: layout.iscsiCredentialsFile, atomically: true, encoding: .utf8)
            let broken = try Products.run("aquarium-provision", ["iscsi-credentials", "--root", root])
            #expect(broken.status == 1 && broken.errorOutput.contains("is not the file the Provisioner writes for iSCSI"),
                    "\(broken.status) \(broken.errorOutput)")
        }
    }
}
