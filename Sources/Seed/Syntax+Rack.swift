import Foundation

/// The syntax of a rack node's cluster values: fsid, cephx keys, lifetimes.
extension SeedSyntax {
    /// A lowercase UUID such as `c1548103-2615-4764-ae5d-1ab67261fb22` (a Ceph fsid).
    static func fsidProblem(_ text: String) -> String? {
        guard text.utf8.count == 36, UUID(uuidString: text) != nil else {
            return "is not a cluster fsid: a UUID such as c1548103-2615-4764-ae5d-1ab67261fb22"
        }
        return text == text.lowercased() ? nil : "write the fsid in lowercase: \(text.lowercased())"
    }

    /// A cephx key as Ceph prints it: base64 (40 characters) of `u16 type = 1`, `utime created` (8 bytes),
    /// `u16 length = 16` and the 16-byte secret. The message never repeats the key.
    static func cephxKeyProblem(_ key: String) -> String? {
        guard key.utf8.count == 40, let data = Data(base64Encoded: key), data.count == 28 else {
            return "is not a cephx key (40 characters of base64, starting with AQ); copy it from the rack's secrets "
                + "or make the seeds again with `aquarium-image rack seeds`"
        }
        let bytes = [UInt8](data)
        guard bytes[0] == 1, bytes[1] == 0, bytes[10] == 16, bytes[11] == 0 else {
            return "is base64 but not a cephx key (an AES key of 16 bytes); copy it from the rack's secrets"
        }
        return nil
    }

    /// A lifetime as an operator writes it: a whole number and a unit, `s`, `m`, `h` or `d` (`90m`, `24h`, `7d`), up
    /// to ten years; in seconds. The one parser: seeds, rack files and `join-token --ttl`.
    static func lifetime(_ text: String) -> Int? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let unit = text.last, let factor = units[unit], text.dropLast().allSatisfy({ $0.isASCII && $0.isNumber }),
              let number = Int(text.dropLast()), number > 0, number <= 3650 * 86400 / factor else { return nil }
        return number * factor
    }
}

/// Lifetimes as operators write them (`90m`, `24h`, `7d`), for the other modules (`join-token --ttl`).
public enum Lifetime {
    /// The seconds `text` stands for, or nil when it is not a lifetime.
    public static func seconds(_ text: String) -> Int? { SeedSyntax.lifetime(text) }
}
