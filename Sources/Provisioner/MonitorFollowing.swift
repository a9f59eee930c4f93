import Foundation
import JSONCoding

/// The monitors of the cluster's monitor map as this node last saw them (`/var/lib/aquarium/monitors.json`), kept by
/// its `maintenance watch`. Once `node remove` took a monitor away and placed a replacement, the seed's monitor list
/// (the rack file's, or the one monitor a joined node was told about) is out of date: ceph.conf's `mon_host` follows
/// this map instead, so the node still finds the monitors after a reboot. A separate file from the run's state, so a
/// watch round and a run never overwrite each other's writes.
public struct LearnedMonitors: Codable, Equatable, Sendable {
    public struct Monitor: Codable, Equatable, Sendable {
        public var name: String
        /// Ceph's address vector without nonces: `[v2:10.0.0.1:3300,v1:10.0.0.1:3301]`.
        public var addresses: String

        public init(name: String, addresses: String) {
            self.name = name
            self.addresses = addresses
        }
    }

    public var fsid: String
    public var monitors: [Monitor]
    public var time: String

    public init(fsid: String, monitors: [Monitor], time: String) {
        self.fsid = fsid
        self.monitors = monitors
        self.time = time
    }

    public static func path(_ layout: Layout) -> String { layout.aquariumState + "/monitors.json" }

    public static func load(_ layout: Layout) -> LearnedMonitors? {
        guard let data = FileManager.default.contents(atPath: path(layout)) else { return nil }
        return try? JSONDecoder().decode(LearnedMonitors.self, from: data)
    }

    /// `mon_host` for a node of cluster `fsid`; nil when this map is of another cluster or empty.
    public func monHost(fsid: String) -> String? {
        guard fsid == self.fsid, !monitors.isEmpty else { return nil }
        return monitors.map(\.addresses).joined(separator: ",")
    }

    /// The monitors of `ceph mon dump --format json`, their address vectors as `mon_host` takes them.
    static func parse(monDump: CephJSON.MonDump) -> [Monitor] {
        (monDump.mons ?? []).compactMap { mon in
            guard let name = mon.name else { return nil }
            let vector = (mon.publicAddrs?.addrvec ?? []).compactMap { entry -> String? in
                guard let type = entry.type, let addr = entry.addr, type == "v2" || type == "v1" else { return nil }
                return "\(type):\(addr)"
            }
            guard !vector.isEmpty else { return nil }
            return Monitor(name: name, addresses: "[" + vector.joined(separator: ",") + "]")
        }.sorted { $0.name < $1.name }
    }

    /// `text` (a ceph.conf) with its `mon_host` line set to `monHost`; nil when it has no such line or it is unchanged.
    static func replacingMonHost(in text: String, with monHost: String) -> String? {
        var lines = text.components(separatedBy: "\n")
        guard let index = lines.firstIndex(where: {
            let key = $0.split(separator: "=", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces)
            return key == "mon_host" || key == "mon host"
        }) else { return nil }
        let indent = String(lines[index].prefix { $0 == " " || $0 == "\t" })
        let line = indent + "mon_host = " + monHost
        guard lines[index] != line else { return nil }
        lines[index] = line
        return lines.joined(separator: "\n")
    }
}

extension Operations {
    /// One look at the monitor map (a `maintenance watch` round): when its monitors differ from what this node last
    /// saw, saves them and points ceph.conf's `mon_host` at them. Returns what changed; nil when nothing did.
    func followMonitors() throws(ProvisionError) -> String? {
        guard !identity.fsid.isEmpty else { return nil }
        let result = try reading("ceph", ["mon", "dump", "--format", "json"], timeout: 30)
        guard result.status == 0, case .success(let dump?) = CephJSON.decode(CephJSON.MonDump.self, from: result.standardOutput)
        else { return nil }
        if let fsid = dump.fsid, fsid != identity.fsid { return nil }
        let monitors = LearnedMonitors.parse(monDump: dump)
        guard !monitors.isEmpty else { return nil }
        let previous = LearnedMonitors.load(layout)
        guard previous?.fsid != identity.fsid || previous?.monitors != monitors else { return nil }
        let learned = LearnedMonitors(fsid: identity.fsid, monitors: monitors, time: Self.now())
        guard let data = try? JSONCoding.encoder(pretty: true).encode(learned) else { throw .failed("cannot encode the monitor map") }
        try Files.write(String(decoding: data, as: UTF8.self) + "\n", to: LearnedMonitors.path(layout))
        let names = monitors.map(\.name).joined(separator: ", ")
        guard let monHost = learned.monHost(fsid: identity.fsid), let conf = Files.read(layout.cephConf),
              let updated = LearnedMonitors.replacingMonHost(in: conf, with: monHost) else {
            return previous == nil ? nil : "the monitors are now \(names)"
        }
        try Files.write(updated, to: layout.cephConf)
        return "the monitors are now \(names): ceph.conf's mon_host follows them (\(monHost))"
    }
}
