import Exec
import Foundation
import QEMU
import Testing
import TestSupport

/// The appliance image (profile "full", with Ceph) on a real boot: FirstBoot hands off, the Provisioner bootstraps
/// Ceph with systemd units from the seed, and after a reboot the cluster comes back by itself and answers S3 on a
/// port forwarded to 127.0.0.1. In the same (serialized) suite as the other boots: one VM at a time.
extension EndToEndTests {
    struct S3Keys: Decodable {
        var accessKey: String
        var secretKey: String
    }

    /// Creates a bucket, writes an object, reads it back and lists the buckets, with boto3 (Debian's python3-boto3).
    static let s3Script = """
    import sys, boto3
    from botocore.config import Config
    endpoint, access, secret, payload = sys.argv[1:5]
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret,
                      region_name="us-east-1", config=Config(retries={"max_attempts": 3}, connect_timeout=10, read_timeout=60))
    s3.create_bucket(Bucket="aquarium-e2e")
    s3.put_object(Bucket="aquarium-e2e", Key="hello.txt", Body=payload.encode())
    body = s3.get_object(Bucket="aquarium-e2e", Key="hello.txt")["Body"].read().decode()
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    sys.stdout.write(body + "\\n" + ",".join(buckets))
    """

    /// Seconds the S3 probe may take (3 attempts with 10 s connect and 60 s read timeouts fit well inside).
    static let s3ProbeLimit = 300

    @Test("Ceph: the node bootstraps Ceph from its seed, keeps its cluster across a reboot, and answers S3 on a forwarded port",
          .requires(root: false, programs: ["qemu-system-x86_64", "mtype", "sfdisk", "debugfs", "blkid", "python3"]))
    func cephBootstrapRebootAndS3() throws {
        let env = E2E.shared
        let dir = try env.directory("ceph")
        let ssd = try DiskImage.blank(dir + "/ssd.raw", sizeBytes: 12 * Self.gib)
        let hdd = try DiskImage.blank(dir + "/hdd.raw", sizeBytes: 20 * Self.gib)
        let disks = [VirtualDisk(path: ssd.path, serial: "AQ-SSD-0001", rotationRate: 1),
                     VirtualDisk(path: hdd.path, serial: "AQ-HDD-0001", rotationRate: 7200)]
        // One OSD and RGW: what an S3 request needs, and the quickest cluster to bootstrap under TCG. A static address
        // on the NIC chosen by its MAC, as production seeds have, and not the one QEMU's DHCP hands out (10.0.2.15):
        // the image's default network (DHCP) is up first on every boot, so the monitor and the forward only reach the
        // node if the seed's network configuration really took over (gateway 10.0.2.2). No DNS server: under QEMU's
        // restrict=on the guest cannot reach QEMU's DNS proxy (10.0.2.3), and a seed naming it made the second boot's
        // ceph CLI hang past the Provisioner's 60 s quorum wait (the monitor itself was leader within 2 s).
        let address = "10.0.2.20"
        let network = """
            network:
              interfaces:
                - mac: "52:54:00:12:34:56"
                  addresses: [\(address)/24]
                  gateway: 10.0.2.2
              public_network: 10.0.2.0/24
            """
        let seed = E2E.seed(hostname: "e2e-ceph", filesystem: "ext4", services: "  services:\n    rgw: {port: 7480}\n",
                            network: network)
        let done = "]: done: "

        // First boot: FirstBoot, then the Provisioner with the systemd launcher; the node powers off when it is done.
        let stick = try seededStick("ceph", seed: seed, profile: .full, kernelArguments: "aquarium.poweroff")
        let first = try env.boot("ceph-1", stick: stick, disks: disks, timeout: 1500, watchMarkers: [done])
        E2E.expectPoweredOff(first, "ceph-1")
        try #require(first.console.contains("]: done: changed, HEALTH_OK"), "no healthy cluster; console tail: \(first.console.suffix(4000))")
        #expect(first.console.contains("mon [v2:\(address):3300"), "the monitor is not on the seed's address")
        #expect(!first.console.contains("Failed to start"), "a unit failed: \(E2E.failedUnits(first.console))")
        env.note("ceph boot 1: handoff at \(first.markerTimes[E2E.handoffMarker].map { Int($0) } ?? -1) s, HEALTH_OK at \(first.markerTimes[done].map { Int($0) } ?? -1) s")

        // Read from the system disk without mounting: the S3 keys (mode 0600), the events, the OSD on the HDD.
        let keysText = try stateFile(ssd, "state/aquarium/s3-admin.json")
        let keys = try JSONDecoder().decode(S3Keys.self, from: Data(keysText.utf8))
        let start = try stateIdentity(ssd).start
        let stat = try Command("debugfs", ["-R", "stat /state/aquarium/s3-admin.json", "\(ssd.path)?offset=\(start * 512)"]).run().output
        #expect(stat.contains("Mode:  0600"), "s3-admin.json: \(stat.prefix(300))")
        let events = try stateFile(ssd, "state/aquarium/events.jsonl")
        #expect(events.contains("\"run.finished\""))
        #expect(!events.contains(keys.secretKey), "the events hold the S3 secret")
        let osd = try Command("blkid", ["-p", "-s", "TYPE", "-o", "value", hdd.path]).run().output
        #expect(osd.trimmingCharacters(in: .whitespacesAndNewlines) == "ceph_bluestore")

        // Second boot, from a stick that does not power off: systemd starts the daemons from their units, the
        // Provisioner changes nothing, and S3 answers through the forward while the node is up.
        let again = try seededStick("ceph-2", seed: seed, profile: .full, kernelArguments: "")
        let port = try E2E.freePort()
        let script = dir + "/s3.py"
        try Self.s3Script.write(toFile: script, atomically: true, encoding: .utf8)
        let payload = "aquarium end to end \(UUID().uuidString)"
        var s3: Result<String, Error> = .failure(MissingCapability(what: "the S3 request (the Provisioner never finished)"))
        let second = try env.boot("ceph-2", stick: again, disks: disks, timeout: 900, forwards: [(host: port, guest: 7480)],
                                  guestAddress: address, stopMarkers: [done]) { _ in
            // Bounded: the probe runs while the boot loop waits, before its timeout check, and boto3 retries.
            s3 = Result {
                let probe = try Command("/usr/bin/python3", [script, "http://127.0.0.1:\(port)", keys.accessKey, keys.secretKey, payload])
                    .timeLimited(Self.s3ProbeLimit).run(acceptedStatuses: Set(0...255))
                guard probe.status == 0 else {
                    throw CommandError(command: probe.command, status: probe.status, standardError: probe.errorOutput,
                                       reason: probe.timedOut ? "the S3 probe exceeded \(Self.s3ProbeLimit) s" : "the S3 probe failed")
                }
                return probe.output
            }
        }
        #expect(second.ending == .marker(done), "console tail: \(second.console.suffix(3000))")
        #expect(second.console.contains("]: done: nothing changed, HEALTH_OK"), "console tail: \(second.console.suffix(4000))")
        #expect(second.console.contains("osds: unchanged"), "the OSD was not adopted as it was")
        #expect(!second.console.contains("Failed to start"), "a unit failed: \(E2E.failedUnits(second.console))")
        #expect(try s3.get() == payload + "\naquarium-e2e")
        env.note("ceph boot 2: handoff at \(second.markerTimes[E2E.handoffMarker].map { Int($0) } ?? -1) s, provisioner done at \(second.markerTimes[done].map { Int($0) } ?? -1) s")
    }
}
