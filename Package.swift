// swift-tools-version: 6.2
// Aquarium boot & provisioning tooling. See docs/ and ../shared/design.md for the architecture.
import PackageDescription

let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "aquarium",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "aquarium-image", targets: ["aquarium-image"]),
        .executable(name: "aquarium-firstboot", targets: ["aquarium-firstboot"]),
        .executable(name: "aquarium-provision", targets: ["aquarium-provision"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // C libraries, each through pkg-config with the Debian package that provides it.
        .systemLibrary(name: "CParted", pkgConfig: "libparted", providers: [.apt(["libparted-dev"])]),
        .systemLibrary(name: "CBlkid", pkgConfig: "blkid", providers: [.apt(["libblkid-dev"])]),
        .systemLibrary(name: "CUdev", pkgConfig: "libudev", providers: [.apt(["libudev-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),

        // Safe Swift owners of the C handles.
        .target(name: "Parted", dependencies: ["CParted", "SystemErrors"], swiftSettings: strict),
        .target(name: "Blkid", dependencies: ["CBlkid", "SystemErrors"], swiftSettings: strict),
        .target(name: "Udev", dependencies: ["CUdev", "SystemErrors"], swiftSettings: strict),
        .target(name: "Archive", dependencies: ["CArchive", "SystemErrors"], swiftSettings: strict),
        // GUID Partition Table identities libparted 3.5 cannot set (type GUIDs, partition and disk GUIDs),
        // written in place with both headers' CRCs; also moves the backup header to a device's end.
        .target(name: "GPT", dependencies: ["SystemErrors", "FileLayer"], swiftSettings: strict),
        // The stick's A/B root slots: names, loader entries with boot counting, the update plan (pure).
        .target(name: "BootSlots", swiftSettings: strict),
        // Documented JSON: one encoder configuration and `null` for unknown values.
        .target(name: "JSONCoding", swiftSettings: strict),
        // The one file layer, on swift-system: positional I/O (EINTR, short transfers) and one atomic write.
        .target(name: "FileLayer", dependencies: [.product(name: "SystemPackage", package: "swift-system")],
                swiftSettings: strict),
        // errno -> Swift errors, shared by the wrappers.
        .target(name: "SystemErrors", swiftSettings: strict),

        // External programs as typed argv commands (never a shell string).
        .target(name: "Exec", dependencies: ["SystemErrors", .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        // The disk model and the inventory of this machine's block devices.
        .target(name: "Disks", dependencies: ["Udev", "Blkid", "SystemErrors", "FileLayer", "JSONCoding", "Exec",
                                              .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        // Seed file v1: model, parser, validation, schema, signatures; the rack file v1 and a rack's secrets.
        .target(name: "Seed", dependencies: ["FileLayer", "JSONCoding", .product(name: "Yams", package: "Yams"),
                                             .product(name: "Crypto", package: "swift-crypto")],
                resources: [.copy("Resources/seed.schema.json"), .copy("Resources/rack.schema.json"),
                            .copy("Resources/example-seed.yaml")],
                swiftSettings: strict),
        // The one contract between FirstBoot and the Provisioner: the versioned node record, the step journal and the
        // state layout; the fault points, the step runner and the running host name and network both tools use.
        .target(name: "NodeContract", dependencies: ["CommandSupport", "Disks", "GPT", "Seed", "FileLayer", "JSONCoding", "Exec"],
                swiftSettings: strict),
        // QEMU machines like the nodes: typed argv, console watching (the demo and end-to-end tests).
        .target(name: "QEMU", dependencies: ["Exec", "CommandSupport",
                                             .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                             .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        // Shared command-line plumbing: global options, logging bootstrap, exit codes, version.
        .target(name: "CommandSupport", dependencies: ["JSONCoding", "FileLayer", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                                       .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),

        // The three tools: logic and command trees in libraries, thin executables.
        .target(name: "ImageFormat", dependencies: ["CommandSupport", "FileLayer", "Archive",
                                                    .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: strict),
        .target(name: "ImageBuilder", dependencies: ["ImageFormat", "BootSlots", "CommandSupport", "JSONCoding", "Seed", "Disks", "FirstBoot", "FileLayer", "Parted", "GPT", "Archive", "Exec", "QEMU",
                                                     .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                                     .product(name: "Crypto", package: "swift-crypto"),
                                                     .product(name: "Logging", package: "swift-log"),
                                                     .product(name: "Yams", package: "Yams")],
                swiftSettings: strict),
        .target(name: "FirstBoot", dependencies: ["CommandSupport", "Seed", "Disks", "NodeContract", "FileLayer", "JSONCoding", "Parted", "GPT", "Blkid", "Exec",
                                                  .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                                  .product(name: "Crypto", package: "swift-crypto"),
                                                  .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .target(name: "Provisioner", dependencies: ["ImageFormat", "BootSlots", "GPT", "CommandSupport", "JSONCoding", "Seed", "Disks", "NodeContract", "FileLayer", "Exec", "Archive",
                                                    .product(name: "Crypto", package: "swift-crypto"),
                                                    .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                                    .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .executableTarget(name: "aquarium-image", dependencies: ["ImageBuilder"], swiftSettings: strict),
        .executableTarget(name: "aquarium-firstboot", dependencies: ["FirstBoot"], swiftSettings: strict),
        .executableTarget(name: "aquarium-provision", dependencies: ["Provisioner"], swiftSettings: strict),

        // Tests. Real devices where the subject is a device (see Tests/TestSupport).
        .target(name: "TestSupport", dependencies: ["Exec"], path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "WrapperTests", dependencies: ["Parted", "Blkid", "Udev", "Archive", "TestSupport"],
                    swiftSettings: strict),
        .testTarget(name: "DisksTests", dependencies: ["Disks", "FirstBoot", "NodeContract", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "SeedTests", dependencies: ["Seed", "ImageBuilder", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "GPTTests", dependencies: ["GPT", "Parted", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "ImageBuilderTests", dependencies: ["BootSlots", "ImageBuilder", "Provisioner", "Seed", "GPT", "Parted", "Disks", "TestSupport"],
                    swiftSettings: strict),
        .testTarget(name: "FirstBootTests", dependencies: ["FirstBoot", "Seed", "Disks", "NodeContract", "Provisioner", "GPT", "Parted", "Exec", "TestSupport",
                                                        .product(name: "Crypto", package: "swift-crypto")],
                    swiftSettings: strict),
        .testTarget(name: "ProvisionerTests", dependencies: ["BootSlots", "Provisioner", "Seed", "Disks", "NodeContract", "FileLayer", "TestSupport"],
                    swiftSettings: strict),
        .testTarget(name: "FileLayerTests", dependencies: ["FileLayer"], swiftSettings: strict),
        .testTarget(name: "ExecTests", dependencies: ["Exec"], swiftSettings: strict),
        .testTarget(name: "QEMUTests", dependencies: ["QEMU", "TestSupport"], swiftSettings: strict),
        // Build the image, boot it in QEMU from USB, provision unattended (runs in CI; minutes, not seconds).
        .testTarget(name: "EndToEndTests", dependencies: ["QEMU", "GPT", "Exec", "BootSlots", "TestSupport",
                                                         .product(name: "Crypto", package: "swift-crypto")],
                    swiftSettings: strict),
        .testTarget(name: "CommandTests", dependencies: ["ImageBuilder", "FirstBoot", "Provisioner", "TestSupport", "CommandSupport",
                                                        "FileLayer", "JSONCoding"],
                    swiftSettings: strict),
    ]
)
