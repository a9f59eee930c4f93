import Foundation
@testable import Seed
import Testing
import TestSupport

/// Fixtures and helpers shared by the seed tests.
enum Fixture {
    /// The repository root, found from this file's path.
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func read(_ relativePath: String) throws -> String {
        try String(contentsOfFile: root + "/" + relativePath, encoding: .utf8)
    }

    static let ed25519Key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGenwXGA3s6HM8JH8uclKkrr79Fw2j//7pSK8MLHsMNc admin@example"
    static let ed25519Blob = "AAAAC3NzaC1lZDI1NTE5AAAAIGenwXGA3s6HM8JH8uclKkrr79Fw2j//7pSK8MLHsMNc"
    static let ecdsaKey = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBMX+vTr7RQ+/ot4Gpor3gh55aKCpIItHC8Uolo4EVGrRurg4PntDc5AyUirH+BchpAbnbUmBOXqrw9ISdvmNxKeesarzggJy4IaX5fLcLxNBDxHxym4VnqhPZ/KHGojZSQ== ec@example"
    static let rsaKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCtvudsqk0f9FJV8/CBL9HrbZX021iQqJcyFXJPBsw9XZBc0LyZZOT3GxbZ188MguLB/j3TYWEJpsGOjowZp11hQksz2R3UgKKcTXhva+QSdfK/LQJSd9Zkk4Qvqq1h02Y0QBfYeQuTKnmygcp7HtDGjike1dGNUsG5Xb19e0Yb9HAs4QUhdKHcErZ9UynxMqWgo/X8WCiQeM0ayTXo4qhjLQcL+E/uaDtjZ4YRx7XeWy3sknS4YHKAQEYpOJSHbeL4SbMZby9BGyGRvrOiucEYQRPyU1gOOiPxDf4nU1j54sJd22o4MTY/QX8P4QSMc32/QE131pP4cCzh94fkz5aV rsa@example"
    static let yescryptHash = "$y$j9T$UL.EaGvb/p0bpbwqqi0HE/$N9Rmp2Aq/q2BDjA/OKZMz1cewYSJ7SeQd0wktO0oIF7"
    static let sha512Hash = "$6$bstpHYhiT3UExcEw$FawI9E4G8Mgn2YLrkhyfxLy0mO.UDbUy8wK.GT3TvepcNaDyTHGz/5rD9JBwL5IMTm65UY/HTF2BQt.v0.8n30"
    static let sha512RoundsHash = "$6$rounds=10000$abcdefgh$z7YPcB3lZXVXBzOqdduX1T.vo.4M5LJS9YuL2AtCKjJIvCax/rp7MH.gMiBmJDSQnLSO2mWSly7jkHvzWlCmA1"

    /// The smallest valid seed; its lines are: 1 version, 2 host, 3 hostname, 4 cluster, 5 role.
    static let minimal = """
        version: 1
        host:
          hostname: node-01
        cluster:
          role: bootstrap

        """

    /// `minimal` followed by `extra` (which starts at line 6).
    static func minimal(plus extra: String) -> String { minimal + extra }

    /// A seed whose `cluster:` section is `cluster` (starting at line 4).
    static func withCluster(_ cluster: String) -> String {
        "version: 1\nhost:\n  hostname: node-01\n" + cluster
    }

    /// Three cephx keys (type 1, created 2026-01-01, 16-byte secrets 00..0f, 10..1f, 20..2f).
    static let cephxKeys = ["AQAAuVVpAAAAABAAAAECAwQFBgcICQoLDA0ODw==", "AQAAuVVpAAAAABAAEBESExQVFhcYGRobHB0eHw==",
                            "AQAAuVVpAAAAABAAICEiIyQlJicoKSorLC0uLw=="]

    /// A rack monitor node's seed, as `rack seeds` writes it; its lines are: 1 version, 2 host, 3 hostname, 4 network,
    /// 5 public_network, 6 cluster, 7 role, 8 rack, 9 fsid, 10 monitors, 11 join_key, 12 monitor_key, 13 admin_key.
    static let rackMonitor = """
        version: 1
        host:
          hostname: node1
        network:
          public_network: 10.77.0.0/24
        cluster:
          role: monitor
          rack:
            fsid: c1548103-2615-4764-ae5d-1ab67261fb22
            monitors: [{host: node1, address: 10.77.0.1}, {host: node2, address: 10.77.0.2}, {host: node3, address: 10.77.0.3}]
            join_key: "\(cephxKeys[0])"
            monitor_key: "\(cephxKeys[1])"
            admin_key: "\(cephxKeys[2])"

        """

    /// A rack storage node's seed: `rackMonitor` for node4 with role storage and only the join key (lines 1-11).
    static let rackStorage = rackMonitor.replacingOccurrences(of: "hostname: node1", with: "hostname: node4")
        .replacingOccurrences(of: "role: monitor", with: "role: storage")
        .replacingOccurrences(of: "    monitor_key: \"\(cephxKeys[1])\"\n    admin_key: \"\(cephxKeys[2])\"\n", with: "")

    /// A seed whose host section body is `body` (lines from 3 on), then the cluster.
    static func withHost(_ body: String) -> String {
        "version: 1\nhost:\n" + body + "cluster:\n  role: bootstrap\n"
    }
}

/// Parses and returns the issues, or records a failure when the text is accepted.
func issues(of text: String, file: String = "seed.yaml") -> [SeedIssue] {
    do {
        _ = try SeedLoader.parse(text, file: file)
        return []
    } catch {
        return error.issues
    }
}
