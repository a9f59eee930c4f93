import Foundation

/// Reads rack files (docs/rack.md) with the seed's diagnosing reader: every problem with file, line, column and key
/// path, "did you mean" for unknown keys, as `SeedValidationError` (exit status 2).
public enum RackLoader {
    /// Reads and validates the rack file at `path`. Errors name `path` as the file.
    public static func load(path: String, options: SeedLoader.Options = SeedLoader.Options())
        throws(SeedValidationError) -> RackFile {
        let text = try SeedLoader.text(of: try SeedLoader.readBounded(path), file: path)
        return try parse(text, file: path, options: options)
    }

    /// Validates rack file text. `file` is used in the messages only.
    public static func parse(_ text: String, file: String, options: SeedLoader.Options = SeedLoader.Options())
        throws(SeedValidationError) -> RackFile {
        try SeedLoader.read(text, file: file, reader: { RackReader(file: file, document: $0, options: options) }) {
            $0.readRackFile()
        }.get()
    }
}

/// A rack's secrets, made once by `aquarium-image rack seeds` and kept in `DIR/secrets.yaml` (mode 0600): the cluster's
/// identity and its keys (what each grants: docs/rack.md). Made again, the seeds of a rack reuse them, so a node added
/// later joins the same cluster.
public struct RackSecrets: Sendable, Equatable {
    public static let fileName = "secrets.yaml"

    /// The cluster's fsid, a lowercase UUID.
    public var fsid: String
    /// When the secrets were made (RFC 3339).
    public var created: SeedTime
    /// `mon.`'s key: with it a monitor joins the quorum and hands out keys (the cluster).
    public var monitorKey: String
    /// `client.admin`'s key: the whole cluster.
    public var adminKey: String
    /// `client.aquarium-join`'s key: registers OSDs, and so reads and writes every pool.
    public var joinKey: String
    /// The monitors the seeds were first made with (not secret). A cluster's monitors do not change by making seeds
    /// again, so later seeds must name the same ones. nil in a file that does not record them.
    public var monitors: [Seed.RackMonitor]?

    public init(fsid: String, created: SeedTime, monitorKey: String, adminKey: String, joinKey: String,
                monitors: [Seed.RackMonitor]? = nil) {
        self.fsid = fsid
        self.created = created
        self.monitorKey = monitorKey
        self.adminKey = adminKey
        self.joinKey = joinKey
        self.monitors = monitors
    }

    /// New secrets: a random fsid (a version 4 UUID) and three new cephx keys, all from `generator`.
    public static func generate<Generator: RandomNumberGenerator>(monitors: [Seed.RackMonitor], now: Date = Date(),
                                                                  using generator: inout Generator) -> RackSecrets {
        var bytes = (0..<2).flatMap { _ in withUnsafeBytes(of: generator.next() as UInt64) { Array($0) } }
        bytes[6] = (bytes[6] & 0x0f) | 0x40
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        let uuid = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                               bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        let text = formatter.string(from: now)
        return RackSecrets(fsid: uuid.uuidString.lowercased(), created: SeedTime(date: now, text: text),
                           monitorKey: CephxKey.generate(created: now, using: &generator),
                           adminKey: CephxKey.generate(created: now, using: &generator),
                           joinKey: CephxKey.generate(created: now, using: &generator), monitors: monitors)
    }

    /// New secrets from the system's random number generator.
    public static func generate(monitors: [Seed.RackMonitor], now: Date = Date()) -> RackSecrets {
        var generator = SystemRandomNumberGenerator()
        return generate(monitors: monitors, now: now, using: &generator)
    }

    /// The secret values, for redaction.
    public var secrets: [String] { [monitorKey, adminKey, joinKey] }

    /// Reads and validates the secrets file at `path`. Errors name `path` as the file (exit status 2).
    public static func load(path: String) throws(SeedValidationError) -> RackSecrets {
        let text = try SeedLoader.text(of: try SeedLoader.readBounded(path), file: path)
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(SeedValidationError) -> RackSecrets {
        try SeedLoader.read(text, file: file, reader: { RackSecretsReader(file: file, document: $0) }) {
            $0.readSecrets()
        }.get()
    }

    /// The file's content: what `load` reads back.
    public var yamlText: String {
        var yaml = YAMLText()
        yaml.comment("Aquarium rack secrets, made by `aquarium-image rack seeds` (docs/rack.md). Keep this file secret:")
        yaml.comment("the monitor and admin keys are the whole cluster, the join key reads and writes all of its data.")
        yaml.comment("`rack seeds` reuses it to make seeds for nodes added to the same cluster later.")
        yaml.entry(0, "fsid", fsid)
        yaml.entry(0, "created", created.text)
        yaml.entry(0, "monitor_key", monitorKey)
        yaml.entry(0, "admin_key", adminKey)
        yaml.entry(0, "join_key", joinKey)
        if let monitors {
            yaml.comment("The monitors the rack's seeds were first made with; seeds made later must name the same ones.")
            yaml.key(0, "monitors")
            for monitor in monitors {
                yaml.item(1, YAMLText.flowMapping([("host", monitor.host), ("address", monitor.address.description)]))
            }
        }
        return yaml.text
    }
}
