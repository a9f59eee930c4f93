import Foundation
import Yams

// The vocabulary of the diagnosing YAML reader (see `DiagnosingReader`): where a node is (`KeyPath`), what a scalar
// reads as under the YAML 1.2 core schema (`ScalarValue`) and the likely-typo suggestion for unknown keys. Nothing here
// knows a seed field.

/// A path into the document for messages: `network.interfaces[1].gateway`.
struct KeyPath: CustomStringConvertible {
    enum Component {
        case key(String)
        case index(Int)
    }

    var components: [Component] = []

    func key(_ name: String) -> KeyPath { KeyPath(components: components + [.key(name)]) }
    func index(_ index: Int) -> KeyPath { KeyPath(components: components + [.index(index)]) }

    var description: String {
        var out = ""
        for component in components {
            switch component {
            case .key(let name):
                if !out.isEmpty { out += "." }
                out += SeedSyntax.printable(name)
            case .index(let index):
                out += "[\(index)]"
            }
        }
        return out
    }
}

/// How a scalar reads under the YAML 1.2 core schema (what editors and the JSON Schema see).
enum ScalarValue {
    case null
    case bool(Bool)
    case int(String)
    case float(String)
    case string(String)

    init(plain text: String) {
        switch text {
        case "", "~", "null", "Null", "NULL": self = .null
        case "true", "True", "TRUE": self = .bool(true)
        case "false", "False", "FALSE": self = .bool(false)
        default:
            if ScalarValue.isInteger(text) {
                self = .int(text)
            } else if ScalarValue.isFloat(text) {
                self = .float(text)
            } else {
                self = .string(text)
            }
        }
    }

    static func isInteger(_ text: String) -> Bool {
        var bytes = Substring(text).utf8[...]
        if text.hasPrefix("0o") { return text.utf8.count > 2 && text.utf8.dropFirst(2).allSatisfy { $0 >= 0x30 && $0 <= 0x37 } }
        if text.hasPrefix("0x") { return text.utf8.count > 2 && text.utf8.dropFirst(2).allSatisfy(SeedSyntax.isHexDigit) }
        if let first = bytes.first, first == 0x2b || first == 0x2d { bytes = bytes.dropFirst() }
        return !bytes.isEmpty && bytes.allSatisfy(SeedSyntax.isDigit)
    }

    static func isFloat(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        if let first = bytes.first, first == 0x2b || first == 0x2d { bytes = bytes.dropFirst() }
        let rest = String(decoding: bytes, as: UTF8.self)
        if [".inf", ".Inf", ".INF"].contains(rest) { return true }
        if [".nan", ".NaN", ".NAN"].contains(text) { return true }
        var index = bytes.startIndex
        var mantissaDigits = 0
        while index < bytes.endIndex, SeedSyntax.isDigit(bytes[index]) { index += 1; mantissaDigits += 1 }
        if index < bytes.endIndex, bytes[index] == 0x2e {
            index += 1
            while index < bytes.endIndex, SeedSyntax.isDigit(bytes[index]) { index += 1; mantissaDigits += 1 }
        }
        guard mantissaDigits > 0 else { return false }
        if index < bytes.endIndex, bytes[index] == 0x65 || bytes[index] == 0x45 {
            index += 1
            if index < bytes.endIndex, bytes[index] == 0x2b || bytes[index] == 0x2d { index += 1 }
            var exponentDigits = 0
            while index < bytes.endIndex, SeedSyntax.isDigit(bytes[index]) { index += 1; exponentDigits += 1 }
            guard exponentDigits > 0 else { return false }
        }
        return index == bytes.endIndex
    }

    /// Tags that Yams may have written into a plain scalar's tag while resolving it (e.g. for duplicate checks).
    static let coreTags: Set<String> = [
        "", "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value", "tag:yaml.org,2002:merge",
    ]

    /// nil when the scalar carries an explicit tag other than `!!str`.
    init?(_ scalar: Node.Scalar) {
        let tag = scalar.tag.description
        if tag == "tag:yaml.org,2002:str" {
            self = .string(scalar.string)
        } else if scalar.style == .plain || scalar.style == .any, ScalarValue.coreTags.contains(tag) {
            self = ScalarValue(plain: scalar.string)
        } else {
            return nil
        }
    }

    func describe(secret: Bool) -> String {
        switch self {
        case .null: return "an empty value"
        case .bool(let value): return "the boolean \(value)"
        case .int(let text), .float(let text): return secret ? "a number" : "the number \(text)"
        case .string(let text): return secret ? "text" : "the text '\(SeedSyntax.printable(text))'"
        }
    }
}

enum Suggestions {
    /// The allowed key closest to `key`, when it is close enough to be a likely typo.
    static func closest(to key: String, among candidates: [String]) -> String? {
        func normalized(_ text: String) -> String {
            String(text.lowercased().unicodeScalars.filter { $0 != "_" && $0 != "-" && $0 != " " })
        }
        let target = normalized(key)
        if let exact = candidates.first(where: { normalized($0) == target }) { return exact }
        let limit = key.count >= 10 ? 3 : 2
        let scored = candidates.map { ($0, distance(Array(target.unicodeScalars), Array(normalized($0).unicodeScalars))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= limit, best.1 < max(key.count, 1) else {
            return nil
        }
        return best.0
    }

    /// Levenshtein distance, with an early exit for long inputs.
    static func distance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.count > 64 || b.count > 64 { return Int.max / 2 }
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
