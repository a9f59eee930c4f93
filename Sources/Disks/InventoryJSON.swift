import Foundation
import JSONCoding

/// Encoding and decoding of the inventory document (docs/inventory.md).
public enum InventoryJSON {
    public static func encode(_ inventory: Inventory) throws -> String {
        try JSONCoding.text(inventory)
    }

    public static func decode(_ data: Data) throws -> Inventory {
        try JSONDecoder().decode(Inventory.self, from: data)
    }
}
