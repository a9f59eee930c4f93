import Foundation

/// What identifies this machine to a seed's `host.machine`: its DMI system serial and its NICs' MAC addresses.
public struct MachineFacts: Sendable, Equatable {
    public var dmiSerial: String?
    public var macs: [String]

    public init(dmiSerial: String?, macs: [String]) {
        self.dmiSerial = dmiSerial
        self.macs = macs
    }

    /// Read from sysfs (paths overridable for tests, as seed discovery reads them).
    public static func current(dmiSerialPath: String = "/sys/class/dmi/id/product_serial",
                               netDirectory: String = "/sys/class/net") -> MachineFacts {
        MachineFacts(dmiSerial: SeedDiscovery.dmiSerial(path: dmiSerialPath),
                     macs: SeedDiscovery.macAddresses(directory: netDirectory))
    }
}

/// How this machine booted: UEFI or legacy BIOS firmware, and on UEFI whether Secure Boot is enforced (the
/// `SecureBoot` variable, 1 when the firmware verifies what it starts). Reported on the stick (`boot` in the report).
public struct BootFirmware: Codable, Sendable, Equatable {
    /// `uefi` or `bios`.
    public var firmware: String
    /// UEFI: Secure Boot enforced; nil on BIOS, or when the variable cannot be read.
    public var secureBoot: Bool?
    /// UEFI: the firmware is in setup mode (no platform key: anything boots, keys can be enrolled).
    public var setupMode: Bool?

    public init(firmware: String, secureBoot: Bool? = nil, setupMode: Bool? = nil) {
        self.firmware = firmware
        self.secureBoot = secureBoot
        self.setupMode = setupMode
    }

    /// The EFI global variable vendor GUID (SecureBoot, SetupMode).
    static let globalVariableGUID = "8be4df61-93ca-11d0-aa0d-00e098032b8c"

    /// Read from sysfs: `/sys/firmware/efi` exists only when the kernel was started by UEFI firmware; efivarfs holds
    /// each variable as 4 attribute bytes and then its value.
    public static func current(firmwareDirectory: String = "/sys/firmware/efi") -> BootFirmware {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: firmwareDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            return BootFirmware(firmware: "bios")
        }
        func flag(_ name: String) -> Bool? {
            let path = "\(firmwareDirectory)/efivars/\(name)-\(globalVariableGUID)"
            return FileManager.default.contents(atPath: path).flatMap(variableFlag)
        }
        return BootFirmware(firmware: "uefi", secureBoot: flag("SecureBoot"), setupMode: flag("SetupMode"))
    }

    /// A one-byte boolean EFI variable as efivarfs shows it (4 attribute bytes, then 0 or 1); nil otherwise.
    static func variableFlag(_ data: Data) -> Bool? {
        guard data.count == 5 else { return nil }
        switch data[data.startIndex + 4] {
        case 0: return false
        case 1: return true
        default: return nil
        }
    }

    /// `UEFI, Secure Boot enforced` / `UEFI, Secure Boot off` / `legacy BIOS`.
    public var text: String {
        guard firmware == "uefi" else { return "legacy BIOS" }
        switch secureBoot {
        case true?: return "UEFI, Secure Boot enforced"
        case false?: return "UEFI, Secure Boot off" + (setupMode == true ? " (setup mode)" : "")
        case nil: return "UEFI, Secure Boot state unknown (efivarfs not readable)"
        }
    }
}
