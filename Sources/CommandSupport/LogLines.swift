import Foundation
import Logging

/// How the tools write their log lines on standard error, chosen once from where standard error goes:
///
/// - **journal** (a systemd service: `JOURNAL_STREAM` names standard error's device and inode): `<N>message`, the
///   syslog priority as a prefix that journald reads and strips; no time stamp, the journal has one.
/// - **terminal**: plain lines; a warning or an error says so in front (`warning: ...`).
/// - **file** (a pipe, a log file): an ISO 8601 time stamp, the level and the message, one event per line.
public struct LogLines: LogHandler {
    public enum Destination: Equatable, Sendable {
        case journal, terminal, file
    }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace  // each command's Logger sets its own level
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let destination: Destination

    public init(label: String, destination: Destination) {
        self.label = label
        self.destination = destination
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let line = Self.line(level: event.level, message: event.message.description, metadata: merged, label: label,
                             destination: destination, time: Date())
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// One event as it is written to `destination`.
    public static func line(level: Logger.Level, message: String, metadata: Logger.Metadata, label: String,
                            destination: Destination, time: Date) -> String {
        let fields = metadata.isEmpty ? "" : " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        // A message of several lines stays one event: its lines are indented under the first.
        let text = message.replacingOccurrences(of: "\n", with: "\n  ") + fields
        switch destination {
        case .journal:
            return "<\(priority(level))>" + text.replacingOccurrences(of: "\n  ", with: "\n<\(priority(level))>  ")
        case .terminal:
            switch level {
            case .trace, .debug: return "debug: " + text
            case .info, .notice: return text
            case .warning: return "warning: " + text
            case .error, .critical: return "error: " + text
            }
        case .file:
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return "\(formatter.string(from: time)) \(level) \(label): \(text)"
        }
    }

    /// The syslog priority journald reads from a `<N>` prefix (sd-daemon(3)).
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// Where standard error goes: the journal when `JOURNAL_STREAM` (`DEVICE:INODE`) is standard error itself (a
    /// child whose standard error was redirected elsewhere inherits the variable, so it is checked), else a
    /// terminal or a file.
    public static func destination(environment: [String: String] = ProcessInfo.processInfo.environment,
                                   descriptor: Int32 = STDERR_FILENO) -> Destination {
        var status = stat()
        if let stream = environment["JOURNAL_STREAM"], fstat(descriptor, &status) == 0 {
            let parts = stream.split(separator: ":")
            if parts.count == 2, UInt64(parts[0]) == UInt64(status.st_dev), UInt64(parts[1]) == UInt64(status.st_ino) {
                return .journal
            }
        }
        return isatty(descriptor) == 1 ? .terminal : .file
    }
}
