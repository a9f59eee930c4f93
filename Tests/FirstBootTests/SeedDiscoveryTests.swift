import Exec
@testable import FirstBoot
import Foundation
import Seed
import Testing
import TestSupport

@Suite("Seed discovery")
struct SeedDiscoveryTests {
    @Test("kernel command line", arguments: [
        ("quiet aquarium.seed=/run/seed.yaml", SeedLocation.path("/run/seed.yaml")),
        ("aquarium.seed=LABEL=AQUASEED:/seeds/a.yaml ro", .label("AQUASEED", "/seeds/a.yaml")),
        ("aquarium.seed=LABEL=MY:seed.yaml", .label("MY", "seed.yaml")),
        ("aquarium.seed=/a.yaml aquarium.seed=/b.yaml", .path("/b.yaml")),
        ("root=/dev/sda1 \"aquarium.seed=/with space/seed.yaml\"\n", .path("/with space/seed.yaml")),
    ] as [(String, SeedLocation)])
    func commandLine(_ text: String, _ expected: SeedLocation) {
        #expect(SeedDiscovery.parseCommandLine(text) == expected)
    }

    @Test("kernel command lines without a usable seed argument", arguments: [
        "", "quiet splash", "aquarium.seed=", "aquarium.seed=LABEL=NOPATH", "aquarium.seed=LABEL=:x", "xaquarium.seed=/a",
    ])
    func noSeedArgument(_ text: String) {
        #expect(SeedDiscovery.parseCommandLine(text) == nil)
    }

    @Test("per-node file order: DMI serial, then each NIC's MAC, then seed.yaml")
    func candidateOrder() {
        #expect(SeedDiscovery.candidates(dmiSerial: "CZ1234", macs: ["52:54:00:AA:BB:02", "52:54:00:aa:bb:01"])
            == ["seeds/CZ1234.yaml", "seeds/52:54:00:aa:bb:01.yaml", "seeds/52-54-00-aa-bb-01.yaml",
                "seeds/52:54:00:aa:bb:02.yaml", "seeds/52-54-00-aa-bb-02.yaml", "seed.yaml"])
        #expect(SeedDiscovery.candidates(dmiSerial: nil, macs: []) == ["seed.yaml"])
    }

    @Test("placeholder and unsafe DMI serials are not used", arguments: [
        ("To Be Filled By O.E.M.", nil), ("  ", nil), ("0", nil), ("../etc/passwd", nil), ("a/b", nil),
        ("System Serial Number", nil), (" CZ1234 \n", "CZ1234"),
    ] as [(String, String?)])
    func serials(_ raw: String, _ expected: String?) {
        #expect(SeedDiscovery.usableSerial(raw) == expected)
    }

    @Test("the most specific seed file on a volume wins")
    func precedence() throws {
        try withTemporaryDirectory { volume in
            let net = volume + "/net"
            for (nic, mac) in [("lo", "00:00:00:00:00:00"), ("eth0", "52:54:00:AA:BB:01"), ("eth1", "52:54:00:aa:bb:02")] {
                try FileManager.default.createDirectory(atPath: "\(net)/\(nic)", withIntermediateDirectories: true)
                try Data((mac + "\n").utf8).write(to: URL(fileURLWithPath: "\(net)/\(nic)/address"))
            }
            let macs = SeedDiscovery.macAddresses(directory: net)
            #expect(macs == ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"])
            _ = try Harness.writeSeed(volume, "shared")
            #expect(SeedDiscovery.choose(in: volume, dmiSerial: "CZ1", macs: macs) == volume + "/seed.yaml")
            _ = try Harness.writeSeed(volume, "by mac", name: "seeds/52:54:00:aa:bb:02.yaml")
            #expect(SeedDiscovery.choose(in: volume, dmiSerial: "CZ1", macs: macs) == volume + "/seeds/52:54:00:aa:bb:02.yaml")
            _ = try Harness.writeSeed(volume, "by serial", name: "seeds/CZ1.yaml")
            #expect(SeedDiscovery.choose(in: volume, dmiSerial: "CZ1", macs: macs) == volume + "/seeds/CZ1.yaml")
            #expect(SeedDiscovery.choose(in: volume + "/nothing", dmiSerial: nil, macs: []) == nil)
        }
    }

    @Test("trusted seed keys: signed seed accepted, unsigned and tampered seeds refused (exit 3)")
    func signatures() throws {
        try withTemporaryDirectory { directory in
            let root = directory + "/root"
            let keys = root + "/etc/aquarium/trusted-seed-keys"
            try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
            try SeedSignature.writeKeyPair(privateKeyPath: directory + "/signer.key", publicKeyPath: keys + "/signer.pub")
            let inventory = directory + "/inventory.json"
            try Data(#"{"disks":[{"name":"sda","sizeBytes":480000000000}]}"#.utf8).write(to: URL(fileURLWithPath: inventory))
            let seed = try Harness.writeSeed(directory, Harness.seedText())
            func plan() throws -> Harness.Run {
                try Harness.tool(["plan", "--seed", seed, "--inventory", inventory, "--root", root] + Harness.hermetic)
            }
            let unsigned = try plan()
            #expect(unsigned.status == 3)
            #expect(unsigned.errorOutput.contains("has no signature"), "\(unsigned.errorOutput)")

            _ = try SeedSignature.signFile(path: seed, privateKey: try SeedSignature.readPrivateKey(path: directory + "/signer.key"))
            let signed = try plan()
            #expect(signed.status == 0, "\(signed.errorOutput)")
            #expect(signed.errorOutput.contains("signature verified"))

            try Data((Harness.seedText() + "# changed after signing\n").utf8).write(to: URL(fileURLWithPath: seed))
            let tampered = try plan()
            #expect(tampered.status == 3)
            #expect(tampered.errorOutput.contains("does not verify"), "\(tampered.errorOutput)")

            // Without trusted keys in the image, any valid seed is accepted.
            try FileManager.default.removeItem(atPath: keys)
            #expect(try plan().status == 0)
        }
    }

    @Test("a seed that fails validation or verification is still reported back to its volume (named by DMI serial)")
    func failureReports() throws {
        try withTemporaryDirectory { directory in
            let volume = directory + "/volume"
            let serial = directory + "/product_serial"
            try Data("CZTEST01\n".utf8).write(to: URL(fileURLWithPath: serial))
            _ = try Harness.writeSeed(volume, "version: 1\nhost: {hostname: NOT_VALID}\n")
            let root = directory + "/root"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let invalid = try Harness.tool(["apply", "--seed", volume, "--root", root, "--yes", "--no-handoff",
                                            "--only-device", "nonexistent0", "--dmi-serial-file", serial,
                                            "--cmdline", "/nonexistent/cmdline", "--net-dir", "/nonexistent/net"])
            #expect(invalid.status == 2)
            let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf:
                URL(fileURLWithPath: volume + "/reports/CZTEST01.json"))) as? [String: Any])
            #expect(report["outcome"] as? String == "failed")
            #expect(report["exitCode"] as? Int == 2)
            #expect((report["message"] as? String)?.contains("hostname") == true)

            // Trusted keys in the image and an unsigned seed: refused (3), reported.
            let keys = root + "/etc/aquarium/trusted-seed-keys"
            try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
            try SeedSignature.writeKeyPair(privateKeyPath: directory + "/k.key", publicKeyPath: keys + "/k.pub")
            _ = try Harness.writeSeed(volume, Harness.seedText())
            let unsigned = try Harness.tool(["apply", "--seed", volume, "--root", root, "--yes", "--no-handoff",
                                             "--only-device", "nonexistent0", "--dmi-serial-file", serial,
                                             "--cmdline", "/nonexistent/cmdline", "--net-dir", "/nonexistent/net"])
            #expect(unsigned.status == 3)
            let text = try String(contentsOfFile: volume + "/reports/CZTEST01.txt", encoding: .utf8)
            #expect(text.contains("refused (exit 3)"))
            #expect(text.contains("has no signature"))
        }
    }

    @Test("the copy of a FAT seed volume's seed is root's only (0700 directories, 0600 files): it holds the join key",
          .requires(programs: ["mkfs.vfat", "mcopy", "mtype", "mmd"]))
    func seedCopyIsPrivate() throws {
        try withTemporaryDirectory { work in
            let seed = try Harness.writeSeed(work, Harness.seedText(secretToken: true), name: "node.yaml")
            let prepare: (String) throws -> Void = { file in
                try Command("mkfs.vfat", ["-n", "AQUASEED", file]).run()
                try Command("mmd", ["-i", file, "::seeds"]).run()
                try Command("mcopy", ["-i", file, seed, "::seeds/52-54-00-12-34-57.yaml"]).run()
            }
            try LoopDevice.with(.init(sizeBytes: 64 * Harness.mib), prepare: prepare) { stick in
                let net = work + "/net/eth0"
                try FileManager.default.createDirectory(atPath: net, withIntermediateDirectories: true)
                try Data("52:54:00:12:34:57\n".utf8).write(to: URL(fileURLWithPath: net + "/address"))
                try Self.findSeed(stick: stick, work: work, dmiSerialPath: "/nonexistent/serial", netDirectory: work + "/net") { loaded, mounts in
                #expect(loaded.path == "LABEL=AQUASEED:/seeds/52-54-00-12-34-57.yaml")
                let copy = try #require(mounts.first)
                func mode(_ path: String) throws -> Int {
                    try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
                }
                #expect(try mode(copy) == 0o700)
                #expect(try mode(copy + "/seeds") == 0o700)
                #expect(try mode(copy + "/seeds/52-54-00-12-34-57.yaml") == 0o600)
                }
            }
        }
    }

    /// mtools on a FAT image file, as FirstBoot runs them on the stick.
    /// Finds the seed as `apply` does, on the loop device `stick` only (no kernel command line), and hands `body` the
    /// seed and the temporary copies of the volume, removed afterwards.
    static func findSeed(stick: LoopDevice, work: String, dmiSerialPath: String, netDirectory: String,
                         _ body: (LoadedSeed, [String]) throws -> Void) throws {
        var finder = SeedFinder()
        finder.commandLinePath = "/nonexistent/cmdline"
        finder.dmiSerialPath = dmiSerialPath
        finder.netDirectory = netDirectory
        finder.root = work
        finder.onlyDevices = [stick.name]
        var mounts: [String] = []
        var sink = ReportSink()
        defer { for directory in mounts { try? FileManager.default.removeItem(atPath: directory) } }
        let loaded = try finder.find(explicitPath: nil, mounts: &mounts, sink: &sink)
        try body(loaded, mounts)
    }

    /// A 16 MiB FAT image file labelled AQUASEED, with no files.
    static func emptySeedVolume(in work: String) throws -> String {
        let volume = work + "/seed.img"
        try Command("truncate", ["-s", "16M", volume]).run()
        try Command("mkfs.vfat", ["-n", "AQUASEED", volume]).run()
        return volume
    }

    @discardableResult
    static func mtools(_ tool: String, _ arguments: [String]) throws -> CommandResult {
        try Command(tool, arguments, environment: ["MTOOLS_SKIP_CHECK": "1"]).run()
    }

    @Test("the seed volume is listed once: names match in any case and in directories; an empty volume gives no listing",
          .requires(programs: ["mkfs.vfat", "mcopy", "mmd", "mdir"]))
    func volumeListing() throws {
        try withTemporaryDirectory { work in
            let volume = try Self.emptySeedVolume(in: work)
            // mdir fails on a volume without files: then every candidate name is read, as before the listing.
            #expect(SeedFinder.listing(device: volume) == nil)
            let file = try Harness.writeSeed(work, Harness.seedText(), name: "node.yaml")
            try Self.mtools("mmd", ["-i", volume, "::SEEDS"])
            try Self.mtools("mcopy", ["-i", volume, file, "::SEEDS/AQ-NODE-7.YAML"])
            try Self.mtools("mcopy", ["-i", volume, file, "::seed.yaml"])
            try Self.mtools("mcopy", ["-i", volume, file, "::seed.yaml.sig"])
            let listing = try #require(SeedFinder.listing(device: volume))
            for name in ["seeds/AQ-NODE-7.yaml", "seeds/aq-node-7.yaml", "SEED.YAML", "seed.yaml.sig", "seeds/"] {
                #expect(SeedFinder.listed(name, in: listing), "\(name) should be listed in \(listing)")
            }
            for name in ["seeds/52-54-00-12-34-56.yaml", "aq-node-7.yaml", "seeds/seed.yaml", "seed.yml"] {
                #expect(!SeedFinder.listed(name, in: listing), "\(name) should not be listed in \(listing)")
            }
            // A name mtools may spell in another character set is read rather than skipped.
            #expect(SeedFinder.listed("seeds/nœud.yaml", in: listing))
        }
    }

    @Test("a per-node seed stored in capitals (a FAT short name) is found through the listing",
          .requires(programs: ["mkfs.vfat", "mcopy", "mtype", "mmd", "mdir"]))
    func seedInCapitals() throws {
        try withTemporaryDirectory { work in
            let seed = try Harness.writeSeed(work, Harness.seedText(hostname: "capitals"), name: "node.yaml")
            let shared = try Harness.writeSeed(work, Harness.seedText(hostname: "shared"), name: "shared.yaml")
            let prepare: (String) throws -> Void = { file in
                try Command("mkfs.vfat", ["-n", "AQUASEED", file]).run()
                try Self.mtools("mmd", ["-i", file, "::SEEDS"])
                try Self.mtools("mcopy", ["-i", file, seed, "::SEEDS/CZNODE42.YAM"])
                try Self.mtools("mcopy", ["-i", file, seed, "::SEEDS/CZNODE42.YAML"])
                try Self.mtools("mcopy", ["-i", file, shared, "::SEED.YAML"])
            }
            try LoopDevice.with(.init(sizeBytes: 64 * Harness.mib), prepare: prepare) { stick in
                let serial = work + "/serial"
                try Data("CZNODE42\n".utf8).write(to: URL(fileURLWithPath: serial))
                try Self.findSeed(stick: stick, work: work, dmiSerialPath: serial, netDirectory: "/nonexistent/net") { loaded, _ in
                    #expect(loaded.path == "LABEL=AQUASEED:/seeds/CZNODE42.yaml")
                    #expect(loaded.seed.host.hostname == "capitals")
                }
            }
        }
    }

    @Test("the report goes to the seed volume in one mtools run: reports/ made when missing, a rerun's report replaces it",
          .requires(programs: ["mkfs.vfat", "mcopy", "mtype", "mdir"]))
    func reportOnFATVolume() throws {
        try withTemporaryDirectory { work in
            let volume = try Self.emptySeedVolume(in: work)
            let first = ApplyReport(outcome: "failed", exitCode: 3, hostname: "node-9", message: "refused: first run")
            #expect(try first.write(fatDevice: volume, seed: nil) == ["\(volume):reports/node-9.txt", "\(volume):reports/node-9.json"])
            #expect(try Self.mtools("mtype", ["-i", volume, "::reports/node-9.txt"]).output.contains("refused: first run"))
            let second = ApplyReport(outcome: "success", exitCode: 0, hostname: "node-9", message: "second run")
            _ = try second.write(fatDevice: volume, seed: nil)
            let text = try Self.mtools("mtype", ["-i", volume, "::reports/node-9.txt"]).output
            #expect(text.contains("second run") && !text.contains("first run"))
            #expect(try Self.mtools("mtype", ["-i", volume, "::reports/node-9.json"]).output.contains("\"outcome\" : \"success\""))
            let files = try Self.mtools("mdir", ["-/", "-b", "-i", volume, "::"]).output.split(separator: "\n").sorted()
            #expect(files == ["::/reports/", "::/reports/node-9.json", "::/reports/node-9.txt"])
        }
    }

    @Test("AQUASEED volume: found by label, per-node seed, report written back without secrets; boot media never chosen",
          .requires(programs: ApplyDeviceTests.tools + ["mkfs.vfat", "mcopy", "mtype", "mmd"]))
    func seedVolume() throws {
        let token = "s3cr3t-join-token-4242"
        try withTemporaryDirectory { work in
            // A FAT seed volume, written with mtools like `aquarium-image seed inject` does.
            let seedText = Harness.seedText(secretToken: true).replacingOccurrences(of: "AQBsecretTOKENvalue==", with: token)
            let local = try Harness.writeSeed(work, seedText, name: "node.yaml")
            let shared = try Harness.writeSeed(work, Harness.seedText(hostname: "shared"), name: "shared.yaml")
            let prepare: (String) throws -> Void = { file in
                try Command("mkfs.vfat", ["-n", "AQUASEED", file]).run()
                try Command("mmd", ["-i", file, "::seeds"]).run()
                // FAT forbids ':' in names: the dash form of the MAC.
                try Command("mcopy", ["-i", file, local, "::seeds/52-54-00-12-34-56.yaml"]).run()
                try Command("mcopy", ["-i", file, shared, "::seed.yaml"]).run()
            }
            try LoopDevice.with(.init(sizeBytes: 64 * Harness.mib), prepare: prepare) { stick in
            try LoopDevice.with(.init(sizeBytes: Harness.gib)) { target in
            try Harness.withRoot { root in
                let net = work + "/net/eth0"
                try FileManager.default.createDirectory(atPath: net, withIntermediateDirectories: true)
                try Data("52:54:00:12:34:56\n".utf8).write(to: URL(fileURLWithPath: net + "/address"))

                let run = try Harness.tool(["apply", "--root", root, "--yes", "--no-handoff",
                                            "--only-device", stick.name, "--only-device", target.name,
                                            "--cmdline", "/nonexistent/cmdline", "--dmi-serial-file", "/nonexistent/serial",
                                            "--net-dir", work + "/net"])
                #expect(run.status == 0, "\(run.output)\n\(run.errorOutput)")
                #expect(run.output.contains("system disk: \(target.path)"))
                #expect(!run.output.contains(token) && !run.errorOutput.contains(token))
                // The stick is boot media: rejected, never touched.
                #expect(run.output.contains("rejected \(stick.path): is boot media"))
                try Harness.expectFinalState(device: target, root: root, sectorSize: 512)
                // The report is on the stick (the volume was unmounted again), without the token.
                let report = try Command("mtype", ["-i", stick.backingFile, "::reports/node1.txt"]).run().output
                #expect(report.contains("success"))
                #expect(report.contains("seeds/52-54-00-12-34-56.yaml"))
                let json = try Command("mtype", ["-i", stick.backingFile, "::reports/node1.json"]).run().output
                #expect(json.contains("\"outcome\" : \"success\""))
                #expect(!report.contains(token) && !json.contains(token))
                #expect(!Harness.mountpoints(under: "/tmp").contains { $0.contains("aquarium-seed-") })

                // The kernel command line can name a file on a labelled volume.
                StateMounts.unmount(root: root)
                let cmdline = work + "/cmdline"
                try Data("quiet aquarium.seed=LABEL=AQUASEED:/seeds/52-54-00-12-34-56.yaml\n".utf8).write(to: URL(fileURLWithPath: cmdline))
                let again = try Harness.tool(["apply", "--root", root, "--no-handoff", "--only-device", stick.name,
                                              "--only-device", target.name, "--cmdline", cmdline])
                #expect(again.status == 0, "\(again.errorOutput)")
                #expect(again.output.contains("(reuse)"))
            }
            }
            }
        }
    }
}
