import Exec
import Foundation
import QEMU
import Testing
import TestSupport

/// The appliance image (profile "full", with Ceph) on a real boot: FirstBoot hands off, the Provisioner bootstraps
/// Ceph with systemd units from the seed, and after a reboot the cluster comes back by itself, answers S3 and serves
/// an RBD image over iSCSI, to clients on the node's private network (GuestNetwork). In the same (serialized) suite
/// as the other boots: one VM at a time.
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

    struct ISCSIKeys: Decodable {
        var target: String
        var portals: [String]
        var username: String
        var password: String
    }

    /// The seed's default target name (services.iscsi.target left out).
    static let defaultTarget = "iqn.2026-01.local.aquarium:storage"

    /// Seconds each iSCSI client command (qemu-io with libiscsi, rbd export) may take.
    static let iscsiProbeLimit = 180

    @Test("Ceph: the node bootstraps Ceph from its seed, keeps its cluster across a reboot, answers S3, and serves an RBD image over iSCSI with CHAP",
          .requires(root: true, programs: ["qemu-system-x86_64", "qemu-io", "dnsmasq", "rbd", "ip", "mtype", "sfdisk", "debugfs",
                                           "blkid", "python3"]))
    func cephBootstrapRebootAndS3() throws {
        let env = E2E.shared
        let dir = try env.directory("ceph")
        let ssd = try DiskImage.blank(dir + "/ssd.raw", sizeBytes: 12 * Self.gib)
        let hdd = try DiskImage.blank(dir + "/hdd.raw", sizeBytes: 20 * Self.gib)
        let disks = [VirtualDisk(path: ssd.path, serial: "AQ-SSD-0001", rotationRate: 1),
                     VirtualDisk(path: hdd.path, serial: "AQ-HDD-0001", rotationRate: 7200)]
        // One OSD, RGW and an iSCSI disk: the quickest cluster to bootstrap under TCG that serves both. The node is on a
        // private network of its own (GuestNetwork: a namespace with a tap and DHCP), where the test's clients reach
        // every daemon at its own address as on a real network: Ceph clients need that, QEMU's user network cannot
        // give it. A static address on the NIC chosen by its MAC, as production seeds have, and not the one DHCP hands
        // out: the image's default network (DHCP) is up first on every boot, so the monitor and the services only
        // answer at 10.0.2.20 if the seed's network configuration really took over. No DNS server in the seed.
        let address = "10.0.2.20"
        let network = """
            network:
              interfaces:
                - mac: "52:54:00:12:34:56"
                  addresses: [\(address)/24]
                  gateway: \(GuestNetwork.hostAddress)
              public_network: 10.0.2.0/24
            """
        let services = """
              services:
                rbd: {pools: [rbd]}
                rgw: {port: 7480}
                iscsi:
                  disks:
                    - {name: vol1, size: 64MiB}

            """
        let seed = E2E.seed(hostname: "e2e-ceph", filesystem: "ext4", services: services, network: network)
        let done = "]: done: "

        try GuestNetwork.with(directory: dir) { net in
            // First boot: FirstBoot, then the Provisioner with the systemd launcher; the node powers off when it is done.
            let stick = try seededStick("ceph", seed: seed, profile: .full, kernelArguments: "aquarium.poweroff")
            let first = try env.boot("ceph-1", stick: stick, disks: disks, timeout: 1500, watchMarkers: [done], network: net)
            E2E.expectPoweredOff(first, "ceph-1")
            try #require(first.console.contains("]: done: changed, HEALTH_OK"), "no healthy cluster; console tail: \(first.console.suffix(4000))")
            #expect(first.console.contains("mon [v2:\(address):3300"), "the monitor is not on the seed's address")
            #expect(!first.console.contains("Failed to start"), "a unit failed: \(E2E.failedUnits(first.console))")
            #expect(first.console.contains("created the target \(Self.defaultTarget)"), "no iSCSI target was made")
            env.note("ceph boot 1: handoff at \(first.markerTimes[E2E.handoffMarker].map { Int($0) } ?? -1) s, HEALTH_OK at \(first.markerTimes[done].map { Int($0) } ?? -1) s")

            // Read from the system disk without mounting: the S3 keys and iSCSI credentials (mode 0600), the events,
            // the OSD on the HDD, the admin keyring (in /etc's overlay, on the system disk) for the RBD check.
            let keysText = try stateFile(ssd, "state/aquarium/s3-admin.json")
            let keys = try JSONDecoder().decode(S3Keys.self, from: Data(keysText.utf8))
            let iscsi = try JSONDecoder().decode(ISCSIKeys.self, from: Data(try stateFile(ssd, "state/aquarium/iscsi.json").utf8))
            #expect(iscsi.target == Self.defaultTarget && iscsi.portals == ["\(address):3260"], "iscsi.json: \(iscsi.target) \(iscsi.portals)")
            let start = try stateIdentity(ssd).start
            for file in ["s3-admin.json", "iscsi.json"] {
                let stat = try Command("debugfs", ["-R", "stat /state/aquarium/\(file)", "\(ssd.path)?offset=\(start * 512)"]).run().output
                #expect(stat.contains("Mode:  0600"), "\(file): \(stat.prefix(300))")
            }
            let events = try stateFile(ssd, "state/aquarium/events.jsonl")
            #expect(events.contains("\"run.finished\""))
            #expect(!events.contains(keys.secretKey), "the events hold the S3 secret")
            #expect(!events.contains(iscsi.password), "the events hold the CHAP password")
            #expect(!first.console.contains(iscsi.password), "the console shows the CHAP password")
            let osd = try Command("blkid", ["-p", "-s", "TYPE", "-o", "value", hdd.path]).run().output
            #expect(osd.trimmingCharacters(in: .whitespacesAndNewlines) == "ceph_bluestore")
            let keyring = dir + "/admin.keyring"
            let adminKeyring = try stateFile(ssd, "etc/upper/ceph/ceph.client.admin.keyring")
            try #require(adminKeyring.contains("[client.admin]"), "no admin keyring in /etc's overlay on the system disk")
            try adminKeyring.write(toFile: keyring, atomically: true, encoding: .utf8)
            chmod(keyring, 0o600)

            // Second boot, from a stick that does not power off: systemd starts the daemons from their units, the
            // Provisioner changes nothing, and the clients on the node's network use S3 and iSCSI while it is up.
            let again = try seededStick("ceph-2", seed: seed, profile: .full, kernelArguments: "")
            let script = dir + "/s3.py"
            try Self.s3Script.write(toFile: script, atomically: true, encoding: .utf8)
            let payload = "aquarium end to end \(UUID().uuidString)"
            var s3: Result<String, Error> = .failure(MissingCapability(what: "the S3 request (the Provisioner never finished)"))
            var lun: Result<ISCSIProbe, Error> = .failure(MissingCapability(what: "the iSCSI probe (the Provisioner never finished)"))
            let second = try env.boot("ceph-2", stick: again, disks: disks, timeout: 900, stopMarkers: [done], network: net) { _ in
                // Bounded: the probes run while the boot loop waits, before its timeout check, and boto3 retries.
                s3 = Result {
                    let probe = try net.command("/usr/bin/python3", [script, "http://\(address):7480", keys.accessKey, keys.secretKey, payload])
                        .timeLimited(Self.s3ProbeLimit).run(acceptedStatuses: Set(0...255))
                    guard probe.status == 0 else {
                        throw CommandError(command: probe.command, status: probe.status, standardError: probe.errorOutput,
                                           reason: probe.timedOut ? "the S3 probe exceeded \(Self.s3ProbeLimit) s" : "the S3 probe failed")
                    }
                    return probe.output
                }
                lun = Result { try Self.iscsiProbe(net, address: address, credentials: iscsi, keyring: keyring, directory: dir) }
            }
            #expect(second.ending == .marker(done), "console tail: \(second.console.suffix(3000))")
            #expect(second.console.contains("]: done: nothing changed, HEALTH_OK"), "console tail: \(second.console.suffix(4000))")
            #expect(second.console.contains("osds: unchanged"), "the OSD was not adopted as it was")
            #expect(!second.console.contains("Failed to start"), "a unit failed: \(E2E.failedUnits(second.console))")
            #expect(try s3.get() == payload + "\naquarium-e2e")
            let probe = try lun.get()
            #expect(probe.wrongPasswordRefused, "a login with a wrong CHAP password was not refused")
            #expect(probe.writtenAndReadBack, "the pattern written over iSCSI did not read back")
            #expect(probe.imageHoldsPattern, "the RBD image rbd/vol1 does not hold what the initiator wrote")
            #expect(probe.imageSize == 64 << 20, "rbd/vol1 is \(probe.imageSize) bytes")
            env.note("ceph boot 2: handoff at \(second.markerTimes[E2E.handoffMarker].map { Int($0) } ?? -1) s, provisioner done at \(second.markerTimes[done].map { Int($0) } ?? -1) s")
        }
    }

    struct ISCSIProbe {
        var wrongPasswordRefused: Bool
        var writtenAndReadBack: Bool
        var imageHoldsPattern: Bool
        var imageSize: Int
    }

    /// A real initiator (libiscsi, through qemu-io: this machine's kernel has no iscsi_tcp for open-iscsi) on the node's
    /// network: a wrong CHAP password is refused; with the node's credentials (the password in libiscsi's environment
    /// variable, not on a command line) 1 MiB of 0x5a is written to LUN 0 and read back and checked; then the RBD
    /// image itself, read with the cluster's admin key (`rbd export`), holds those bytes.
    static func iscsiProbe(_ net: GuestNetwork, address: String, credentials: ISCSIKeys, keyring: String,
                           directory: String) throws -> ISCSIProbe {
        let url = "iscsi://\(credentials.username)@\(address)/\(credentials.target)/0"
        let wrong = try net.command("qemu-io", ["-f", "raw", "-c", "read 0 512", url],
                                    environment: ["LIBISCSI_CHAP_PASSWORD": "wrong" + String(credentials.password.dropFirst(5))])
            .timeLimited(iscsiProbeLimit).run(acceptedStatuses: Set(0...255))
        let io = try net.command("qemu-io", ["-f", "raw", "-c", "write -P 0x5a 0 1M", "-c", "read -P 0x5a 0 1M", url],
                                 environment: ["LIBISCSI_CHAP_PASSWORD": credentials.password])
            .timeLimited(iscsiProbeLimit).run(acceptedStatuses: Set(0...255))
        let export = directory + "/vol1.img"
        try? FileManager.default.removeItem(atPath: export)
        defer { try? FileManager.default.removeItem(atPath: export) }
        let rbd = try net.command("rbd", ["-c", "/dev/null", "--client-mount-timeout", "60", "-m", address, "--id", "admin",
                                          "--keyring", keyring, "export", "rbd/vol1", export])
            .timeLimited(iscsiProbeLimit).run(acceptedStatuses: Set(0...255))
        let image = rbd.status == 0 ? FileManager.default.contents(atPath: export) : nil
        let written = io.status == 0 && io.output.contains("read 1048576/1048576") && !io.output.contains("verification failed")
        if !written { print("e2e: qemu-io: status \(io.status): \(io.output) \(io.errorOutput)") }
        if image == nil { print("e2e: rbd export: status \(rbd.status): \(rbd.errorOutput)") }
        return ISCSIProbe(
            wrongPasswordRefused: wrong.status != 0 && (wrong.output + wrong.errorOutput).contains("Authentication failure"),
            writtenAndReadBack: written,
            imageHoldsPattern: image.map { $0.count >= 1 << 20 && $0.prefix(1 << 20).allSatisfy { $0 == 0x5a } } ?? false,
            imageSize: image?.count ?? -1)
    }
}
