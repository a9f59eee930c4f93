import ArgumentParser
import CommandSupport
import Exec
import Foundation
import Logging

/// The operator's boot signing key pair for the locked mode: an RSA-2048 key and a self-signed X.509 certificate
/// (PEM for sbsign, DER for the firmware's `db`), made with the openssl command line tool.
public struct BootSigningKeys: Sendable, Equatable {
    public var key: String
    public var certificate: String
    /// The certificate in DER, the form firmware setup menus, KeyTool and `virt-fw-vars --add-db` enrol.
    public var enrolment: String

    public static let baseName = "aquarium-db"

    public init(directory: String) {
        key = directory + "/\(Self.baseName).key"
        certificate = directory + "/\(Self.baseName).crt"
        enrolment = directory + "/\(Self.baseName).cer"
    }

    public var all: [String] { [key, certificate, enrolment] }

    /// A certificate subject common name: printable ASCII without openssl's `-subj` separators, 1-64 characters.
    public static func validateName(_ name: String) throws(ImageError) {
        guard (1...64).contains(name.count), name.allSatisfy({ $0.isASCII && !$0.isNewline }),
              name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }),
              !name.contains(where: { "/=+\\\"".contains($0) }), name.first != " ", name.last != " " else {
            throw .invalid("--name '\(name)'", "a certificate name is 1-64 printable ASCII characters without / = + \\ \" or "
                           + "spaces at either end")
        }
    }

    /// Creates the three files in `directory` (made 0700 when new). Refused, with nothing written, when any of them
    /// exists: a second `keys init` must never replace the key that enrolled firmware trusts.
    public static func create(in directory: String, name: String, days: Int, logger: Logger) throws(ImageError) -> BootSigningKeys {
        try validateName(name)
        guard (1...36500).contains(days) else { throw .invalid("--days \(days)", "the certificate is valid 1-36500 days") }
        let keys = BootSigningKeys(directory: directory)
        if let existing = keys.all.first(where: { FileManager.default.fileExists(atPath: $0) }) {
            throw .refused(existing, "exists; `keys init` never replaces a signing key (firmware may already trust it): "
                           + "move the old files away or choose another --output")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw .failure(directory, "cannot create the directory: \(error)")
        }
        // Made in a private scratch directory beside the result, then linked into place (link(2) fails on an
        // existing name, so a file that appeared meanwhile is not replaced either).
        var template = Array((directory + "/.keys-init-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw .failure(directory, "cannot create a scratch directory: \(errnoText())") }
        let scratch = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let staged = BootSigningKeys(directory: scratch)
        try runTool(Command("openssl", ["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                                        "-days", String(days), "-subj", "/CN=\(name)/",
                                        "-addext", "extendedKeyUsage=codeSigning",
                                        "-keyout", staged.key, "-out", staged.certificate]),
                    subject: directory, what: "making the key and certificate (openssl req)", logger: logger)
        guard chmod(staged.key, 0o600) == 0 else { throw .failure(staged.key, "cannot set mode 0600: \(errnoText())") }
        try runTool(Command("openssl", ["x509", "-in", staged.certificate, "-outform", "DER", "-out", staged.enrolment]),
                    subject: directory, what: "writing the DER certificate (openssl x509)", logger: logger)
        var linked: [String] = []
        for (from, to) in zip(staged.all, keys.all) {
            guard link(from, to) == 0 else {
                let code = errno
                let reason = errnoText(code)
                for path in linked { unlink(path) }
                throw code == EEXIST
                    ? .refused(to, "appeared while the keys were made; nothing was written")
                    : .failure(to, "cannot link the new file into place: \(reason)")
            }
            linked.append(to)
        }
        return keys
    }

    /// `SHA256 Fingerprint=AB:CD:...` of the certificate, as firmware setup menus show it.
    public func fingerprint(logger: Logger) throws(ImageError) -> String {
        let run = try runTool(Command("openssl", ["x509", "-in", certificate, "-noout", "-fingerprint", "-sha256"]),
                              subject: certificate, what: "reading the certificate", logger: logger)
        return run.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// `aquarium-image keys`.
public struct KeysCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "The operator's boot signing keys (locked mode).",
        discussion: """
            Examples:
              aquarium-image keys init --output keys   # enrol keys/aquarium-db.cer
              k=keys/aquarium-db                       # then build signed with it:
              aquarium-image build --locked --signing-key $k.key --signing-cert $k.crt
            """,
        subcommands: [KeysInitCommand.self])

    public init() {}
}

/// `aquarium-image keys init`.
public struct KeysInitCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Make the boot signing key pair and the certificate to enrol in the firmware's db.",
        discussion: """
            Writes OUTPUT/aquarium-db.key (RSA-2048, mode 0600: keep it offline), OUTPUT/aquarium-db.crt (self-signed \
            X.509, PEM: what the build signs with beside the key) and OUTPUT/aquarium-db.cer (the same certificate in \
            DER: enrol it in each node's UEFI db, in the firmware's setup menu or with KeyTool). RSA-2048 because it \
            is what UEFI firmware must support for db entries. Existing files are never replaced (exit 3).

            Examples:
              aquarium-image keys init --output keys   # enrol keys/aquarium-db.cer
              aquarium-image keys init --output keys --name "Example Corp boot key"
            """)

    @OptionGroup public var global: GlobalOptions

    @Option(name: [.short, .long], help: "The directory for the key and certificates (created with mode 0700).")
    public var output = "aquarium-keys"

    @Option(name: .long, help: "The certificate's common name, shown by firmware setup menus.")
    public var name = "Aquarium boot signing key"

    @Option(name: .long, help: "How long the certificate is valid (firmware does not check it when verifying images).")
    public var days = 3650

    public init() {}

    public func run() throws {
        let logger = global.logger("aquarium.keys")
        let keys = try BootSigningKeys.create(in: output, name: name, days: days, logger: logger)
        print("wrote \(keys.key) (mode 0600, keep it secret and offline), \(keys.certificate) and \(keys.enrolment)")
        print(try keys.fingerprint(logger: logger))
        print("enrol \(keys.enrolment) in each node's UEFI db (firmware setup menu, KeyTool); docs/image.md, \"Locked mode\"")
    }
}
