import ArgumentParser
import CommandSupport
import Disks
import FileLayer
import FirstBoot
import Foundation
import JSONCoding
import Seed

// `seed new`'s answers as the seed text they make (SeedWizard.swift asks the questions).

// MARK: - the answers as seed text

/// Which disks become storage disks (OSDs).
enum StorageChoice: String, CaseIterable, Sendable {
    case all, hdd, ssd
    case noDisks = "none"

    var label: String {
        switch self {
        case .all: "every other eligible disk"
        case .hdd: "HDDs only"
        case .ssd: "SSDs only"
        case .noDisks: "none (a monitor-only node)"
        }
    }

    /// `disks.storage.match` as a YAML flow mapping; nil: no match, every remaining eligible disk.
    var match: String? {
        switch self {
        case .all: nil
        case .hdd: "{rotational: true}"
        case .ssd: "{rotational: false}"
        // No disk is this small (the inventory lists no disk of size 0): no storage disk.
        case .noDisks: "{max_size: \"1B\"}"
        }
    }
}

/// The answers so far, and the seed text they make. Text values are written as they were typed (quoted), so the
/// parser judges exactly what the operator typed.
struct SeedWizardDraft: Sendable {
    var hostname = ""
    var passwordHash: String?
    var sshKeys: [String] = []
    /// A kernel name, or a MAC address (it has ':').
    var interface: String?
    var dhcp = false
    var address: String?
    var gateway: String?
    var nameservers: [String] = []
    var publicNetwork: String?
    /// `disks.system.match`: serial, wwn or by_id, its value, and a comment naming the disk.
    var systemDisk: (key: String, value: String, comment: String)?
    var storage: StorageChoice?
    var storageWipe: String?
    var role = "bootstrap"
    var joinAddress: String?
    var joinToken: String?

    static func header(file: String) -> [String] {
        let name = (file as NSString).lastPathComponent
        return [
            "Aquarium seed file, version 1: written by `aquarium-image seed new`.",
            "Check it with `aquarium-image seed validate \(name)`;",
            "put it on a stick with `aquarium-image seed inject /dev/sdX \(name)`.",
            "Reference: docs/seed.md.",
        ]
    }

    /// A YAML double-quoted scalar holding `text` exactly.
    static func quoted(_ text: String) -> String { Seed.yamlQuoted(text) }

    func text(header: [String] = []) -> String {
        let q = Self.quoted
        var lines = header.map { "# " + $0 }
        lines.append("version: 1")
        lines.append("")
        lines.append("host:")
        lines.append("  hostname: \(q(hostname))")
        if passwordHash != nil || !sshKeys.isEmpty {
            lines.append("  users:")
            lines.append("    - name: aquarium")
            if let passwordHash { lines.append("      password_hash: \(q(passwordHash))") }
            if !sshKeys.isEmpty {
                lines.append("      ssh_authorized_keys:")
                lines += sshKeys.map { "        - \(q($0))" }
            }
        }
        if storage == StorageChoice.noDisks && role == "bootstrap" {
            lines.append("  requirements:")
            lines.append("    storage_disks: 0                   # no storage disks: other nodes join with them")
        }
        if interface != nil || !nameservers.isEmpty || publicNetwork != nil {
            lines.append("")
            lines.append("network:")
            if let interface {
                lines.append("  interfaces:")
                lines.append(interface.contains(":") ? "    - mac: \(q(interface))" : "    - name: \(q(interface))")
                if dhcp { lines.append("      dhcp: true") }
                if let address { lines.append("      addresses: [\(q(address))]") }
                if let gateway { lines.append("      gateway: \(q(gateway))") }
            }
            if !nameservers.isEmpty { lines.append("  nameservers: [" + nameservers.map(q).joined(separator: ", ") + "]") }
            if let publicNetwork { lines.append("  public_network: \(q(publicNetwork))") }
        }
        let storageLines = [storage?.match.map { "    match: \($0)" + (storage == StorageChoice.noDisks ? "  # none: no disk is this small" : "") },
                            storageWipe.map { "    wipe: \(q($0))" }].compactMap { $0 }
        if systemDisk != nil || !storageLines.isEmpty {
            lines.append("")
            lines.append("disks:")
            if let systemDisk {
                lines.append("  system:")
                lines.append("    match:                             # \(systemDisk.comment)")
                lines.append("      \(systemDisk.key): \(q(systemDisk.value))")
            }
            if !storageLines.isEmpty {
                lines.append("  storage:")
                lines += storageLines
            }
        }
        lines.append("")
        lines.append("cluster:")
        lines.append("  role: \(q(role))")
        if joinAddress != nil || joinToken != nil {
            lines.append("  join:")
            if let joinAddress { lines.append("    address: \(q(joinAddress))") }
            if let joinToken { lines.append("    token: \(q(joinToken))") }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The seed these answers make, or every problem with it: the checks of `seed validate`.
    func parsed() -> Result<Seed, SeedValidationError> {
        Result { () throws(SeedValidationError) -> Seed in try SeedLoader.parse(text(), file: "seed") }
    }

    /// The problems of this draft at `paths` or below them (`host.users[0]` covers `host.users[0].name`).
    func problems(at paths: [String]) -> [SeedIssue] {
        guard case .failure(let error) = parsed() else { return [] }
        return error.issues.filter { issue in
            paths.contains { issue.keyPath == $0 || issue.keyPath.hasPrefix($0 + ".") || issue.keyPath.hasPrefix($0 + "[") }
        }
    }
}
