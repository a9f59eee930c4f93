import Exec
import Foundation

/// The running system's host name and network, as opposed to the files that configure them (/etc/hostname,
/// /etc/systemd/network). FirstBoot's handoff makes the running system follow this node's /etc (the overlay came up
/// after systemd read the image's); the Provisioner's host step does the same after it rewrote those files.
public enum RunningHost {
    /// The kernel's host name.
    public static func name() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sets the kernel's host name; false when it could not.
    @discardableResult
    public static func set(_ name: String) -> Bool {
        name.withCString { sethostname($0, strlen($0)) } == 0
    }

    /// `networkctl reload`: systemd-networkd reads its configuration again. False when that failed.
    @discardableResult
    public static func reloadNetwork() -> Bool {
        (try? Command("networkctl", ["reload"]).run()) != nil
    }

    /// `systemctl try-restart UNIT` (a unit that is not running stays so); true when it succeeded.
    public static func restart(_ unit: String) -> Bool {
        (try? Command("systemctl", ["try-restart", unit], timeout: 60).run()) != nil
    }
}
