import CUdev
import Glibc
import SystemErrors

/// The single owner of a libudev context.
///
/// libudev works without a running udevd: enumeration then comes from sysfs and the kernel's
/// uevent properties, while the udev database (serials, WWNs, by-id links) is empty.
/// `isDaemonDatabaseAvailable` tells which case this is.
public final class Udev: @unchecked Sendable {
    fileprivate let context: OpaquePointer

    public init() throws(SystemError) {
        guard let context = udev_new() else { throw SystemError.fromErrno("udev_new", message: "libudev context could not be created") }
        self.context = context
    }

    deinit { udev_unref(context) }

    /// True when udevd has populated its database (`/run/udev/data`), so that udev properties
    /// such as ID_SERIAL and the /dev/disk/by-id links are there.
    public static var isDaemonDatabaseAvailable: Bool {
        access("/run/udev/data", F_OK) == 0
    }

    /// Every device in `subsystem`, optionally only those whose DEVTYPE is `devtype`, sorted by sysfs path.
    public func devices(subsystem: String, devtype: String? = nil) throws(SystemError) -> [UdevDevice] {
        guard let enumerate = udev_enumerate_new(context) else {
            throw SystemError.fromErrno("udev_enumerate_new")
        }
        defer { udev_enumerate_unref(enumerate) }
        try check("udev_enumerate_add_match_subsystem") { udev_enumerate_add_match_subsystem(enumerate, subsystem) }
        if let devtype {
            try check("udev_enumerate_add_match_property") { udev_enumerate_add_match_property(enumerate, "DEVTYPE", devtype) }
        }
        try check("udev_enumerate_scan_devices") { udev_enumerate_scan_devices(enumerate) }
        var result: [UdevDevice] = []
        var entry = udev_enumerate_get_list_entry(enumerate)
        while let current = entry {
            if let syspath = optionalString(udev_list_entry_get_name(current)),
               let device = try? UdevDevice(udev: self, syspath: syspath) {
                result.append(device)
            }
            entry = udev_list_entry_get_next(current)
        }
        return result.sorted { $0.syspath < $1.syspath }
    }

    /// The device at a sysfs path such as `/sys/class/block/loop0`.
    public func device(syspath: String) throws(SystemError) -> UdevDevice {
        try UdevDevice(udev: self, syspath: syspath)
    }

    private func check(_ operation: String, _ body: () -> Int32) throws(SystemError) {
        let rc = body()
        if rc < 0 { throw SystemError(operation: operation, errno: -rc) }
    }
}

/// The single owner of one `udev_device` reference. Holds its `Udev` context alive.
public final class UdevDevice: @unchecked Sendable {
    private let device: OpaquePointer
    private let udev: Udev

    fileprivate init(udev: Udev, syspath: String) throws(SystemError) {
        guard let device = udev_device_new_from_syspath(udev.context, syspath) else {
            throw SystemError.fromErrno("udev_device_new_from_syspath", path: syspath)
        }
        self.device = device
        self.udev = udev
    }

    deinit { udev_device_unref(device) }

    public var syspath: String { optionalString(udev_device_get_syspath(device)) ?? "" }
    public var sysname: String { optionalString(udev_device_get_sysname(device)) ?? "" }
    public var devnode: String? { optionalString(udev_device_get_devnode(device)) }
    public var devtype: String? { optionalString(udev_device_get_devtype(device)) }

    /// A udev property (from the uevent, or from udevd's database when it runs).
    public func property(_ name: String) -> String? {
        optionalString(udev_device_get_property_value(device, name))
    }

    /// A sysfs attribute of this device, trimmed of surrounding white space.
    public func attribute(_ name: String) -> String? {
        optionalString(udev_device_get_sysattr_value(device, name))?.trimmingWhitespace()
    }

    /// The /dev symlinks udev made for this device (empty when udevd does not run).
    public var devlinks: [String] {
        var links: [String] = []
        var entry = udev_device_get_devlinks_list_entry(device)
        while let current = entry {
            if let name = optionalString(udev_list_entry_get_name(current)) { links.append(name) }
            entry = udev_list_entry_get_next(current)
        }
        return links.sorted()
    }

    /// Every property, for diagnosis.
    public var properties: [String: String] {
        var values: [String: String] = [:]
        var entry = udev_device_get_properties_list_entry(device)
        while let current = entry {
            if let name = optionalString(udev_list_entry_get_name(current)) {
                values[name] = optionalString(udev_list_entry_get_value(current)) ?? ""
            }
            entry = udev_list_entry_get_next(current)
        }
        return values
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
