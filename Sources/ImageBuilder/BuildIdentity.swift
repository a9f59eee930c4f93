import Foundation
import BootSlots
import GPT

/// Everything in an image that would otherwise be random or the wall clock: the disk and partition
/// GUIDs, filesystem UUIDs and volume ids, the ext4 hash seed, and the time stamped on files.
///
/// All of them derive from the image name and the build's epoch (`SOURCE_DATE_EPOCH` when set), so two
/// builds with the same inputs and the same epoch are byte-identical, while images built at different
/// times still get different identities.
public struct BuildIdentity: Sendable, Equatable {
    public var imageName: String
    /// Seconds since 1970; every time stamp in the image is clamped to it.
    public var epoch: Int64
    /// The image's release string (`build --release`, the description's `release`), or nil. When set it is part of
    /// every identity, so a rebuild with another release at the same epoch still gets its own filesystem UUIDs: the
    /// two root slots of a stick then never hold filesystems with the same UUID.
    public var release: String?

    public init(imageName: String, epoch: Int64, release: String? = nil) {
        self.imageName = imageName
        self.epoch = epoch
        self.release = release
    }

    /// What loader entries and `/etc/aquarium/image-release` call this build: the release, or `build-EPOCH`.
    public var releaseName: String { release ?? "build-\(epoch)" }

    /// The epoch from `SOURCE_DATE_EPOCH`, or now when it is not set.
    public static func epochFromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                            now: Date = Date()) throws(ImageError) -> Int64 {
        guard let text = environment["SOURCE_DATE_EPOCH"], !text.isEmpty else { return Int64(now.timeIntervalSince1970) }
        guard let value = Int64(text.trimmingCharacters(in: .whitespaces)), value >= 0 else {
            throw .invalid("SOURCE_DATE_EPOCH", "'\(text)' is not a number of seconds since 1970; unset it or set e.g. $(git log -1 --format=%ct)")
        }
        return value
    }

    /// A UUID for `role` ("disk", "partition/root", "fs/root", ...), the same for the same name and epoch.
    public func uuid(_ role: String) -> UUID {
        DeterministicUUID.make("aquarium-image/\(imageName)/\(epoch)/" + (release.map { "\($0)/" } ?? "") + role)
    }

    public var diskGUID: UUID { uuid("disk") }
    public func partitionGUID(_ role: PartitionRole) -> UUID { uuid("partition/\(role.rawValue)") }
    public func filesystemUUID(_ role: PartitionRole) -> UUID { uuid("filesystem/\(role.rawValue)") }
    /// The ext4 directory hash seed.
    public var ext4HashSeed: UUID { uuid("ext4-hash-seed") }
    /// The dm-verity salt (64 hex digits): two UUIDs of this identity.
    public var veritySalt: String {
        (uuid("verity/salt/1").uuidString + uuid("verity/salt/2").uuidString).replacingOccurrences(of: "-", with: "").lowercased()
    }

    /// A FAT volume id (8 hex digits, as `mkfs.vfat -i` takes it; shown as XXXX-XXXX by blkid).
    public func fatVolumeID(_ role: PartitionRole) -> String {
        let u = filesystemUUID(role).uuid
        return String(format: "%02X%02X%02X%02X", u.0, u.1, u.2, u.3)
    }

    /// The environment that makes mkfs/mtools/e2fsprogs stamp the epoch instead of the wall clock.
    public var toolEnvironment: [String: String] {
        ["SOURCE_DATE_EPOCH": String(epoch), "E2FSPROGS_FAKE_TIME": String(epoch), "TZ": "UTC", "LC_ALL": "C"]
    }
}

/// The partitions of the stick, in table order: the ESP, root slot A (`root`, which the build fills), root slot B
/// (`rootB`, empty until the first `aquarium-provision update`), the seed volume.
public enum PartitionRole: String, Sendable, CaseIterable {
    case esp, root, rootB = "root-b", seed

    /// The GPT partition name.
    public var partitionName: String {
        switch self {
        case .esp: StickNames.espPartitionName
        case .root: Slot.a.partitionName
        case .rootB: Slot.b.partitionName
        case .seed: "AQUASEED"
        }
    }

    public var typeGUID: UUID {
        switch self {
        case .esp: GPTEditor.PartitionType.esp
        case .root, .rootB: GPTEditor.PartitionType.rootX86_64
        case .seed: GPTEditor.PartitionType.basicData
        }
    }

    /// The filesystem label (slot B has no filesystem in a fresh image; an update copies one with this label there).
    public var label: String {
        switch self {
        case .esp: "AQUA-ESP"
        case .root, .rootB: "aquarium-root"
        case .seed: "AQUASEED"
        }
    }
}
