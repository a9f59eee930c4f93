import Foundation

/// The syntax of the seed's secrets: password hashes, tokens, SSH public keys. Messages never repeat the secret.
extension SeedSyntax {
    /// crypt(3) SHA-512 `$6$[rounds=N$]salt$hash` or yescrypt `$y$params$salt$hash`.
    static func passwordHashProblem(_ hash: String) -> String? {
        let advice = "give a crypt(3) hash made with `mkpasswd -m yescrypt` or `mkpasswd -m sha-512`"
        guard hash.hasPrefix("$") else {
            return "looks like a plaintext password, which is refused; " + advice
        }
        let fields = hash.split(separator: "$", omittingEmptySubsequences: false).map { Array($0.utf8) }
        // fields[0] is empty (before the first '$').
        guard fields.count >= 2 else { return "is not a crypt(3) hash; " + advice }
        let id = String(decoding: fields[1], as: UTF8.self)
        switch id {
        case "6":
            var rest = Array(fields.dropFirst(2))
            if let first = rest.first, first.starts(with: Array("rounds=".utf8)) {
                let digits = first.dropFirst(7)
                guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy(isDigit) else {
                    return "has a malformed rounds= field; " + advice
                }
                rest.removeFirst()
            }
            guard rest.count == 2, (1...16).contains(rest[0].count), rest[0].allSatisfy(isCryptChar),
                  rest[1].count == 86, rest[1].allSatisfy(isCryptChar) else {
                return "is not a well-formed SHA-512 crypt hash ($6$salt$ and 86 hash characters); " + advice
            }
            return nil
        case "y":
            let rest = Array(fields.dropFirst(2))
            guard rest.count == 3, !rest[0].isEmpty, rest[0].allSatisfy(isCryptChar),
                  (1...86).contains(rest[1].count), rest[1].allSatisfy(isCryptChar),
                  rest[2].count == 43, rest[2].allSatisfy(isCryptChar) else {
                return "is not a well-formed yescrypt hash ($y$params$salt$ and 43 hash characters); " + advice
            }
            return nil
        case "1", "2a", "2b", "2y", "5", "7", "gy", "sha1", "md5":
            return "uses a hash method other than SHA-512 ($6$) or yescrypt ($y$); " + advice
        default:
            return "is not a crypt(3) hash; " + advice
        }
    }

    /// A join token: 16 to 256 characters of `[A-Za-z0-9+/=._-]`.
    static func tokenProblem(_ token: String) -> String? {
        let bytes = Array(token.utf8)
        guard (16...256).contains(bytes.count),
              bytes.allSatisfy({ isASCIILetterOrDigit($0) || Array("+/=._-".utf8).contains($0) }) else {
            return "is not a valid join token (16 to 256 letters, digits or + / = . _ -); copy it from the "
                + "bootstrap node's report"
        }
        return nil
    }

    // MARK: SSH keys

    static let sshKeyTypes: [String] = [
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    /// One OpenSSH public key line `type base64 [comment]`: a known type, base64 that decodes to a key blob whose
    /// embedded type string is the same type, and a comment without control characters. Options are refused.
    static func sshKeyProblem(_ line: String) -> String? {
        guard isPrintable(line) else { return "contains control characters; give one key per list item" }
        guard line.utf8.count <= 16384 else { return "is longer than 16384 characters" }
        let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard let typeField = fields.first else { return "is empty; give a key like 'ssh-ed25519 AAAA... user@host'" }
        let type = String(typeField)
        guard sshKeyTypes.contains(type) else {
            if type.contains("=") || type.contains(",") || type.contains("\"") {
                return "starts with authorized_keys options, which are not supported; give only 'type base64 comment'"
            }
            return "'\(printable(String(type.prefix(40))))' is not a supported SSH key type (one of "
                + sshKeyTypes.joined(separator: ", ") + ")"
        }
        guard fields.count >= 2 else { return "has no key data after '\(type)'" }
        let base64 = String(fields[1])
        guard let blob = Data(base64Encoded: base64), blob.base64EncodedString() == base64 else {
            return "the key data after '\(type)' is not valid base64"
        }
        let bytes = Array(blob)
        guard bytes.count >= 4 else { return "the key data is too short to be a '\(type)' key" }
        let length = bytes[0..<4].reduce(0) { ($0 << 8) | Int($1) }
        guard length > 0, length <= 64, bytes.count >= 4 + length else {
            return "the key data does not start with a key type; it is not an OpenSSH public key"
        }
        let embedded = String(decoding: bytes[4..<(4 + length)], as: UTF8.self)
        guard embedded == type else {
            return "says '\(type)' but the key data is a '\(printable(embedded))' key"
        }
        if type == "ssh-ed25519" {
            // string type, string key (32 bytes), nothing else.
            let rest = Array(bytes[(4 + length)...])
            guard rest.count == 36, rest[0..<4].reduce(0, { ($0 << 8) | Int($1) }) == 32 else {
                return "the ssh-ed25519 key data is not a 32-byte key"
            }
        }
        return nil
    }
}
