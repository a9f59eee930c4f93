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
