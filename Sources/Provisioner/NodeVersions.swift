import Foundation
import JSONCoding

/// What each node runs, kept in the cluster (object `node.HOST` of the pool `.aquarium`, written at the end of every
/// run) so `status` on any node shows every node's image release and warns when they differ (an update under way,
/// or one that rolled back).
public struct NodeVersion: Codable, Equatable, Sendable {
    public var host: String
    /// `RELEASE=` of the image's `/etc/aquarium/image-release`; nil on a machine not booted from an Aquarium image.
    public var release: String?
    /// The version of the Aquarium tools that ran.
    public var tools: String
    /// When the node last reported, ISO 8601 UTC.
    public var time: String

    static func object(host: String) -> String { "node.\(host)" }

    /// The image's release on this root (`RELEASE=...` in `/etc/aquarium/image-release`).
    public static func imageRelease(layout: Layout) -> String? {
        guard let text = Files.read(layout.path("/etc/aquarium/image-release")) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("RELEASE=") {
            let value = line.dropFirst("RELEASE=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\"' "))
            return value.isEmpty ? nil : value
        }
        return nil
    }

    /// The warning `status` prints when the nodes run different releases; nil when they agree.
    public static func mixedWarning(_ nodes: [NodeVersion]) -> String? {
        let byRelease = Dictionary(grouping: nodes, by: { $0.release ?? "unknown" })
        guard byRelease.count > 1 else { return nil }
        return "the nodes run different image releases: " + byRelease.keys.sorted().map { release in
            release + " on " + byRelease[release]!.map(\.host).sorted().joined(separator: ", ")
        }.joined(separator: "; ") + " (an update under way, or one that rolled back: `aquarium-provision events`)"
    }
}

extension ClusterEventLog {
    func writeVersion(_ version: NodeVersion) throws(ProvisionError) {
        guard let data = try? JSONCoding.encoder(pretty: false).encode(version) else { return }
        try tools.run("rados", ["--rados_osd_op_timeout", "10", "-p", Self.pool, "put", NodeVersion.object(host: version.host), "-"],
                      input: data, timeout: 20)
    }

    /// Every node's last report.
    func versions() throws(ProvisionError) -> [NodeVersion] {
        let listed = try tools.run("rados", ["--rados_osd_op_timeout", "10", "-p", Self.pool, "ls"], timeout: 20)
        var versions: [NodeVersion] = []
        for object in listed.output.split(separator: "\n").map(String.init).filter({ $0.hasPrefix("node.") }).sorted() {
            let got = try tools.run("rados", ["--rados_osd_op_timeout", "10", "-p", Self.pool, "get", object, "-"], timeout: 20)
            if let version = try? JSONDecoder().decode(NodeVersion.self, from: got.standardOutput) { versions.append(version) }
        }
        return versions
    }

    /// The hosts with a maintenance request, by host: its reason.
    func maintenance() throws(ProvisionError) -> [String: String] {
        let listed = try tools.run("rados", ["--rados_osd_op_timeout", "10", "-p", Self.pool, "ls"], timeout: 20)
        var hosts: [String: String] = [:]
        for object in listed.output.split(separator: "\n").map(String.init) {
            if object.hasPrefix("maintenance.") { hosts[String(object.dropFirst("maintenance.".count))] = "maintenance" }
            if object.hasPrefix("removed.") { hosts[String(object.dropFirst("removed.".count))] = "removed" }
        }
        return hosts
    }
}
