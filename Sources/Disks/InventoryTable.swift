import Foundation

/// The human-readable inventory table.
public enum InventoryTable {
    public static func render(_ inventory: Inventory) -> String {
        var rows: [[String]] = [["PATH", "SIZE", "SECTOR", "TYPE", "TRANSPORT", "MODEL", "SERIAL", "CONTENT", "STATE"]]
        for disk in inventory.disks {
            let sector = disk.logicalSectorSize == disk.physicalSectorSize
                ? "\(disk.logicalSectorSize)" : "\(disk.logicalSectorSize)/\(disk.physicalSectorSize)"
            var content: [String] = []
            if let table = disk.partitionTable { content.append("\(table):\(disk.partitions.count) part") }
            for sig in disk.signatures where sig.usage != "partition_table" {
                content.append(sig.label.map { "\(sig.type) '\($0)'" } ?? sig.type)
            }
            for part in disk.partitions where part.fsType != nil {
                content.append("p\(part.number):\(part.fsType ?? "")" + (part.fsLabel.map { " '\($0)'" } ?? ""))
            }
            var state: [String] = []
            if disk.isBootMedia { state.append("boot-media") }
            if disk.mounted { state.append("mounted") }
            if disk.readOnly { state.append("read-only") }
            if disk.removable { state.append("removable") }
            if !disk.holders.isEmpty { state.append("held by " + disk.holders.joined(separator: ",")) }
            if disk.isCdrom { state.append("cdrom") }
            if let error = disk.probeError { state.append("unreadable: \(error)") }
            rows.append([disk.path, ByteSize.human(disk.sizeBytes), sector, disk.rotational ? "HDD" : "SSD",
                         disk.transport.rawValue, disk.model ?? "-", disk.serial ?? "-",
                         content.isEmpty ? "empty" : content.joined(separator: ", "),
                         state.isEmpty ? "-" : state.joined(separator: ", ")])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// Byte sizes for people.
public enum ByteSize {
    /// Decimal units, as disk vendors label them: "480 GB", "10.7 GB", "512 MB".
    public static func human(_ bytes: UInt64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB", "PB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let tenths = Int((value * 10).rounded())
        let rounded = value >= 100 || tenths % 10 == 0 ? String(Int(value.rounded())) : String(Double(tenths) / 10)
        return "\(rounded) \(units[unit])"
    }
}
