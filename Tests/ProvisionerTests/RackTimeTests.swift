import Foundation
import Seed
import TestSupport
import Testing
@testable import Provisioner

/// Time among a rack's nodes: chrony's files for each role, with and without NTP servers in the seed.
@Suite struct RackTimeTests {
    static let key = "AQBkwUhpAAAAABAAwXfEHjy1Ra3cC6wnb86E2Q=="

    static func seed(role: String, hostname: String, ntp: String = "") throws -> Seed {
        let keys = role == "monitor" ? "    monitor_key: \(key)\n    admin_key: \(key)\n" : ""
        return try SeedLoader.parse("""
            version: 1
            host:
              hostname: \(hostname)
            \(ntp)
            network:
              public_network: 10.77.0.0/24
            cluster:
              role: \(role)
              rack:
                fsid: 2f6b8a52-7d0c-4c1e-9d2a-4f3e2b1a0c9d
                join_key: \(key)
                monitors:
                  - {host: node-1, address: 10.77.0.1}
                  - {host: node-2, address: 10.77.0.2}
                  - {host: node-3, address: 10.77.0.3}
            \(keys)
            """, file: "rack-seed.yaml")
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var role: String
        var hostname: String
        var ntp: String
        /// Lines the sources file must hold, and must not.
        var sources: [String]
        var notSources: [String]
        /// Whether this node serves time (conf.d/aquarium-rack.conf).
        var serves: Bool
        var testDescription: String { "\(role) \(hostname)\(ntp.isEmpty ? "" : " with NTP")" }
    }

    static let cases: [Case] = [
        Case(role: "monitor", hostname: "node-1", ntp: "",
             sources: ["server 10.77.0.2 iburst", "server 10.77.0.3 iburst"], notSources: ["10.77.0.1"], serves: true),
        Case(role: "monitor", hostname: "node-3", ntp: "",
             sources: ["server 10.77.0.1 iburst", "server 10.77.0.2 iburst"], notSources: ["10.77.0.3"], serves: true),
        Case(role: "storage", hostname: "node-4", ntp: "",
             sources: ["server 10.77.0.1 iburst", "server 10.77.0.2 iburst", "server 10.77.0.3 iburst"], notSources: [],
             serves: false),
        Case(role: "monitor", hostname: "node-1", ntp: "  ntp_servers: [10.9.0.1]",
             sources: ["server 10.9.0.1 iburst"], notSources: ["10.77.0."], serves: false),
        Case(role: "storage", hostname: "node-4", ntp: "  ntp_servers: [10.9.0.1]",
             sources: ["server 10.9.0.1 iburst"], notSources: ["10.77.0."], serves: false),
    ]

    @Test(arguments: cases) func chronyFiles(_ test: Case) throws {
        let seed = try Self.seed(role: test.role, hostname: test.hostname, ntp: test.ntp)
        try withTemporaryDirectory { root in
            let configurator = HostConfigurator(layout: Layout(root: root), seed: seed)
            let changed = try configurator.apply()
            let sources = (try? String(contentsOfFile: root + HostConfigurator.chronySources, encoding: .utf8)) ?? ""
            for line in test.sources { #expect(sources.contains(line), "\(sources)") }
            for text in test.notSources { #expect(!sources.contains(text), "\(sources)") }
            let serve = try? String(contentsOfFile: root + HostConfigurator.chronyServe, encoding: .utf8)
            #expect((serve != nil) == test.serves)
            if test.serves {
                #expect(serve?.contains("local stratum 10 orphan") == true && serve?.contains("allow 10.77.0.0/24") == true)
            }
            #expect(changed.contains(HostConfigurator.chronySources))
            // Rerun: nothing changes.
            #expect(try configurator.apply().isEmpty)
        }
    }

    /// A seed that gains NTP servers later drops the rack's own serving.
    @Test func ntpServersReplaceTheRacksOwnTime() throws {
        try withTemporaryDirectory { root in
            let before = try Self.seed(role: "monitor", hostname: "node-2")
            _ = try HostConfigurator(layout: Layout(root: root), seed: before).apply()
            #expect(FileManager.default.fileExists(atPath: root + HostConfigurator.chronyServe))
            let after = try Self.seed(role: "monitor", hostname: "node-2", ntp: "  ntp_servers: [10.9.0.1]")
            let changed = try HostConfigurator(layout: Layout(root: root), seed: after).apply()
            #expect(changed.contains(HostConfigurator.chronyServe))
            #expect(!FileManager.default.fileExists(atPath: root + HostConfigurator.chronyServe))
        }
    }
}
