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
    /// Why `secureBoot` is unknown: the variable's file and the error.
    public var problem: String?

    public init(firmware: String, secureBoot: Bool? = nil, setupMode: Bool? = nil, problem: String? = nil) {
        self.firmware = firmware
        self.secureBoot = secureBoot
        self.setupMode = setupMode
        self.problem = problem
    }

    /// The EFI global variable vendor GUID (SecureBoot, SetupMode).
    static let globalVariableGUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

    /// Read from sysfs: `/sys/firmware/efi` exists only when the kernel was started by UEFI firmware; efivarfs holds
    /// each variable as 4 attribute bytes and then its value.
    public static func current(firmwareDirectory: String = "/sys/firmware/efi") -> BootFirmware {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: firmwareDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            return BootFirmware(firmware: "bios")
        }
        var problem: String?
        func flag(_ name: String) -> Bool? {
            let path = "\(firmwareDirectory)/efivars/\(name)-\(globalVariableGUID)"
            switch readVariable(path) {
            case .success(let data):
                if let value = variableFlag(data) { return value }
                problem = problem ?? "\(path): \(data.count) bytes, not a boolean variable"
            case .failure(let error):
                let names = (try? FileManager.default.contentsOfDirectory(atPath: firmwareDirectory + "/efivars")) ?? []
                problem = problem ?? "\(path): \(error.text); efivars holds \(names.count) variables"
                    + (names.isEmpty ? "" : " (" + names.sorted().prefix(6).joined(separator: ", ") + ", ...)")
            }
            return nil
        }
        let secureBoot = flag("SecureBoot")
        let setupMode = flag("SetupMode")
        return BootFirmware(firmware: "uefi", secureBoot: secureBoot, setupMode: setupMode, problem: secureBoot == nil ? problem : nil)
    }

    struct ReadError: Error { var text: String }

    /// An efivarfs file's bytes, read with plain read(2) into a small buffer (its size in stat is not relied on).
    static func readVariable(_ path: String) -> Result<Data, ReadError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(ReadError(text: String(cString: strerror(errno)))) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        var data = Data()
        while data.count <= 4096 {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return .failure(ReadError(text: String(cString: strerror(errno)))) }
            if count == 0 { return .success(data) }
            data.append(contentsOf: buffer[0..<count])
        }
        return .failure(ReadError(text: "longer than 4 KiB"))
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
        case nil: return "UEFI, Secure Boot state unknown (\(problem ?? "efivarfs not readable"))"
        }
    }
}
