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

/// Key pairs, signatures and seeds as files: read bounded, written new (0600 for a private key) or replaced atomically.
extension SeedSignature {
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
