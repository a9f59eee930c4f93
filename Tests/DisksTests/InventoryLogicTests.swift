@testable import Disks
import Foundation
import Testing

@Suite("Inventory logic")
struct InventoryLogicTests {
    @Test("transport from kernel name, sysfs path and udev bus", arguments: [
        ("loop3", "/sys/devices/virtual/block/loop3", nil, nil, Transport.loop),
        ("nvme0n1", "/sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1", nil, nil, .nvme),
        ("mmcblk0", "/sys/devices/platform/soc/mmc_host/mmc0/mmc0:0001/block/mmcblk0", nil, nil, .mmc),
        ("sdc", "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdc", nil, nil, .usb),
        ("vda", "/sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda", nil, nil, .virtio),
        ("sda", "/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", "ata", "ATA", .sata),
        ("sdb", "/sys/devices/pci0000:00/0000:00:02.0/host1/port-1:0/end_device-1:0/target1:0:0/1:0:0:0/block/sdb", nil, "SEAGATE", .sas),
        ("sdd", "/sys/devices/pci0000:00/0000:00:03.0/virtio2/host2/target2:0:0/2:0:0:0/block/sdd", "scsi", "QEMU", .scsi),
        ("xyz", "/sys/devices/virtual/block/xyz", nil, nil, .unknown),
    ] as [(String, String, String?, String?, Transport)])
    func transport(_ name: String, _ path: String, _ bus: String?, _ vendor: String?, _ expected: Transport) {
        #expect(InventoryScanner.transport(name: name, sysfsPath: path, idBus: bus, vendor: vendor) == expected)
    }

    @Test("which block devices are listed", arguments: [
        ("zram0", UInt64(1 << 30), nil, false, false, false),
        ("ram0", UInt64(1 << 30), nil, false, false, false),
        ("loop0", UInt64(0), nil, false, false, false),
        ("loop1", UInt64(1 << 20), "/tmp/x.img", false, false, true),
        ("sr0", UInt64(0), nil, true, false, false),
        ("sr0", UInt64(0), nil, true, true, true),
        ("dm-0", UInt64(1 << 30), nil, false, false, false),
        ("md127", UInt64(1 << 30), nil, false, true, true),
        ("sda", UInt64(0), nil, false, false, false),
        ("sda", UInt64(1 << 30), nil, false, false, true),
    ] as [(String, UInt64, String?, Bool, Bool, Bool)])
    func listed(_ name: String, _ size: UInt64, _ backing: String?, _ cdrom: Bool, _ all: Bool, _ expected: Bool) {
        #expect(InventoryScanner.isListed(name: name, sizeBytes: size, backingFile: backing, isCdrom: cdrom, includeAll: all) == expected)
    }

    @Test("WWN normalisation", arguments: [
        ("naa.5000c500a1b2c3d4", "0x5000c500a1b2c3d4"),
        ("eui.0025388b71b2c3d4", "0x0025388b71b2c3d4"),
        ("0x5000C500A1B2C3D4", "0x5000c500a1b2c3d4"),
        ("t10.ATA     QEMU HARDDISK", nil),
        ("naa.", nil),
    ] as [(String, String?)])
    func wwn(_ input: String, _ expected: String?) {
        #expect(InventoryScanner.wwnFromWWID(input) == expected)
    }

    @Test("mountinfo parsing, escaped mount points, root devices")
    func mountinfo() {
        let text = """
            22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
            23 22 0:21 / /proc rw,nosuid - proc proc rw
            40 22 7:3 / /mnt/with\\040space rw - ext4 /dev/loop3 rw
            41 22 259:1 / /boot/efi rw - vfat /dev/nvme0n1p1 rw
            """
        let table = MountTable.parse(mountinfo: text)
        #expect(table.entries.count == 4)
        #expect(table.mountpoints(devnum: "7:3") == ["/mnt/with space"])
        #expect(table.devices(backing: ["/", "/boot/efi"]) == ["254:0", "259:1"])
        #expect(table.entries[2].source == "/dev/loop3")
    }

    @Test("device numbers split like glibc's major/minor", arguments: [
        (UInt64(0x0700), "7:0"), (UInt64(0xfe00), "254:0"), (UInt64(0x10301), "259:1"), (UInt64(0x1001_0301), "259:65537"),
    ] as [(UInt64, String)])
    func devnums(_ rdev: UInt64, _ expected: String) {
        #expect(devnumString(rdev) == expected)
    }

    @Test("human sizes", arguments: [
        (UInt64(0), "0 B"), (UInt64(999), "999 B"), (UInt64(480_103_981_056), "480 GB"),
        (UInt64(10_737_418_240), "10.7 GB"), (UInt64(2_000_000_000_000), "2 TB"),
    ] as [(UInt64, String)])
    func human(_ bytes: UInt64, _ expected: String) {
        #expect(ByteSize.human(bytes) == expected)
    }

    @Test("JSON: unknown values are null, lists empty; a short saved document decodes")
    func jsonContract() throws {
        let disk = Disk(name: "sdb", path: "/dev/sdb", sizeBytes: 480_103_981_056)
        let text = try InventoryJSON.encode(Inventory(disks: [disk]))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let encoded = try #require((object["disks"] as? [[String: Any]])?.first)
        #expect(encoded["serial"] is NSNull)
        #expect(encoded["wwn"] is NSNull)
        #expect((encoded["byId"] as? [Any])?.isEmpty == true)
        #expect((encoded["signatures"] as? [Any])?.isEmpty == true)
        #expect(try InventoryJSON.decode(Data(text.utf8)) == Inventory(disks: [disk]))

        let short = #"{"disks": [{"name": "sdc", "sizeBytes": 1000, "rotational": true, "transport": "sata"}]}"#
        let decoded = try InventoryJSON.decode(Data(short.utf8))
        #expect(decoded.disks.first?.path == "/dev/sdc")
        #expect(decoded.disks.first?.rotational == true)
        #expect(decoded.disks.first?.transport == .sata)
    }

    @Test("stable identity prefers WWN, then serial, then by-id")
    func identity() {
        var disk = Disk(name: "sda", path: "/dev/sda", byId: ["/dev/disk/by-id/ata-X"], sizeBytes: 1)
        #expect(disk.stableIdentity == "by-id:/dev/disk/by-id/ata-X")
        disk.serial = "S1"
        #expect(disk.stableIdentity == "serial:S1")
        disk.wwn = "0x5000"
        #expect(disk.stableIdentity == "wwn:0x5000")
    }
}
