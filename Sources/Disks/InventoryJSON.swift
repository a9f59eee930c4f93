import Foundation

/// Encoding and decoding of the inventory document (docs/inventory.md).
public enum InventoryJSON {
    public static func encode(_ inventory: Inventory) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(inventory), as: UTF8.self)
    }

    public static func decode(_ data: Data) throws -> Inventory {
        try JSONDecoder().decode(Inventory.self, from: data)
    }
}
