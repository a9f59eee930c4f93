import Exec
import Foundation
import ImageBuilder
import Testing
import TestSupport

@Suite("keys init: the operator's boot signing key pair for the locked mode")
struct BootSigningKeysTests {
    static let efiBinary = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

    @Test("key, PEM and DER certificate that sign an EFI binary sbverify accepts; never replaced; bad names refused",
          .requires(root: false, programs: ["openssl", "sbsign", "sbverify"]))
    func initKeys() throws {
        try withTemporaryDirectory { directory in
            let keysDirectory = directory + "/keys"
            let made = try Products.run("aquarium-image", ["keys", "init", "--output", keysDirectory, "--name", "Rack 7 boot key"])
            #expect(made.status == 0, "\(made.output) \(made.errorOutput)")
            let keys = BootSigningKeys(directory: keysDirectory)
            #expect(made.output.contains("sha256 Fingerprint=") && made.output.contains(keys.enrolment), "\(made.output)")
            var info = stat()
            #expect(stat(keys.key, &info) == 0 && info.st_mode & 0o777 == 0o600, "the private key is 0600")
            #expect(stat(keysDirectory, &info) == 0 && info.st_mode & 0o777 == 0o700)
            #expect(try FileManager.default.contentsOfDirectory(atPath: keysDirectory).sorted()
                    == ["aquarium-db.cer", "aquarium-db.crt", "aquarium-db.key"], "no scratch directory left")

            let subject = try Command("openssl", ["x509", "-in", keys.certificate, "-noout", "-subject", "-ext", "extendedKeyUsage"]).run().output
            #expect(subject.contains("CN = Rack 7 boot key") && subject.contains("Code Signing"), "\(subject)")
            let fromKey = try Command("openssl", ["pkey", "-in", keys.key, "-pubout"]).run().output
            let fromCertificate = try Command("openssl", ["x509", "-in", keys.certificate, "-noout", "-pubkey"]).run().output
            #expect(fromKey == fromCertificate, "the certificate is the key's")
            #expect(try Command("openssl", ["pkey", "-in", keys.key, "-noout", "-text"]).run().output.contains("2048 bit"))
            let der = try Command("openssl", ["x509", "-in", keys.certificate, "-outform", "DER"]).run().standardOutput
            #expect(der == (try Data(contentsOf: URL(fileURLWithPath: keys.enrolment))), "the .cer is the same certificate in DER")

            // What the locked mode does with them: sbsign an EFI binary; sbverify accepts it with this certificate only.
            let signed = directory + "/signed.efi"
            try Command("sbsign", ["--key", keys.key, "--cert", keys.certificate, "--output", signed, Self.efiBinary]).run()
            let good = try Command("sbverify", ["--cert", keys.certificate, signed]).run(acceptedStatuses: Set(0...255))
            #expect(good.status == 0 && (good.output + good.errorOutput).contains("Signature verification OK"), "\(good.output) \(good.errorOutput)")
            let other = try Products.run("aquarium-image", ["keys", "init", "--output", directory + "/other"])
            #expect(other.status == 0)
            let wrong = try Command("sbverify", ["--cert", BootSigningKeys(directory: directory + "/other").certificate, signed])
                .run(acceptedStatuses: Set(0...255))
            #expect(wrong.status != 0, "another key's certificate must not verify it")

            // Never replaced: refused (exit 3), the files as they were.
            let before = try keys.all.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
            let again = try Products.run("aquarium-image", ["keys", "init", "--output", keysDirectory])
            #expect(again.status == 3 && again.errorOutput.contains("aquarium-db.key: exists"), "\(again.errorOutput)")
            #expect(try keys.all.map { try Data(contentsOf: URL(fileURLWithPath: $0)) } == before)
            // Only the certificate left from an earlier attempt: still refused, naming it.
            let partial = directory + "/partial"
            try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
            try Data("x".utf8).write(to: URL(fileURLWithPath: BootSigningKeys(directory: partial).enrolment))
            let refused = try Products.run("aquarium-image", ["keys", "init", "--output", partial])
            #expect(refused.status == 3 && refused.errorOutput.contains("aquarium-db.cer: exists"), "\(refused.errorOutput)")
            #expect(!FileManager.default.fileExists(atPath: BootSigningKeys(directory: partial).key))

            for (arguments, message) in [(["--name", "a/b"], "certificate name"), (["--name", ""], "certificate name"),
                                         (["--name", " padded"], "certificate name"), (["--days", "0"], "1-36500 days")] {
                let bad = try Products.run("aquarium-image", ["keys", "init", "--output", directory + "/bad"] + arguments)
                #expect(bad.status == 2 && bad.errorOutput.contains(message), "\(arguments): \(bad.errorOutput)")
                #expect(!FileManager.default.fileExists(atPath: directory + "/bad"), "nothing written for \(arguments)")
            }
        }
    }
}
