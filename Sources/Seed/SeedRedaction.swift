import Foundation
import JSONCoding

extension Seed {
    /// What replaces a secret in `redacted()`.
    public static let redactionMarker = "<redacted>"

    /// The secret values in this seed: password hashes, the join token and a rack node's keys. (SSH public keys are not
    /// secret.)
    /// Reports, logs and support bundles must not contain them; scrub any text that might with `redact(_:)`.
    public var secrets: [String] {
        var values = host.users.compactMap(\.passwordHash)
        if let token = cluster.join?.token { values.append(token) }
        if let rack = cluster.rack { values += [rack.joinKey, rack.monitorKey, rack.adminKey].compactMap { $0 } }
        for key in [cluster.services.rgw?.https?.privateKey, cluster.services.dashboard?.privateKey].compactMap({ $0 }) {
            // The whole block, and each line of it (a log may quote one line).
            values.append(key)
            values += key.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { $0.count >= 16 && !$0.hasPrefix("-----") }
        }
        return values
    }

    /// A copy with every secret replaced by `Seed.redactionMarker`.
    public func redacted() -> Seed {
        var copy = self
        for index in copy.host.users.indices where copy.host.users[index].passwordHash != nil {
            copy.host.users[index].passwordHash = Seed.redactionMarker
        }
        if copy.cluster.join != nil { copy.cluster.join?.token = Seed.redactionMarker }
        if copy.cluster.services.rgw?.https != nil { copy.cluster.services.rgw?.https?.privateKey = Seed.redactionMarker }
        if copy.cluster.services.dashboard?.privateKey != nil { copy.cluster.services.dashboard?.privateKey = Seed.redactionMarker }
        if var rack = copy.cluster.rack {
            rack.joinKey = Seed.redactionMarker
            if rack.monitorKey != nil { rack.monitorKey = Seed.redactionMarker }
            if rack.adminKey != nil { rack.adminKey = Seed.redactionMarker }
            copy.cluster.rack = rack
        }
        return copy
    }

    /// `text` with every secret of this seed replaced by `Seed.redactionMarker`.
    /// The one `Redactor`, with this seed's secrets only (no secret-shaped text is scrubbed).
    public func redact(_ text: String) -> String {
        Redactor(secrets: Set(secrets), minimumLength: 1, scrubsShapes: false).redact(text)
    }

    /// The seed with defaults applied and secrets redacted, as pretty JSON with snake_case keys (for reports).
    public var redactedDescription: String {
        let encoder = JSONCoding.encoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        guard let data = try? encoder.encode(redacted()) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
