import Crypto
import Foundation
import Yams
import BootSlots

/// `image/aquarium.yaml`: what the stick image is made of (documented in docs/image.md).
public struct ImageDescription: Sendable, Equatable, Decodable {
    /// Image name: the artifacts are NAME.raw, NAME.raw.bmap, ...
    public var name: String
    /// Debian suite ("bookworm") and architecture ("amd64").
    public var suite: String
    public var architecture: String
    /// debootstrap variant of the first stage.
    public var variant: String
    public var components: [String]
    /// Packages every profile installs.
    public var packages: [String]
    /// Extra packages per profile ("full" adds Ceph; "minimal" adds nothing).
    public var profiles: [String: [String]]
    public var defaultProfile: String
    /// Kernel command line after `root=PARTUUID=...`.
    public var kernelCommandLine: String
    /// Public seed keys (paths relative to the description directory) installed as trusted.
    public var trustedSeedKeys: [String]
    /// systemd units to enable besides those the overlay ships with an [Install] section.
    public var units: [String]
    public var layout: StickLayout
    /// The image's release string (loader entries, `/etc/aquarium/image-release`); `build --release` overrides it.
    public var release: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, suite, architecture, variant, components, packages, profiles
        case defaultProfile = "default_profile"
        case kernelCommandLine = "kernel_cmdline"
        case trustedSeedKeys = "trusted_seed_keys"
        case units, layout, release
    }

    enum LayoutKeys: String, CodingKey, CaseIterable {
        case espMiB = "esp_mib", seedMiB = "seed_mib", rootHeadroomMiB = "root_headroom_mib", rootMinimumMiB = "root_minimum_mib"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        suite = try c.decode(String.self, forKey: .suite)
        architecture = try c.decode(String.self, forKey: .architecture)
        variant = try c.decodeIfPresent(String.self, forKey: .variant) ?? "minbase"
        components = try c.decodeIfPresent([String].self, forKey: .components) ?? ["main"]
        packages = try c.decode([String].self, forKey: .packages)
        profiles = try c.decodeIfPresent([String: [String]].self, forKey: .profiles) ?? [:]
        defaultProfile = try c.decodeIfPresent(String.self, forKey: .defaultProfile) ?? "full"
        kernelCommandLine = try c.decodeIfPresent(String.self, forKey: .kernelCommandLine) ?? "ro"
        trustedSeedKeys = try c.decodeIfPresent([String].self, forKey: .trustedSeedKeys) ?? []
        units = try c.decodeIfPresent([String].self, forKey: .units) ?? []
        release = try c.decodeIfPresent(String.self, forKey: .release)
        let defaults = StickLayout()
        if c.contains(.layout) {
            let l = try c.nestedContainer(keyedBy: LayoutKeys.self, forKey: .layout)
            layout = StickLayout(espMiB: try l.decodeIfPresent(UInt64.self, forKey: .espMiB) ?? defaults.espMiB,
                                 seedMiB: try l.decodeIfPresent(UInt64.self, forKey: .seedMiB) ?? defaults.seedMiB,
                                 rootHeadroomMiB: try l.decodeIfPresent(UInt64.self, forKey: .rootHeadroomMiB) ?? defaults.rootHeadroomMiB,
                                 rootMinimumMiB: try l.decodeIfPresent(UInt64.self, forKey: .rootMinimumMiB) ?? defaults.rootMinimumMiB)
        } else {
            layout = defaults
        }
    }

    /// The file name inside a description directory.
    public static let fileName = "aquarium.yaml"

    /// Reads and checks `directory/aquarium.yaml`. Unknown keys are errors (a typo must not be ignored).
    public static func load(directory: String) throws(ImageError) -> ImageDescription {
        let path = directory + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw .invalid(path, "cannot read the image description")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(ImageError) -> ImageDescription {
        let description: ImageDescription
        do {
            guard let node = try Yams.compose(yaml: text), let mapping = node.mapping else {
                throw ImageError.invalid(file, "the image description must be a YAML mapping")
            }
            let known = Set(CodingKeys.allCases.map(\.rawValue))
            for key in mapping.keys.compactMap(\.string) where !known.contains(key) {
                throw ImageError.invalid(file, "unknown key '\(key)' (known: \(known.sorted().joined(separator: ", ")))")
            }
            if let layout = mapping["layout"]?.mapping {
                let knownLayout = Set(LayoutKeys.allCases.map(\.rawValue))
                for key in layout.keys.compactMap(\.string) where !knownLayout.contains(key) {
                    throw ImageError.invalid(file, "unknown key 'layout.\(key)' (known: \(knownLayout.sorted().joined(separator: ", ")))")
                }
            }
            description = try YAMLDecoder().decode(ImageDescription.self, from: text)
        } catch let error as ImageError {
            throw error
        } catch {
            throw .invalid(file, "is not a valid image description: \(error)")
        }
        try description.validate(file: file)
        return description
    }

    func validate(file: String) throws(ImageError) {
        let namePattern = name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
        guard !name.isEmpty, namePattern, !name.hasPrefix(".") else {
            throw .invalid(file, "name '\(name)' must be letters, digits, '-', '_' or '.' (it names the output files)")
        }
        for package in allPackageNames where !Self.isPackageName(package) {
            throw .invalid(file, "'\(package)' is not a Debian package name")
        }
        guard profiles[defaultProfile] != nil || defaultProfile == "base" else {
            throw .invalid(file, "default_profile '\(defaultProfile)' is not one of the profiles (\(profiles.keys.sorted().joined(separator: ", ")))")
        }
        if let release, !SlotEntry.isValidRelease(release) {
            throw .invalid(file, "release '\(release)' must be 1-64 of letters, digits, '.', '_', '+', '~', '-' (not first)")
        }
        // The command line goes verbatim into a systemd-boot entry's one `options` line and a GRUB `linux` line,
        // where quotes, `$`, `;`, braces and backslashes would mean something else.
        if let bad = kernelCommandLine.first(where: { !$0.isASCII || $0.asciiValue! < 0x20 || "\"'$;{}\\|&<>#`".contains($0) }) {
            throw .invalid(file, "kernel_cmdline holds \(bad.isASCII && bad.asciiValue! >= 0x20 ? "'\(bad)'" : "a control or non-ASCII character"), "
                + "which a boot loader entry would not pass on as written; use plain kernel parameters (name=value)")
        }
        try layout.validate(subject: file)
    }

    var allPackageNames: [String] { packages + profiles.values.flatMap { $0 } }

    static func isPackageName(_ name: String) -> Bool {
        guard let first = name.first, first.isLowercase || first.isNumber, name.count >= 2 else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || "+-.".contains($0)) }
    }

    /// The packages of `profile` (nil: the default profile): the common list plus the profile's, sorted, unique.
    public func packages(profile: String?) throws(ImageError) -> [String] {
        let chosen = profile ?? defaultProfile
        guard let extra = profiles[chosen] ?? (chosen == "base" ? [] : nil) else {
            throw .invalid(chosen, "is not a profile of this image description (\(profiles.keys.sorted().joined(separator: ", ")))")
        }
        return Array(Set(packages + extra)).sorted()
    }

    /// The cache key of the root filesystem: a digest of suite, architecture, variant, components and packages.
    public func rootCacheKey(packages: [String]) -> String {
        let text = ["aquarium-rootfs-v1", suite, architecture, variant, components.joined(separator: ","),
                    packages.sorted().joined(separator: ",")].joined(separator: "\n")
        return SHA256.hash(data: Data(text.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}

/// The Debian mirror the build host's apt uses (so no registry host name is written anywhere).
public enum AptSources {
    /// The first `deb` source serving `suite`, from /etc/apt/sources.list.d/*.sources (deb822) and
    /// *.list files and /etc/apt/sources.list (one-line format).
    public static func mirror(suite: String, root: String = "/") throws(ImageError) -> String {
        let etc = (root == "/" ? "" : root) + "/etc/apt"
        var files: [String] = []
        let listDirectory = etc + "/sources.list.d"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: listDirectory)) ?? []).sorted()
        files += names.filter { $0.hasSuffix(".sources") || $0.hasSuffix(".list") }.map { listDirectory + "/" + $0 }
        files.append(etc + "/sources.list")
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            let found = file.hasSuffix(".sources") ? deb822(text, suite: suite) : oneLine(text, suite: suite)
            if let found { return found }
        }
        throw .invalid(etc, "no apt source for suite '\(suite)' on this host; pass --mirror URL")
    }

    static func deb822(_ text: String, suite: String) -> String? {
        let stanzas = text.components(separatedBy: "\n\n")
        for stanza in stanzas {
            var fields: [String: String] = [:]
            for line in stanza.split(separator: "\n") where !line.hasPrefix("#") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()] =
                    line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            if fields["enabled"]?.lowercased() == "no" { continue }
            let types = (fields["types"] ?? "").split(separator: " ").map(String.init)
            let suites = (fields["suites"] ?? "").split(separator: " ").map(String.init)
            guard types.contains("deb"), suites.contains(suite),
                  let uri = (fields["uris"] ?? "").split(separator: " ").first else { continue }
            return String(uri)
        }
        return nil
    }

    static func oneLine(_ text: String, suite: String) -> String? {
        for line in text.split(separator: "\n") {
            var words = line.split(separator: " ").map(String.init)
            guard words.first == "deb" else { continue }
            words.removeFirst()
            if words.first?.hasPrefix("[") == true {
                while let word = words.first, !word.hasSuffix("]") { words.removeFirst() }
                if !words.isEmpty { words.removeFirst() }
            }
            if words.count >= 2, words[1] == suite { return words[0] }
        }
        return nil
    }
}
