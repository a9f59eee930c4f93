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

// Seed signing keys and their text formats.
//
//
// Text formats (one line each, fields separated by one space; documented in docs/seed.md):
//   public key   aquarium-seed-ed25519-public <base64 of the 32-byte public key> [comment]
//   private key  aquarium-seed-ed25519-private <base64 of the 32-byte private key> [comment]
//   signature    aquarium-seed-ed25519-signature <base64 of the 64-byte signature> <key fingerprint>
// Base64 is standard with padding and must be canonical. A key's fingerprint is `SHA256:` and the unpadded base64 of
// the SHA-256 of its 32 raw bytes (the style of ssh-keygen -l).

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
        let (raw, comment) = try SeedKeyText.onlyLine(of: fileText, file: "private key", prefix: Self.prefix, byteCount: 32,
                                                       path: path, what: "private key")
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

/// The one-line text formats shared by keys and signatures.
enum SeedKeyText {
    /// The one line of a key or signature file (blank lines and `#` comments ignored), parsed as `parse` does.
    static func onlyLine(of text: String, file: String, prefix: String, byteCount: Int, path: String, what: String)
        throws(SeedSignatureError) -> (raw: Data, rest: String) {
        let lines = contentLines(text)
        guard lines.count == 1, let line = lines.first else {
            throw SeedSignatureError(.malformed, path: path, "a \(file) file holds exactly one '\(prefix) ...' line")
        }
        return try parse(line, prefix: prefix, byteCount: byteCount, path: path, what: what)
    }

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
