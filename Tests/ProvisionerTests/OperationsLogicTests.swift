import Foundation
import TestSupport
import Testing
@testable import Provisioner

/// The pure decisions behind the day-two operations.
struct OperationsLogicTests {
    struct QuorumCase: Sendable, CustomStringConvertible {
        var monitors: [String]
        var quorum: Set<String>
        var host: String
        var removing: Bool
        var refused: Bool
        var description: String { "\(monitors) quorum \(quorum.sorted()) without \(host)\(removing ? " (removed)" : "")" }
    }

    static let quorumCases: [QuorumCase] = [
        // Three monitors, all up: one may stop or go.
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a", "b", "c"], host: "c", removing: false, refused: false),
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a", "b", "c"], host: "c", removing: true, refused: false),
        // One already down: a second may not stop, nor be removed (2 of the monmap's 2 would have to be up).
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a", "b"], host: "b", removing: false, refused: true),
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a", "b"], host: "b", removing: true, refused: true),
        // Removing the one that is down leaves two of two.
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a", "b"], host: "c", removing: true, refused: false),
        // Five monitors, one down: a second may stop.
        QuorumCase(monitors: ["a", "b", "c", "d", "e"], quorum: ["a", "b", "c", "d"], host: "d", removing: false, refused: false),
        // The only monitor.
        QuorumCase(monitors: ["a"], quorum: ["a"], host: "a", removing: false, refused: true),
        QuorumCase(monitors: ["a"], quorum: ["a"], host: "a", removing: true, refused: true),
        // A host without a monitor never matters to the quorum.
        QuorumCase(monitors: ["a", "b", "c"], quorum: ["a"], host: "storage-1", removing: true, refused: false),
    ]

    @Test(arguments: quorumCases) func quorum(_ item: QuorumCase) {
        let problem = Operations.quorumProblem(monitors: item.monitors, quorum: item.quorum, without: item.host, removing: item.removing)
        #expect((problem != nil) == item.refused, "\(problem ?? "allowed")")
        if let problem { #expect(problem.contains("mon.\(item.host)")) }
    }

    @Test func mixedReleases() {
        let same = [NodeVersion(host: "n1", release: "v1", tools: "t", time: "x"), NodeVersion(host: "n2", release: "v1", tools: "t", time: "x")]
        #expect(NodeVersion.mixedWarning(same) == nil)
        let mixed = same + [NodeVersion(host: "n3", release: "v2", tools: "t", time: "x"), NodeVersion(host: "n4", release: nil, tools: "t", time: "x")]
        let warning = NodeVersion.mixedWarning(mixed)
        #expect(warning?.contains("v1 on n1, n2") == true && warning?.contains("v2 on n3") == true
                && warning?.contains("unknown on n4") == true, "\(warning ?? "-")")
    }

    @Test func imageReleaseFile() throws {
        try withTemporaryDirectory { root in
            let layout = Layout(root: root)
            #expect(NodeVersion.imageRelease(layout: layout) == nil)
            try FileManager.default.createDirectory(atPath: root + "/etc/aquarium", withIntermediateDirectories: true)
            try "NAME=aquarium\nRELEASE=\"2026.11.2\"\nPROFILE=full\n".write(toFile: root + "/etc/aquarium/image-release", atomically: true, encoding: .utf8)
            #expect(NodeVersion.imageRelease(layout: layout) == "2026.11.2")
        }
    }

    /// What a node stopped for maintenance survives a restart of the tool, and `run` reads the reason from it.
    @Test func localMaintenanceFile() throws {
        try withTemporaryDirectory { root in
            let layout = Layout(root: root)
            #expect(LocalMaintenance.load(layout) == nil)
            let local = LocalMaintenance(flag: MaintenanceFlag(host: "node-3", reason: "reboot", since: "2026-11-28T20:00:00Z", by: "node-3"),
                                         stopped: [.init(name: "osd.1", argv: ["ceph-osd", "-i", "1"], unit: nil)])
            try FileManager.default.createDirectory(atPath: root + "/var/lib/aquarium", withIntermediateDirectories: true)
            try local.save(layout)
            #expect(LocalMaintenance.load(layout) == local)
        }
    }
}
