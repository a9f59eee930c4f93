import Foundation

// JSON as the tools' documented contracts write it: sorted keys, no escaped slashes, and unknown values as `null`
// rather than missing keys (docs/inventory.md, docs/plan.md, docs/firstboot.md).

public enum JSONCoding {
    /// The encoder for every documented JSON document and file the tools write.
    public static func encoder(pretty: Bool = true) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            : [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// `value` as documented JSON text.
    public static func text<T: Encodable>(_ value: T, pretty: Bool = true) throws -> String {
        String(decoding: try encoder(pretty: pretty).encode(value), as: UTF8.self)
    }

    /// What is wrong with a JSON document, in the document's terms: the key path as JSON names it (`disks[2].size`)
    /// and what was expected there (a number, text, an object, ...), not Swift's `CodingKeys(stringValue: ...)`.
    public static func problem(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .keyNotFound(let key, let context):
            return "the key \(path(context.codingPath + [key])) is missing"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) must be \(jsonKind(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) is null where \(jsonKind(type)) is needed"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
                return "not valid JSON" + (underlying.map { ": " + $0.trimmingCharacters(in: CharacterSet(charactersIn: ".")) } ?? "")
            }
            return "\(path(context.codingPath)): \(context.debugDescription.trimmingCharacters(in: CharacterSet(charactersIn: ".")))"
        @unknown default:
            return "\(error)"
        }
    }

    /// `disks[2].size`: object keys joined with dots, array positions in brackets; `the document` for the top.
    static func path(_ keys: [any CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == String(index) {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return text.isEmpty ? "the document" : "`\(text)`"
    }

    /// A Swift type as JSON calls what stands for it.
    static func jsonKind(_ type: Any.Type) -> String {
        let name = String(describing: type)
        switch name {
        case "String", "Character": return "text (a JSON string)"
        case "Bool": return "true or false"
        case _ where ["Int", "UInt", "Double", "Float"].contains { name.hasPrefix($0) }: return "a number"
        case _ where name.hasPrefix("Array<") || name.hasPrefix("["): return "an array"
        case _ where name.hasPrefix("Dictionary<") || name == "Decodable": return "an object"
        default: return "an object"
        }
    }
}

/// An optional property that is written as `null` when it has no value (synthesized `Codable` leaves the key out),
/// and read as nil when the key is `null` or missing.
@propertyWrapper
public struct Nullable<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

extension KeyedDecodingContainer {
    /// A missing key is nil, like a `null` one.
    public func decode<Value>(_ type: Nullable<Value>.Type, forKey key: Key) throws -> Nullable<Value> {
        try decodeIfPresent(type, forKey: key) ?? Nullable(wrappedValue: nil)
    }
}
