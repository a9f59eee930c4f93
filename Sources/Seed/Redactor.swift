import Foundation

/// The one redactor: scrubs secrets from text before it goes into a report, a log or a support bundle. It replaces
/// every known secret value (longest first, so a secret containing another is replaced whole) with
/// `Seed.redactionMarker` and, with `scrubsShapes`, anything shaped like a secret (`key = ...` keyring lines,
/// `"secret_key": "..."` JSON fields) whether or not its value is known. `Seed.redact(_:)` uses it with the seed's own
/// secrets; the Provisioner's support bundle adds the node's keyrings, S3 keys and shadow hashes.
public struct Redactor: Sendable {
    public static let marker = Seed.redactionMarker

    /// Values shorter than this are not taken as secrets (they would scrub ordinary words).
    public let minimumLength: Int
    /// Whether secret-shaped text is scrubbed as well as the known values.
    public let scrubsShapes: Bool
    public private(set) var secrets: Set<String>

    /// The shapes of secrets, each a regular expression whose first group is kept and whose rest is replaced (a closing
    /// quote, when the pattern ends in one, is put back).
    static let shapes = [
        #"(?m)^(\s*key\s*=\s*)\S+"#,
        #"("(?:secret_key|access_key|secretKey|accessKey|cephx_secret|key|password_hash|passwordHash|token)"\s*:\s*")[^"]*""#,
    ]

    public init(secrets: Set<String> = [], minimumLength: Int = 6, scrubsShapes: Bool = true) {
        self.minimumLength = max(minimumLength, 1)
        self.scrubsShapes = scrubsShapes
        self.secrets = secrets.filter { $0.count >= max(minimumLength, 1) }
    }

    public mutating func add(_ values: [String]) {
        for value in values where value.count >= minimumLength { secrets.insert(value) }
    }

    /// The `key = ...` values of a Ceph keyring's text.
    public static func keyringKeys(_ text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 && parts[0] == "key" ? parts[1] : nil
        }
    }

    public func redact(_ text: String) -> String {
        var result = text
        // Longest first, so a secret containing another is replaced whole.
        for secret in secrets.sorted(by: { ($0.count, $0) > ($1.count, $1) }) {
            result = result.replacingOccurrences(of: secret, with: Self.marker)
        }
        guard scrubsShapes else { return result }
        for pattern in Self.shapes {
            guard let regex = try? NSRegularExpression(pattern: pattern) else { continue }
            let range = NSRange(result.startIndex..., in: result)
            result = regex.stringByReplacingMatches(in: result, range: range,
                                                    withTemplate: "$1" + Self.marker + (pattern.hasSuffix("\"") ? "\"" : ""))
        }
        return result
    }

    /// The secrets still present in `text` (should be none after `redact`).
    public func leaks(in text: String) -> [String] { secrets.filter { text.contains($0) }.sorted() }
}
