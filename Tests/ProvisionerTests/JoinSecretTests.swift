import Exec
import Foundation
import TestSupport
import Testing
@testable import Provisioner

/// The join key's life on a real cluster (two roots on this machine, as in JoinTests): its expiry is recorded when the
/// cluster forms and carried in the token; `--revoke` and `--rotate` take effect at once; an expired token is refused by
/// the joining node itself, and once a reconcile removed the expired key the monitors refuse it too, even with the
/// expiry cut off the token. Nothing is created by a refused node. Every daemon is stopped and both loop devices
/// detached at the end.
@Suite(.serialized) struct JoinSecretTests {
    @Test(.requires(programs: JoinTests.programs)) func rotateRevokeExpire() throws {
        try withTemporaryDirectory { directory in
            try LoopDevice.withMany([JoinTests.disk, JoinTests.disk]) { loops in
                let a = try JoinTests.Node(directory: directory + "/a", hostname: "node-a", disk: loops[0])
                let b = try JoinTests.Node(directory: directory + "/b", hostname: "node-b", disk: loops[1])
                defer {
                    _ = try? b.provision(["stop", "--root", b.root])
                    _ = try? a.provision(["stop", "--root", a.root])
                }
                func joinToken(_ extra: [String] = []) throws -> CommandResult {
                    try a.provision(["join-token", "--root", a.root] + extra)
                }
                func entityExists() throws -> Bool {
                    try Command("timeout", ["120", "ceph", "-c", a.conf, "auth", "get", JoinToken.entity])
                        .run(acceptedStatuses: Set(0...255)).status == 0
                }
                /// B was refused and created nothing: one OSD in the cluster, B's disk blank, no daemon under B.
                func nothingCreated(_ context: String) throws {
                    #expect(try JoinTests.osds(a).count == 1, "\(context)")
                    #expect(try JoinTests.isEmpty(loops[1]), "\(context)")
                    #expect(((try? FileManager.default.contentsOfDirectory(atPath: b.root + "/run/aquarium")) ?? []).isEmpty, "\(context)")
                }

                // 1. The key expires 24 hours after the cluster formed; the token carries that time.
                try a.writeSeed("  role: bootstrap\n")
                let formed = Date()
                let bootstrapped = try a.run(["--json"])
                try #require(bootstrapped.status == 0, "\(bootstrapped.errorOutput)")
                let monPort = try #require(try a.state.identity?.basePort)
                let printed = try joinToken()
                #expect(printed.status == 0, "\(printed.errorOutput)")
                let first = try JoinToken(parsing: printed.output)
                let expires = try #require(first.expires)
                #expect(abs(Double(expires) - formed.timeIntervalSince1970 - 86400) < 300, "expires \(expires)")
                let stored = try JoinTests.admin(a, "ceph", ["config-key", "get", JoinKeyRecord.configKey]).standardOutput
                #expect(try JSONDecoder().decode(JoinKeyRecord.self, from: stored) == JoinKeyRecord(expires: expires))

                // 2. Revoked: the entity and the token file are gone; B's old token is refused by the monitors (exit 3);
                // A's reconcile does not bring the key back; join-token says what happened.
                let revoked = try joinToken(["--revoke"])
                #expect(revoked.status == 0 && revoked.output.contains("revoked"), "\(revoked.output)\(revoked.errorOutput)")
                #expect(try !entityExists())
                #expect(!FileManager.default.fileExists(atPath: a.root + "/var/lib/aquarium/join-token"))
                try b.writeJoinSeed(token: first.text)
                let refusedRevoked = try b.run(["--mon-port", String(monPort)])
                #expect(refusedRevoked.status == 3, "\(refusedRevoked.errorOutput)")
                #expect(refusedRevoked.errorOutput.contains("does not accept cluster.join.token"), "\(refusedRevoked.errorOutput)")
                #expect(!refusedRevoked.errorOutput.contains(first.key))
                try nothingCreated("revoked")
                let reconciled = try a.run(["--json", "--health-timeout", "60"])
                #expect(reconciled.status == 0, "\(reconciled.errorOutput)")
                let step = try JoinTests.report(reconciled).steps.first { $0.step == "join-token" }
                #expect(step?.changed == false && step?.detail?.contains("no join key (revoked)") == true, "\(String(describing: step))")
                #expect(try !entityExists())
                let none = try joinToken()
                #expect(none.status == 1 && none.errorOutput.contains("revoked or has expired"), "\(none.errorOutput)")

                // 3. Rotated with a life of 3 s: a new key. Once it has expired, B refuses the token itself (exit 3)
                // before it asks the cluster anything.
                let short = try joinToken(["--rotate", "--ttl", "3s"])
                #expect(short.status == 0, "\(short.errorOutput)")
                let shortToken = try JoinToken(parsing: short.output)
                #expect(shortToken.key != first.key && shortToken.fsid == first.fsid)
                #expect(try entityExists())
                let shortExpires = try #require(shortToken.expires)
                while Date().timeIntervalSince1970 < Double(shortExpires) + 1 { usleep(200_000) }
                try b.writeJoinSeed(token: shortToken.text)
                let refusedExpired = try b.run(["--mon-port", String(monPort)])
                #expect(refusedExpired.status == 3, "\(refusedExpired.errorOutput)")
                #expect(refusedExpired.errorOutput.contains("cluster.join.token expired at"), "\(refusedExpired.errorOutput)")
                let printExpired = try joinToken()
                #expect(printExpired.status == 3 && printExpired.errorOutput.contains("expired at"), "\(printExpired.errorOutput)")
                // The cluster's enforcement: A's reconcile removes the expired key, so a token with the expiry cut off
                // (all a thief has to do) is refused by the monitors.
                let expiredRun = try a.run(["--json", "--health-timeout", "60"])
                #expect(expiredRun.status == 0, "\(expiredRun.errorOutput)")
                let removedStep = try JoinTests.report(expiredRun).steps.first { $0.step == "join-token" }
                #expect(removedStep?.changed == true && removedStep?.detail?.contains("removed \(JoinToken.entity)") == true,
                        "\(String(describing: removedStep))")
                #expect(try !entityExists())
                try b.writeJoinSeed(token: JoinToken(fsid: shortToken.fsid, key: shortToken.key).text)
                let refusedCut = try b.run(["--mon-port", String(monPort)])
                #expect(refusedCut.status == 3 && refusedCut.errorOutput.contains("does not accept"), "\(refusedCut.errorOutput)")
                try nothingCreated("expired")

                // 4. Rotated with the default life: B joins with the new token.
                let fresh = try joinToken(["--rotate"])
                #expect(fresh.status == 0, "\(fresh.errorOutput)")
                let freshToken = try JoinToken(parsing: fresh.output)
                #expect(abs(Double(freshToken.expires ?? 0) - Date().timeIntervalSince1970 - 86400) < 300)
                try b.writeJoinSeed(token: freshToken.text)
                let joined = try b.run(["--json", "--mon-port", String(monPort)])
                #expect(joined.status == 0, "\(joined.errorOutput)")
                #expect(try JoinTests.osds(a).count == 2)

                // Each operation is in A's event log; no key is.
                let events = a.events.read()
                for name in ["join-key.revoked", "join-key.rotated", "join-key.removed"] {
                    #expect(events.contains { $0.event == name }, "no \(name) in \(events.map(\.event))")
                }
                let log = try String(contentsOfFile: a.events.path, encoding: .utf8)
                for key in [first.key, shortToken.key, freshToken.key] { #expect(!log.contains(key)) }
            }
        }
    }
}
