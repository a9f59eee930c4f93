import Foundation
import JSONCoding

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
        guard var data = try? JSONCoding.encoder(pretty: false).encode(event) else { return }
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
