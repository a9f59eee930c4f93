import Crypto
import FileLayer
import Foundation

/// The initramfs of a build whose inputs were all built before: update-initramfs takes most of a cached build (it
/// copies and compresses the kernel's modules), yet its result depends only on what is in the root tree when it runs.
/// The key is a digest of those inputs: the package set and versions (`/var/lib/dpkg/status`: the kernel, its modules,
/// initramfs-tools and every package's hooks), the kernels in /boot, and the whole of /etc as the build left it (the
/// overlay's hooks, scripts, modprobe.d and initramfs.conf, fstab, enabled units), but for what names the build rather
/// than configures the root: the image-release file and the UUIDs in fstab (made from the build's epoch; the fsck hook
/// reads fstab for the root's filesystem type). The initramfs's own time stamps come from `epoch(root:)`, not the
/// build's: so a rebuild with new tools or a new epoch takes the cached initramfs, and two builds with the same inputs
/// still compare equal byte for byte. update-initramfs is reproducible given those (FullBuildTests builds an image
/// from the cache and one with `--no-initramfs-cache` and compares them). Kept as `CACHE/initramfs/KEY/` with each kernel's
/// `initrd.img-VERSION` and initramfs-tools' record of it (`/var/lib/initramfs-tools/VERSION`) when there is one.
struct InitramfsCache {
    let directory: String

    /// Files of /etc that name the build rather than configure the root: not inputs of the initramfs.
    static let excluded: Set<String> = ["aquarium/image-release"]

    /// SOURCE_DATE_EPOCH for update-initramfs: the package database's time (the cached root filesystem's), the same
    /// for every build from that root.
    static func epoch(root: String) -> Int64? {
        var info = stat()
        guard stat(root + "/var/lib/dpkg/status", &info) == 0 else { return nil }
        return Int64(info.st_mtim.tv_sec)
    }

    /// `text` with every `UUID=...` value replaced by `UUID=*`.
    static func withoutUUIDs(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.split(separator: " ", omittingEmptySubsequences: false).map { word in
                word.hasPrefix("UUID=") ? "UUID=*" : word
            }.joined(separator: " ")
        }.joined(separator: "\n")
    }

    /// The key for the tree at `root`, or nil when it has no package database or kernel (nothing to cache).
    static func key(root: String) throws(ImageError) -> String? {
        guard let status = FileManager.default.contents(atPath: root + "/var/lib/dpkg/status") else { return nil }
        let kernels = kernelVersions(root: root)
        guard !kernels.isEmpty else { return nil }
        var digest = SHA256()
        func add(_ text: String) { digest.update(data: Data((text + "\u{0}").utf8)) }
        add("aquarium-initramfs-1")
        add(epoch(root: root).map(String.init) ?? "")
        add(kernels.joined(separator: " "))
        digest.update(data: status)
        for entry in try FileTree(path: root + "/etc").entries() where !excluded.contains(entry.relativePath) {
            let path = root + "/etc/" + entry.relativePath
            var info = stat()
            guard lstat(path, &info) == 0 else { throw .failure(path, "cannot stat: \(errnoText())") }
            add(entry.relativePath)
            add(String(info.st_mode, radix: 8) + " \(info.st_uid):\(info.st_gid)")
            switch entry.kind {
            case .file where entry.relativePath == "fstab":
                guard let data = FileManager.default.contents(atPath: path) else { throw .failure(path, "cannot read") }
                add(withoutUUIDs(String(decoding: data, as: UTF8.self)))
            case .file:
                guard let data = FileManager.default.contents(atPath: path) else { throw .failure(path, "cannot read") }
                digest.update(data: data)
            case .symlink:
                add((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "")
            case .directory, .other:
                break
            }
        }
        return digest.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func kernelVersions(root: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root + "/boot")) ?? [])
            .filter { $0.hasPrefix("vmlinuz-") }.map { String($0.dropFirst("vmlinuz-".count)) }.sorted()
    }

    /// The initrd of each kernel, relative to the root.
    static func initrds(root: String) -> [String] { kernelVersions(root: root).map { "boot/initrd.img-\($0)" } }

    /// What else update-initramfs may write for each kernel: its record of the initrd's digest (Debian 12's
    /// update-initramfs keeps none when the root had no initrd before).
    static func records(root: String) -> [String] { kernelVersions(root: root).map { "var/lib/initramfs-tools/\($0)" } }

    /// Puts the cached initramfs for `key` into `root`; false when there is none.
    func restore(key: String, into root: String) throws(ImageError) -> Bool {
        let entry = directory + "/" + key
        let initrds = Self.initrds(root: root)
        guard initrds.allSatisfy({ FileManager.default.fileExists(atPath: entry + "/" + Self.flat($0)) }) else { return false }
        let records = Self.records(root: root).filter { FileManager.default.fileExists(atPath: entry + "/" + Self.flat($0)) }
        for file in initrds + records {
            let target = root + "/" + file
            do {
                try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent,
                                                        withIntermediateDirectories: true)
                try? FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: entry + "/" + Self.flat(file), toPath: target)
            } catch {
                throw .failure(target, "cannot restore the cached initramfs from \(entry): \(error)")
            }
            guard chmod(target, 0o644) == 0, chown(target, 0, 0) == 0 else {
                throw .failure(target, "cannot set owner and mode: \(errnoText())")
            }
        }
        return true
    }

    /// Keeps what update-initramfs just wrote in `root` under `key` (written beside, then renamed into place: a build
    /// that dies meanwhile leaves no half entry).
    func store(key: String, from root: String) throws(ImageError) {
        let entry = directory + "/" + key
        let temporary = directory + "/.\(key).\(getpid())"
        let records = Self.records(root: root).filter { FileManager.default.fileExists(atPath: root + "/" + $0) }
        do {
            try? FileManager.default.removeItem(atPath: temporary)
            try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
            for file in Self.initrds(root: root) + records {
                try FileManager.default.copyItem(atPath: root + "/" + file, toPath: temporary + "/" + Self.flat(file))
            }
            try? FileManager.default.removeItem(atPath: entry)
            try FileManager.default.moveItem(atPath: temporary, toPath: entry)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw .failure(entry, "cannot keep the initramfs in the cache: \(error)")
        }
    }

    static func flat(_ path: String) -> String { path.replacingOccurrences(of: "/", with: "_") }
}
