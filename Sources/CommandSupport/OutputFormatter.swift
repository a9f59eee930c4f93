import Foundation
import JSONCoding

/// A command's result as one value: a person reads `text`, a program reads the JSON (`--json`), both made from the
/// same value, so the two can never say different things.
public protocol CommandOutput: Encodable {
    /// What a person reads, printed as it is (it ends with a newline).
    var text: String { get }
}

/// The one place the three tools print a result: with `--json` the documented JSON (JSONCoding's encoder, one document
/// on standard output), otherwise the text. `redact` runs over whatever is printed (a seed's secrets), either way.
public struct OutputFormatter: Sendable {
    public enum Format: String, Sendable {
        case text, json
    }

    public var format: Format

    public init(json: Bool) {
        format = json ? .json : .text
    }

    public func render(_ output: some CommandOutput) throws -> String {
        switch format {
        case .text: output.text
        case .json: try JSONCoding.text(output) + "\n"
        }
    }

    public func print(_ output: some CommandOutput, redact: (String) -> String = { $0 }) throws {
        Swift.print(redact(try render(output)), terminator: "")
    }

    /// A progress line for people: printed in text mode only, so that with `--json` standard output stays one document.
    public func progress(_ line: @autoclosure () -> String) {
        if format == .text { Swift.print(line()) }
    }
}
