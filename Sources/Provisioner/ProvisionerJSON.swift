import Foundation

/// The one way the Provisioner writes JSON: keys sorted and slashes unescaped, so outputs are stable and paths read
/// as paths. `run --json`, `status --json`, the state file, the S3 credentials and the support bundle's status are
/// pretty-printed; `events.jsonl` has one event per line.
enum ProvisionerJSON {
    enum Style {
        /// Indented, one key a line.
        case pretty
        /// One line (JSON lines).
        case line
    }

    static func encoder(_ style: Style = .pretty) -> JSONEncoder {
        let encoder = JSONEncoder()
        switch style {
        case .pretty: encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        case .line: encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        }
        return encoder
    }
}
