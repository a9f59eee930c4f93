import Exec
import Foundation
import ImageBuilder
import Provisioner
import Logging
import Testing
import TestSupport

@Suite("Locked mode: a signed UKI carrying the root hash, the root under dm-verity")
struct LockedBootTests {
    struct LayoutCase: Sendable, CustomStringConvertible {
        var stub: UInt64
        var sizes: [UInt64]
        var addresses: [UInt64]
        var description: String { "stub \(stub), sizes \(sizes)" }
    }

    @Test("the UKI's sections follow the stub, page aligned, each after the previous", arguments: [
        LayoutCase(stub: 0x1A000, sizes: [40, 300, 8_222_656, 36_322_890], addresses: [0x1A000, 0x1B000, 0x1C000, 0x1C000 + 0x7D8000]),
        LayoutCase(stub: 0x19F01, sizes: [1, 0x1000, 0x1001, 1], addresses: [0x1A000, 0x1B000, 0x1C000, 0x1E000]),
    ])
    func layout(_ c: LayoutCase) {
        let (stub, sizes, addresses) = (c.stub, c.sizes, c.addresses)
        let names = [".osrel", ".cmdline", ".linux", ".initrd"]
        let placed = UnifiedKernelImage.layout(stubSizeOfImage: stub, sections: zip(names, sizes).map { ($0, $1) })
        #expect(placed.map(\.name) == names)
        #expect(placed.map(\.address) == addresses)
    }

    @Test("the signed command line: verified root first, the description's line, the verity parameters, slot, release, panic=60")
    func commandLine() throws {
        let verity = VerityRoot(rootHash: String(repeating: "ab", count: 32), hashOffset: 1_073_741_824, hashBytes: 8_650_752)
        let partition = try #require(UUID(uuidString: "D0301F35-04E9-8038-8C8F-95F1EAC2E106"))
        let line = StickContent.lockedCommandLine(verity: verity, rootPartitionGUID: partition, commandLine: "ro console=ttyS0,115200",
                                                  release: "v2")
        #expect(line == "root=/dev/mapper/aquarium-root ro console=ttyS0,115200 aquarium.verity=\(verity.rootHash) "
                + "aquarium.verity.partuuid=d0301f35-04e9-8038-8c8f-95f1eac2e106 aquarium.verity.offset=1073741824 "
                + "aquarium.slot=a aquarium.release=v2 panic=60")
        #expect(!line.contains("PARTUUID="), "the root is the verified device, never the raw partition")
    }

    @Test("sbsign runs with the clock frozen at the epoch, so a slow signing cannot change the signature's time",
          .requires(root: false, programs: ["faketime", "date", "sh"]))
    func frozenClock() throws {
        #expect(UnifiedKernelImage.frozenTime(1_700_000_000) == "2023-11-14 22:13:20")
        #expect(UnifiedKernelImage.frozenTime(0) == "1970-01-01 00:00:00")
        let run = try Command("faketime", ["-f", UnifiedKernelImage.frozenTime(1_700_000_000), "sh", "-c", "date +%s; sleep 1.2; date +%s"],
                              environment: ["TZ": "UTC"]).run()
        #expect(run.output == "1700000000\n1700000000\n", "\(run.output)")
    }

    @Test("the space reserved after the filesystem holds the tree veritysetup makes", .requires(root: false, programs: ["veritysetup"]),
          arguments: [UInt64(4096), 1 << 20, 64 << 20, 513 << 20])
    func reserved(dataBytes: UInt64) throws {
        try withTemporaryDirectory { directory in
            let data = directory + "/data"
            #expect(FileManager.default.createFile(atPath: data, contents: nil) && truncate(data, off_t(dataBytes)) == 0)
            let out = try Command("veritysetup", ["format", data, directory + "/hash"]).run().output
            let line = try #require(out.split(separator: "\n").first { $0.hasPrefix("Hash device size:") })
            let size = try #require(UInt64(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces).split(separator: " ")[0]))
            #expect(size <= VerityRoot.reservedBytes(forDataBytes: dataBytes), "veritysetup: \(size)")
            #expect(VerityRoot.reservedBytes(forDataBytes: dataBytes) <= size + 2 * 4096, "not much more than needed")
        }
    }

    @Test("a locked image: only the signed UKI on the ESP; its root hash verifies the root; a changed byte does not; reproducible",
          .requires(root: false, programs: ImageFixtures.programs + ImageFixtures.lockedPrograms))
    func assembled() throws {
        try withTemporaryDirectory { directory in
            let keys = try BootSigningKeys.create(in: directory + "/keys", name: "test", days: 30, logger: Logger(label: "test"))
            let signing = SigningIdentity(key: keys.key, certificate: keys.certificate)
            let result = try ImageFixtures.assemble(in: directory, tag: "one", locked: signing)
            let image = result.artifacts.image
            let esp = try #require(result.assembly.partition(.esp))
            let drive = "\(image)@@\(esp.offsetBytes)"
            let environment = ["MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null"]
            let listing = try Command("mdir", ["-/", "-b", "-i", drive, "::/"], environment: environment).run().output
            let files = listing.split(separator: "\n").map(String.init).filter { !$0.hasSuffix("/") }
            #expect(files == ["::/EFI/BOOT/BOOTX64.EFI"], "only the UKI: no loader entries, kernel or command line to change: \(listing)")
            let uki = directory + "/BOOTX64.EFI"
            try Command("mcopy", ["-i", drive, "::/EFI/BOOT/BOOTX64.EFI", uki], environment: environment).run()
            let verified = try Command("sbverify", ["--cert", keys.certificate, uki]).run(acceptedStatuses: Set(0...255))
            #expect(verified.status == 0, "\(verified.output) \(verified.errorOutput)")

            // The command line inside it names the root hash and offset; veritysetup agrees with the partition.
            try Command("objcopy", ["-O", "binary", "--only-section=.cmdline", uki, directory + "/cmdline"]).run()
            let line = String(decoding: try Data(contentsOf: URL(fileURLWithPath: directory + "/cmdline")), as: UTF8.self)
            let verity = try #require(result.assembly.verity)
            #expect(line.hasPrefix("root=/dev/mapper/aquarium-root ro console=ttyS0,115200 aquarium.verity=\(verity.rootHash) "), "\(line)")
            #expect(line.contains("aquarium.verity.offset=\(verity.hashOffset) "))
            let linux = directory + "/linux"
            try Command("objcopy", ["-O", "binary", "--only-section=.linux", uki, linux]).run()
            #expect(try Data(contentsOf: URL(fileURLWithPath: linux)) == Data(contentsOf: URL(fileURLWithPath: directory + "/root-one/boot/vmlinuz")))
            let root = try #require(result.assembly.partition(.root))
            #expect(root.sizeBytes >= verity.hashOffset + verity.hashBytes)
            let partition = directory + "/root.partition"
            try ImageFixtures.extract(image, offset: root.offsetBytes, count: root.sizeBytes, to: partition)
            let good = try Command("veritysetup", ["verify", partition, partition, verity.rootHash, "--hash-offset=\(verity.hashOffset)"])
                .run(acceptedStatuses: Set(0...255))
            #expect(good.status == 0, "\(good.output) \(good.errorOutput)")
            // One byte of the filesystem changed: the tree no longer matches.
            let fd = open(partition, O_RDWR)
            var byte: UInt8 = 0
            #expect(pread(fd, &byte, 1, 1024 + 100) == 1)
            byte ^= 0xFF
            #expect(pwrite(fd, &byte, 1, 1024 + 100) == 1)
            close(fd)
            let bad = try Command("veritysetup", ["verify", partition, partition, verity.rootHash, "--hash-offset=\(verity.hashOffset)"])
                .run(acceptedStatuses: Set(0...255))
            #expect(bad.status != 0, "a changed byte must not verify")

            // An update of a locked stick is refused, saying why and what to do; nothing is written.
            let before = try Data(contentsOf: URL(fileURLWithPath: image))
            let stick = try BootStick.open(image)
            let updater = SlotUpdater(stick: stick, runningRoot: try #require(stick.slots[.a]).uuid,
                                      events: EventLog(path: directory + "/events.jsonl"), workDirectory: directory + "/work",
                                      logger: Logger(label: "test"))
            for attempt in [{ _ = try updater.install(image: image) }, { _ = try updater.rollback() }] {
                let refusal = #expect(throws: ProvisionError.self) { try attempt() }
                #expect(refusal?.exitCode == .refused && refusal?.description.contains("is a locked stick") == true
                        && refusal?.description.contains("reflash") == true, "\(String(describing: refusal))")
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: image)) == before, "nothing written")

            // The same inputs, epoch and key: the same bytes, signature included.
            let again = try ImageFixtures.assemble(in: directory, tag: "two", locked: signing)
            #expect(try Data(contentsOf: URL(fileURLWithPath: image)) == Data(contentsOf: URL(fileURLWithPath: again.artifacts.image)))
        }
    }

    @Test("a certificate that is not the key's is refused before the build", .requires(root: false, programs: ["openssl"]))
    func mismatchedPair() throws {
        try withTemporaryDirectory { directory in
            let one = try BootSigningKeys.create(in: directory + "/one", name: "one", days: 30, logger: Logger(label: "test"))
            let two = try BootSigningKeys.create(in: directory + "/two", name: "two", days: 30, logger: Logger(label: "test"))
            let error = #expect(throws: ImageError.self) {
                try SigningIdentity(key: one.key, certificate: two.certificate).validate(logger: Logger(label: "test"))
            }
            #expect(error?.message.contains("is not the certificate of") == true, "\(String(describing: error))")
            let missing = #expect(throws: ImageError.self) {
                try SigningIdentity(key: directory + "/none.key", certificate: one.certificate).validate(logger: Logger(label: "test"))
            }
            #expect(missing?.message.contains("keys init") == true)
            try SigningIdentity(key: one.key, certificate: one.certificate).validate(logger: Logger(label: "test"))
        }
    }
}
