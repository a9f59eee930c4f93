import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The strict syntax rules for values that later reach a command line or a file. Each check returns nil when the
/// value is fine, or a message that says what is expected. Messages never repeat a secret value.
enum SeedSyntax {
    static func isASCIILetterOrDigit(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
    }

    static func isLowerOrDigit(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7a)
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// The crypt(3) / base64 alphabet `[./0-9A-Za-z]`.
    static func isCryptChar(_ byte: UInt8) -> Bool { isASCIILetterOrDigit(byte) || byte == 0x2e || byte == 0x2f }

    /// Printable ASCII or any non-control Unicode scalar; no control characters.
    static func isPrintable(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { scalar in
            scalar.value >= 0x20 && scalar.value != 0x7f && !(scalar.value >= 0x80 && scalar.value < 0xa0)
        }
    }

    // MARK: names

    /// RFC 1123 host name, lowercase: labels of 1-63 of `[a-z0-9-]`, not starting or ending with `-`, separated by
    /// dots, at most 253 characters; the last label is not all digits (so it cannot be mistaken for an address).
    static func hostnameProblem(_ name: String) -> String? {
        let expected = "must be an RFC 1123 host name: lowercase letters, digits and '-', in dot-separated labels of "
            + "1 to 63 characters that neither start nor end with '-'"
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return "is empty; " + expected }
        if bytes.count > 253 { return "is \(bytes.count) characters long; at most 253 are allowed" }
        if bytes.contains(where: { $0 >= 0x41 && $0 <= 0x5a }), hostnameProblem(name.lowercased()) == nil {
            return "'\(name)' contains uppercase letters; write it in lowercase: '\(name.lowercased())'"
        }
        let labels = bytes.split(separator: 0x2e, omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty, label.count <= 63, label.allSatisfy({ isLowerOrDigit($0) || $0 == 0x2d }),
                  label.first != 0x2d, label.last != 0x2d else {
                return "'\(printable(name))' " + expected
            }
        }
        if let last = labels.last, last.allSatisfy(isDigit) {
            return "'\(name)' ends in an all-numeric label; a host name must not look like an address"
        }
        return nil
    }

    /// Debian's NAME_REGEX `^[a-z][-a-z0-9_]*$`, at most 32 characters.
    static func userNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, first >= 0x61, first <= 0x7a,
              bytes.allSatisfy({ isLowerOrDigit($0) || $0 == 0x2d || $0 == 0x5f }) else {
            return "'\(printable(name))' is not a valid user name: a lowercase letter, then lowercase letters, "
                + "digits, '-' or '_' (Debian's NAME_REGEX)"
        }
        if bytes.count > 32 { return "'\(name)' is \(bytes.count) characters long; at most 32 are allowed" }
        if reservedUserNames.contains(name) || name.hasPrefix("systemd-") {
            return "'\(name)' is a system account and cannot be configured by a seed"
        }
        return nil
    }

    /// System accounts of Debian and of the image that a seed must not take over.
    static let reservedUserNames: Set<String> = [
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
        "backup", "list", "irc", "gnats", "nobody", "messagebus", "sshd", "ceph", "chrony", "_apt", "_chrony",
    ]

    /// A Linux interface name: 1-15 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
    static func interfaceNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 15, name != ".", name != "..",
              bytes.allSatisfy({ isASCIILetterOrDigit($0) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d }) else {
            return "'\(printable(name))' is not a valid interface name: 1 to 15 letters, digits, '.', '_' or '-'"
        }
        return nil
    }

    /// A MAC address `52:54:00:12:34:56` (either case); returns it normalised to lowercase, or nil.
    static func normalizedMAC(_ text: String) -> String? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6,
              parts.allSatisfy({ $0.utf8.count == 2 && $0.utf8.allSatisfy { isHexDigit($0) } }) else { return nil }
        return text.lowercased()
    }

    static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66)
    }

    /// A Ceph cluster name: `^[a-z][a-z0-9_-]{0,31}$`.
    static func clusterNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, first >= 0x61, first <= 0x7a, bytes.count <= 32,
              bytes.allSatisfy({ isLowerOrDigit($0) || $0 == 0x5f || $0 == 0x2d }) else {
            return "'\(printable(name))' is not a valid cluster name: a lowercase letter, then up to 31 lowercase "
                + "letters, digits, '_' or '-'"
        }
        return nil
    }

    /// A host name or an IP address (NTP servers).
    static func hostOrAddressProblem(_ text: String) -> String? {
        if IPAddress(text) != nil { return nil }
        if let problem = hostnameProblem(text) {
            return problem.hasPrefix("'") ? problem.replacingOccurrences(of: "must be an RFC 1123 host name",
                                                                         with: "must be an IP address or a host name")
                : problem
        }
        return nil
    }

    // MARK: time zones

    /// An IANA zone name such as `Etc/UTC` or `Europe/Berlin` that exists in `zoneinfoDirectory`. When that
    /// directory does not exist (a build host without tzdata), only the syntax is checked.
    static func timezoneProblem(_ name: String, zoneinfoDirectory: String) -> String? {
        let bytes = Array(name.utf8)
        let components = bytes.split(separator: 0x2f, omittingEmptySubsequences: false)
        guard !bytes.isEmpty, bytes.count <= 64,
              components.allSatisfy({ component in
                  !component.isEmpty && component.allSatisfy { isASCIILetterOrDigit($0) || $0 == 0x5f || $0 == 0x2b || $0 == 0x2d }
              }) else {
            return "'\(printable(name))' is not a time zone name such as Etc/UTC or Europe/Berlin"
        }
        var directoryInfo = stat()
        guard stat(zoneinfoDirectory, &directoryInfo) == 0, (directoryInfo.st_mode & S_IFMT) == S_IFDIR else {
            return nil
        }
        var info = stat()
        let path = zoneinfoDirectory + "/" + name
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            return "'\(name)' is not a known time zone (no \(path)); see `timedatectl list-timezones`"
        }
        return nil
    }

    // MARK: disks

    /// A path `/dev/disk/by-id/NAME` with NAME of printable characters and no `/`.
    static func byIdProblem(_ path: String) -> String? {
        let prefix = "/dev/disk/by-id/"
        let name = path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : ""
        guard !name.isEmpty, name.utf8.count <= 255, name != ".", name != "..",
              name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != 0x2f }) else {
            return "'\(printable(path))' is not a path like /dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
        }
        return nil
    }

    /// A WWN as udev reports it (`0x5000c500a1b2c3d4`, `eui.0025385b71b0a1c2`, `naa.…`, `nvme.…`).
    static func wwnProblem(_ wwn: String) -> String? {
        let bytes = Array(wwn.utf8)
        guard (4...128).contains(bytes.count),
              bytes.allSatisfy({ isASCIILetterOrDigit($0) || $0 == 0x2e || $0 == 0x2d || $0 == 0x5f || $0 == 0x3a })
        else {
            return "'\(printable(wwn))' is not a WWN such as 0x5000c500a1b2c3d4 or eui.0025385b71b0a1c2"
        }
        return nil
    }

    /// A shell glob (fnmatch) of printable ASCII, at most 128 characters.
    static func globProblem(_ pattern: String) -> String? {
        let bytes = Array(pattern.utf8)
        guard !bytes.isEmpty, bytes.count <= 128, bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else {
            return "'\(printable(pattern))' is not a pattern: 1 to 128 printable ASCII characters, with * ? [...] "
                + "as in the shell"
        }
        return nil
    }

    // MARK: sizes

    static let sizeUnits: [(String, UInt64)] = [
        ("B", 1), ("kB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
    ]

    /// `10GiB`, `2TB`, `1.92TB`, `512 MiB`: a number (up to 3 decimals) and a unit. Returns bytes or a message.
    static func parseSize(_ text: String) -> Result<UInt64, SizeProblem> {
        let units = sizeUnits.map(\.0).joined(separator: ", ")
        let bytes = Array(text.utf8)
        var index = 0
        var whole: UInt64 = 0
        var digits = 0
        while index < bytes.count, isDigit(bytes[index]) {
            let (product, overflow1) = whole.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = product.addingReportingOverflow(UInt64(bytes[index] - 0x30))
            if overflow1 || overflow2 { return .failure(.init("'\(text)' is too large")) }
            whole = sum
            digits += 1
            index += 1
        }
        var fraction: UInt64 = 0
        var fractionDigits = 0
        if index < bytes.count, bytes[index] == 0x2e {
            index += 1
            while index < bytes.count, isDigit(bytes[index]) {
                fraction = fraction * 10 + UInt64(bytes[index] - 0x30)
                fractionDigits += 1
                index += 1
                if fractionDigits > 3 { break }
            }
            if fractionDigits == 0 || fractionDigits > 3 {
                return .failure(.init("'\(printable(text))' is not a size: give at most 3 decimals, e.g. 1.92TB"))
            }
        }
        if index < bytes.count, bytes[index] == 0x20 { index += 1 }
        let unit = String(decoding: bytes[index...], as: UTF8.self)
        guard digits > 0, digits <= 20 else {
            return .failure(.init("'\(printable(text))' is not a size: give a number and a unit (\(units)), e.g. 10GiB"))
        }
        guard let multiplier = sizeUnits.first(where: { $0.0 == unit })?.1 else {
            let number = String(decoding: bytes[..<index], as: UTF8.self).trimmingCharacters(in: .whitespaces)
            let prefixes: [String: String] = ["K": "k", "M": "M", "G": "G", "T": "T"]
            let letter = unit.uppercased().hasSuffix("I") ? String(unit.uppercased().dropLast()) : unit.uppercased()
            let hint: String
            if let decimal = prefixes[letter] {
                // `100G`, `100Gi`: binary or decimal is the operator's choice, both are offered.
                let binary = (letter == "K" ? "Ki" : letter + "i") + "B"
                hint = "; did you mean '\(number)\(binary)' or '\(number)\(decimal)B'?"
            } else {
                hint = sizeUnits.first { $0.0.lowercased() == unit.lowercased() }.map { "; did you mean '\(number)\($0.0)'?" } ?? ""
            }
            return .failure(.init("'\(printable(text))' has no valid unit: use one of \(units)\(hint)"))
        }
        let (wholeBytes, overflow) = whole.multipliedReportingOverflow(by: multiplier)
        if overflow { return .failure(.init("'\(text)' is too large")) }
        var scale: UInt64 = 1
        for _ in 0..<fractionDigits { scale *= 10 }
        let (fractionProduct, overflow2) = fraction.multipliedReportingOverflow(by: multiplier)
        if overflow2 { return .failure(.init("'\(text)' is too large")) }
        if fractionProduct % scale != 0 {
            return .failure(.init("'\(text)' is not a whole number of bytes"))
        }
        let (total, overflow3) = wholeBytes.addingReportingOverflow(fractionProduct / scale)
        if overflow3 { return .failure(.init("'\(text)' is too large")) }
        return .success(total)
    }

    struct SizeProblem: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    /// A short human form of a byte count for messages: `10GiB (10737418240 bytes)`.
    static func describeSize(_ bytes: UInt64) -> String {
        for (unit, multiplier) in sizeUnits.sorted(by: { $0.1 > $1.1 })
            where multiplier > 1 && bytes >= multiplier && bytes % multiplier == 0 {
            return "\(bytes / multiplier)\(unit)"
        }
        return "\(bytes)B"
    }

    /// A value quoted back in a message, shortened and with control characters escaped.
    static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(80) {
            if scalar.value < 0x20 || scalar.value == 0x7f || (scalar.value >= 0x80 && scalar.value < 0xa0) {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return text.unicodeScalars.count > 80 ? out + "…" : out
    }
}

extension DiskMatch {
    /// Shell-glob matching (fnmatch(3), no flags) as used for `serial` and `model`.
    public static func glob(_ pattern: String, matches value: String) -> Bool {
        fnmatch(pattern, value, 0) == 0
    }
}

extension Seed {
    /// A size as a seed writes it (`10GiB`, `1.92TB`), for messages in other modules.
    public static func sizeText(_ bytes: UInt64) -> String { SeedSyntax.describeSize(bytes) }
}
