import Foundation

/// One line of `ROOT/var/lib/aquarium/events.jsonl`.
public struct ProvisionEvent: Codable, Equatable, Sendable {
    /// ISO 8601, UTC.
    public var time: String
    /// `run.started`, `step.started`, `step.done`, `step.unchanged`, `step.failed`, `node.bootstrapped`,
    /// `run.finished`, `run.failed`.
    public var event: String
    public var step: String?
    /// For `step.done` / `step.unchanged` / `run.finished`: whether anything on the node changed.
    public var changed: Bool?
    public var detail: String?

    public init(event: String, step: String? = nil, changed: Bool? = nil, detail: String? = nil, time: Date = Date()) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        self.time = formatter.string(from: time)
        self.event = event
        self.step = step
        self.changed = changed
        self.detail = detail
    }
}

/// Appends events as JSON lines (one `write` with O_APPEND per event, so lines never interleave).
public struct EventLog: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public func append(_ event: ProvisionEvent) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var data = try? encoder.encode(event) else { return }
        data.append(0x0a)
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        // 0600: an event may quote a failing command's output.
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        fchmod(fd, 0o600)
        _ = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    public func read() -> [ProvisionEvent] {
        guard let text = Files.read(path) else { return [] }
        let decoder = JSONDecoder()
        return text.split(separator: "\n").compactMap { try? decoder.decode(ProvisionEvent.self, from: Data($0.utf8)) }
    }
}

/// What the Provisioner remembers between runs (`ROOT/var/lib/aquarium/provision-state.json`). It holds no secret.
/// Steps are still checked against reality on every run; the state only keeps decisions (fsid, ports, OSD UUIDs)
/// stable and records which steps completed.
public struct ProvisionState: Codable, Equatable, Sendable {
    public var identity: ClusterIdentity?
    public var completedSteps: [String] = []
    /// OSD UUID chosen for each storage disk, by the disk's stable name.
    public var osdUUIDs: [String: String] = [:]
    /// OSD id for each storage disk once the monitor assigned it.
    public var osdIds: [String: Int] = [:]
    public var bootstrappedAt: String?
    /// The `replication` step: the min_size each pool it grew is still to get (see `ReplicationPlan.make`). Optional so
    /// state files written before it still load.
    public var replicationPending: [String: Int]?
    /// Storage disks of the node record that the last run did not find on this machine (by their stable identity).
    public var missingDisks: [String]?

    public init() {}

    public static func load(_ path: String) throws(ProvisionError) -> ProvisionState {
        guard let data = FileManager.default.contents(atPath: path) else { return ProvisionState() }
        do {
            return try JSONDecoder().decode(ProvisionState.self, from: data)
        } catch {
            throw .failed("the state file \(path) is damaged (\(error)); move it away to let the next run rebuild it "
                + "from what it finds on the node")
        }
    }

    public func save(_ path: String) throws(ProvisionError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { throw .failed("cannot encode the state for \(path)") }
        try Files.write(data, to: path, mode: 0o644)
    }

    mutating func markCompleted(_ step: String) {
        if !completedSteps.contains(step) { completedSteps.append(step) }
    }
}
