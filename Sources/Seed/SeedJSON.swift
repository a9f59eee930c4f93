import Foundation
import Yams

extension SeedLoader {
    /// The document as JSON-compatible Foundation values, read with the same YAML 1.2 core scalar rules the
    /// validator uses (so `yes` is text, `0x10` a number). This is what an editor checks against the JSON Schema;
    /// the tests feed it to a JSON Schema validator. nil when the text is not one well-formed YAML document
    /// without duplicate keys.
    static func jsonObject(of text: String) -> Any? {
        guard precheck(text, file: "") == nil, case .success(let document) = compose(text, file: ""),
              document.duplicates.isEmpty, let root = document.root else { return nil }
        return withExtendedLifetime(document.parser) { json(root, depth: 0) }
    }

    static func json(_ node: Node, depth: Int) -> Any? {
        guard depth < maximumNesting else { return nil }
        switch node {
        case .scalar(let scalar):
            guard let value = ScalarValue(scalar) else { return scalar.string }
            switch value {
            case .null: return NSNull()
            case .bool(let flag): return flag
            case .string(let text): return text
            case .int(let text):
                if text.hasPrefix("0x") { return Int(text.dropFirst(2), radix: 16) ?? Double(text) ?? text }
                if text.hasPrefix("0o") { return Int(text.dropFirst(2), radix: 8) ?? text }
                return Int(text) ?? Double(text) ?? text
            case .float(let text):
                if let number = Double(text), number.isFinite { return number }
                return text
            }
        case .sequence(let sequence):
            var items: [Any] = []
            for item in sequence {
                guard let converted = json(item, depth: depth + 1) else { return nil }
                items.append(converted)
            }
            return items
        case .mapping(let mapping):
            var object: [String: Any] = [:]
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key, let converted = json(value, depth: depth + 1) else {
                    return nil
                }
                object[keyScalar.string] = converted
            }
            return object
        case .alias:
            return nil
        }
    }
}
