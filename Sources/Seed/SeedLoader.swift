import FileLayer
import Foundation
import Yams

/// Reads seed files. FirstBoot, the Provisioner and `aquarium-image seed validate` all use this; there is no second
/// parser.
public enum SeedLoader {
    /// Seeds are small; anything larger is refused before parsing.
    public static let maximumFileSize = 256 * 1024
    /// Nesting deeper than this (estimated from indentation, `-`, `?` and brackets) is refused before parsing.
    static let maximumNesting = 256
    /// At most this many issues are reported for one file.
    static let maximumIssues = 50

    public struct Options: Sendable {
        /// Where time zone names are looked up. When it does not exist only the syntax of a zone name is checked.
        public var zoneinfoDirectory: String

        public init(zoneinfoDirectory: String = "/usr/share/zoneinfo") {
            self.zoneinfoDirectory = zoneinfoDirectory
        }
    }

    /// Reads and validates the seed at `path`. Errors name `path` as the file.
    public static func load(path: String, options: Options = Options()) throws(SeedValidationError) -> Seed {
        try parse(data: try readBounded(path), file: path, options: options)
    }

    /// Validates seed bytes (for callers that verified a signature over exactly these bytes).
    public static func parse(data: Data, file: String, options: Options = Options()) throws(SeedValidationError)
        -> Seed {
        try parse(try text(of: data, file: file), file: file, options: options)
    }

    /// The text of a file's bytes: at most `maximumFileSize` bytes of UTF-8.
    static func text(of data: Data, file: String) throws(SeedValidationError) -> String {
        if data.count > maximumFileSize {
            throw SeedValidationError(issues: [
                SeedIssue(file: file, line: 1, column: 1, keyPath: "",
                          message: "the file is \(data.count) bytes; a seed may be at most \(maximumFileSize) bytes"),
            ])
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            let (line, column) = firstInvalidUTF8(in: data)
            throw SeedValidationError(issues: [
                SeedIssue(file: file, line: line, column: column, keyPath: "",
                          message: "the file is not valid UTF-8; save it as UTF-8 text"),
            ])
        }
        return text
    }

    /// The bytes of the file at `path` (at most one byte more than allowed), or the issue that says why not.
    static func readBounded(_ path: String) throws(SeedValidationError) -> Data {
        do {
            return try readFile(path)
        } catch {
            throw SeedValidationError(issues: [
                SeedIssue(file: path, line: 1, column: 1, keyPath: "", message: "cannot read the file: \(FileProblem.reason(error as NSError))"),
            ])
        }
    }

    /// Runs a reader of any schema over `text`: the prechecks, composing with duplicate keys located, then `read`.
    static func read<Reader: DiagnosingReader, Value>(_ text: String, file: String, reader: (Document) -> Reader,
                                                      _ read: (Reader) -> Value?) -> Result<Value, SeedValidationError> {
        if let issue = precheck(text, file: file) {
            return .failure(SeedValidationError(issues: [issue]))
        }
        switch compose(text, file: file) {
        case .failure(let error):
            return .failure(error)
        case .success(let document):
            let diagnosing = reader(document)
            let value = withExtendedLifetime(document.parser) { read(diagnosing) }
            diagnosing.reportUnseenDuplicates()
            if let value, diagnosing.issues.isEmpty { return .success(value) }
            return .failure(SeedValidationError(issues: diagnosing.sortedIssues()))
        }
    }

    /// Validates seed text. `file` is used in the messages only.
    public static func parse(_ text: String, file: String) throws(SeedValidationError) -> Seed {
        try parse(text, file: file, options: Options())
    }

    public static func parse(_ text: String, file: String, options: Options) throws(SeedValidationError) -> Seed {
        let result = validate(text, file: file, options: options)
        switch result {
        case .success(let seed): return seed
        case .failure(let error): throw error
        }
    }

    static func readFile(_ path: String) throws -> Data {
        let url = URL(fileURLWithPath: path)
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        // Read at most one byte more than allowed so a huge file is not read whole.
        return try handle.read(upToCount: maximumFileSize + 1) ?? Data()
    }

    static func firstInvalidUTF8(in data: Data) -> (Int, Int) {
        var line = 1
        var column = 1
        var iterator = data.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
            case .emptyInput:
                return (line, column)
            case .error:
                return (line, column)
            }
        }
    }

    // MARK: - the pipeline

    static func validate(_ text: String, file: String, options: Options) -> Result<Seed, SeedValidationError> {
        read(text, file: file, reader: { SeedReader(file: file, document: $0, options: options) }) { $0.readSeed() }
    }

    /// Checks that libyaml would otherwise report without a usable position, or that could exhaust the stack.
    static func precheck(_ text: String, file: String) -> SeedIssue? {
        if text.utf8.count > maximumFileSize {
            return SeedIssue(file: file, line: 1, column: 1, keyPath: "",
                             message: "the file is \(text.utf8.count) bytes; a seed may be at most \(maximumFileSize) bytes")
        }
        var line = 1
        var column = 0
        var flowDepth = 0
        var lineDepth = 0
        var atLineStart = true
        var previous: Unicode.Scalar = "\n"
        var first = true
        for scalar in text.unicodeScalars {
            defer { previous = scalar; first = false }
            let value = scalar.value
            if value == 0x0a {
                line += 1
                column = 0
                lineDepth = 0
                atLineStart = true
                continue
            }
            column += 1
            if value == 0x0d {
                // Only as part of CRLF; checked when the next scalar comes.
                continue
            }
            if previous == "\r" {
                return SeedIssue(file: file, line: line, column: max(column - 1, 1), keyPath: "",
                                 message: "a carriage return that does not end a line; use Unix or DOS line ends")
            }
            let allowed = value == 0x09 || (value >= 0x20 && value <= 0x7e)
                || (value >= 0xa0 && value <= 0xd7ff && value != 0x2028 && value != 0x2029)
                || (value >= 0xe000 && value <= 0xfffd && value != 0xfeff) || value >= 0x10000
                || (value == 0xfeff && first)
            if !allowed {
                let name = value == 0x85 || value == 0x2028 || value == 0x2029 ? "a Unicode line separator"
                    : "the control character U+\(String(value, radix: 16, uppercase: true))"
                return SeedIssue(file: file, line: line, column: column, keyPath: "",
                                 message: "\(name) is not allowed in a seed file")
            }
            switch scalar {
            case " " where atLineStart: lineDepth += 1
            case "-", "?": lineDepth += 1; atLineStart = false
            case "[", "{": flowDepth += 1; atLineStart = false
            case "]", "}": flowDepth = max(0, flowDepth - 1); atLineStart = false
            default: atLineStart = false
            }
            if lineDepth + flowDepth > maximumNesting {
                return SeedIssue(file: file, line: line, column: column, keyPath: "",
                                 message: "the document is nested too deeply (more than \(maximumNesting) levels)")
            }
        }
        if previous == "\r" {
            return SeedIssue(file: file, line: line, column: max(column, 1), keyPath: "",
                             message: "a carriage return that does not end a line; use Unix or DOS line ends")
        }
        return nil
    }

    // MARK: - composing, with duplicate keys located

    /// A composed document. `parser` must outlive every use of `root` (anchors are held weakly by the nodes).
    struct Document {
        let parser: Parser?
        let root: Node?
        /// Keys renamed to find further duplicates: placeholder -> (original key, its position in the file).
        var duplicates: [String: DuplicateKey]
        /// Text edits that moved columns: applied in order, undone in reverse to map marks back to the file.
        var edits: [Edit]
    }

    struct DuplicateKey {
        let key: String
        let line: Int
        let column: Int
    }

    struct Edit {
        let line: Int
        let column: Int
        let delta: Int
    }

    static let placeholderPrefix = "aquarium-duplicate-key-"

    static func compose(_ original: String, file: String) -> Result<Document, SeedValidationError> {
        var text = original
        var duplicates: [String: DuplicateKey] = [:]
        var edits: [Edit] = []
        func issue(_ line: Int, _ column: Int, _ message: String) -> SeedValidationError {
            let (l, c) = originalPosition(line: line, column: column, edits: edits)
            return SeedValidationError(issues: [SeedIssue(file: file, line: l, column: c, keyPath: "", message: message)])
        }
        for attempt in 0..<maximumIssues {
            do {
                let parser = try Parser(yaml: text, encoding: .utf8)
                let root = try parser.singleRoot()
                return .success(Document(parser: parser, root: root, duplicates: duplicates, edits: edits))
            } catch let error as YamlError {
                switch error {
                case .duplicatedKeysInMapping(let keys, let context):
                    let key = keys.sorted().first ?? ""
                    let mark = context.mark
                    let placeholder = placeholderPrefix + String(attempt)
                    guard key != "<uncovertable>", !original.contains(placeholder),
                          let edited = replaceKey(in: text, line: mark.line, column: mark.column, key: key,
                                                  with: placeholder) else {
                        return .failure(issue(mark.line, mark.column,
                                              "duplicate key '\(SeedSyntax.printable(key))'; give every key once"))
                    }
                    let (line, column) = originalPosition(line: mark.line, column: mark.column, edits: edits)
                    duplicates[placeholder] = DuplicateKey(key: key, line: line, column: column)
                    edits.append(Edit(line: mark.line, column: mark.column, delta: edited.delta))
                    text = edited.text
                default:
                    let (line, column, message) = describe(error)
                    return .failure(issue(line, column, message))
                }
            } catch {
                return .failure(issue(1, 1, "invalid YAML: \(error)"))
            }
        }
        return .failure(issue(1, 1, "too many duplicate keys"))
    }

    /// Maps a position in the edited text back to the original file.
    static func originalPosition(line: Int, column: Int, edits: [Edit]) -> (Int, Int) {
        var column = column
        for edit in edits.reversed() where edit.line == line && column > edit.column {
            column -= edit.delta
        }
        return (line, column)
    }

    /// Replaces the key that starts at (line, column) — plain, single- or double-quoted — by `placeholder`.
    static func replaceKey(in text: String, line: Int, column: Int, key: String, with placeholder: String)
        -> (text: String, delta: Int)? {
        var scalars = Array(text.unicodeScalars)
        var currentLine = 1
        var index = 0
        while currentLine < line, index < scalars.count {
            if scalars[index] == "\n" { currentLine += 1 }
            index += 1
        }
        guard currentLine == line else { return nil }
        let start = index + column - 1
        guard start >= index, start <= scalars.count else { return nil }
        let keyScalars = Array(key.unicodeScalars)
        let rest = scalars[start...]
        var length: Int?
        if rest.starts(with: keyScalars) {
            length = keyScalars.count
        } else if let quote = rest.first, quote == "\"" || quote == "'",
                  rest.dropFirst().starts(with: keyScalars),
                  rest.dropFirst(keyScalars.count + 1).first == quote {
            length = keyScalars.count + 2
        }
        guard let length, !keyScalars.contains("\n") else { return nil }
        let replacement = Array(placeholder.unicodeScalars)
        scalars.replaceSubrange(start..<(start + length), with: replacement)
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return (String(view), replacement.count - length)
    }

    /// Line, column and a message for a libyaml error.
    static func describe(_ error: YamlError) -> (Int, Int, String) {
        func context(_ context: YamlError.Context?) -> String {
            guard let context, !context.text.isEmpty else { return "" }
            return " (\(context.text) that starts at line \(context.mark.line), column \(context.mark.column))"
        }
        switch error {
        case .scanner(let ctx, let problem, let mark, _), .parser(let ctx, let problem, let mark, _),
             .composer(let ctx, let problem, let mark, _):
            var message = "invalid YAML: \(problem)\(context(ctx))"
            if problem.contains("found character that cannot start any token") {
                message += "; tabs cannot indent YAML, and values starting with @ or ` need quotes"
            } else if problem.contains("expected a single document") || problem.contains("another document") {
                message = "a seed file holds one YAML document; remove the second '---'"
            }
            return (max(mark.line, 1), max(mark.column, 1), message)
        case .reader(let problem, let offset, _, let yaml):
            if let offset, offset >= 0 {
                let prefix = yaml.prefix(offset)
                let line = prefix.reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
                let column = prefix.split(separator: "\n", omittingEmptySubsequences: false).last.map {
                    $0.unicodeScalars.count + 1
                } ?? 1
                return (line, column, "invalid text: \(problem)")
            }
            return (1, 1, "invalid text: \(problem)")
        default:
            return (1, 1, "invalid YAML: \(error)")
        }
    }
}
