import Disks
import Foundation
import GPT
import JSONCoding
import NodeContract
import Seed

/// The plan as a person reads it; the JSON is the same value (`Plan.json()`).
extension SystemDiskPlanner {
    static func planned(_ disk: Disk, mode: SystemDiskMode?, reasons: [String]) -> PlannedDisk {
        PlannedDisk(path: disk.path, displayPath: displayPath(disk), name: disk.name, stableIdentity: disk.stableIdentity,
                    byId: disk.byId, wwn: disk.wwn, serial: disk.serial, model: disk.model, vendor: disk.vendor,
                    sizeBytes: disk.sizeBytes, logicalSectorSize: disk.logicalSectorSize, rotational: disk.rotational,
                    transport: disk.transport.rawValue, content: describeContent(disk), mode: mode, reasons: reasons)
    }

    /// A by-id link (WWN links first) when udev made one, else the kernel path.
    static func displayPath(_ disk: Disk) -> String {
        let links = disk.byId.sorted()
        return links.first { $0.contains("/wwn-") } ?? links.first ?? disk.path
    }

    /// The plan in words, as `plan` prints it.
    public static func render(_ plan: Plan) -> String {
        var lines: [String] = []
        if let system = plan.systemDisk {
            let what: String
            switch system.mode ?? .create {
            case .create: what = "will create GPT with partition '\(AquariumLayout.partitionName)' (\(plan.filesystem)) over the whole disk"
            case .reuse: what = "carries this node's layout: will mount only"
            case .resume: what = "will resume an interrupted first boot"
            }
            lines.append("system disk: \(system.displayPath) (\(describe(system))) — \(what); "
                + system.reasons.joined(separator: "; "))
        } else {
            lines.append("system disk: none — \(plan.refusal ?? "no disk is eligible")")
        }
        for disk in plan.storageDisks {
            let own = disk.ownOSD ? disk.reasons.first : nil
            lines.append("storage disk: \(disk.displayPath) (\(describe(disk)))" + (disk.content.map { " — \($0)" } ?? "")
                + (own.map { "; \($0)" } ?? ""))
        }
        for disk in plan.rejected {
            lines.append("rejected \(disk.path): " + disk.reasons.joined(separator: "; "))
        }
        for check in plan.requirements {
            lines.append("requirement \(check.met ? "met" : "NOT MET") \(check.description)")
        }
        if plan.systemDisk != nil, let refusal = plan.refusal { lines.append("refused: \(refusal)") }
        if !plan.actions.isEmpty {
            lines.append("actions:")
            for (index, action) in plan.actions.enumerated() { lines.append("  \(index + 1). \(action.description)") }
        }
        return lines.joined(separator: "\n")
    }

    static func describe(_ disk: PlannedDisk) -> String {
        var parts = [formatSize(disk.sizeBytes) + " " + (disk.rotational ? "HDD" : "SSD")]
        let name = [disk.vendor, disk.model].compactMap { $0?.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
        if !name.isEmpty { parts.append(name) }
        if disk.logicalSectorSize != 512 { parts.append("\(disk.logicalSectorSize)-byte sectors") }
        return parts.joined(separator: ", ")
    }

    /// Decimal units, as disk vendors label them ("480 GB").
    public static func formatSize(_ bytes: UInt64) -> String {
        let units: [(UInt64, String)] = [(1_000_000_000_000, "TB"), (1_000_000_000, "GB"), (1_000_000, "MB"), (1_000, "kB")]
        for (size, unit) in units where bytes >= size {
            let value = Double(bytes) / Double(size)
            return value >= 100 || value == value.rounded() ? "\(Int(value.rounded())) \(unit)"
                : String(format: "%.1f %@", value, unit)
        }
        return "\(bytes) B"
    }
}

extension Plan {
    /// The documented JSON (docs/plan.md).
    public func json() throws -> String { try JSONCoding.text(self) }
}
