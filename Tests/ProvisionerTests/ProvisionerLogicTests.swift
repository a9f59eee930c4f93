import Exec
import Foundation
import Seed
import TestSupport
import Testing
@testable import Provisioner

@Suite struct ProvisionerLogicTests {
    @Test(arguments: [
        ("osds", FaultPoint(step: "osds", when: .after)),
        ("osds:mid", FaultPoint(step: "osds", when: .mid)),
        ("mon:before", FaultPoint(step: "mon", when: .before)),
        ("rgw:after", FaultPoint(step: "rgw", when: .after)),
    ])
    func faultPoints(text: String, expected: FaultPoint) {
        #expect(FaultPoint(text) == expected)
    }

    @Test(arguments: ["", "osds:sometime", ":mid"])
    func badFaultPoints(text: String) {
        #expect(FaultPoint(text) == nil)
    }

    @Test func cephConfForProcessLauncherStaysOnLoopbackAndUnderRoot() {
        let identity = ClusterIdentity(fsid: "c1548103-2615-4764-ae5d-1ab67261fb22", name: "ceph", daemonId: "node-01",
                                       address: IPAddress("127.0.0.1")!, basePort: 41000, publicNetwork: "127.0.0.0/8",
                                       clusterNetwork: "127.0.0.0/8", launcher: .process)
        let layout = Layout(root: "/tmp/r/", cluster: "ceph")
        let text = CephConfig.render(identity, layout: layout, rgwPort: 41080)
        #expect(text.contains("\tmon_host = [v2:127.0.0.1:41000,v1:127.0.0.1:41001]\n"))
        #expect(text.contains("\tms_bind_port_min = 41010\n\tms_bind_port_max = 41099\n"))
        #expect(text.contains("\tpublic_addr = 127.0.0.1\n"))
        #expect(text.contains("\tmon_data = /tmp/r/var/lib/ceph/mon/$cluster-$id\n"))
        #expect(text.contains("[client.rgw.node-01]\n"))
        #expect(text.contains("\trgw_frontends = beast endpoint=127.0.0.1:41080\n"))
        // Every path is inside the root.
        for line in text.split(separator: "\n") where line.contains(" = /") {
            #expect(line.contains("= /tmp/r/"), "\(line)")
        }
        // Systemd on a node: all interfaces, default ports range, no loopback binding.
        var node = identity
        node.launcher = .systemd
        let nodeText = CephConfig.render(node, layout: Layout(root: "/"), rgwPort: 7480)
        #expect(nodeText.contains("\trgw_frontends = beast port=7480\n"))
        #expect(!nodeText.contains("public_addr"))
        #expect(nodeText.contains("\tmon_data = /var/lib/ceph/mon/$cluster-$id\n"))
    }

    @Test(arguments: [("node-01.example.com", "node-01"), ("solo", "solo"), ("", "a")])
    func daemonIds(hostname: String, id: String) {
        #expect(CephConfig.daemonId(hostname: hostname) == id)
    }

    @Test func redactorScrubsKeysAndKnownSecrets() {
        var redactor = Redactor()
        redactor.add(["AQBx1234secretkeyvalue==", "S3SECRETKEY0123456789"])
        let text = """
        [client.admin]
        \tkey = AQDifferentKeyNotKnownBefore==
        seen AQBx1234secretkeyvalue== in a log
        {"secret_key": "whatever-unknown", "user": "x"}
        S3SECRETKEY0123456789
        """
        let clean = redactor.redact(text)
        #expect(!clean.contains("AQBx1234secretkeyvalue=="))
        #expect(!clean.contains("AQDifferentKeyNotKnownBefore=="))
        #expect(!clean.contains("whatever-unknown"))
        #expect(!clean.contains("S3SECRETKEY0123456789"))
        #expect(clean.contains("\tkey = <redacted>"))
        #expect(clean.contains(#""secret_key": "<redacted>""#))
        #expect(redactor.leaks(in: clean).isEmpty)
    }

    @Test func systemdUnitRunsTheDaemonInTheForeground() {
        let spec = DaemonSpec(name: "mon.node-01", executable: "ceph-mon",
                              arguments: ["--cluster", "ceph", "-c", "/etc/ceph/ceph.conf", "-i", "node-01", "-f"],
                              configPath: "/etc/ceph/ceph.conf")
        let unit = SystemdLauncher.renderUnit(spec, cluster: "ceph")
        #expect(unit.contains("ExecStart=/usr/bin/ceph-mon --cluster ceph -c /etc/ceph/ceph.conf -i node-01 -f\n"))
        #expect(unit.contains("Restart=on-failure"))
        #expect(unit.contains("WantedBy=multi-user.target"))
        #expect(unit.contains("After=network-online.target local-fs.target time-sync.target\n"))
    }

    /// Soft S3 quotas warn from the limit on (at it counts: the next write goes beyond), naming both limits.
    @Test("soft S3 quota warnings", arguments: [
        (Seed.S3Quota(maxObjects: 3, softMaxObjects: 2), UInt64(0), 1, nil),
        (Seed.S3Quota(maxObjects: 3, softMaxObjects: 2), UInt64(0), 2,
         "S3 user backup is at or over its soft quota: 2 objects (soft limit 2, hard limit 3); raise the quota in the seed or have the user delete data"),
        (Seed.S3Quota(softMaxSize: 1000), UInt64(1500), 0,
         "S3 user backup is at or over its soft quota: 1500 bytes (soft limit 1000, no hard limit); raise the quota in the seed or have the user delete data"),
        (Seed.S3Quota(maxSize: 2000, softMaxSize: 1000, softMaxObjects: 5), UInt64(1000), 9,
         "S3 user backup is at or over its soft quota: 1000 bytes (soft limit 1000, hard limit 2000) and 9 objects (soft limit 5, no hard limit); raise the quota in the seed or have the user delete data"),
        (Seed.S3Quota(maxSize: 2000), UInt64(5000), 9, nil),
    ] as [(Seed.S3Quota, UInt64, Int, String?)])
    func softQuotaWarnings(quota: Seed.S3Quota, size: UInt64, objects: Int, warning: String?) {
        #expect(Provisioner.softQuotaWarning("backup", quota, size: size, objects: objects) == warning)
    }

    /// Only hard limits go to RGW: a quota with soft limits alone leaves RGW's quota disabled.
    @Test func softLimitsAreNotRGWQuotas() {
        #expect(Provisioner.rgwQuota(Seed.S3Quota(softMaxSize: 1000)).enabled == false)
        #expect(Provisioner.rgwQuota(Seed.S3Quota(maxObjects: 3, softMaxObjects: 2)) == .init(enabled: true, maxSize: -1, maxObjects: 3))
    }

    /// rbd-target-api takes the target out of LIO when it stops, which waits for tcmu-runner: its unit is ordered after
    /// tcmu-runner's, so systemd stops it first (at shutdown as well).
    @Test func systemdUnitOrderedAfterAnotherDaemon() {
        let spec = DaemonSpec(name: "rbd-target-api", executable: "rbd-target-api", arguments: [],
                              configPath: "/etc/ceph/iscsi-gateway.cfg", after: ["tcmu-runner"])
        let unit = SystemdLauncher.renderUnit(spec, cluster: "ceph")
        #expect(unit.contains("After=network-online.target local-fs.target time-sync.target aquarium-ceph-ceph-tcmu-runner.service\n"))
        // A daemon added on the node changes the order only: the launcher reloads systemd and leaves the daemon running.
        var more = spec
        more.after.append("osd.7")
        let reordered = SystemdLauncher.renderUnit(more, cluster: "ceph")
        #expect(SystemdLauncher.differOnlyInOrdering(unit, reordered))
        #expect(!SystemdLauncher.differOnlyInOrdering(unit, unit))
        var other = spec
        other.arguments = ["--debug"]
        #expect(!SystemdLauncher.differOnlyInOrdering(unit, SystemdLauncher.renderUnit(other, cluster: "ceph")))
    }

    /// `stop` signals only processes whose command line is a daemon with this root's ceph.conf: a pid file that
    /// points at anything else is removed, the process left alone.
    @Test func stopLeavesForeignProcessesAlone() throws {
        try withTemporaryDirectory { root in
            let layout = Layout(root: root)
            let bystander = Process()
            bystander.executableURL = URL(fileURLWithPath: "/bin/sleep")
            bystander.arguments = ["60"]
            try bystander.run()
            defer { kill(bystander.processIdentifier, SIGKILL); bystander.waitUntilExit() }
            try FileManager.default.createDirectory(atPath: layout.pidDir, withIntermediateDirectories: true)
            try "\(bystander.processIdentifier)\n".write(toFile: layout.pidDir + "/ceph-mon.x.pid", atomically: true, encoding: .utf8)
            let launcher = ProcessLauncher(layout: layout, logger: .init(label: "test"))
            #expect(launcher.running().map(\.running) == [false])
            #expect(try launcher.stopAll() == [])
            #expect(bystander.isRunning)
            #expect(!FileManager.default.fileExists(atPath: layout.pidDir + "/ceph-mon.x.pid"))
        }
    }

    /// The process launcher's daemons keep their temporary files under the root (a manager's modules leave their
    /// certificate files behind when stopped): TMPDIR is the root's /tmp, which exists.
    @Test func processLauncherDaemonsUseTheRootsTemporaryDirectory() throws {
        try withTemporaryDirectory { root in
            let layout = Layout(root: root)
            let seen = root + "/tmpdir-seen"
            let daemon = DaemonSpec(name: "client.tmpdir-test", executable: "python3",
                                    arguments: ["-c", "import os, sys, time; open(sys.argv[1] + '.new', 'w').write(os.environ.get('TMPDIR', '')); "
                                                + "os.rename(sys.argv[1] + '.new', sys.argv[1]); time.sleep(60)", seen, layout.cephConf],
                                    configPath: layout.cephConf)
            let launcher = ProcessLauncher(layout: layout, logger: .init(label: "test"))
            #expect(try launcher.ensureRunning(daemon))
            defer { try? launcher.stop(daemon) }
            for _ in 0..<100 where !FileManager.default.fileExists(atPath: seen) { usleep(100_000) }
            #expect(try String(contentsOfFile: seen, encoding: .utf8) == layout.temporaryDirectory)
            var info = stat()
            #expect(stat(layout.temporaryDirectory, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR)
            try launcher.stop(daemon)
            #expect(!launcher.isRunning(daemon))
        }
    }

    @Test func eventsAreJSONLines() throws {
        try withTemporaryDirectory { root in
            let log = EventLog(path: root + "/var/lib/aquarium/events.jsonl")
            log.append(ProvisionEvent(event: "step.done", step: "mon", changed: true))
            log.append(ProvisionEvent(event: "step.unchanged", step: "mon", changed: false, detail: "x"))
            let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 2)
            for line in lines {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["event"] is String)
                #expect(object?["time"] is String)
            }
            #expect(log.read().map(\.changed) == [true, false])
        }
    }
}

@Suite struct ProvisionCommandLineTests {
    @Test func systemdLauncherNeedsTheRealRoot() throws {
        try withTemporaryDirectory { directory in
            try "version: 1\nhost: {hostname: n}\ncluster: {role: bootstrap}\n".write(toFile: directory + "/seed.yaml", atomically: true, encoding: .utf8)
            try NodeRecordFixture.write(to: directory + "/node.json", hostname: "n", storage: [], seed: directory + "/seed.yaml")
            let result = try Products.run("aquarium-provision", ["run", "--seed", directory + "/seed.yaml", "--node-record",
                                                                 directory + "/node.json", "--root", directory + "/root",
                                                                 "--launcher", "systemd"])
            #expect(result.status == 2)
            #expect(result.errorOutput.contains("--root /"))
            #expect(!FileManager.default.fileExists(atPath: directory + "/root"))
        }
    }

    @Test(arguments: [["run", "--node-record", "/nonexistent/node.json"], ["run", "--fault-inject", "x:never"]])
    func invalidInputExits2(arguments: [String]) throws {
        let result = try Products.run("aquarium-provision", arguments)
        #expect(result.status == 2, "\(result.errorOutput)")
        #expect(result.errorOutput.contains(arguments.last ?? ""), "\(result.errorOutput)")
    }
}
