import Crypto
import Exec
import Foundation
import QEMU
import Testing
import TestSupport

/// The appliance image (profile "full", with Ceph) on a real boot: FirstBoot hands off, the Provisioner bootstraps
/// Ceph with systemd units from the seed, and after a reboot the cluster comes back by itself, answers S3 and serves
/// an RBD image over iSCSI, to clients on the node's private network (GuestNetwork) and to open-iscsi in the node
/// itself. In the same (serialized) suite as the other boots: one VM at a time.
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
        var mutualUsername: String?
        var mutualPassword: String?
        var clients: [Client]?

        struct Client: Decodable {
            var iqn: String
            var username: String
            var password: String
        }

        func client(_ iqn: String) throws -> Client {
            try #require(clients?.first { $0.iqn == iqn }, "iscsi.json has no credentials for \(iqn): \(clients?.map(\.iqn) ?? [])")
        }
    }

    /// The Ceph boot's services (under `cluster:`): RBD, RGW and iSCSI with `iscsi` as its body (indented by six).
    static func cephServices(iscsi: String) -> String {
        """
          services:
            rbd: {pools: [rbd]}
            rgw: {port: 7480}
            iscsi:
        \(iscsi)

        """
    }

    /// The initiators of the ACL boots: A (qemu-io, no mutual CHAP) gets vol1, B (iscsi-inq, mutual CHAP) gets vol2; C
    /// is in no ACL.
    static let initiatorA = "iqn.2026-01.local.aquarium-e2e:initiator-a"
    static let initiatorB = "iqn.2026-01.local.aquarium-e2e:initiator-b"
    static let initiatorC = "iqn.2026-01.local.aquarium-e2e:initiator-c"

    /// The seed's default target name (services.iscsi.target left out).
    static let defaultTarget = "iqn.2026-01.local.aquarium:storage"

    /// The test-only unit of the fourth boot: open-iscsi inside the node (this machine's kernel has no iscsi_tcp, the
    /// node's Debian kernel has it and LIO) logs in to the node's own target at its public address with the CHAP
    /// credentials the Provisioner made, following docs/services.md's commands; a wrong password is refused first. It
    /// writes 1 MiB of random bytes at 8 MiB of LUN 0 and reads them back (O_DIRECT), logs out, and prints the bytes'
    /// SHA-256, which the host then finds in the RBD image. Its lines start with `openISCSIMarker`.
    static let openISCSIMarker = "aquarium-e2e-open-iscsi: "
    static let openISCSIProgram = """
    #!/usr/bin/python3
    # Test only (CephBootTests, fourth boot): open-iscsi logs in to this node's own iSCSI target with CHAP.
    import hashlib, json, os, subprocess, sys, time

    def say(text):
        print("\(openISCSIMarker)" + text, flush=True)

    def run(argv, accepted=(0,)):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=180)
        if result.returncode not in accepted:
            say("failed: " + " ".join(argv[:5]) + " exited " + str(result.returncode) + ": "
                + (result.stderr + result.stdout).strip()[-600:])
            sys.exit(1)
        return result

    keys = json.load(open("/var/lib/aquarium/iscsi.json"))
    target, portal = keys["target"], keys["portals"][0]
    address = portal.rsplit(":", 1)[0]
    run(["systemctl", "start", "iscsid.service"])
    names = [line.split("=", 1)[1].strip() for line in open("/etc/iscsi/initiatorname.iscsi").read().splitlines()
             if line.startswith("InitiatorName=")]
    say("initiator " + (names[0] if names else "none"))
    found = run(["iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", address]).stdout
    if portal not in found or target not in found:
        say("failed: discovery through " + address + " does not list " + portal + " " + target + ": " + found.strip())
        sys.exit(1)
    node = ["iscsiadm", "-m", "node", "-T", target, "-p", address]
    def update(name, value):
        run(node + ["-o", "update", "-n", name, "-v", value])
    update("node.session.auth.authmethod", "CHAP")
    update("node.session.auth.username", keys["username"])
    update("node.session.auth.password", "wrong-" + keys["password"])
    refused = run(node + ["--login"], accepted=range(256))
    if refused.returncode != 24:
        say("failed: the login with a wrong CHAP password ended with " + str(refused.returncode) + ", not 24 (authentication failure)")
        sys.exit(1)
    say("a wrong CHAP password is refused (iscsiadm exit 24)")
    update("node.session.auth.password", keys["password"])
    run(node + ["--login"])
    device = "/dev/disk/by-path/ip-" + portal + "-iscsi-" + target + "-lun-0"
    for _ in range(60):
        run(["udevadm", "settle"])
        if os.path.exists(device):
            break
        time.sleep(1)
    else:
        say("failed: no " + device + " after the login: " + " ".join(sorted(os.listdir("/dev/disk/by-path"))))
        sys.exit(1)
    size = int(run(["blockdev", "--getsize64", device]).stdout)
    pattern = os.urandom(1 << 20)
    with open("/run/aquarium-e2e-pattern", "wb") as f:
        f.write(pattern)
    run(["dd", "if=/run/aquarium-e2e-pattern", "of=" + device, "bs=1M", "seek=8", "count=1", "oflag=direct", "conv=fsync"])
    run(["dd", "if=" + device, "of=/run/aquarium-e2e-back", "bs=1M", "skip=8", "count=1", "iflag=direct"])
    back = open("/run/aquarium-e2e-back", "rb").read()
    run(node + ["--logout"])
    run(node + ["-o", "delete"])
    if back != pattern:
        say("failed: the 1 MiB read back at 8 MiB of " + device + " is not what was written")
        sys.exit(1)
    say("passed: wrote and read back 1 MiB at 8 MiB of LUN 0 (" + str(size) + " bytes) through " + portal
        + ", logged out, sha256 " + hashlib.sha256(pattern).hexdigest())

    """
    static let openISCSIUnit = """
    [Unit]
    Description=Aquarium end-to-end test only: open-iscsi logs in to this node's iSCSI target
    After=aquarium-provision.service
    [Service]
    Type=oneshot
    ExecStart=/usr/local/bin/aquarium-e2e-open-iscsi
    StandardOutput=journal+console
    StandardError=journal+console
    [Install]
    WantedBy=multi-user.target

    """

    /// Seconds each iSCSI client command (qemu-io with libiscsi, rbd export) may take.
    static let iscsiProbeLimit = 180

    @Test("Ceph: the node bootstraps Ceph from its seed through kills in and after its iscsi step, keeps its cluster across a reboot, answers S3, and serves RBD images over iSCSI with CHAP (to open-iscsi in the node and libiscsi on its network), then with per-initiator ACLs and mutual CHAP",
          .requires(root: true, programs: ["qemu-system-x86_64", "qemu-io", "iscsi-inq", "dnsmasq", "rbd", "ip", "mtype", "sfdisk", "debugfs",
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
        let services = Self.cephServices(iscsi: """
                  disks:
                    - {name: vol1, size: 64MiB}
            """)
        let seed = E2E.seed(hostname: "e2e-ceph", filesystem: "ext4", services: services, network: network)
        let done = "]: done: "

        try GuestNetwork.with(directory: dir) { net in
            // First boot: FirstBoot, then the Provisioner with the systemd launcher, killed (SIGKILL) in the middle of
            // the iscsi step (tcmu-runner started, rbd-target-api not); the node powers off when the run has ended.
            // AQUARIUM_PROVISION_FAULT_INJECT reaches every unit through systemd's environment; only the Provisioner
            // reads it.
            let dying = "fault injection: dying at "
            let killedMid = try seededStick("ceph-kill-mid", seed: seed, profile: .full,
                                            kernelArguments: "aquarium.poweroff systemd.setenv=AQUARIUM_PROVISION_FAULT_INJECT=iscsi:mid")
            let mid = try env.boot("ceph-kill-mid", stick: killedMid, disks: disks, timeout: 1500, watchMarkers: [dying], network: net)
            E2E.expectPoweredOff(mid, "ceph-kill-mid")
            try #require(mid.console.contains(dying + "iscsi:mid"), "the run did not die in the iscsi step; console tail: \(mid.console.suffix(4000))")
            #expect(!mid.console.contains("created the target"), "the target was made before rbd-target-api started")
            env.note("ceph boot 1 (killed at iscsi:mid): handoff at \(mid.markerTimes[E2E.handoffMarker].map { Int($0) } ?? -1) s, killed at \(mid.markerTimes[dying].map { Int($0) } ?? -1) s")

            // Second boot: the run resumes at the iscsi step, makes the target and dies once the step's work is done,
            // before its completion is recorded (so before its result is printed: the third boot's shows the work done).
            let killedAfter = try seededStick("ceph-kill-after", seed: seed, profile: .full,
                                              kernelArguments: "aquarium.poweroff systemd.setenv=AQUARIUM_PROVISION_FAULT_INJECT=iscsi:after")
            let after = try env.boot("ceph-kill-after", stick: killedAfter, disks: disks, timeout: 900, watchMarkers: [dying], network: net)
            E2E.expectPoweredOff(after, "ceph-kill-after")
            try #require(after.console.contains(dying + "iscsi:after"), "the run did not die after the iscsi step; console tail: \(after.console.suffix(4000))")
            // The killed run fails its unit, and nothing else fails.
            for killed in [mid, after] {
                let failed = E2E.failedUnits(killed.console).filter { !$0.contains("aquarium-p") }
                #expect(failed.isEmpty, "a unit failed: \(failed)")
            }

            // Third boot, without a fault: the run finishes, the iscsi step finds its work done, the cluster is healthy.
            let stick = try seededStick("ceph", seed: seed, profile: .full, kernelArguments: "aquarium.poweroff")
            let first = try env.boot("ceph-1", stick: stick, disks: disks, timeout: 900, watchMarkers: [done], network: net)
            E2E.expectPoweredOff(first, "ceph-1")
            try #require(first.console.contains("HEALTH_OK") && first.console.contains(done),
                         "no healthy cluster; console tail: \(first.console.suffix(4000))")
            #expect(!first.console.contains(dying), "a fault point is still set")
            #expect(first.console.contains("mon [v2:\(address):3300"), "the monitor is not on the seed's address")
            #expect(first.console.contains("\(Self.defaultTarget) with 1 disk(s) as in the seed"), "the iscsi step redid work; console tail: \(first.console.suffix(4000))")
            #expect(!first.console.contains("Failed to start"), "a unit failed: \(E2E.failedUnits(first.console))")
            env.note("ceph boot 3: handoff at \(first.markerTimes[E2E.handoffMarker].map { Int($0) } ?? -1) s, HEALTH_OK at \(first.markerTimes[done].map { Int($0) } ?? -1) s")

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

            // Fourth boot, from a stick that does not power off: systemd starts the daemons from their units, the
            // Provisioner changes nothing, and the clients on the node's network use S3 and iSCSI while it is up.
            // Its stick also has the open-iscsi test unit (openISCSIProgram); the image ships open-iscsi with no
            // initiator name of its own: each node makes one when iscsid first starts.
            let again = try seededStick("ceph-2", seed: seed, profile: .full, kernelArguments: "")
            let shippedName = try again.rootAFile("/etc/iscsi/initiatorname.iscsi")
            #expect(shippedName == "GenerateName=yes\n", "the image's /etc/iscsi/initiatorname.iscsi: \(shippedName ?? "missing")")
            try again.addTestUnit("aquarium-e2e-open-iscsi", program: Self.openISCSIProgram, unit: Self.openISCSIUnit)
            let consoleLog = try env.directory("logs") + "/ceph-2.console.log"
            let script = dir + "/s3.py"
            try Self.s3Script.write(toFile: script, atomically: true, encoding: .utf8)
            let payload = "aquarium end to end \(UUID().uuidString)"
            var s3: Result<String, Error> = .failure(MissingCapability(what: "the S3 request (the Provisioner never finished)"))
            var lun: Result<ISCSIProbe, Error> = .failure(MissingCapability(what: "the iSCSI probe (the Provisioner never finished)"))
            var guestInitiator = ""
            let second = try env.boot("ceph-2", stick: again, disks: disks, timeout: 900, stopMarkers: [done], network: net) { _ in
                // First the node's own open-iscsi (its unit starts when the Provisioner has ended), then the host's
                // clients. Bounded: the probes run while the boot loop waits, before its timeout check, and boto3 retries.
                guestInitiator = Self.waitForLine(Self.openISCSIMarker, ending: ["passed: ", "failed: "], in: consoleLog, seconds: 420)
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
            // open-iscsi inside the node: refused with a wrong password, then logged in with the node's credentials
            // under an initiator name made on the node, and the RBD image holds the bytes it wrote.
            let guest = guestInitiator.split(whereSeparator: \.isNewline).map(String.init)
            let passed = guest.first { $0.hasPrefix("passed: ") } ?? ""
            #expect(passed.contains("(\(64 << 20) bytes) through \(address):3260"), "open-iscsi in the node: \(guest)")
            #expect(guest.contains("a wrong CHAP password is refused (iscsiadm exit 24)"), "open-iscsi in the node: \(guest)")
            let initiatorName = guest.first { $0.hasPrefix("initiator ") }.map { String($0.dropFirst("initiator ".count)) } ?? ""
            #expect(initiatorName.hasPrefix("iqn.1993-08.org.debian:01:") && initiatorName.count > 30,
                    "the node's initiator name was not made on the node: \(guest)")
            let digest = passed.split(separator: " ").last.map(String.init) ?? "none"
            #expect(probe.sha256At8MiB == digest, "rbd/vol1 at 8 MiB does not hold the bytes open-iscsi wrote in the node (\(digest)): \(probe.sha256At8MiB)")
            env.note("ceph boot 4: open-iscsi in the node as \(initiatorName): \(passed.prefix(60))")
            env.note("ceph boot 4: handoff at \(second.markerTimes[E2E.handoffMarker].map { Int($0) } ?? -1) s, provisioner done at \(second.markerTimes[done].map { Int($0) } ?? -1) s")

            // Per-initiator ACLs and mutual CHAP, switched on in the running cluster: a second disk, initiator A with
            // vol1, initiator B with vol2 and mutual CHAP. Fifth boot (powers off): the switch, then the new
            // credentials are read from the disk; sixth boot: the initiators.
            let aclServices = Self.cephServices(iscsi: """
                      disks:
                        - {name: vol1, size: 64MiB}
                        - {name: vol2, size: 16MiB}
                      clients:
                        - {iqn: \(Self.initiatorA), disks: [vol1]}
                        - {iqn: \(Self.initiatorB), disks: [vol2], mutual_chap: true}
                """)
            let aclSeed = E2E.seed(hostname: "e2e-ceph", filesystem: "ext4", services: aclServices, network: network)
            let switchStick = try seededStick("ceph-acl", seed: aclSeed, profile: .full, kernelArguments: "aquarium.poweroff")
            let switched = try env.boot("ceph-acl", stick: switchStick, disks: disks, timeout: 900, watchMarkers: [done], network: net)
            E2E.expectPoweredOff(switched, "ceph-acl")
            #expect(switched.console.contains("]: done: changed, HEALTH_OK"), "console tail: \(switched.console.suffix(4000))")
            for line in ["took rbd/vol1 out of the target while its access changes", "turned on per-initiator ACLs",
                         "allowed initiator \(Self.initiatorA)", "set the CHAP credentials of \(Self.initiatorB) (mutual)",
                         "gave \(Self.initiatorB) rbd/vol2"] {
                #expect(switched.console.contains(line), "the iscsi step did not say '\(line)'; console tail: \(switched.console.suffix(4000))")
            }
            let acl = try JSONDecoder().decode(ISCSIKeys.self, from: Data(try stateFile(ssd, "state/aquarium/iscsi.json").utf8))
            let (a, b) = (try acl.client(Self.initiatorA), try acl.client(Self.initiatorB))
            let mutualUser = try #require(acl.mutualUsername), mutualPassword = try #require(acl.mutualPassword)
            let secrets = [a.password, b.password, mutualPassword]
            #expect(Set(secrets).count == 3 && !secrets.contains(iscsi.password), "the credentials are not each their own")
            #expect(secrets.allSatisfy { !switched.console.contains($0) }, "the console shows a CHAP password")
            let aclEvents = try stateFile(ssd, "state/aquarium/events.jsonl")
            #expect(secrets.allSatisfy { !aclEvents.contains($0) }, "the events hold a CHAP password")

            let aclStick = try seededStick("ceph-acl-2", seed: aclSeed, profile: .full, kernelArguments: "")
            var aclProbe: Result<ISCSIACLProbe, Error> = .failure(MissingCapability(what: "the ACL probe (the Provisioner never finished)"))
            let last = try env.boot("ceph-acl-2", stick: aclStick, disks: disks, timeout: 900, stopMarkers: [done], network: net) { _ in
                aclProbe = Result {
                    try Self.iscsiACLProbe(net, address: address, keys: acl, a: a, b: b, mutual: (mutualUser, mutualPassword),
                                           oldPassword: iscsi.password, directory: dir)
                }
            }
            #expect(last.ending == .marker(done), "console tail: \(last.console.suffix(3000))")
            #expect(last.console.contains("]: done: nothing changed, HEALTH_OK"), "console tail: \(last.console.suffix(4000))")
            let acls = try aclProbe.get()
            #expect(acls.patternKeptThroughSwitch, "LUN 0 of initiator A does not hold what was written before the switch")
            #expect(acls.aWritesAndReads, "initiator A could not write and read its LUN")
            #expect(acls.aDoesNotSeeVol2, "initiator A reached LUN 1 (vol2, initiator B's)")
            #expect(acls.unlistedRefused, "an initiator in no ACL logged in with A's credentials")
            #expect(acls.oldCredentialsRefused, "the target's former credentials still log in")
            #expect(acls.bWithMutual, "initiator B, checking the target, could not read LUN 1")
            #expect(acls.bWrongTargetSecretRefused, "initiator B accepted a target that does not know the mutual secret it expects")
            #expect(acls.bDoesNotSeeVol1, "initiator B reached LUN 0 (vol1, initiator A's)")
            env.note("ceph boot 6: with mutual CHAP configured, an initiator that does not check the target is \(acls.bOneWayLetIn ? "let in (LIO leaves mutual CHAP to the initiator)" : "refused")")
        }
    }

    struct ISCSIACLProbe {
        var patternKeptThroughSwitch: Bool
        var aWritesAndReads: Bool
        var aDoesNotSeeVol2: Bool
        var unlistedRefused: Bool
        var oldCredentialsRefused: Bool
        var bWithMutual: Bool
        var bWrongTargetSecretRefused: Bool
        var bDoesNotSeeVol1: Bool
        var bOneWayLetIn: Bool
    }

    /// Initiators against the target with per-initiator ACLs. A through qemu-io (its password in a 0600 file QEMU
    /// reads as a secret object, its initiator name set): LUN 0 still holds the 0x5a written before the switch, 1 MiB
    /// of 0xa5 written after it reads back, LUN 1 is not there for it; the same credentials from initiator C, and the
    /// target's former credentials from A, are refused. B through libiscsi's iscsi-inq, checking the target with the
    /// mutual credentials (libiscsi's environment variables): INQUIRY of LUN 1 answers with a connected device, of LUN
    /// 0 with none (peripheral qualifier 3), and a wrong target secret fails the login.
    static func iscsiACLProbe(_ net: GuestNetwork, address: String, keys: ISCSIKeys, a: ISCSIKeys.Client, b: ISCSIKeys.Client,
                              mutual: (user: String, password: String), oldPassword: String,
                              directory: String) throws -> ISCSIACLProbe {
        func qemuIO(_ initiator: String, user: String, password: String, lun: Int, _ commands: [String]) throws -> CommandResult {
            let secret = directory + "/chap-\(UUID().uuidString)"
            _ = FileManager.default.createFile(atPath: secret, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600])
            defer { try? FileManager.default.removeItem(atPath: secret) }
            let options = "driver=iscsi,transport=tcp,portal=\(address):3260,target=\(keys.target),lun=\(lun),"
                + "initiator-name=\(initiator),user=\(user),password-secret=chap"
            return try net.command("qemu-io", ["--object", "secret,id=chap,file=\(secret)", "--image-opts", options]
                                   + commands.flatMap { ["-c", $0] })
                .timeLimited(iscsiProbeLimit).run(acceptedStatuses: Set(0...255))
        }
        func inquiry(lun: Int, targetPassword: String?) throws -> CommandResult {
            var environment = ["LIBISCSI_CHAP_USERNAME": b.username, "LIBISCSI_CHAP_PASSWORD": b.password]
            if let targetPassword {
                environment["LIBISCSI_CHAP_TARGET_USERNAME"] = mutual.user
                environment["LIBISCSI_CHAP_TARGET_PASSWORD"] = targetPassword
            }
            return try net.command("iscsi-inq", ["-i", initiatorB, "iscsi://\(address)/\(keys.target)/\(lun)"], environment: environment)
                .timeLimited(iscsiProbeLimit).run(acceptedStatuses: Set(0...255))
        }
        func show(_ name: String, _ result: CommandResult) {
            print("e2e: \(name): status \(result.status): \(result.output.suffix(400)) \(result.errorOutput.suffix(400))")
        }
        let kept = try qemuIO(initiatorA, user: a.username, password: a.password, lun: 0, ["read -P 0x5a 0 1M"])
        let io = try qemuIO(initiatorA, user: a.username, password: a.password, lun: 0,
                            ["write -P 0xa5 1M 1M", "read -P 0xa5 1M 1M"])
        let other = try qemuIO(initiatorA, user: a.username, password: a.password, lun: 1, ["read 0 512"])
        let unlisted = try qemuIO(initiatorC, user: a.username, password: a.password, lun: 0, ["read 0 512"])
        let old = try qemuIO(initiatorA, user: keys.username, password: oldPassword, lun: 0, ["read 0 512"])
        let withMutual = try inquiry(lun: 1, targetPassword: mutual.password)
        let wrongTarget = try inquiry(lun: 1, targetPassword: "wrong" + String(mutual.password.dropFirst(5)))
        let vol1 = try inquiry(lun: 0, targetPassword: mutual.password)
        let oneWay = try inquiry(lun: 1, targetPassword: nil)
        // INQUIRY of a LUN the initiator has no mapping for still answers, with peripheral qualifier 3 ("not connected").
        func connected(_ result: CommandResult) -> Bool {
            result.status == 0 && result.output.contains("Peripheral Qualifier:CONNECTED")
        }
        func readOK(_ result: CommandResult) -> Bool {
            result.status == 0 && result.output.contains("read 1048576/1048576") && !result.output.contains("verification failed")
        }
        for (name, result) in [("A keeps", kept), ("A writes", io), ("A LUN 1", other), ("C", unlisted), ("old", old),
                               ("B mutual", withMutual), ("B wrong target", wrongTarget), ("B LUN 0", vol1), ("B one-way", oneWay)] {
            show(name, result)
        }
        return ISCSIACLProbe(
            patternKeptThroughSwitch: readOK(kept), aWritesAndReads: readOK(io), aDoesNotSeeVol2: other.status != 0,
            unlistedRefused: unlisted.status != 0, oldCredentialsRefused: old.status != 0,
            bWithMutual: connected(withMutual), bWrongTargetSecretRefused: wrongTarget.status != 0,
            bDoesNotSeeVol1: !connected(vol1), bOneWayLetIn: connected(oneWay))
    }

    struct ISCSIProbe {
        var wrongPasswordRefused: Bool
        var writtenAndReadBack: Bool
        var imageHoldsPattern: Bool
        var imageSize: Int
        /// The SHA-256 of rbd/vol1's bytes from 8 MiB to 9 MiB (where open-iscsi in the node wrote).
        var sha256At8MiB: String
    }

    /// The lines of `path` (the console) that start with `marker`, without it, once one of them starts with one of
    /// `ending`, or when `seconds` have passed.
    static func waitForLine(_ marker: String, ending: [String], in path: String, seconds: Double) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let lines = VirtualMachineRunner.readConsole(path).split(whereSeparator: \.isNewline).compactMap { line -> String? in
                guard let range = line.range(of: marker) else { return nil }
                return String(line[range.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            if lines.contains(where: { line in ending.contains { line.hasPrefix($0) } }) || Date() >= deadline {
                return lines.joined(separator: "\n")
            }
            Thread.sleep(forTimeInterval: 2)
        }
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
            imageSize: image?.count ?? -1,
            sha256At8MiB: image.map { $0.count >= 9 << 20 ? SHA256.hash(data: $0[(8 << 20)..<(9 << 20)]).map { String(format: "%02x", $0) }.joined() : "short" } ?? "none")
    }
}
