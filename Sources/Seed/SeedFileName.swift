import Foundation

/// The names a node looks for its seed under on the stick's AQUASEED volume (a FAT filesystem): `seeds/<DMI
/// serial>.yaml`, then `seeds/<MAC>.yaml` with dashes for the colons (FAT forbids `:`), then `seed.yaml`
/// (FirstBoot's `SeedDiscovery.candidates`).
public enum SeedFileName {
    /// DMI serials that vendors leave in place of a real one (compared in lowercase). Every board of a model has them,
    /// so they name no machine: FirstBoot never looks for a seed under them.
    public static let placeholderSerials: Set<String> = [
        "to be filled by o.e.m.", "default string", "system serial number", "not specified", "not applicable", "none",
        "0", "0123456789", "123456789",
    ]

    public static func isPlaceholderSerial(_ serial: String) -> Bool {
        placeholderSerials.contains(serial.lowercased())
    }

    /// The characters FAT forbids in a file name (besides control characters).
    static let forbiddenCharacters: Set<Character> = ["/", "\\", ":", "*", "?", "\"", "<", ">", "|"]

    /// Why `serial` cannot name a seed file `seeds/<serial>.yaml` that FirstBoot finds, or nil when it can.
    public static func serialProblem(_ serial: String) -> String? {
        let instead = "; name this machine's seed by its MAC instead (give mac and leave serial out)"
        if serial.isEmpty || serial.count > 128 {
            return "'\(SeedSyntax.printable(serial))' is not a DMI system serial (1 to 128 characters; "
                + "`cat /sys/class/dmi/id/product_serial` shows it)"
        }
        if serial.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value > 0x7e }) {
            return "'\(SeedSyntax.printable(serial))' contains control characters or characters other than printable "
                + "ASCII, which cannot name a file on the FAT seed volume" + instead
        }
        if let bad = serial.first(where: { forbiddenCharacters.contains($0) }) {
            return "'\(serial)' contains '\(bad)', which FAT forbids in a file name (it forbids / \\ : * ? \" < > |)"
                + instead
        }
        if serial != serial.trimmingCharacters(in: .whitespaces) {
            return "'\(serial)' starts or ends with a space; a node compares its DMI serial without them" + instead
        }
        if isPlaceholderSerial(serial) {
            return "'\(serial)' is a vendor placeholder, not a serial: every board of a model has it, so it names no "
                + "machine and FirstBoot never looks for a seed under it" + instead
        }
        if serial.hasPrefix(".") || serial.contains("..") || serial.hasSuffix(".") {
            return "'\(serial)' starts or ends with '.' or holds '..', which the seed volume cannot hold as a file name"
                + instead
        }
        return nil
    }

    /// The dash form of a MAC address for a file name: `52-54-00-12-34-56`.
    public static func macName(_ mac: String) -> String {
        mac.lowercased().replacingOccurrences(of: ":", with: "-")
    }

    /// `seeds/<name>.yaml` on the seed volume.
    public static func volumePath(_ name: String) -> String { "seeds/\(name).yaml" }
}
