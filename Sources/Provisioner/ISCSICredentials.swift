import ArgumentParser
import CommandSupport
import Foundation
import JSONCoding

/// The target, its portals and the CHAP credentials initiators log in with; mode 0600 in
/// `/var/lib/aquarium/iscsi.json`. `apiPassword` is rbd-target-api's (also in `/etc/ceph/iscsi-gateway.cfg`).
public struct ISCSICredentials: Codable, Equatable, Sendable {
    public var target: String
    public var portals: [String]
    /// The target-wide CHAP credentials (without `clients`).
    public var username: String
    public var password: String
    public var apiPassword: String
    /// The target's own credentials, which it proves itself with to initiators (mutual CHAP); made when first needed.
    public var mutualUsername: String?
    public var mutualPassword: String?
    /// Each initiator's of `services.iscsi.clients` (per-initiator ACLs).
    public var clients: [ISCSIClientCredentials]?
}

/// One initiator's CHAP credentials.
public struct ISCSIClientCredentials: Codable, Equatable, Sendable {
    public var iqn: String
    public var username: String
    public var password: String
}

/// `aquarium-provision iscsi-credentials`: the target, its portals and the CHAP credentials initiators log in with.
public struct ISCSICredentialsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "iscsi-credentials",
        abstract: "Print the iSCSI target, its portals and the CHAP users and passwords initiators log in with (secrets).",
        discussion: """
            Made by the Provisioner on the node that runs the services (cluster.services.iscsi in the seed) and kept \
            there, mode 0600; in a rack, every monitor node is a gateway and keeps a copy (shared through the \
            monitors' config-key store). Never in the seed, reports or events. With clients in the seed (per-initiator ACLs), each \
            initiator's; with mutual_chap, also the target's own, which initiators check.

            Examples:
              aquarium-provision iscsi-credentials
              aquarium-provision iscsi-credentials --json
            """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var rootOptions: RootOptions
    @Flag(name: .long, help: "Print JSON (without rbd-target-api's password).") public var json = false

    public init() {}

    public func run() throws {
        let layout = Layout(root: rootOptions.root, cluster: rootOptions.cluster)
        var credentials = try ServiceSecrets.read(ISCSICredentials.self, at: layout.iscsiCredentialsFile,
                                                  service: "iSCSI", seedKey: "iscsi")
        // The portals the target has now (a gateway taken out by `node remove`, one added since), from this node's
        // rbd-target-api; the file's are those of the last run.
        let api = ISCSIAPI(user: ISCSIGatewayConfig.apiUser, password: credentials.apiPassword, maxTime: 10)
        if let target = (try? api.config())?.targets[credentials.target] {
            credentials.portals = Self.portals(stored: credentials.portals, live: target.portals.values.flatMap(\.addresses))
        } else {
            FileHandle.standardError.write(Data(("rbd-target-api on this node does not answer: the portals are those of "
                + "the last run of aquarium-provision\n").utf8))
        }
        if json {
            struct Login: Encodable {
                var target: String
                var portals: [String]
                var username: String?
                var password: String?
                var mutualUsername: String?
                var mutualPassword: String?
                var clients: [ISCSIClientCredentials]?
            }
            let targetWide = credentials.clients == nil
            let shown = Login(target: credentials.target, portals: credentials.portals,
                              username: targetWide ? credentials.username : nil,
                              password: targetWide ? credentials.password : nil,
                              mutualUsername: credentials.mutualUsername, mutualPassword: credentials.mutualPassword,
                              clients: credentials.clients)
            print(String(decoding: try JSONCoding.encoder().encode(shown), as: UTF8.self))
        } else {
            print(Self.text(credentials))
        }
    }

    /// The portals of the target's gateways (`live`, addresses), in the order of the file's (`stored`), then the new
    /// ones sorted.
    static func portals(stored: [String], live: [String]) -> [String] {
        let current = Set(live.map(Provisioner.iscsiPortal))
        let kept = stored.filter(current.contains)
        return kept + current.subtracting(kept).sorted()
    }

    /// The target and portals, then either the target's CHAP credentials or each initiator's (per-initiator ACLs),
    /// then the target's own for mutual CHAP.
    static func text(_ credentials: ISCSICredentials) -> String {
        var lines = ["target:   \(credentials.target)", "portals:  \(credentials.portals.joined(separator: ", "))"]
        if let clients = credentials.clients {
            for client in clients {
                lines += ["initiator \(client.iqn):", "  user:     \(client.username)", "  password: \(client.password)"]
            }
        } else {
            lines += ["user:     \(credentials.username)", "password: \(credentials.password)"]
        }
        if let user = credentials.mutualUsername, let password = credentials.mutualPassword {
            lines += ["mutual CHAP (the target's own, for initiators to check):",
                      "  user:     \(user)", "  password: \(password)"]
        }
        return lines.joined(separator: "\n")
    }
}
