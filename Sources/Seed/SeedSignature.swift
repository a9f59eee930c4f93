import Crypto
import FileLayer
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Seed signatures: detached Ed25519 over the exact bytes of the seed file.
//
// Text formats (one line each, fields separated by one space; documented in docs/seed.md):
//   public key   aquarium-seed-ed25519-public <base64 of the 32-byte public key> [comment]
//   private key  aquarium-seed-ed25519-private <base64 of the 32-byte private key> [comment]
//   signature    aquarium-seed-ed25519-signature <base64 of the 64-byte signature> <key fingerprint>
// Base64 is standard with padding and must be canonical. A key's fingerprint is `SHA256:` and the unpadded base64 of
// the SHA-256 of its 32 raw bytes (the style of ssh-keygen -l).

/// Something wrong with a key, a signature or a signed seed.
public struct SeedSignatureError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A key or signature file that is not in the documented format (exit 2).
        case malformed
        /// A file that could not be read or written (exit 1).
        case io
        /// A key file that would be overwritten (exit 2).
        case exists
        /// A private key file that others can read (exit 2).
        case unprotectedKey
        /// Signatures are required and the seed has none (exit 3: refused).
        case unsigned
        /// The signature does not verify under any trusted key (exit 3: refused).
        case mismatch
    }

    public var kind: Kind
    /// The file the problem is about.
    public var path: String
    public var message: String
    /// The file error underneath an `.io` failure to write, when there is one (the message already says why).
    public var cause: FileError?

    public init(_ kind: Kind, path: String, _ message: String, cause: FileError? = nil) {
        self.kind = kind
        self.path = path
        self.message = message
        self.cause = cause
    }

    public var description: String { "\(path): \(message)" }

    /// The Aquarium exit status: 3 for a refused seed, 1 for I/O, 2 otherwise.
    public var exitStatus: Int32 {
        switch kind {
        case .unsigned, .mismatch: return 3
        case .io: return 1
        case .malformed, .exists, .unprotectedKey: return 2
        }
    }
}

/// A public key that may verify seeds.
public struct SeedPublicKey: Sendable, Equatable, CustomStringConvertible {
    public static let prefix = "aquarium-seed-ed25519-public"

    /// The 32 raw Ed25519 bytes.
    public let rawRepresentation: Data
    public var comment: String

    public init(rawRepresentation: Data, comment: String = "") throws(SeedSignatureError) {
        guard rawRepresentation.count == 32,
              (try? Curve25519.Signing.PublicKey(rawRepresentation: rawRepresentation)) != nil else {
            throw SeedSignatureError(.malformed, path: "", "an Ed25519 public key has 32 bytes")
        }
        self.rawRepresentation = rawRepresentation
        self.comment = SeedKeyText.cleanComment(comment)
    }

    /// Parses one `aquarium-seed-ed25519-public BASE64 [comment]` line.
    public init(line: String, path: String = "") throws(SeedSignatureError) {
        let (raw, comment) = try SeedKeyText.parse(line, prefix: Self.prefix, byteCount: 32, path: path,
                                                    what: "public key")
        do {
            try self.init(rawRepresentation: raw, comment: comment)
        } catch {
            throw SeedSignatureError(.malformed, path: path, "is not a valid Ed25519 public key")
        }
    }

    /// The key file line, ending in a newline.
    public var text: String {
        SeedKeyText.line(prefix: Self.prefix, raw: rawRepresentation, comment: comment)
    }

    /// `SHA256:` and the unpadded base64 of the SHA-256 of the raw key.
    public var fingerprint: String { SeedKeyText.fingerprint(rawRepresentation) }

    public var description: String { comment.isEmpty ? fingerprint : "\(fingerprint) (\(comment))" }
}

/// A private signing key. Its `description` shows only the fingerprint; the key itself is in `fileText`.
public struct SeedPrivateKey: Sendable, CustomStringConvertible {
    public static let prefix = "aquarium-seed-ed25519-private"

    /// The 32 raw bytes (Crypto's key type is not Sendable, so the bytes are what is kept).
    let rawKey: Data
    public var comment: String

    init(key: Curve25519.Signing.PrivateKey, comment: String) {
        self.rawKey = key.rawRepresentation
        self.comment = SeedKeyText.cleanComment(comment)
    }

    var key: Curve25519.Signing.PrivateKey {
        // rawKey came from a valid key, so this cannot fail; a fresh key would only make signatures that fail.
        (try? Curve25519.Signing.PrivateKey(rawRepresentation: rawKey)) ?? Curve25519.Signing.PrivateKey()
    }

    /// Parses the private key file's text: one key line; blank lines and `#` comments are ignored.
    public init(fileText: String, path: String = "") throws(SeedSignatureError) {
        let lines = SeedKeyText.contentLines(fileText)
        guard lines.count == 1, let line = lines.first else {
            throw SeedSignatureError(.malformed, path: path, "a private key file holds exactly one "
                                     + "'\(Self.prefix) ...' line")
        }
        let (raw, comment) = try SeedKeyText.parse(line, prefix: Self.prefix, byteCount: 32, path: path,
                                                    what: "private key")
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw SeedSignatureError(.malformed, path: path, "is not a valid Ed25519 private key")
        }
        self.init(key: key, comment: comment)
    }

    /// The private key file's content. A secret: write it with mode 0600, never print it.
    public var fileText: String {
        SeedKeyText.line(prefix: Self.prefix, raw: key.rawRepresentation, comment: comment)
    }

    public var publicKey: SeedPublicKey {
        SeedPublicKey(unchecked: key.publicKey.rawRepresentation, comment: comment)
    }

    public var description: String { "private key for \(publicKey.fingerprint)" }
}

extension SeedPublicKey {
    fileprivate init(unchecked raw: Data, comment: String) {
        self.rawRepresentation = raw
        self.comment = comment
    }
}

/// A detached signature file's content.
public struct SeedDetachedSignature: Sendable, Equatable {
    public static let prefix = "aquarium-seed-ed25519-signature"

    /// The 64 raw Ed25519 signature bytes.
    public let rawRepresentation: Data
    /// The fingerprint of the key that made it (informational; verification does not trust it).
    public var keyFingerprint: String

    public init(rawRepresentation: Data, keyFingerprint: String) {
        self.rawRepresentation = rawRepresentation
        self.keyFingerprint = keyFingerprint
    }

    /// Parses a `.sig` file.
    public init(fileData: Data, path: String = "") throws(SeedSignatureError) {
        guard fileData.count <= 4096, let text = String(validating: fileData, as: UTF8.self) else {
            throw SeedSignatureError(.malformed, path: path, "is not a seed signature file")
        }
        let lines = SeedKeyText.contentLines(text)
        guard lines.count == 1, let line = lines.first else {
            throw SeedSignatureError(.malformed, path: path, "a signature file holds exactly one "
                                     + "'\(Self.prefix) ...' line")
        }
        let (raw, fingerprint) = try SeedKeyText.parse(line, prefix: Self.prefix, byteCount: 64, path: path,
                                                        what: "signature")
        self.init(rawRepresentation: raw, keyFingerprint: fingerprint)
    }

    /// The `.sig` file's content, ending in a newline.
    public var text: String {
        SeedKeyText.line(prefix: Self.prefix, raw: rawRepresentation, comment: keyFingerprint)
    }
}

/// Whether a seed had to be signed, and by whom.
public enum SeedTrust: Sendable, Equatable {
    /// The image trusts no keys: seeds need no signature.
    case notRequired
    /// The seed's signature verified under this trusted key.
    case verified(by: SeedPublicKey)
}

public enum SeedSignature {
    /// The detached signature of `seed.yaml` is `seed.yaml.sig`.
    public static let signatureSuffix = ".sig"

    /// A new key pair.
    public static func keygen(comment: String = "") -> (privateKey: SeedPrivateKey, publicKey: SeedPublicKey) {
        let privateKey = SeedPrivateKey(key: Curve25519.Signing.PrivateKey(), comment: comment)
        return (privateKey, privateKey.publicKey)
    }

    /// Signs the exact bytes of a seed.
    public static func sign(data: Data, privateKey: SeedPrivateKey) throws(SeedSignatureError) -> SeedDetachedSignature {
        do {
            let signature = try privateKey.key.signature(for: data)
            return SeedDetachedSignature(rawRepresentation: signature, keyFingerprint: privateKey.publicKey.fingerprint)
        } catch {
            throw SeedSignatureError(.io, path: "", "signing failed: \(error)")
        }
    }

    /// True when `signature` was made over exactly `data` by the key of `publicKey`.
    public static func verify(data: Data, signature: SeedDetachedSignature, publicKey: SeedPublicKey) -> Bool {
        guard signature.rawRepresentation.count == 64,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey.rawRepresentation) else {
            return false
        }
        return key.isValidSignature(signature.rawRepresentation, for: data)
    }

    // MARK: files

    /// Writes a new key pair: the private key with mode 0600 (never printed), the public key with mode 0644.
    /// Refuses to overwrite either file.
    @discardableResult
    public static func writeKeyPair(privateKeyPath: String, publicKeyPath: String, comment: String = "")
        throws(SeedSignatureError) -> SeedPublicKey {
        for path in [privateKeyPath, publicKeyPath] where fileExists(path) {
            throw SeedSignatureError(.exists, path: path, "already exists; remove it or choose another name")
        }
        let (privateKey, publicKey) = keygen(comment: comment)
        try writeNewFile(privateKeyPath, Data(privateKey.fileText.utf8), mode: 0o600)
        do {
            try writeNewFile(publicKeyPath, Data(publicKey.text.utf8), mode: 0o644)
        } catch {
            unlink(privateKeyPath)
            throw error
        }
        return publicKey
    }

    /// Reads a private key file; refuses one that group or others can read (as ssh does).
    public static func readPrivateKey(path: String) throws(SeedSignatureError) -> SeedPrivateKey {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw SeedSignatureError(.io, path: path, "cannot read the private key: \(String(cString: strerror(errno)))")
        }
        if info.st_mode & 0o077 != 0 {
            throw SeedSignatureError(.unprotectedKey, path: path, "the private key can be read by other users "
                                     + "(mode \(String(info.st_mode & 0o777, radix: 8))); run chmod 600 on it")
        }
        let data = try read(path, what: "private key")
        guard let text = String(validating: data, as: UTF8.self) else {
            throw SeedSignatureError(.malformed, path: path, "is not a seed private key file")
        }
        return try SeedPrivateKey(fileText: text, path: path)
    }

    /// Reads every key line of a public key file (blank lines and `#` comments are ignored).
    public static func readPublicKeys(path: String) throws(SeedSignatureError) -> [SeedPublicKey] {
        let data = try read(path, what: "public key")
        guard data.count <= 64 * 1024, let text = String(validating: data, as: UTF8.self) else {
            throw SeedSignatureError(.malformed, path: path, "is not a seed public key file")
        }
        var keys: [SeedPublicKey] = []
        for line in SeedKeyText.contentLines(text) {
            keys.append(try SeedPublicKey(line: line, path: path))
        }
        if keys.isEmpty {
            throw SeedSignatureError(.malformed, path: path, "holds no '\(SeedPublicKey.prefix) ...' line")
        }
        return keys
    }

    /// Signs the file at `path` and writes `path.sig` (replacing an older signature). Returns the signature path.
    @discardableResult
    public static func signFile(path: String, privateKey: SeedPrivateKey) throws(SeedSignatureError) -> String {
        let data = try read(path, what: "seed")
        let signature = try sign(data: data, privateKey: privateKey)
        return try writeSignature(signature, forSeedAt: path)
    }

    /// Writes `path.sig` atomically (replacing an older signature). Returns the signature path.
    @discardableResult
    public static func writeSignature(_ signature: SeedDetachedSignature, forSeedAt path: String)
        throws(SeedSignatureError) -> String {
        let signaturePath = path + signatureSuffix
        try replaceFile(signaturePath, Data(signature.text.utf8), mode: 0o644)
        return signaturePath
    }

    /// Reads a whole file (for callers that verify and parse the same bytes).
    public static func readFile(_ path: String) throws(SeedSignatureError) -> Data {
        try read(path, what: "file")
    }

    /// Verifies `data` (the seed at `path`) against `path.sig` under any of `publicKeys`; returns the key that
    /// verified it.
    public static func verify(seedData data: Data, path: String, publicKeys: [SeedPublicKey])
        throws(SeedSignatureError) -> SeedPublicKey {
        let signaturePath = path + signatureSuffix
        guard fileExists(signaturePath) else {
            throw SeedSignatureError(.unsigned, path: path, "has no signature \(signaturePath); sign it with "
                                     + "`aquarium-image seed sign --key KEY \(path)`")
        }
        let signatureData = try read(signaturePath, what: "signature")
        let signature: SeedDetachedSignature
        do {
            signature = try SeedDetachedSignature(fileData: signatureData, path: signaturePath)
        } catch {
            throw SeedSignatureError(.mismatch, path: path, "its signature \(signaturePath) is not valid: \(error.message)")
        }
        if let key = publicKeys.first(where: { verify(data: data, signature: signature, publicKey: $0) }) {
            return key
        }
        let trusted = publicKeys.map(\.fingerprint).joined(separator: ", ")
        let signer = publicKeys.contains { $0.fingerprint == signature.keyFingerprint }
            ? "the seed or its signature was changed after signing"
            : "it says it was signed by \(SeedSyntax.printable(signature.keyFingerprint)), which is not trusted, or the "
              + "seed was changed after signing"
        throw SeedSignatureError(.mismatch, path: path, "the signature \(signaturePath) does not verify under the "
                                 + "trusted key\(publicKeys.count == 1 ? "" : "s") \(trusted): \(signer)")
    }

    /// What FirstBoot calls: when `trustedKeysDirectory` holds `*.pub` key files, the seed at `path` must have a
    /// `path.sig` that verifies under one of them. With no such keys (or no directory) any seed is accepted.
    /// A malformed key file in the directory is an error, not ignored.
    public static func verifySeedFile(path: String, trustedKeysDirectory: String) throws(SeedSignatureError)
        -> SeedTrust {
        let keys = try trustedKeys(in: trustedKeysDirectory)
        if keys.isEmpty { return .notRequired }
        let data = try read(path, what: "seed")
        return .verified(by: try verify(seedData: data, path: path, publicKeys: keys))
    }

    /// The same, for seed bytes already read (so the bytes verified are the bytes parsed).
    public static func verifySeed(data: Data, path: String, trustedKeysDirectory: String) throws(SeedSignatureError)
        -> SeedTrust {
        let keys = try trustedKeys(in: trustedKeysDirectory)
        if keys.isEmpty { return .notRequired }
        return .verified(by: try verify(seedData: data, path: path, publicKeys: keys))
    }

    /// The keys of every `*.pub` file in `directory` (none when it does not exist).
    public static func trustedKeys(in directory: String) throws(SeedSignatureError) -> [SeedPublicKey] {
        var info = stat()
        guard stat(directory, &info) == 0 else {
            if errno == ENOENT { return [] }
            throw SeedSignatureError(.io, path: directory, "cannot read the trusted keys: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw SeedSignatureError(.io, path: directory, "is not a directory of trusted *.pub keys")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw SeedSignatureError(.io, path: directory, "cannot list the trusted keys: \(error)")
        }
        var keys: [SeedPublicKey] = []
        for name in names.sorted() where name.hasSuffix(".pub") && !name.hasPrefix(".") {
            keys.append(contentsOf: try readPublicKeys(path: directory + "/" + name))
        }
        return keys
    }

    // MARK: file plumbing

    static func fileExists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    static func read(_ path: String, what: String) throws(SeedSignatureError) -> Data {
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            return try handle.readToEnd() ?? Data()
        } catch {
            throw SeedSignatureError(.io, path: path, "cannot read the \(what): \(describe(error))")
        }
    }

    static func describe(_ error: Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if nsError.domain == NSCocoaErrorDomain, nsError.code == NSFileReadNoSuchFileError {
            return "no such file"
        }
        return nsError.localizedDescription
    }

    /// Creates `path` (which must not exist) with `mode`, writes `data` and syncs it.
    static func writeNewFile(_ path: String, _ data: Data, mode: mode_t) throws(SeedSignatureError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST {
                throw SeedSignatureError(.exists, path: path, "already exists; remove it or choose another name")
            }
            throw SeedSignatureError(.io, path: path, "cannot create: \(String(cString: strerror(code)))")
        }
        // Written and synced through FileLayer (EINTR, short writes); the file is removed on any failure.
        var failure: Int32 = 0
        var cause: FileError?
        if fchmod(fd, mode) != 0 { failure = errno }
        if failure == 0 {
            do throws(FileError) {
                try FileIO.writeAll(fd, data, path: path)
                try FileIO.sync(fd, path: path)
            } catch {
                failure = error.code
                cause = error
            }
        }
        if close(fd) != 0, failure == 0 { failure = errno }
        if failure != 0 {
            unlink(path)
            throw SeedSignatureError(.io, path: path, "cannot write: \(String(cString: strerror(failure)))", cause: cause)
        }
    }

    /// Writes `data` to a temporary file beside `path` and renames it over `path`.
    static func replaceFile(_ path: String, _ data: Data, mode: mode_t) throws(SeedSignatureError) {
        do {
            try AtomicFile.write(data, to: path, mode: mode)
        } catch {
            throw SeedSignatureError(.io, path: path, "cannot write: \(String(cString: strerror(error.code)))", cause: error)
        }
    }
}

/// The one-line text formats shared by keys and signatures.
enum SeedKeyText {
    static func contentLines(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map {
            String($0).trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    /// `PREFIX BASE64 [rest]` -> (decoded bytes, rest).
    static func parse(_ line: String, prefix: String, byteCount: Int, path: String, what: String)
        throws(SeedSignatureError) -> (Data, String) {
        let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard fields.count >= 2, fields[0] == prefix else {
            throw SeedSignatureError(.malformed, path: path, "is not an Aquarium seed \(what): expected a line "
                                     + "'\(prefix) BASE64'")
        }
        let base64 = String(fields[1])
        guard let raw = Data(base64Encoded: base64), raw.base64EncodedString() == base64, raw.count == byteCount else {
            throw SeedSignatureError(.malformed, path: path, "the \(what) data is not \(byteCount) bytes of base64")
        }
        return (raw, fields.count > 2 ? String(fields[2]) : "")
    }

    static func line(prefix: String, raw: Data, comment: String) -> String {
        comment.isEmpty ? "\(prefix) \(raw.base64EncodedString())\n" : "\(prefix) \(raw.base64EncodedString()) \(comment)\n"
    }

    static func cleanComment(_ comment: String) -> String {
        String(comment.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7f })
            .trimmingCharacters(in: .whitespaces)
    }

    static func fingerprint(_ raw: Data) -> String {
        let digest = Data(SHA256.hash(data: raw))
        var text = digest.base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return "SHA256:" + text
    }
}
