import Exec
import Foundation
import Testing
import TestSupport

/// The initramfs hook `image/overlay/etc/initramfs-tools/hooks/zz-aquarium-trim`, run as mkinitramfs runs it (with
/// `version` and `DESTDIR` set) on a tree laid out like an initramfs under construction, against a modules.dep in the
/// kernel's own format. The boot itself is checked by the end-to-end boots of every image variant.
@Suite("initramfs trim hook: network roots out, everything the stick's root needs in")
struct InitramfsTrimTests {
    static let hook = DescriptionTests.root + "/image/overlay/etc/initramfs-tools/hooks/zz-aquarium-trim"
    static let version = "6.1.0-99-amd64"

    /// module path -> what it needs, as in modules.dep.
    static let modules: [(String, [String])] = [
        ("kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko", []),
        ("kernel/net/sunrpc/sunrpc.ko", []),
        ("kernel/fs/nfs/nfs.ko", ["kernel/net/sunrpc/sunrpc.ko"]),
        ("kernel/fs/xfs/xfs.ko", []),
        ("kernel/drivers/scsi/bnx2fc/bnx2fc.ko", ["kernel/drivers/net/ethernet/broadcom/cnic.ko"]),
        ("kernel/drivers/net/ethernet/broadcom/cnic.ko", []),
        // Needs a module that needs a removed one: goes too.
        ("kernel/drivers/platform/x86/asus-wmi.ko", ["kernel/net/rfkill/rfkill.ko"]),
        ("kernel/net/rfkill/rfkill.ko", []),
        ("kernel/drivers/hid/hid-asus.ko", ["kernel/drivers/platform/x86/asus-wmi.ko"]),
        // What finds and mounts the root stays.
        ("kernel/drivers/usb/storage/usb-storage.ko", ["kernel/drivers/usb/core/usbcore.ko", "kernel/drivers/scsi/scsi_mod.ko"]),
        ("kernel/drivers/usb/storage/uas.ko", ["kernel/drivers/usb/storage/usb-storage.ko"]),
        ("kernel/drivers/usb/core/usbcore.ko", []),
        ("kernel/drivers/usb/host/xhci-pci.ko", ["kernel/drivers/usb/host/xhci-hcd.ko"]),
        ("kernel/drivers/usb/host/xhci-hcd.ko", ["kernel/drivers/usb/core/usbcore.ko"]),
        ("kernel/drivers/scsi/scsi_mod.ko", []),
        ("kernel/drivers/scsi/sd_mod.ko", ["kernel/drivers/scsi/scsi_mod.ko"]),
        ("kernel/drivers/ata/ahci.ko", ["kernel/drivers/ata/libata.ko"]),
        ("kernel/drivers/ata/libata.ko", ["kernel/drivers/scsi/scsi_mod.ko"]),
        ("kernel/drivers/nvme/host/nvme.ko", ["kernel/drivers/nvme/host/nvme-core.ko"]),
        ("kernel/drivers/nvme/host/nvme-core.ko", []),
        ("kernel/drivers/virtio/virtio_blk.ko", []),
        ("kernel/drivers/mmc/core/mmc_block.ko", []),
        ("kernel/fs/ext4/ext4.ko", ["kernel/fs/jbd2/jbd2.ko"]),
        ("kernel/fs/jbd2/jbd2.ko", []),
        ("kernel/fs/overlayfs/overlay.ko", []),
        ("kernel/drivers/md/dm-verity.ko", ["kernel/drivers/md/dm-mod.ko"]),
        ("kernel/drivers/md/dm-mod.ko", []),
        ("kernel/drivers/hid/hid-generic.ko", []),
    ]
    static let removed: Set<String> = [
        "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko", "kernel/net/sunrpc/sunrpc.ko", "kernel/fs/nfs/nfs.ko",
        "kernel/fs/xfs/xfs.ko", "kernel/drivers/scsi/bnx2fc/bnx2fc.ko", "kernel/drivers/net/ethernet/broadcom/cnic.ko",
        "kernel/drivers/platform/x86/asus-wmi.ko", "kernel/net/rfkill/rfkill.ko", "kernel/drivers/hid/hid-asus.ko",
    ]

    @Test("removes network drivers, network filesystems and what needs them (transitively); keeps USB, SATA, NVMe, virtio, MMC, ext4, dm-verity",
          .requires(programs: ["sh", "awk"]))
    func trims() throws {
        try withTemporaryDirectory { directory in
            let system = directory + "/system"
            let destination = directory + "/initramfs"
            let systemModules = system + "/lib/modules/\(Self.version)"
            try FileManager.default.createDirectory(atPath: systemModules, withIntermediateDirectories: true)
            let dep = Self.modules.map { module, needs in "\(module):" + needs.map { " " + $0 }.joined() + "\n" }.joined()
            try Data(dep.utf8).write(to: URL(fileURLWithPath: systemModules + "/modules.dep"))
            // The initramfs under construction: Debian's merged /usr, modules under usr/lib/modules.
            for (module, _) in Self.modules {
                let path = destination + "/usr/lib/modules/\(Self.version)/" + module
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                        withIntermediateDirectories: true)
                try Data("module".utf8).write(to: URL(fileURLWithPath: path))
            }
            try FileManager.default.createSymbolicLink(atPath: destination + "/lib", withDestinationPath: "usr/lib")

            #expect(try Command("sh", [Self.hook, "prereqs"]).run().output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
            try Command(Self.hook, [], environment: ["version": Self.version, "DESTDIR": destination,
                                                     "AQUARIUM_TRIM_MODULES_ROOT": system]).run()
            for (module, _) in Self.modules {
                let present = FileManager.default.fileExists(atPath: destination + "/usr/lib/modules/\(Self.version)/" + module)
                if Self.removed.contains(module) {
                    #expect(!present, "\(module) should be gone")
                } else {
                    #expect(present, "\(module) must stay: the root is found and mounted with it")
                }
            }
        }
    }

    @Test("without the system's modules.dep it changes nothing and succeeds", .requires(programs: ["sh"]))
    func noModulesDep() throws {
        try withTemporaryDirectory { directory in
            let module = directory + "/initramfs/usr/lib/modules/\(Self.version)/kernel/drivers/net/x.ko"
            try FileManager.default.createDirectory(atPath: (module as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try Data("module".utf8).write(to: URL(fileURLWithPath: module))
            try Command(Self.hook, [], environment: ["version": Self.version, "DESTDIR": directory + "/initramfs",
                                                     "AQUARIUM_TRIM_MODULES_ROOT": directory + "/none"]).run()
            #expect(FileManager.default.fileExists(atPath: module))
        }
    }
}
