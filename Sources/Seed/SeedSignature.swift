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

// Seed signatures: detached Ed25519 over the exact bytes of the seed file. Keys and the text formats: SeedKeys.swift;
// files: SeedSignatureFiles.swift.

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
        let (raw, fingerprint) = try SeedKeyText.onlyLine(of: text, file: "signature", prefix: Self.prefix, byteCount: 64,
                                                           path: path, what: "signature")
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
}
